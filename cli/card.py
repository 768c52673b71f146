"""`cps card|pin|certs|sign|verify|auth`: the card, its PIN, its keys.

Each command parses its options, calls the library (:mod:`cps.info` and the
Card API), builds data and hands it to :func:`~cps_cli.util.emit`. Heavy
libraries are imported inside the commands, so `cps --help` stays fast.

PIN rules (docs/cli.md): ``--pin env:VAR``, else a line of stdin when it is
not a terminal, else a hidden prompt on stderr. The tries left are shown
before and after every PIN operation; the last try is refused without
``--force``; a PIN never appears in any output.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import click

from . import exitcodes
from .trustcmd import (
    DownloadProgress,
    fail_with_json,
    parse_time,
    read_input,
    trust_options,
    validator_from,
)
from .util import (
    CliFail,
    confirm,
    emit,
    env_name_problem,
    force_option,
    json_option,
    read_secret,
    style_bad,
    style_ok,
    with_card,
)

__all__ = ["card", "pin", "certs", "sign", "verify", "auth"]


def note(message: str) -> None:
    """Information for the human, on stderr (stdout stays for results)."""
    click.echo(message, err=True)


def _env_spec(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    """Refuse a code given on the command line before anything else happens."""
    if value is None:
        return value
    # The value itself is never repeated: it may be a real PIN (`--pin 7391`), or a
    # code typed where the variable's name was expected (`--pin env:7391`).
    if not value.startswith("env:"):
        raise click.BadParameter("takes env:VARIABLE (a code on the command line would be "
                                 "visible to every user of the machine; it is not "
                                 "repeated here)", ctx, param)
    problem = env_name_problem(value[4:])
    if problem is not None:
        raise click.BadParameter(problem, ctx, param)
    return value


def secret_option(name: str, dest: str, what: str) -> Callable:
    return click.option(name, dest, metavar="env:VAR", callback=_env_spec, expose_value=True,
                        help=f"Read the {what} from this environment variable (else a line of "
                             "stdin when it is not a terminal, else a hidden prompt).")


def pin_option(f: Callable) -> Callable:
    return secret_option("--pin", "pin_spec", "PIN")(f)


def _secret(spec: Optional[str], what: str, confirm_twice: bool = False) -> str:
    """``--pin env:VAR``, else a line of stdin (not a TTY), else a hidden prompt on stderr."""
    return read_secret(spec, what, confirm_twice=confirm_twice)


def _prompts(spec: Optional[str]) -> bool:
    """The PIN will be typed at a prompt (not ``env:``, not piped)."""
    return not spec and sys.stdin.isatty()


def _pin_for(card: Any, spec: Optional[str], force: bool) -> str:
    """The PIN to verify. Without one, a card that is blocked (or at its last
    try) is the problem to report, not the missing PIN."""
    try:
        return _secret(spec, "PIN")
    except CliFail:
        from cps.card import check_last_try

        status = card.pin_status()
        check_last_try(status.tries_left, None, "PIN", force)
        raise


def _verify(card: Any, spec: Optional[str], force: bool, as_json: bool,
            report: bool = True) -> None:
    # A prompt comes after the counters are shown (no PIN typed for a blocked
    # card); a PIN from env: or stdin costs no APDU beyond the library call.
    pin_operation(card, "verify",
                  lambda: card.verify_pin(_pin_for(card, spec, force), allow_last_try=force),
                  as_json, force=force, report=report, read_before=_prompts(spec))


# --------------------------------------------------------------------------- rendering
def _who(practitioner: Dict[str, Any]) -> str:
    name = " ".join(p for p in (practitioner.get("first_name"), practitioner.get("last_name"))
                    if p) or practitioner.get("pseudonym") or "?"
    profession = practitioner.get("profession_label")
    code = practitioner.get("profession_code")
    if profession:
        name += f", {profession}" + (f" ({code})" if code else "")
    return name


def _cert_lines(cert: Dict[str, Any], indent: str = "  ") -> List[str]:
    role = f"{cert['role']}: " if cert.get("role") else ""
    return [f"{indent}{role}{cert['subject']}",
            f"{indent}  issuer   {cert['issuer']}",
            f"{indent}  serial   {cert['serial']}",
            f"{indent}  valid    {cert['not_before']} -> {cert['not_after']}",
            f"{indent}  SHA-256  {cert['sha256']}"]


def render_card_info(d: Dict[str, Any]) -> str:
    p = d["practitioner"]
    where = f"{d['reader']} ({d['backend']}"
    where += f", token {d['token_label']})" if d.get("token_label") else ")"
    card_line = d["card_name"] or "CPS card"
    if d["atr"]:
        card_line += f", ATR {d['atr']}"
    idnat = f"{p['idnat']} ({p['id_type_name']} {p['national_id']})"
    lines = [f"Reader:        {where}",
             f"Card:          {card_line}",
             f"Interface:     {d['interface']}",
             f"Card number:   {d['card_number']} ({p['card_type']})",
             f"Practitioner:  {_who(p)}",
             f"  idnat:       {idnat}"]
    if p.get("structure_name") or p.get("structure_id"):
        lines.append(f"  structure:   {p.get('structure_name') or ''} "
                     f"{p.get('structure_id') or ''}".rstrip())
    lines.append("  " + click.style("not validated", fg="yellow")
                 + ": what the certificate claims; run `cps validate` (or `cps auth test`)")
    lines.append("Certificates:")
    for cert in d["certificates"]:
        lines += _cert_lines(cert)
    pin_text = _pin_line(d["pin"])
    lines.append(f"PIN:           {pin_text}")
    return "\n".join(lines)


def _pin_line(status: Optional[Dict[str, Any]]) -> str:
    if status is None:
        return "none on this interface"
    from cps.card import PinStatus
    from cps.info import describe_pin_status

    fields = {k: v for k, v in status.items() if k != "last_try"}
    text = describe_pin_status(PinStatus(**fields)).removeprefix("PIN: ")
    return style_bad(text) if status["blocked"] or status["last_try"] else text


# --------------------------------------------------------------------------- cps card
@click.group()
def card() -> None:
    """the card in the reader: info, wait for one, watch insertions"""


@card.command("info")
@with_card
@json_option
def card_info(card: Any, as_json: bool) -> None:
    """ATR, card number, holder, certificates, PIN

    Reads everything without a PIN and without spending a try.
    """
    from cps.info import card_info as gather

    data = gather(card)
    emit(data, as_json, render_card_info(data))


def _reader_option(f: Callable) -> Callable:
    return click.option("-r", "--reader", metavar="READER",
                        help="Reader index or name substring (default: every reader).")(f)


def _matching(readers: Sequence[Any], selector: Optional[str]) -> List[Any]:
    """The readers a ``-r`` selector designates (empty when none matches yet)."""
    from cps import errors
    from cps.readers import select_reader

    if not selector:
        return list(readers)
    try:
        return [select_reader(list(readers), selector)]
    except (errors.NoReaders, errors.ReaderNotFound):
        return []


@card.command("wait")
@_reader_option
@click.option("-t", "--timeout", type=click.FloatRange(min=0), default=None,
              help="Give up after this many seconds (exit code 5). Default: wait forever.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.25, show_default=True,
              help="Seconds between two looks at the readers.")
@json_option
def card_wait(reader: Optional[str], timeout: Optional[float], interval: float,
              as_json: bool) -> None:
    """wait until a CPS card is in a reader"""
    import cps
    from cps import errors
    from cps.atr import identify

    start = time.monotonic()
    announced = False
    while True:
        candidates = _matching(cps.list_readers(), reader)
        for r in candidates:
            if not r.card_present:
                continue
            if r.card_kind is not None and r.card_kind.supported:
                entry = identify(r.atr)
                data = {"reader": r.name, "atr": r.atr.hex().upper(),
                        "card_kind": r.card_kind.value, "card_name": entry.name if entry else None,
                        "waited_seconds": round(time.monotonic() - start, 2)}
                emit(data, as_json, f"{data['card_name']} in {r.name}")
                return
            if reader:  # the one reader asked for holds another card: say so, do not hang
                kind = r.card_kind.value if r.card_kind else "unknown"
                raise errors.UnsupportedCard(f"the card in {r.name} is not a CPS3 ({kind}, "
                                             f"ATR {r.atr.hex().upper()})", atr=r.atr)
        if timeout is not None and time.monotonic() - start >= timeout:
            where = f" in {candidates[0].name}" if reader and candidates else ""
            raise CliFail(f"no CPS card inserted{where} within {timeout:g} s", exitcodes.NO_CARD)
        if not announced:
            note("Waiting for a CPS card... (Ctrl-C to stop)")
            announced = True
        time.sleep(interval)


@card.command("watch")
@_reader_option
@click.option("-n", "--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many insert/remove events (default: until Ctrl-C).")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.25, show_default=True,
              help="Seconds between two looks at the readers.")
@json_option
def card_watch(reader: Optional[str], count: Optional[int], interval: float,
               as_json: bool) -> None:
    """print card insertions and removals as they happen

    The current state comes first (event "present"); with --json, one JSON
    object per line (JSON Lines).
    """
    import datetime as dt
    import json

    import cps
    from cps.info import reader_events, reader_states

    def show(event: Dict[str, Any]) -> None:
        event = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                 **event}
        if as_json:
            click.echo(json.dumps(event, ensure_ascii=False, sort_keys=True))
        else:
            kind = f"  {event['card_kind']}  {event['atr']}" if event["atr"] else ""
            label = {"inserted": style_ok("inserted"), "removed": style_bad("removed")}.get(
                event["event"], event["event"])
            click.echo(f"{event['time']}  {event['reader']}: {label}{kind}")
        sys.stdout.flush()

    state = reader_states(_matching(cps.list_readers(), reader))
    for s in state.values():
        if s["card_present"]:
            show({"event": "present", "reader": s["reader"], "atr": s["atr"],
                  "card_kind": s["card_kind"]})
    note(f"Watching {len(state)} reader(s)... (Ctrl-C to stop)")
    seen = 0
    try:
        while count is None or seen < count:
            time.sleep(interval)
            new = reader_states(_matching(cps.list_readers(), reader))
            for event in reader_events(state, new):
                show(event)
                if event["event"] in ("inserted", "removed"):
                    seen += 1
                    if count is not None and seen >= count:
                        break
            state = new
    except KeyboardInterrupt:
        pass


# --------------------------------------------------------------------------- cps pin
@click.group()
def pin() -> None:
    """PIN counters, verification, change and unblocking"""


@pin.command("status")
@with_card
@json_option
def pin_status(card: Any, as_json: bool) -> None:
    """tries left for the PIN and unblock code

    Reads the counters without spending a try.
    """
    from cps.info import describe_pin_status, pin_status_dict

    status = card.pin_status()
    data = pin_status_dict(status)
    text = describe_pin_status(status)
    emit(data, as_json, style_bad(text) if status.blocked or status.last_try else text)


def pin_operation(card: Any, operation: str, action: Callable[[], None], as_json: bool, *,
                  force: bool = False, report: bool = True, read_before: bool = False,
                  before_action: Optional[Callable[[Any], None]] = None) -> Dict[str, Any]:
    """Run one PIN operation with the tries shown before and after.

    The library applies the last-try rule and reads the counter it needs
    (:meth:`cps.card.Card.last_pin_check`); "after" is what the card's answer
    taught (:attr:`cps.card.Card.pin_status_seen`), so a verification costs no
    APDU beyond the library call. ``read_before`` reads every counter first (for
    a confirmation that names the unblocks left). On failure the tries go to
    stderr (or the JSON to stdout) and the error propagates to its exit code.
    """
    from cps import errors
    from cps.card import LastTryRefused, check_last_try
    from cps.info import describe_pin_status, error_to_dict, pin_status_dict

    before = card.pin_status() if read_before else None
    if before is not None:
        note(f"Before: {describe_pin_status(before)}")

    def run() -> None:
        try:
            if before is not None:
                # The library's rule, applied before a confirmation is asked (the
                # library applies it again, on a fresh counter, before sending).
                unblock = operation == "unblock"
                check_last_try(before.unblock_tries_left if unblock else before.tries_left,
                               before.unblock_uses_left if unblock else None,
                               "unblock code" if unblock else "PIN", force)
            if before_action is not None:
                before_action(before)
            action()
        except LastTryRefused as refused:  # the library's words name its keyword
            raise CliFail(f"only one {refused.what} try left: refusing to risk it without "
                          "--force", exitcodes.LAST_TRY_REFUSED) from refused

    try:
        run()
    except (errors.CpsError, CliFail) as exc:
        checked = before or card.last_pin_check
        if before is None and checked is not None:
            note(f"Before: {describe_pin_status(checked)}")
        after = card.pin_status_seen
        data = {"operation": operation, "ok": False, "before": pin_status_dict(checked),
                "after": pin_status_dict(after)}
        if as_json:
            code = exc.exit_code if isinstance(exc, CliFail) else exitcodes.exit_code_for(exc)
            emit({**data, "error": error_to_dict(exc), "exit_code": code}, True, "")
        else:
            note(f"After:  {describe_pin_status(after)}")
        raise
    checked = before or card.last_pin_check
    if before is None and checked is not None:
        note(f"Before: {describe_pin_status(checked)}")
    after = card.pin_status_seen
    data = {"operation": operation, "ok": True, "before": pin_status_dict(checked),
            "after": pin_status_dict(after)}
    if report:
        done = {"verify": "PIN verified", "change": "PIN changed",
                "unblock": "PIN unblocked"}[operation]
        emit(data, as_json, f"{style_ok(done)}. {describe_pin_status(after)}")
    else:
        note(f"After:  {describe_pin_status(after)}")
    return data


@pin.command("verify")
@with_card
@pin_option
@force_option
@json_option
def pin_verify(card: Any, pin_spec: Optional[str], force: bool, as_json: bool) -> None:
    """present the PIN once (never retried)"""
    _verify(card, pin_spec, force, as_json)


def _holder(card: Any) -> str:
    try:
        who = card.practitioner
        name = " ".join(x for x in (who.first_name, who.last_name) if x)
    except Exception:  # noqa: BLE001 - a confirmation prompt must not fail on a name
        name = ""
    return f"card {card.card_number}" + (f" ({name})" if name else "")


@pin.command("change")
@with_card
@pin_option
@secret_option("--new-pin", "new_pin_spec", "new PIN (asked twice at a prompt)")
@force_option
@json_option
def pin_change(card: Any, pin_spec: Optional[str], new_pin_spec: Optional[str], force: bool,
               as_json: bool) -> None:
    """change the PIN

    Asks for confirmation (-f to skip it).
    """
    def ask(_: Any) -> None:
        confirm(f"Change the PIN of {_holder(card)}?", force)

    def action() -> None:
        old = _secret(pin_spec, "PIN")
        new = _secret(new_pin_spec, "new PIN", confirm_twice=True)
        card.change_pin(old, new, allow_last_try=force)

    pin_operation(card, "change", action, as_json, force=force, read_before=True,
                  before_action=ask)


@pin.command("unblock")
@with_card
@secret_option("--puk", "puk_spec", "unblock code")
@secret_option("--new-pin", "new_pin_spec", "new PIN (asked twice at a prompt)")
@force_option
@json_option
def pin_unblock(card: Any, puk_spec: Optional[str], new_pin_spec: Optional[str], force: bool,
                as_json: bool) -> None:
    """unblock the PIN with the unblock code

    Asks for confirmation (-f to skip it) and uses one of the card's unblocks.
    """
    def ask(status: Any) -> None:
        uses = (f" This uses one of the {status.unblock_uses_left} unblocks left."
                if status.unblock_uses_left is not None else "")
        confirm(f"Unblock the PIN of {_holder(card)}?{uses}", force)

    def action() -> None:
        puk = _secret(puk_spec, "unblock code")
        new = _secret(new_pin_spec, "new PIN", confirm_twice=True)
        card.unblock_pin(puk, new, allow_last_try=force)

    pin_operation(card, "unblock", action, as_json, force=force, read_before=True,
                  before_action=ask)


def verify_pin_for(card: Any, pin_spec: Optional[str], force: bool) -> None:
    """Verify the PIN before a key operation (tries shown on stderr before and after;
    the calling command reports a failure in its own --json output)."""
    _verify(card, pin_spec, force, False, report=False)


# --------------------------------------------------------------------------- cps certs
@click.group()
def certs() -> None:
    """the card's certificates: list, export"""


