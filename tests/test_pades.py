"""cps.pades: PAdES signatures by emulated cards through pyHanko; verification through cps.trust.

Real parts: the in-process emulated card (the Card API, PSO HASH + CDS),
pyHanko's writer, signer and validator, the TEST PKI and its CRLs, the real
``pyhanko`` console script with our plugin on a SoftHSM2 token (PKCS#11, no
pcscd). No binary fixture: the PDFs are written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import re
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Dict, Iterator

import pytest

pytest.importorskip("pyhanko")

from asn1crypto import cms  # noqa: E402
from asn1crypto import keys as asn1_keys  # noqa: E402
from asn1crypto import x509 as asn1_x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter  # noqa: E402
from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: E402
from pyhanko.sign import fields, signers  # noqa: E402
from pyhanko.sign.validation import validate_pdf_signature  # noqa: E402
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature  # noqa: E402
from pyhanko_certvalidator import ValidationContext  # noqa: E402
from pyhanko_certvalidator.registry import SimpleCertificateStore  # noqa: E402

import cps  # noqa: E402
from cps import errors  # noqa: E402
from cps.pades import (  # noqa: E402
    MAX_PDF_SIZE,
    CardSigner,
    PdfSignatureError,
    PdfVerification,
    sign_pdf,
    verify_pdf,
)
from cps.sign import (  # noqa: E402
    CmsError,
    DigestMismatch,
    SignatureError,
    SignatureInvalid,
    SoftwareSigner,
)
from cps.timestamp import TimestampError  # noqa: E402
from cps.trust import Validator  # noqa: E402

FAST = 5.0  # seconds: a hostile PDF is refused well within this


# ---------------------------------------------------------------- PDFs written here
def minimal_pdf(text: str = "Ordonnance: amoxicilline 1 g") -> bytes:
    """A one-page PDF with a classic xref table, written by hand."""
    content = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def append_update(pdf: bytes, objects: Dict[int, bytes]) -> bytes:
    """An incremental update written by hand: new versions of ``objects``, an xref
    section for them, a trailer with /Prev (as any PDF editor would append)."""
    prev = int(re.findall(rb"startxref\s+(\d+)", pdf)[-1])
    size = int(re.findall(rb"/Size (\d+)", pdf)[-1])
    root = re.findall(rb"/Root (\d+ \d+ R)", pdf)[-1]
    out = bytearray(pdf if pdf.endswith(b"\n") else pdf + b"\n")
    offsets = {}
    for number, body in sorted(objects.items()):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n"
    for number, offset in sorted(offsets.items()):
        out += b"%d 1\n%010d 00000 n \n" % (number, offset)
    new_size = max(size, max(objects) + 1)
    out += (b"trailer\n<< /Size %d /Root %s /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
            % (new_size, root, prev, xref))
    return bytes(out)


def page_content_object(pdf: bytes) -> int:
    """The number of the page's content stream object."""
    return int(re.findall(rb"/Contents (\d+) 0 R", pdf)[0])


def der(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def validator(cps_pki) -> Validator:
    """The TEST roots only (the intermediate must come from the CMS), CRLs, hard-fail."""
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    store = cps_pki.trust_store(intermediates=False, name="TEST")
    return Validator(store, crls=cps_pki.crls(at), revocation="hard-fail")


@pytest.fixture(scope="module")
def medecin(cps_pki):
    return cps_pki.issue_card("cps3-medecin")


@contextlib.contextmanager
def signing_card(emu) -> Iterator[cps.Card]:
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        yield card


@pytest.fixture
def card_signed(cps_emulated_card) -> bytes:
    """A PDF signed by the emulated cps3-medecin card (its intermediate embedded)."""
    with signing_card(cps_emulated_card) as card:
        return sign_pdf(card, minimal_pdf(), reason="Ordonnance", location="Lyon",
                        chain=[cps_emulated_card.credentials.chain[0]])


def pyhanko_context(cps_pki, crls=None) -> ValidationContext:
    """pyHanko's own validator: the TEST roots, our CRLs, nothing fetched."""
    return ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(der(c)) for c in cps_pki.anchors()],
        crls=cps_pki.crls(deltas=True) if crls is None else crls, allow_fetching=False,
        revocation_mode="hard-fail")


def pyhanko_status(pdf: bytes, context: ValidationContext):
    reader = PdfFileReader(io.BytesIO(pdf))
    [embedded] = reader.embedded_signatures
    return validate_pdf_signature(embedded, context)


