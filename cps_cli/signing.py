"""`cps sign` and `cps verify`: CMS (CAdES-BES) or raw PKCS#1 v1.5 signatures."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import click

from .card import practitioner_text
from .pinflow import pin_option, verify_pin_for
from .trustcmd import (
    DownloadProgress,
    fail_with_json,
    parse_time,
    read_input,
    trust_options,
    validator_from,
)
from .util import (
    emit,
    force_option,
    json_option,
    note,
    style_ok,
    with_card,
    write_output,
)

__all__ = ["sign", "verify"]


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

    from .view import certificate_summary

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
    write_output(output, signature)
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
    who = practitioner_text(p) if p else d["signer"]["subject"]
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

    from .view import (
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
            # setdefault: the view's summary may report these itself
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