@certs.command("list")
@with_card
@json_option
def certs_list(card: Any, as_json: bool) -> None:
    """certificates with dates and fingerprints"""
    from cps.info import card_roles, certificate_summary

    data = [certificate_summary(card.certificate(role), role) for role in card_roles(card)]
    emit(data, as_json, "\n".join(line for c in data for line in _cert_lines(c, "")))


@certs.command("export")
@with_card
@click.option("--role", type=click.Choice(["auth", "sign", "tech"]), default="auth",
              show_default=True, help="Which certificate (tech: contactless interface).")
@click.option("-F", "--format", "fmt", type=click.Choice(["PEM", "DER"], case_sensitive=False),
              default="PEM", show_default=True)
@click.option("-o", "--output", default="-", show_default=True, metavar="FILE|-",
              help="Where to write it (- is standard output).")
def certs_export(card: Any, role: str, fmt: str, output: str) -> None:
    """write a certificate (PEM or DER)"""
    from cryptography.hazmat.primitives.serialization import Encoding

    from cps import KeyRole, errors

    if (role == "tech") != card.contactless:
        # (Cps3Card would hand the authentication certificate for "tech" on the
        # contact interface: its usage-bit fallback matches the auth key.)
        mode = "contactless" if card.contactless else "contact"
        raise errors.NotSupported(f"no {role} certificate on the {mode} interface")
    cert = card.certificate(KeyRole(role))
    data = cert.public_bytes(Encoding.PEM if fmt.upper() == "PEM" else Encoding.DER)
    _write(output, data)