# ---------------------------------------------------------------- signing
def test_card_signature_verifies_with_cps_trust(card_signed, validator, cps_emulated_card):
    [result] = verify_pdf(card_signed, validator)
    assert isinstance(result, PdfVerification)
    assert result.field_name == "Signature1"
    assert result.signer == cps_emulated_card.credentials.sign_cert
    assert result.practitioner is not None and result.practitioner.validated
    assert result.practitioner.card_number == cps_emulated_card.profile.card_number
    assert result.covers_whole_file and result.unsigned_bytes == 0
    assert result.updates_after == 0 and result.modification_level == "none"
    assert result.subfilter == "/ETSI.CAdES.detached"
    assert (result.reason, result.location) == ("Ordonnance", "Lyon")
    assert result.validation_time_source == "now" and result.validation is not None
    assert result.timestamp is None
    start, a, b, c = result.byte_range
    assert start == 0 and b + c == len(card_signed) == result.signed_end
    # PAdES: no CMS signingTime attribute; the claim is the /M entry
    assert result.cms.signing_time is None and result.signing_time is not None
    assert result.cms.signing_certificate_bound
    # an incremental update: the original bytes are untouched at the start
    assert card_signed.startswith(minimal_pdf())


def test_signature_is_what_pades_baseline_b_asks(card_signed):
    reader = PdfFileReader(io.BytesIO(card_signed))
    [embedded] = reader.embedded_signatures
    signer_info = embedded.signer_info
    assert signer_info["signature_algorithm"]["algorithm"].native == "sha256_rsa"
    assert signer_info["digest_algorithm"]["algorithm"].native == "sha256"
    attrs = {a["type"].native for a in signer_info["signed_attrs"]}
    assert {"content_type", "message_digest", "signing_certificate_v2"} <= attrs
    assert "signing_time" not in attrs  # PAdES forbids it: /M holds the time
    certs = embedded.signed_data["certificates"]
    assert len(certs) == 2  # the card's and its intermediate; not the root
    assert embedded.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"


def test_pyhanko_validator_finds_card_signature_intact_valid_trusted(card_signed, cps_pki):
    status = pyhanko_status(card_signed, pyhanko_context(cps_pki))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.bottom_line
    assert status.coverage.name == "ENTIRE_FILE"


def test_signing_time_and_visible_stamp(cps_emulated_card, validator, cps_pki):
    when = dt.datetime(2026, 3, 14, 9, 30, 0, tzinfo=dt.timezone.utc)
    with signing_card(cps_emulated_card) as card:
        signed = sign_pdf(card, minimal_pdf(), field_name="Prescripteur",
                          visible=(72, 600, 322, 660), signing_time=when,
                          chain=[cps_emulated_card.credentials.chain[0]])
    [result] = verify_pdf(signed, validator)
    assert result.field_name == "Prescripteur"
    assert result.signing_time == when  # reported as claimed
    assert result.validation_time_source == "now"  # and never used to judge
    reader = PdfFileReader(io.BytesIO(signed))
    [(name, value, ref)] = list(fields.enumerate_sig_fields(reader))
    annotation = ref.get_object()
    assert [int(v) for v in annotation["/Rect"]] == [72, 600, 322, 660]
    appearance = annotation["/AP"]["/N"].get_object().data
    practitioner = result.practitioner
    assert practitioner is not None
    # the stamp names the practitioner (WinAnsi: É is \311)
    assert b"Sign\\351 par" in appearance and b"LODIE" in appearance
    assert pyhanko_status(signed, pyhanko_context(cps_pki)).bottom_line


def test_second_signature_is_an_accepted_update(card_signed, cps_card_factory, validator):
    pharmacien = cps_card_factory("cps3-pharmacien")
    with signing_card(pharmacien) as card:
        cosigned = sign_pdf(card, card_signed, field_name="Signature2",
                            chain=[pharmacien.credentials.chain[0]])
    first, second = verify_pdf(cosigned, validator)
    assert first.field_name == "Signature1" and second.field_name == "Signature2"
    assert not first.covers_whole_file and first.updates_after == 1
    assert first.modification_level == "form-filling"
    assert second.covers_whole_file and second.signer == pharmacien.credentials.sign_cert
    [only] = verify_pdf(cosigned, validator, field_name="Signature2")
    assert only.field_name == "Signature2"


def test_signed_field_is_not_signed_again(card_signed, cps_emulated_card):
    with signing_card(cps_emulated_card) as card:
        with pytest.raises(PdfSignatureError) as info:
            sign_pdf(card, card_signed, field_name="Signature1")
    assert info.value.reason == "field"


def test_card_without_pin_refuses(cps_emulated_card):
    with cps.open_card(connection=cps_emulated_card.connection()) as card:
        with pytest.raises(errors.SecurityStatusNotSatisfied):
            sign_pdf(card, minimal_pdf())


