"""`cps sign` and `cps verify`: CAdES (CMS), XAdES, PAdES or raw PKCS#1 v1.5 signatures
(RSA-PSS for CAdES and raw signatures by a CPS4: ``--padding pss``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence
from urllib.parse import quote

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


#: --format -> (default suffix of the output, what the text calls it)
_FORMATS = {
    "cades": (".p7s", "CMS detached (CAdES-BES)"),
    "xades": (".xades.xml", "XAdES Baseline-B"),
    "pades": (".signed.pdf", "PAdES Baseline-B"),
    "raw": (".sig", "PKCS#1 v1.5"),
}


def _default_output(file: str, fmt: str, mode: str) -> str:
    if fmt == "pades":
        stem = file[:-4] if file.lower().endswith(".pdf") else file
        return stem + ".signed.pdf"
    if fmt == "xades" and mode != "detached":
        stem = file[:-4] if file.lower().endswith(".xml") else file
        return stem + ".xades.xml"
    return file + _FORMATS[fmt][0]


@click.command()
@with_card
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", metavar="FILE|-",
              help="Where to write the result (default: FILE.p7s for cades, FILE.sig for "
                   "raw, NAME.xades.xml for xades, NAME.signed.pdf for pades).")
@click.option("--format", "fmt", type=click.Choice(sorted(_FORMATS)), default=None,
              help="cades: a detached CMS (.p7s, the default); xades: an XML signature; "
                   "pades: the PDF signed; raw: the bare PKCS#1 v1.5 signature.")
@click.option("--cms/--raw", "cms", default=None,
              help="Same as --format cades / --format raw (kept for scripts).")
@click.option("--xades-mode", type=click.Choice(["enveloped", "enveloping", "detached"]),
              default="enveloped", show_default=True,
              help="xades: the signature inside the XML document, the document inside "
                   "the signature, or a separate signature of FILE (any bytes).")
@click.option("--timestamp", "tsa", metavar="URL",
              help="Add an RFC 3161 timestamp from this TSA (CAdES-T, XAdES-T, PAdES-T): "
                   "the signature then stays verifiable after the card expires.")
@click.option("--hash", "hash_name", type=click.Choice(["sha256", "sha1"]), default="sha256",
              show_default=True, help="Digest (cades, xades and pades refuse sha1).")
@click.option("--padding", type=click.Choice(["pkcs1v15", "pss"]), default="pkcs1v15",
              show_default=True,
              help="RSA padding: pkcs1v15 (every CPS card) or pss (RSA-PSS, a CPS4 card; "
                   "cades and raw only).")
@pin_option
@force_option
@json_option
def sign(card: Any, file: str, output: Optional[str], fmt: Optional[str], cms: Optional[bool],
         xades_mode: str, tsa: Optional[str], hash_name: str, padding: str,
         pin_spec: Optional[str], force: bool, as_json: bool) -> None:
    """sign a file with the card (PIN needed)

    Uses the card's signature key (CPS_PRIV_SIG). The default is a detached
    CMS (CAdES-BES) that `cps verify` and `openssl cms -verify` check;
    --format xades|pades make XML and PDF signatures (the [xml] and [pdf]
    extras), --timestamp adds a trusted time.
    """
    from cps import KeyRole, errors

    from .view import certificate_summary

    if fmt is not None and cms is not None and fmt != ("cades" if cms else "raw"):
        raise click.UsageError(f"--format {fmt} contradicts --{'cms' if cms else 'raw'}")
    fmt = fmt or ("raw" if cms is False else "cades")
    if fmt == "raw" and tsa:
        raise click.UsageError("--timestamp needs a signature format: a raw PKCS#1 "
                               "signature has nowhere to hold a timestamp")
    if output == "-" and as_json:
        raise click.UsageError("--json and -o - both want standard output")
    if padding == "pss" and fmt not in ("cades", "raw"):
        raise click.UsageError(f"--padding pss makes cades and raw signatures, not {fmt}")
    data = Path(file).read_bytes()
    output = output or _default_output(file, fmt, xades_mode)
    try:
        if card.contactless:
            raise errors.NotSupported("the contactless interface has no signature key: use "
                                      "the card's contact interface")
        if padding not in card.signature_paddings:  # before the PIN: it would be wasted
            raise errors.NotSupported(f"this card does not sign with {padding} (RSA-PSS "
                                      "needs a CPS4 card)")
        verify_pin_for(card, pin_spec, force)
        signature = _sign_as(card, fmt, data, hash_name, xades_mode, tsa, Path(file).name,
                             padding)
    except errors.CpsError as exc:
        fail_with_json(exc, as_json, {"signed": False, "file": file, "format": fmt})
        raise
    write_output(output, signature)
    signer = certificate_summary(card.certificate(KeyRole.SIGN), KeyRole.SIGN)
    report = {"signed": True, "file": file, "output": output, "format": fmt,
              "hash": hash_name, "padding": padding, "size": len(signature),
              "card_number": card.card_number,
              "signer": signer, "timestamp_url": tsa,
              "xades_mode": xades_mode if fmt == "xades" else None}
    kind = _FORMATS[fmt][1] + (" + timestamp" if tsa else "")
    if padding == "pss":
        kind = ("RSA-PSS" if fmt == "raw" else kind + ", RSA-PSS")
    if fmt == "xades":
        kind += f", {xades_mode}"
    where = "standard output" if output == "-" else output
    text = f"Signed {file} -> {where} ({kind}, {hash_name}) by {signer['subject']}"
    if output == "-":
        note(text)
    else:
        emit(report, as_json, text)


def _sign_as(card: Any, fmt: str, data: bytes, hash_name: str, xades_mode: str,
             tsa: Optional[str], name: str, padding: str = "pkcs1v15") -> bytes:
    if fmt == "raw":
        signed: bytes = card.sign(data, hash=hash_name) if padding == "pkcs1v15" else \
            card.sign(data, hash=hash_name, padding=padding)
        return signed
    if fmt == "cades":
        from cps.sign import sign_cms

        return sign_cms(card, data, hash=hash_name, timestamp=tsa, padding=padding)
    if fmt == "xades":
        from cps.xades import sign_xades

        # a detached signature names its document: the file's own name (a relative URI)
        uri = quote(name) if xades_mode == "detached" else None
        return sign_xades(card, data, mode=xades_mode, hash=hash_name, timestamp=tsa,
                          detached_uri=uri)
    from cps.pades import sign_pdf

    if hash_name != "sha256":
        from cps.errors import NotSupported

        raise NotSupported("PAdES signatures use sha256")
    return sign_pdf(card, data, timestamp=tsa)


def _render_verification(d: Dict[str, Any]) -> str:

    if d["format"] == "pades":
        blocks = [_render_one(dict(sig, format="pades")) for sig in d["signatures"]]
        return "\n".join(blocks)
    return _render_one(d)


def _render_one(d: Dict[str, Any]) -> str:
    from .trustcmd import render_validation

    p = d.get("practitioner")
    who = practitioner_text(p) if p else d["signer"]["subject"]
    what = d["format"] + (f" {d['level']}" if d.get("level") else "")
    if d.get("field_name"):
        what += f", field {d['field_name']}"
    lines = [style_ok("Signature OK") + f" ({what}, {d['digest_algorithm']}) by {who}"]
    for ref in d.get("covered") or ():
        lines.append(f"Covers: {ref['kind']} {ref['uri'] or '(the whole document)'} "
                     f"({ref['size']} bytes, {ref['digest_algorithm']})")
    if d["format"] == "pades":
        lines.append("Covers: " + ("the whole file" if d["covers_whole_file"] else
                                    f"the file up to byte {d['signed_end']}; "
                                    f"{d['updates_after']} update(s) after signing "
                                    f"({d['modification_level']})"))
    if d.get("signing_time"):
        lines.append(f"Signing time (claimed by the signer, not checked): {d['signing_time']}")
    stamp = d.get("timestamp")
    if stamp:
        lines.append(f"Timestamp: {stamp['gen_time']} by {stamp['tsa']} (RFC 3161, verified)")
    if d.get("validation_time"):
        source = {"caller": "--at", "timestamp": "the timestamp's time"}.get(
            d.get("validation_time_source") or "", "now")
        lines.append(f"Certificate judged at: {d['validation_time']} ({source})")
    if d.get("validation"):
        lines.append(render_validation(d["validation"]))
    return "\n".join(lines)


def detect_format(document: bytes, signature: Optional[bytes]) -> str:
    """What ``cps verify`` was given: ``pades`` (a PDF alone), ``xades`` (XML: the
    document alone, or a detached signature), else ``cades`` (a CMS, detached or
    with its content). A bare PKCS#1 signature looks like nothing: ``--raw``."""
    def looks_xml(data: bytes) -> bool:
        head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
        return head.startswith(b"<") or head.startswith(b"\xff\xfe<") \
            or head.startswith(b"\xfe\xff\x00<")

    if signature is None:
        if b"%PDF-" in document[:1024]:
            return "pades"
        return "xades" if looks_xml(document) else "cades"
    return "xades" if looks_xml(signature) else "cades"


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("signature", required=False,
                type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["auto", "cades", "xades", "pades", "raw"]),
              default="auto", show_default=True,
              help="auto: a PDF alone is pades, XML xades, anything else a CMS (cades).")