def _write(output: str, data: bytes) -> None:
    if output == "-":
        stream = sys.stdout.buffer
        stream.write(data)
        stream.flush()
        return
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise CliFail(f"cannot write {output}: {exc.strerror}") from None


# --------------------------------------------------------------------------- cps sign / verify
@click.command()
@with_card
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", metavar="FILE|-",
              help="Where to write the signature (default: FILE.p7s, or FILE.sig with --raw).")
@click.option("--cms/--raw", "cms", default=True, show_default=True,
              help="A detached CMS (CAdES-BES, .p7s) or the bare PKCS#1 v1.5 signature.")
@click.option("--hash", "hash_name", type=click.Choice(["sha256", "sha1"]), default="sha256",
              show_default=True, help="Digest (CMS refuses sha1).")
@pin_option
@force_option
@json_option
def sign(card: Any, file: str, output: Optional[str], cms: bool, hash_name: str,
         pin_spec: Optional[str], force: bool, as_json: bool) -> None:
    """sign a file with the card (PIN needed)

    Uses the card's signature key (CPS_PRIV_SIG). The default is a detached
    CMS (CAdES-BES) that `cps verify` and `openssl cms -verify` check.
    """
    from cps import KeyRole, errors
    from cps.info import certificate_summary

    if output == "-" and as_json:
        raise click.UsageError("--json and -o - both want standard output")
    data = Path(file).read_bytes()
    output = output or file + (".p7s" if cms else ".sig")
    try:
        if card.contactless:
            raise errors.NotSupported("the contactless interface has no signature key: use "
                                      "the card's contact interface")
        verify_pin_for(card, pin_spec, force)
        if cms:
            from cps.sign import sign_cms

            signature = sign_cms(card, data, hash=hash_name)
        else:
            signature = card.sign(data, hash=hash_name)
    except errors.CpsError as exc:
        fail_with_json(exc, as_json, {"signed": False, "file": file})
        raise
    _write(output, signature)
    signer = certificate_summary(card.certificate(KeyRole.SIGN), KeyRole.SIGN)
    report = {"signed": True, "file": file, "output": output, "format": "cms" if cms else "raw",
              "hash": hash_name, "size": len(signature), "card_number": card.card_number,
              "signer": signer}
    kind = "CMS detached (CAdES-BES)" if cms else "PKCS#1 v1.5"
    where = "standard output" if output == "-" else output
    text = f"Signed {file} -> {where} ({kind}, {hash_name}) by {signer['subject']}"
    if output == "-":
        note(text)
    else:
        emit(report, as_json, text)