def test_card_signer_is_pkcs1_v15_only(cps_emulated_card):
    with signing_card(cps_emulated_card) as card:
        signer = CardSigner(card, chain=())
        mechanism = signer.get_signature_mechanism_for_digest("sha256")
        assert mechanism["algorithm"].native == "sha256_rsa"
        assert not signer.prefer_pss
        with pytest.raises(errors.NotSupported):
            asyncio.run(signer.async_sign_raw(b"x", "sha512"))
        # pyHanko's dry run sizes the placeholder without spending a signature
        assert asyncio.run(signer.async_sign_raw(b"x", "sha256", dry_run=True)) == bytes(256)
        assert "CardSigner" in repr(signer)


def test_card_signer_refuses_a_key_that_is_not_the_certificates(medecin, cps_pki):
    other = cps_pki.issue_card("cps3-pharmacien")
    liar = SoftwareSigner(medecin.sign_key, medecin.sign_cert)
    liar._certificate = other.sign_cert  # a faulty card: its key is not its certificate's
    with pytest.raises(SignatureInvalid):
        sign_pdf(liar, minimal_pdf(), chain=())


def test_unreadable_input_is_refused_before_signing(medecin):
    signer = SoftwareSigner(medecin.sign_key, medecin.sign_cert)
    for bad in (b"", b"not a pdf", minimal_pdf()[:200]):
        with pytest.raises(PdfSignatureError) as info:
            sign_pdf(signer, bad)
        assert info.value.reason == "malformed"


# ---------------------------------------------------------------- other signers
def test_pyhanko_simple_signer_pdf_verifies_with_cps_trust(medecin, validator):
    """A PDF signed by pyHanko alone, with a software key of the TEST PKI."""
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(der(medecin.sign_cert)),
        signing_key=asn1_keys.PrivateKeyInfo.load(medecin.sign_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())),
        cert_registry=SimpleCertificateStore.from_certs(
            [asn1_x509.Certificate.load(der(medecin.chain[0]))]))
    for subfilter in (fields.SigSeedSubFilter.PADES, fields.SigSeedSubFilter.ADOBE_PKCS7_DETACHED):
        out = signers.sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(minimal_pdf())),
            signers.PdfSignatureMetadata(field_name="Sig", subfilter=subfilter,
                                         md_algorithm="sha256"),
            signer=signer).getvalue()
        [result] = verify_pdf(out, validator)
        assert result.signer == medecin.sign_cert and result.practitioner.validated
        assert result.subfilter == "/" + subfilter.value.lstrip("/")


def test_revoked_card_is_refused_by_the_validator(cps_card_factory, validator, cps_pki):
    emu = cps_card_factory("cps3-revoked")
    with signing_card(emu) as card:
        signed = sign_pdf(card, minimal_pdf(), chain=[emu.credentials.chain[0]])
    [math_only] = verify_pdf(signed)  # the signature itself holds
    assert math_only.validation is None and not math_only.practitioner.validated
    with pytest.raises(errors.CertificateRevoked):
        verify_pdf(signed, validator)
    assert not pyhanko_status(signed, pyhanko_context(cps_pki)).trusted


# ---------------------------------------------------------------- tampering
def test_page_changed_after_signing_is_refused_then_reported(card_signed, validator):
    changed = append_update(card_signed, {page_content_object(card_signed): (
        b"<< /Length 44 >>\nstream\nBT /F1 18 Tf 72 720 Td (Morphine 1 g) Tj ET\nendstream")})
    with pytest.raises(PdfSignatureError) as info:
        verify_pdf(changed, validator)
    assert info.value.reason == "modified" and info.value.field_name == "Signature1"
    report = info.value.verification
    # pyHanko's difference analysis: a replaced content stream is beyond any whitelist
    assert report is not None and report.modification_level in ("other", "suspicious")
    [result] = verify_pdf(changed, validator, allow_updates=True)
    assert result.updates_after == 1 and not result.covers_whole_file
    assert result.unsigned_bytes == len(changed) - len(card_signed)
    assert result.modification_level == report.modification_level
    assert result.practitioner.validated


def test_annotation_added_after_signing_is_reported(card_signed, validator):
    size = int(re.findall(rb"/Size (\d+)", card_signed)[-1])
    page = re.search(rb"(\d+) 0 obj\s*<<\s*/Type /Page\b", card_signed)
    assert page is not None
    number = int(page.group(1))
    body = re.search(rb"%d 0 obj\s*(<<.*?>>)\s*endobj" % number, card_signed, re.S)
    assert body is not None
    page_dict = body.group(1)
    if b"/Annots" in page_dict:
        page_dict = re.sub(rb"/Annots \[", b"/Annots [%d 0 R " % size, page_dict)
    else:
        page_dict = page_dict[:-2] + b" /Annots [%d 0 R] >>" % size
    changed = append_update(card_signed, {
        number: page_dict,
        size: b"<< /Type /Annot /Subtype /FreeText /Rect [72 700 400 740] "
              b"/Contents (Annule) /DA (/Helv 12 Tf 0 g) >>"})
    with pytest.raises(PdfSignatureError) as info:
        verify_pdf(changed, validator)
    assert info.value.reason == "modified"
    [result] = verify_pdf(changed, validator, allow_updates=True)
    assert result.modification_level in ("annotations", "other", "suspicious")