@click.option("--cms/--raw", "cms", default=None,
              help="Same as --format cades / --format raw (kept for scripts).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False),
              help="The signer's certificate (needed with --raw).")
@click.option("--hash", "hash_name", type=click.Choice(["sha256", "sha1", "sha384", "sha512"]),
              default="sha256", show_default=True, help="Digest of a --raw signature.")
@click.option("--padding", type=click.Choice(["pkcs1v15", "pss"]), default="pkcs1v15",
              show_default=True,
              help="Padding of a --raw signature (pss: RSA-PSS, salt = the hash's length, "
                   "as a CPS4 signs). A CMS says its own.")
@click.option("--allow-updates", is_flag=True,
              help="pades: accept any incremental update after signing (still reported) "
                   "that the certification (DocMDP) permits; by default only signatures "
                   "and long-term data are.")
@click.option("--allow-form-filling", is_flag=True,
              help="pades: also accept form fields filled after signing (still reported); "
                   "their appearance can cover the signed text.")
@trust_options
@click.option("--at", "at", metavar="ISO",
              help="Judge the certificate at this time (default: the signature's "
                   "verified timestamp, else now). A signing time is the signer's claim: "
                   "pass it here only if you trust it.")
@json_option
def verify(file: str, signature: Optional[str], fmt: str, cms: Optional[bool],
           cert: Optional[str], hash_name: str, padding: str, allow_updates: bool,
           allow_form_filling: bool,
           anchors: Sequence[str], crls: Sequence[str], revocation: str, online: bool,
           cache_dir: Optional[str], at: Optional[str], as_json: bool) -> None:
    """check a signature and its signer's certificate

    FILE SIGNATURE: a document and its detached signature (a CMS .p7s, a XAdES
    signature, or with --raw --cert a bare PKCS#1 signature). FILE alone: a
    signed PDF, an XML document holding its signature, or a CMS holding its
    content. Exit codes: 17 bad signature, 9 certificate invalid, 10 revoked,
    11 revocation status unavailable.
    """
    from cps import errors

    if cms is not None:
        if fmt not in ("auto", "raw" if cms is False else "cades"):
            raise click.UsageError(f"--format {fmt} contradicts --{'cms' if cms else 'raw'}")
        fmt = "cades" if cms else "raw"
    moment = parse_time(at)
    data = Path(file).read_bytes()
    sig = read_input(signature) if signature else None
    if fmt == "auto":
        fmt = detect_format(data, sig)
    if fmt == "raw" and (not cert or sig is None):
        raise click.UsageError("--raw needs SIGNATURE and --cert CERT (a bare signature "
                               "names no signer)")
    if fmt == "pades" and sig is not None:
        raise click.UsageError("a PDF holds its signatures: give the signed PDF alone")
    progress = DownloadProgress() if online else None
    try:
        validator = validator_from(anchors, crls, revocation, online, cache_dir, progress)
        result = _verify_as(fmt, data, sig, validator, moment, cert, hash_name, allow_updates,
                            allow_form_filling, padding)
    except errors.CpsError as exc:
        fail_with_json(exc, as_json, {"valid": False, "file": file, "signature": signature,
                                      "format": fmt})
        raise
    finally:
        if progress is not None:
            progress.close()
    report = {"file": file, "signature": signature, "format": fmt, **result}
    emit(report, as_json, _render_verification(report))