def _render_verification(d: Dict[str, Any]) -> str:
    from .trustcmd import render_validation

    p = d.get("practitioner")
    who = _who(p) if p else d["signer"]["subject"]
    lines = [style_ok("Signature OK") + f" ({d['format']}, {d['digest_algorithm']}) by {who}"]
    if d.get("signing_time"):
        lines.append(f"Signing time (claimed by the signer, not checked): {d['signing_time']}")
    if d.get("validation_time"):
        source = "--at" if d.get("validation_time_source") == "caller" else "now"
        lines.append(f"Certificate judged at: {d['validation_time']} ({source})")
    if d.get("validation"):
        lines.append(render_validation(d["validation"]))
    return "\n".join(lines)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("signature", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--cms/--raw", "cms", default=True, show_default=True,
              help="SIGNATURE is a CMS (.p7s, DER or PEM) or a bare PKCS#1 v1.5 signature.")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False),
              help="The signer's certificate (needed with --raw).")
@click.option("--hash", "hash_name", type=click.Choice(["sha256", "sha1", "sha384", "sha512"]),
              default="sha256", show_default=True, help="Digest of a --raw signature.")
@trust_options
@click.option("--at", "at", metavar="ISO",
              help="Judge the certificate at this time (default: now). The CMS "
                   "signing time is the signer's claim: pass it here only if you trust it.")