def test_garbage_after_the_signed_bytes_is_not_covered(card_signed, validator):
    with pytest.raises(PdfSignatureError) as info:
        verify_pdf(card_signed + b"% unsigned text\n(hello) Tj\n", validator, allow_updates=True)
    assert info.value.reason in ("not-covered", "malformed")
    # whitespace after %%EOF is no update and no content
    [result] = verify_pdf(card_signed + b"\r\n  \n", validator)
    assert result.unsigned_bytes == 5 and not result.covers_whole_file
    assert result.modification_level == "none"


def _replace_byte_range(pdf: bytes, new: bytes) -> bytes:
    match = re.search(rb"/ByteRange\s*\[[^\]]*\]", pdf)
    assert match is not None
    old = match.group(0)
    new = new.ljust(len(old))
    assert len(new) == len(old)
    return pdf[:match.start()] + new + pdf[match.end():]


def test_byte_range_that_skips_content_is_refused(card_signed):
    [result] = verify_pdf(card_signed)
    _, a, b, c = result.byte_range
    for forged in ((0, a - 10, b, c), (0, a, b + 10, c - 10), (0, a, b, c - 10),
                   (0, a, b, c + 10), (5, a - 5, b, c)):
        tampered = _replace_byte_range(card_signed, b"/ByteRange [%d %d %d %d]" % forged)
        with pytest.raises((PdfSignatureError, SignatureError)) as info:
            verify_pdf(tampered)
        assert isinstance(info.value, (PdfSignatureError, DigestMismatch))
        if isinstance(info.value, PdfSignatureError):
            assert info.value.reason in ("byte-range", "not-covered", "malformed")


def test_changed_signed_byte_is_a_digest_mismatch(card_signed):
    position = card_signed.index(b"amoxicilline")
    tampered = card_signed[:position] + b"b" + card_signed[position + 1:]
    with pytest.raises(DigestMismatch):
        verify_pdf(tampered)


def _replace_cms(pdf: bytes, new_cms: bytes) -> bytes:
    [result] = verify_pdf(pdf)
    _, a, b, _ = result.byte_range
    room = (b - a - 2) // 2
    assert len(new_cms) <= room
    hex_string = b"<" + new_cms.hex().encode() + b"00" * (room - len(new_cms)) + b">"
    return pdf[:a] + hex_string + pdf[b:]


def test_swapped_certificate_is_refused(card_signed, cps_pki):
    info = cms.ContentInfo.load(_cms_of(card_signed))
    other = cps_pki.issue_card("cps3-pharmacien")
    other_cert = asn1_x509.Certificate.load(der(other.sign_cert))
    signed_data = info["content"]
    signed_data["certificates"] = [other_cert, *list(signed_data["certificates"])[1:]]
    signer_info = signed_data["signer_infos"][0]
    signer_info["sid"] = cms.SignerIdentifier({"issuer_and_serial_number": {
        "issuer": other_cert.issuer, "serial_number": other_cert.serial_number}})
    swapped = _replace_cms(card_signed, cms.ContentInfo(
        {"content_type": "signed_data", "content": signed_data}).dump(force=True))
    with pytest.raises(SignatureInvalid):
        verify_pdf(swapped)


def test_contents_with_trailing_garbage_is_refused(card_signed):
    tampered = _replace_cms(card_signed, _cms_of(card_signed) + b"\x01")
    with pytest.raises(PdfSignatureError) as info:
        verify_pdf(tampered)
    assert info.value.reason == "malformed"


def _cms_of(pdf: bytes) -> bytes:
    reader = PdfFileReader(io.BytesIO(pdf))
    [embedded] = reader.embedded_signatures
    return bytes(embedded.pkcs7_content).rstrip(b"\x00")


# ---------------------------------------------------------------- hostile files
def _bounded(call, *exceptions):
    start = time.monotonic()
    with pytest.raises(exceptions) as info:
        call()
    assert time.monotonic() - start < FAST
    return info.value


def test_no_signature(validator):
    error = _bounded(lambda: verify_pdf(minimal_pdf(), validator), PdfSignatureError)
    assert error.reason == "no-signature"
    error = _bounded(lambda: verify_pdf(minimal_pdf(), field_name="X"), PdfSignatureError)
    assert error.reason == "no-signature"