def _verify_as(fmt: str, data: bytes, sig: Optional[bytes], validator: Any, moment: Any,
               cert: Optional[str], hash_name: str, allow_updates: bool,
               allow_form_filling: bool = False, padding: str = "pkcs1v15") -> Dict[str, Any]:
    from cps import KeyRole, errors

    from .view import (
        certificate_summary,
        cms_verification_summary,
        iso,
        load_certificate_der,
        pdf_verification_summary,
        timestamp_summary,
        validation_summary,
        xades_verification_summary,
    )

    if fmt == "cades":
        from cps.sign import verify_cms

        verification = verify_cms(sig if sig is not None else data,
                                  data if sig is not None else None, validator, at=moment)
        result = cms_verification_summary(verification)
        result["timestamp"] = timestamp_summary(getattr(verification, "timestamp", None))
        # setdefault: the view's summary may report these itself
        result.setdefault("validation_time", iso(verification.validation_time))
        result.setdefault("validation_time_source", verification.validation_time_source)
        result.setdefault("signature_padding", verification.signature_padding)
        return result
    if fmt == "xades":
        from cps.xades import verify_xades

        return xades_verification_summary(
            verify_xades(sig if sig is not None else data, validator,
                         detached=data if sig is not None else None, at=moment))
    if fmt == "pades":
        from cps.pades import verify_pdf

        signatures = verify_pdf(data, validator, at=moment, allow_updates=allow_updates,
                                allow_form_filling=allow_form_filling)
        return {"valid": True, "signatures": [pdf_verification_summary(v) for v in signatures]}
    from cps.identity import Practitioner
    from cps.sign import verify_pkcs1, verify_pss

    assert sig is not None  # noqa: S101 - checked by the caller
    der = load_certificate_der(read_input(cert or ""))
    (verify_pss if padding == "pss" else verify_pkcs1)(der, sig, data, hash=hash_name)
    validation = validator.validate(der, at=moment, purpose=KeyRole.SIGN)
    try:
        from cryptography import x509

        who = Practitioner.from_certificate(x509.load_der_x509_certificate(der))
        practitioner: Optional[Dict[str, Any]] = who.as_validated().to_dict()
    except errors.CpsError:
        practitioner = None
    return {"valid": True, "signer": certificate_summary(der, KeyRole.SIGN),
            "signing_time": None, "digest_algorithm": hash_name, "signature_padding": padding,
            "signing_certificate_bound": False, "practitioner": practitioner,
            "validation": validation_summary(validation), "timestamp": None,
            "validation_time": iso(validation.validated_at),
            "validation_time_source": "caller" if moment is not None else "now"}