@json_option
def verify(file: str, signature: str, cms: bool, cert: Optional[str], hash_name: str,
           anchors: Sequence[str], crls: Sequence[str], revocation: str, online: bool,
           cache_dir: Optional[str], at: Optional[str], as_json: bool) -> None:
    """check a signature and its signer's certificate

    Exit codes: 1 bad signature, 9 certificate invalid, 10 revoked,
    11 revocation status unavailable.
    """
    from cps import KeyRole, errors
    from cps.info import (
        certificate_summary,
        cms_verification_summary,
        iso,
        load_certificate_der,
        validation_summary,
    )

    if not cms and not cert:
        raise click.UsageError("--raw needs --cert CERT (a bare signature names no signer)")
    moment = parse_time(at)
    data = Path(file).read_bytes()
    sig = read_input(signature)
    progress = DownloadProgress() if online else None
    try:
        validator = validator_from(anchors, crls, revocation, online, cache_dir, progress)
        if cms:
            from cps.sign import verify_cms

            verification = verify_cms(sig, data, validator, at=moment)
            result = cms_verification_summary(verification)
            # setdefault: cps.info's summary may report these itself
            result.setdefault("validation_time", iso(verification.validation_time))
            result.setdefault("validation_time_source", verification.validation_time_source)
        else:
            from cps.identity import Practitioner
            from cps.sign import verify_pkcs1

            der = load_certificate_der(read_input(cert or ""))
            verify_pkcs1(der, sig, data, hash=hash_name)
            validation = validator.validate(der, at=moment, purpose=KeyRole.SIGN)
            try:
                from cryptography import x509

                who = Practitioner.from_certificate(x509.load_der_x509_certificate(der))
                practitioner: Optional[Dict[str, Any]] = who.as_validated().to_dict()
            except errors.CpsError:
                practitioner = None
            result = {"valid": True, "signer": certificate_summary(der, KeyRole.SIGN),
                      "signing_time": None, "digest_algorithm": hash_name,
                      "signing_certificate_bound": False, "practitioner": practitioner,
                      "validation": validation_summary(validation),
                      "validation_time": iso(validation.validated_at),
                      "validation_time_source": "caller" if moment is not None else "now"}
    except errors.CpsError as exc:
        fail_with_json(exc, as_json, {"valid": False, "file": file, "signature": signature,
                                      "format": "cms" if cms else "raw"})
        raise
    finally:
        if progress is not None:
            progress.close()
    report = {"file": file, "signature": signature, "format": "cms" if cms else "raw", **result}
    emit(report, as_json, _render_verification(report))