def test_broken_xref_and_truncated_file(card_signed):
    start = card_signed.rindex(b"startxref")
    broken = card_signed[:start] + b"startxref\n999999999\n%%EOF\n"
    for bad in (broken, card_signed[:len(card_signed) // 2], card_signed[:-30], b"",
                b"%PDF-1.7\n", card_signed.replace(b"xref", b"xref 0 garbage", 1)):
        error = _bounded(lambda bad=bad: verify_pdf(bad), PdfSignatureError, CmsError,
                         SignatureInvalid)
        if isinstance(error, PdfSignatureError):
            assert error.reason in ("malformed", "no-signature", "byte-range", "not-covered")


def test_huge_file_is_refused_before_parsing():
    error = _bounded(lambda: verify_pdf(b"%PDF-1.7\n" + bytes(MAX_PDF_SIZE)), PdfSignatureError)
    assert error.reason == "too-large"
    error = _bounded(lambda: verify_pdf(minimal_pdf(), max_size=100), PdfSignatureError)
    assert error.reason == "too-large"


def test_deep_nesting_is_a_typed_error_in_bounded_time(card_signed):
    deep = b"[" * 200_000 + b"]" * 200_000
    bomb = append_update(card_signed, {page_content_object(card_signed): (
        b"<< /Length 3 /Nested " + deep + b" >>\nstream\nq Q\nendstream")})
    error = _bounded(lambda: verify_pdf(bomb), PdfSignatureError)
    assert error.reason in ("malformed", "modified", "not-covered")
    start = time.monotonic()
    with contextlib.suppress(PdfSignatureError):  # or reported: never anything else
        [result] = verify_pdf(bomb, allow_updates=True)
        assert result.modification_level in ("other", "suspicious")
    assert time.monotonic() - start < FAST
    bomb = b"%PDF-1.7\n1 0 obj\n" + b"<< /A " * 100_000 + b"\nendobj\ntrailer\n<< /Root 1 0 R >>"
    _bounded(lambda: verify_pdf(bomb), PdfSignatureError)


def test_compression_bomb_is_a_typed_error_or_report_in_bounded_time(card_signed):
    """A 256 MiB page content stream in 256 KiB, added after signing."""
    compressor = zlib.compressobj(9)
    chunk = bytes(1024 * 1024)
    bomb_data = b"".join(compressor.compress(chunk) for _ in range(256)) + compressor.flush()
    bomb = append_update(card_signed, {page_content_object(card_signed): (
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(bomb_data)
        + bomb_data + b"\nendstream")})
    error = _bounded(lambda: verify_pdf(bomb), PdfSignatureError)
    assert error.reason in ("modified", "malformed")


def test_verify_pdf_takes_bytes_only():
    with pytest.raises(TypeError):
        verify_pdf("a path.pdf")  # type: ignore[arg-type]


# ---------------------------------------------------------------- PAdES B-T
@pytest.fixture
def tsa(request):
    """The RFC 3161 TSA fixture (cps_tsa), when the plugin provides it."""
    try:
        return request.getfixturevalue("cps_tsa")
    except pytest.FixtureLookupError:
        pytest.skip("no cps_tsa fixture (cps.testing) yet")


def test_pades_b_t_with_the_test_tsa(cps_emulated_card, validator, tsa, cps_pki):
    with signing_card(cps_emulated_card) as card:
        signed = sign_pdf(card, minimal_pdf(), timestamp=tsa.url,
                          chain=[cps_emulated_card.credentials.chain[0]])
    reader = PdfFileReader(io.BytesIO(signed))
    [embedded] = reader.embedded_signatures
    unsigned = embedded.signer_info["unsigned_attrs"]
    assert [a["type"].native for a in unsigned] == ["signature_time_stamp_token"]
    [result] = verify_pdf(signed, validator)
    assert result.timestamp is not None and result.cms.timestamp is not None
    assert abs(result.timestamp - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)
    assert result.timestamp == result.cms.timestamp.gen_time
    assert result.validation_time_source == "timestamp"
    assert result.validation_time == result.cms.timestamp.latest  # genTime + accuracy
    assert pyhanko_status(signed, pyhanko_context(cps_pki)).bottom_line


def test_unreachable_tsa_is_a_typed_error(cps_emulated_card):
    with signing_card(cps_emulated_card) as card:
        with pytest.raises(PdfSignatureError) as info:
            sign_pdf(card, minimal_pdf(), timestamp="http://127.0.0.1:9/tsa", timeout=2,
                     chain=())
    assert info.value.reason == "timestamp"


# ---------------------------------------------------------------- BUG-58: DocMDP
def _certify(pdf: bytes, medecin, permission) -> bytes:
    """A certification signature (``/Perms /DocMDP``) with ``permission`` (P=1..3)."""
    signer = CardSigner(SoftwareSigner(medecin.sign_key, medecin.sign_cert),
                        chain=[medecin.chain[0]])
    meta = signers.PdfSignatureMetadata(
        field_name="Certification", md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES, certify=True, docmdp_permissions=permission)
    return signers.PdfSigner(meta, signer=signer).sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf))).getvalue()