# --------------------------------------------------------------------------- cps auth
@click.group()
def auth() -> None:
    """challenge-response authentication with the card"""


@auth.command("test")
@with_card
@click.option("--origin", default="https://localhost", show_default=True,
              help="The origin signed over (scheme://host[:port]), as a server would ask.")
@trust_options
@pin_option
@force_option
@json_option
def auth_test(card: Any, origin: str, anchors: Sequence[str], crls: Sequence[str],
              revocation: str, online: bool, cache_dir: Optional[str], pin_spec: Optional[str],
              force: bool, as_json: bool) -> None:
    """log in locally with the card, as a server would

    Does challenge-response work with this card?

    Runs a whole round as a server would: a fresh nonce, the card's answer
    (PIN needed on the contact interface), then the verifier's checks:
    signature, purpose, chain, revocation. Exit code 13 when the token is
    refused, 9/10/11 for the certificate.
    """
    from cps import errors
    from cps.info import auth_round

    progress = DownloadProgress() if online else None
    try:
        validator = validator_from(anchors, crls, revocation, online, cache_dir, progress)
        if not card.contactless:
            verify_pin_for(card, pin_spec, force)
        data = auth_round(card, validator, origin)
    except errors.CpsError as exc:
        fail_with_json(exc, as_json, {"authenticated": False, "origin": origin})
        raise
    finally:
        if progress is not None:
            progress.close()
    p = data["practitioner"]
    text = "\n".join([
        style_ok("Authenticated") + f": {_who(p)}",
        f"  idnat {p['idnat']} ({p['id_type_name']} {p['national_id']}), card "
        f"{p.get('card_number') or card.card_number}, validated against "
        f"{data['validation']['anchor']}",
        f"  origin {origin}; card {data['timings']['card_ms']} ms, "
        f"verification {data['timings']['verify_ms']} ms"])
    emit(data, as_json, text)