def _cosign(pdf: bytes, signer_creds, field_name: str = "Second", monkeypatch=None) -> bytes:
    """A second (approval) signature by pyHanko, its DocMDP enforcement off when
    ``monkeypatch`` is given: what an attacker's tool writes."""
    if monkeypatch is not None:
        monkeypatch.setattr(signers.PdfSigner, "_enforce_certification_constraints",
                            lambda self, reader: None)
    signer = CardSigner(SoftwareSigner(signer_creds.sign_key, signer_creds.sign_cert),
                        chain=[signer_creds.chain[0]])
    meta = signers.PdfSignatureMetadata(field_name=field_name, md_algorithm="sha256",
                                        subfilter=fields.SigSeedSubFilter.PADES)
    return signers.PdfSigner(meta, signer=signer).sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf))).getvalue()


def test_bug58_docmdp_no_changes_certification_refuses_a_cosignature(
        medecin, cps_pki, validator, monkeypatch):
    """BUG-58: a document certified "no changes" (DocMDP P=1) then co-signed verified."""
    certified = _certify(minimal_pdf(), medecin, fields.MDPPerm.NO_CHANGES)
    [alone] = verify_pdf(certified, validator)
    assert alone.docmdp == "no-changes" and alone.modification_level == "none"
    with pytest.raises(PdfSignatureError):  # our signer obeys the certification
        sign_pdf(SoftwareSigner(medecin.sign_key, medecin.sign_cert), certified,
                 field_name="Second", chain=[medecin.chain[0]])

    cosigned = _cosign(certified, cps_pki.issue_card("cps3-pharmacien"),
                       monkeypatch=monkeypatch)
    # pyHanko's own validator: the certification is broken
    reader = PdfFileReader(io.BytesIO(cosigned))
    status = validate_pdf_signature(reader.embedded_signatures[0], pyhanko_context(cps_pki))
    assert status.docmdp_ok is False
    for options in ({}, {"allow_form_filling": True}, {"allow_updates": True}):
        with pytest.raises(PdfSignatureError) as info:
            verify_pdf(cosigned, validator, **options)
        assert info.value.reason == "modified" and info.value.field_name == "Certification"
        assert "DocMDP P=1" in str(info.value)
        report = info.value.verification
        assert report is not None and report.docmdp == "no-changes"
        assert report.modification_level == "form-filling" and report.updates_after == 1
    # the later signature alone is intact, but the certification binds it too
    with pytest.raises(PdfSignatureError) as info:
        verify_pdf(cosigned, validator, field_name="Second")
    assert info.value.reason == "modified" and info.value.field_name == "Certification"


def test_bug58_docmdp_fill_forms_certification_accepts_a_cosignature(
        medecin, cps_pki, validator):
    certified = _certify(minimal_pdf(), medecin, fields.MDPPerm.FILL_FORMS)
    cosigned = _cosign(certified, cps_pki.issue_card("cps3-pharmacien"))
    first, second = verify_pdf(cosigned, validator)
    assert first.docmdp == "fill-forms" and first.modification_level == "form-filling"
    assert second.docmdp is None and second.covers_whole_file
    [only] = verify_pdf(cosigned, validator, field_name="Second")
    assert only.field_name == "Second"
    # a page changed after a P=2 certification: refused even with allow_updates
    changed = append_update(cosigned, {page_content_object(cosigned): (
        b"<< /Length 44 >>\nstream\nBT /F1 18 Tf 72 720 Td (Morphine 1 g) Tj ET\nendstream")})
    with pytest.raises(PdfSignatureError) as info:
        verify_pdf(changed, validator, allow_updates=True)
    assert info.value.reason == "modified" and info.value.field_name == "Certification"


# ---------------------------------------------------------------- BUG-59: form filling
def pdf_with_text_field(lock_field: bool = False) -> bytes:
    """A one-page PDF whose empty text field ``note`` lies over the prescription line;
    with ``lock_field``, an empty signature field ``Signature1`` whose /Lock names it."""
    content = b"BT /F1 18 Tf 72 720 Td (Ordonnance: amoxicilline 1 g) Tj ET"
    fields_array = b"[6 0 R 7 0 R]" if lock_field else b"[6 0 R]"
    annots = b"[6 0 R 7 0 R]" if lock_field else b"[6 0 R]"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields %s >> >>" % fields_array,
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R /Annots %s >>" % annots,
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (note) /Rect [60 700 560 750] /P 3 0 R "
        b"/F 4 /DA (/F1 18 Tf 0 g) >>",
    ]
    if lock_field:
        objects.append(b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (Signature1) "
                       b"/Rect [0 0 0 0] /P 3 0 R /F 132 "
                       b"/Lock << /Type /SigFieldLock /Action /Include /Fields [(note)] >> >>")
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def fill_text_field(signed: bytes, text: bytes) -> bytes:
    """An update filling ``note`` with an opaque appearance: white box, other text."""
    size = int(re.findall(rb"/Size (\d+)", signed)[-1])
    appearance = (b"1 1 1 rg 0 0 500 50 re f BT /F1 18 Tf 0 g 12 20 Td (" + text
                  + b") Tj ET")
    return append_update(signed, {
        6: b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (note) /Rect [60 700 560 750] "
           b"/P 3 0 R /F 4 /DA (/F1 18 Tf 0 g) /V (" + text + b") /AP << /N %d 0 R >> >>"
           % size,
        size: b"<< /Type /XObject /Subtype /Form /BBox [0 0 500 50] "
              b"/Resources << /Font << /F1 5 0 R >> >> /Length %d >>\nstream\n"
              % len(appearance) + appearance + b"\nendstream"})


def test_bug59_form_field_filled_over_signed_text_is_refused_by_default(
        medecin, cps_pki, validator):
    """BUG-59: a text field filled after signing, its opaque appearance over the
    signed prescription ("shadow replace"), verified as 'form-filling'."""
    signer = SoftwareSigner(medecin.sign_key, medecin.sign_cert)
    signed = sign_pdf(signer, pdf_with_text_field(), chain=[medecin.chain[0]])
    attacked = fill_text_field(signed, b"Ordonnance: morphine 100 mg")
    with pytest.raises(PdfSignatureError) as info:
        verify_pdf(attacked, validator)
    assert info.value.reason == "modified"
    report = info.value.verification
    assert report is not None and report.modification_level == "form-filling"
    assert "note" in report.modification_detail
    # an explicit opt-in accepts filled forms; allow_updates anything; both report it
    for options in ({"allow_form_filling": True}, {"allow_updates": True}):
        [result] = verify_pdf(attacked, validator, **options)
        assert result.modification_level == "form-filling" and result.updates_after == 1
        assert "note" in result.modification_detail
    # a co-signature (visible: a stamp is a signature field's appearance) still verifies
    pharmacien = cps_pki.issue_card("cps3-pharmacien")
    cosigned = sign_pdf(SoftwareSigner(pharmacien.sign_key, pharmacien.sign_cert), signed,
                        field_name="Signature2", visible=(72, 100, 300, 150),
                        chain=[pharmacien.chain[0]])
    first, second = verify_pdf(cosigned, validator)
    assert first.modification_level == "form-filling" and first.modification_detail == ""
    assert second.covers_whole_file
    # filling the form after the co-signature is refused for both signatures
    with pytest.raises(PdfSignatureError) as info:
        verify_pdf(fill_text_field(cosigned, b"Morphine"), validator)
    assert info.value.field_name == "Signature1"


def test_bug59_field_locked_by_the_signature_cannot_be_filled(medecin, validator, monkeypatch):
    """The signed field's /Lock (and pyHanko's /FieldMDP) make the locked field final."""
    signer = SoftwareSigner(medecin.sign_key, medecin.sign_cert)
    signed = sign_pdf(signer, pdf_with_text_field(lock_field=True), chain=[medecin.chain[0]])
    [result] = verify_pdf(signed, validator)
    assert result.field_name == "Signature1"
    attacked = fill_text_field(signed, b"Ordonnance: morphine 100 mg")
    with pytest.raises(PdfSignatureError) as info:
        verify_pdf(attacked, validator, allow_form_filling=True)
    assert info.value.reason == "modified"
    report = info.value.verification
    assert report is not None and report.modification_level == "suspicious"
    assert "locked" in report.modification_detail
    # a signature dictionary without the /FieldMDP reference (pyHanko writes one,
    # other tools may not): the signed field's /Lock still locks
    monkeypatch.setattr(EmbeddedPdfSignature, "fieldmdp", property(lambda self: None))
    with pytest.raises(PdfSignatureError) as info:
        verify_pdf(attacked, validator, allow_form_filling=True)
    report = info.value.verification
    assert report is not None and "locked" in report.modification_detail


# ---------------------------------------------------------------- BUG-60: the TSA when signing
@pytest.mark.parametrize("fault, value, cause", [
    ("garbage", True, ("malformed",)),
    ("wrong_nonce", True, ("nonce-mismatch",)),
    ("wrong_imprint", True, ("imprint-mismatch",)),
    ("reject", "system_failure", ("rejected",)),
])
def test_bug60_misbehaving_tsa_is_a_typed_error_and_no_pdf(medecin, tsa, fault, value, cause):
    """BUG-60: pyHanko's HTTPTimeStamper raised ValueError/AttributeError, and embedded
    a token with another imprint."""
    setattr(tsa.faults, fault, value)
    signer = SoftwareSigner(medecin.sign_key, medecin.sign_cert)
    with pytest.raises(PdfSignatureError) as info:
        sign_pdf(signer, minimal_pdf(), timestamp=tsa.url, chain=[medecin.chain[0]],
                 timeout=5)
    assert info.value.reason == "timestamp"
    assert isinstance(info.value.cause, TimestampError)
    assert info.value.cause.reason in cause
    assert info.value.__cause__ is info.value.cause


def test_bug60_oversized_tsa_answer_is_bounded(medecin, tsa):
    """A TSA answering 600 MiB: abandoned after 1 MiB, quickly, typed."""
    import resource

    tsa.faults.oversize = 600 * 1024 * 1024
    signer = SoftwareSigner(medecin.sign_key, medecin.sign_cert)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    error = _bounded(lambda: sign_pdf(signer, minimal_pdf(), timestamp=tsa.url,
                                      chain=[medecin.chain[0]], timeout=20),
                     PdfSignatureError)
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert error.reason == "timestamp" and error.cause.reason == "too-large"
    assert growth < 200 * 1024  # KiB: nowhere near the 600 MiB answer


# ---------------------------------------------------------------- the pyhanko CLI plugin
PYHANKO = Path(sys.executable).with_name("pyhanko")
needs_pyhanko_cli = pytest.mark.skipif(not PYHANKO.exists(),
                                       reason="pyhanko-cli (the pyhanko command) not installed")


def _pyhanko(*args: str, env=None, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([str(PYHANKO), *args], capture_output=True, text=True, timeout=120,
                          env=env, input=stdin)


@needs_pyhanko_cli
def test_plugin_is_registered():
    done = _pyhanko("sign", "addsig", "cps", "--help")
    assert done.returncode == 0, done.stderr
    for option in ("--reader", "--backend [pcsc|pkcs11]", "--module", "--pin env:VAR"):
        assert option in done.stdout


@needs_pyhanko_cli
def test_plugin_refuses_a_pin_on_the_command_line(tmp_path):
    source = tmp_path / "in.pdf"
    source.write_bytes(minimal_pdf())
    done = _pyhanko("sign", "addsig", "--field", "Signature1", "cps", "--pin", "7391",
                    str(source), str(tmp_path / "out.pdf"))
    assert done.returncode == 2
    assert "7391" not in done.stdout + done.stderr
    assert not (tmp_path / "out.pdf").exists()


@needs_pyhanko_cli
@pytest.mark.skipif(shutil.which("softhsm2-util") is None, reason="softhsm2 not installed")
def test_pyhanko_command_signs_with_the_card_on_pkcs11(cps_softhsm_token, cps_emulated_card,
                                                       tmp_path, validator, cps_pki):
    """The real ``pyhanko`` script, our plugin, the card's keys in a SoftHSM2 token."""
    source, target = tmp_path / "in.pdf", tmp_path / "out.pdf"
    source.write_bytes(minimal_pdf())
    chain = tmp_path / "chain.pem"
    chain.write_bytes(cps_emulated_card.credentials.chain[0].public_bytes(
        serialization.Encoding.PEM))
    env = cps_softhsm_token.env()
    env["CPS_TEST_PIN"] = cps_softhsm_token.pin
    done = _pyhanko("sign", "addsig", "--field", "Signature1", "--use-pades", "cps",
                    "--backend", "pkcs11", "--module", cps_softhsm_token.module,
                    "--pin", "env:CPS_TEST_PIN", "--cps-chain", str(chain),
                    str(source), str(target), env=env)
    assert done.returncode == 0, done.stderr
    assert cps_softhsm_token.pin not in done.stdout + done.stderr
    signed = target.read_bytes()
    [result] = verify_pdf(signed, validator)
    assert result.signer == cps_emulated_card.credentials.sign_cert
    assert result.subfilter == "/ETSI.CAdES.detached" and result.covers_whole_file
    assert pyhanko_status(signed, pyhanko_context(cps_pki)).bottom_line

    # a wrong PIN: one try, no retry, a typed failure and no output file
    env["CPS_TEST_PIN"] = "0000"
    target.unlink()
    done = _pyhanko("sign", "addsig", "--field", "Signature1", "--use-pades", "cps",
                    "--backend", "pkcs11", "--module", cps_softhsm_token.module,
                    "--pin", "env:CPS_TEST_PIN", str(source), str(target), env=env)
    assert done.returncode != 0 and not target.exists()
    assert "0000" not in done.stdout + done.stderr


def test_importing_cps_pades_imports_no_click():
    code = ("import sys, cps.pades; "
            "print('click' in sys.modules, 'cps_cli' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ}, check=True)
    assert done.stdout.split() == ["False", "False"]
