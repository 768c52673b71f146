"""Document signatures (issue 17): XAdES of a 1 MB XML document and PAdES of a
10 MB PDF, signed and verified.

The documents are production-shaped and built here, deterministically: a
CDA-like clinical document (``urn:hl7-org:v3``, a header, then sections of
narrative tables and coded observations, many small elements and text) and
a one-page PDF holding a scanned A4 page, one ~10 MB ``/DCTDecode`` image
stream (random bytes: nothing decodes it, only the hash reads it).

Signing, ours with the in-process emulated CPS3 (its RSA-2048 signature and
the APDUs included), beside:

* **ours, software key**: the same function with a :class:`cps.sign.SoftwareSigner`
  holding the card's key: ours minus this is the card's share;
* **the library alone**: signxml's ``XAdESSigner`` / pyHanko's
  ``SimpleSigner`` with that key, the same settings (C14N 1.0, SHA-256,
  signer certificate and intermediate embedded): the software key minus
  this is our layer's overhead. ``sign_xades`` checks its own signature
  with the certificate before returning it (a second pass over the
  document); ``sign_pdf`` checks the card's raw signature. pyHanko's
  ``SimpleSigner`` loads its PKCS#8 key again for every raw signature
  (cryptography checks the RSA key each time) and signs a second time to
  size ``/Contents``: that is why the library alone is slower than ours there.

Verification, ours with a :class:`cps.trust.Validator` of the test PKI, built
once (so the figure includes the RFC 5280 path validation with the complete
and delta CRLs, hard-fail, purpose signature), beside signxml's
``XAdESVerifier`` with the test root as ``ca_pem_file`` (cryptography's chain
verifier, an end-entity policy that accepts nonRepudiation, no revocation)
and pyHanko's ``validate_pdf_signature`` with a ``ValidationContext``
trusting the same roots, holding the intermediates and given the same CRLs
(hard-fail, no fetching), kept from pass to pass as our Validator is, and
new for each verification.

Each figure is the median of the passes, ours and the anchors alternating;
the note gives the slowest and fastest pass of each.
"""

from __future__ import annotations

import hashlib
import io
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

from .common import Figure, bench_pki

PASSES = 7
XML_SIZE = 1_000_000
PDF_SIZE = 10_000_000

_WORDS = ("patient", "examen", "clinique", "tension", "artérielle", "normale", "antécédents",
          "traitement", "posologie", "comprimé", "matin", "soir", "douleur", "thoracique",
          "absence", "fièvre", "biologie", "hémoglobine", "créatinine", "contrôle", "semaines",
          "imagerie", "radiographie", "pulmonaire", "conclusion", "surveillance", "allergie",
          "pénicilline", "vaccination", "à", "jour", "le", "la", "de", "et", "sans", "avec")


def cda_document(size: int = XML_SIZE, seed: int = 17) -> bytes:
    """A CDA R2-like clinical document of about ``size`` bytes (UTF-8)."""
    rng = random.Random(seed)

    def text(n: int) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(n))

    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ClinicalDocument xmlns="urn:hl7-org:v3" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        '  <realmCode code="FR"/>\n'
        '  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>\n'
        '  <templateId root="1.2.250.1.213.1.1.1.1"/>\n'
        '  <id root="1.2.250.1.999.1.2" extension="CR-2026-000117"/>\n'
        '  <code code="11490-0" codeSystem="2.16.840.1.113883.6.1" '
        'displayName="Lettre de sortie"/>\n'
        '  <title>Compte rendu d\'hospitalisation</title>\n'
        '  <effectiveTime value="20261206103000+0100"/>\n'
        '  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>\n'
        '  <languageCode code="fr-FR"/>\n'
        '  <recordTarget><patientRole><id root="1.2.250.1.213.1.4.8" extension="1234567890123"/>'
        '<patient><name><given>Jeanne</given><family>Martin</family></name>'
        '<administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>'
        '<birthTime value="19620412"/></patient></patientRole></recordTarget>\n'
        '  <author><time value="20261206103000+0100"/><assignedAuthor>'
        '<id root="1.2.250.1.71.4.2.1" extension="810001234567"/>'
        '<assignedPerson><name><given>Paul</given><family>Durand</family></name>'
        '</assignedPerson></assignedAuthor></author>\n'
        '  <component><structuredBody>\n')
    tail = "  </structuredBody></component>\n</ClinicalDocument>\n"
    parts = [head]
    size_now = len(head.encode()) + len(tail)
    n = 0
    while size_now < size:
        n += 1
        rows = "".join(
            f"<tr><td>{text(2)}</td><td>{rng.randint(1, 999)}.{rng.randint(0, 9)}</td>"
            f"<td>{text(3)}</td></tr>" for _ in range(8))
        entries = "".join(
            f'<entry><observation classCode="OBS" moodCode="EVN">'
            f'<templateId root="1.3.6.1.4.1.19376.1.5.3.1.4.13"/>'
            f'<id root="1.2.250.1.999.3" extension="{n}.{i}"/>'
            f'<code code="{rng.randint(1000, 99999)}-{rng.randint(0, 9)}" '
            f'codeSystem="2.16.840.1.113883.6.1" displayName="{text(2)}"/>'
            f'<statusCode code="completed"/><effectiveTime value="20261206"/>'
            f'<value xsi:type="PQ" value="{rng.randint(1, 500)}" unit="mg/L"/>'
            f"</observation></entry>" for i in range(6))
        section = (
            f'    <component><section><code code="{rng.randint(10000, 99999)}-{n % 10}" '
            f'codeSystem="2.16.840.1.113883.6.1"/><title>Section {n}: {text(3)}</title>'
            f"<text><paragraph>{text(60)}</paragraph><table><thead><tr><th>examen</th>"
            f"<th>valeur</th><th>commentaire</th></tr></thead><tbody>{rows}</tbody></table>"
            f"</text>{entries}</section></component>\n")
        parts.append(section)
        size_now += len(section.encode())
    parts.append(tail)
    return "".join(parts).encode("utf-8")


def scanned_pdf(size: int = PDF_SIZE, seed: int = 17) -> bytes:
    """A one-page PDF whose page is a scanned A4 image: one ``/DCTDecode`` stream of
    about ``size`` bytes (classic xref table, written by hand)."""
    image = b"\xff\xd8\xff\xe0" + random.Random(seed).randbytes(size - 6) + b"\xff\xd9"
    content = b"q 595 0 0 842 0 0 cm /Im1 Do Q"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width 2480 /Height 3508 /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n" % len(image)
        + image + b"\nendstream",
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


def _times(methods: Dict[str, Callable[[], object]]) -> Dict[str, List[float]]:
    """Milliseconds per call of each method, one call per pass, the methods
    alternating within each pass (after one warm-up call each)."""
    for fn in methods.values():
        fn()
    out: Dict[str, List[float]] = {name: [] for name in methods}
    for _ in range(PASSES):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            out[name].append((time.perf_counter() - start) * 1000)
    return out


def _med(runs: List[float]) -> float:
    return round(statistics.median(runs), 1)


def _spread(runs: List[float]) -> str:
    return f"{min(runs):.0f}–{max(runs):.0f}"


def run() -> List[Figure]:
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )
    from cryptography.x509 import verification
    from lxml import etree
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import fields, signers
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.registry import SimpleCertificateStore
    from signxml import methods
    from signxml.xades import XAdESSigner, XAdESVerifier

    import cps
    from cps.emulator import EmulatedCard
    from cps.pades import sign_pdf, verify_pdf
    from cps.sign import SoftwareSigner
    from cps.xades import sign_xades, verify_xades

    pki = bench_pki()
    emu = EmulatedCard.from_profile("cps3-medecin", pki=pki)
    creds = emu.credentials
    intermediate, root = creds.chain
    soft = SoftwareSigner(creds.sign_key, creds.sign_cert)
    # complete and delta CRLs of every CA, issued now (the intermediates' certificates
    # name a Freshest CRL: pyHanko's hard-fail wants the delta), the same for both sides
    crls = pki.crls(deltas=True)
    validator = pki.validator(crls=crls)
    xml = cda_document()
    pdf = scanned_pdf()

    # ---- XAdES
    cert_pems = [c.public_bytes(Encoding.PEM).decode("ascii")
                 for c in (creds.sign_cert, intermediate)]
    c14n10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"

    def signxml_sign() -> bytes:
        signer = XAdESSigner(method=methods.enveloped, c14n_algorithm=c14n10,
                             signature_algorithm="rsa-sha256", digest_algorithm="sha256")
        signed = signer.sign(etree.fromstring(xml), key=creds.sign_key, cert=cert_pems,
                             always_add_key_value=False)
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")

    def key_usage(policy: Any, cert: Any, usage: Any) -> None:
        if not (usage.content_commitment or usage.digital_signature):
            raise ValueError("keyUsage allows neither nonRepudiation nor digitalSignature")

    # signxml's default end-entity policy wants digitalSignature; a CPS signature
    # certificate has nonRepudiation (contentCommitment) alone
    ee_policy = verification.ExtensionPolicy.permit_all().require_present(
        x509.KeyUsage, verification.Criticality.AGNOSTIC, key_usage)

    with tempfile.TemporaryDirectory(prefix="cps-bench-documents-") as tmp:
        root_pem = Path(tmp) / "root.pem"
        root_pem.write_bytes(root.public_bytes(Encoding.PEM))
        ca_pem = str(root_pem)

        card = cps.open_card(connection=emu.connection())
        try:
            card.verify_pin(emu.pin)
            xsign = _times({
                "card": lambda: sign_xades(card, xml, chain=[intermediate]),
                "software": lambda: sign_xades(soft, xml, chain=[intermediate]),
                "signxml": signxml_sign})
            signed_xml = sign_xades(card, xml, chain=[intermediate])
            theirs_xml = signxml_sign()

            def ours_xverify() -> None:
                result = verify_xades(signed_xml, validator)
                assert result.validation is not None  # noqa: S101

            def signxml_verify() -> None:
                XAdESVerifier().verify(theirs_xml, ca_pem_file=ca_pem, ee_policy=ee_policy)

            xverify = _times({"ours": ours_xverify, "signxml": signxml_verify})

            # ---- PAdES
            registry = SimpleCertificateStore.from_certs(
                [asn1_x509.Certificate.load(intermediate.public_bytes(Encoding.DER))])
            simple = signers.SimpleSigner(
                signing_cert=asn1_x509.Certificate.load(creds.sign_cert.public_bytes(Encoding.DER)),
                signing_key=asn1_keys.PrivateKeyInfo.load(creds.sign_key.private_bytes(
                    Encoding.DER, PrivateFormat.PKCS8, NoEncryption())),
                cert_registry=registry, prefer_pss=False, embed_roots=False)
            meta = signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm="sha256",
                                                subfilter=fields.SigSeedSubFilter.PADES)

            def pyhanko_sign() -> bytes:
                writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=True)
                out: bytes = signers.sign_pdf(writer, meta, signer=simple).getvalue()
                return out

            psign = _times({
                "card": lambda: sign_pdf(card, pdf, chain=[intermediate]),
                "software": lambda: sign_pdf(soft, pdf, chain=[intermediate]),
                "pyhanko": pyhanko_sign})
            signed_pdf = sign_pdf(card, pdf, chain=[intermediate])
        finally:
            card.close()
    theirs_pdf = pyhanko_sign()

    def asn1_cert(cert: Any) -> Any:
        return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))

    def ours_pverify() -> None:
        [result] = verify_pdf(signed_pdf, validator)
        assert result.validation is not None and result.covers_whole_file  # noqa: S101

    def pyhanko_context() -> Any:
        return ValidationContext(
            trust_roots=[asn1_cert(c) for c in pki.anchors()],
            other_certs=[asn1_cert(c) for c in pki.intermediates.values()],
            crls=crls, allow_fetching=False, revocation_mode="hard-fail")

    kept = pyhanko_context()  # built once, as ours: a server keeps its validator

    def pyhanko_verify(context: Callable[[], Any]) -> Callable[[], None]:
        def go() -> None:
            reader = PdfFileReader(io.BytesIO(theirs_pdf), strict=True)
            [embedded] = reader.embedded_signatures
            status = validate_pdf_signature(embedded, context())
            if not status.bottom_line:
                raise RuntimeError(f"pyHanko: {status.pretty_print_details()}")
        return go

    pverify = _times({"ours": ours_pverify, "pyhanko": pyhanko_verify(lambda: kept),
                      "pyhanko-fresh": pyhanko_verify(pyhanko_context)})

    hashed = _times({"sha256": lambda: hashlib.sha256(pdf).digest()})
    xml_mb = len(xml) / 1e6
    pdf_mb = len(pdf) / 1e6
    setting = f"{PASSES} alternating passes, median; "
    return [
        Figure(f"XAdES enveloped signature of a {xml_mb:.1f} MB CDA-like XML document "
               "(sign_xades, emulated card)", "ms", _med(xsign["card"]),
               {"sign_xades with a SoftwareSigner (same key)": _med(xsign["software"]),
                "signxml XAdESSigner alone, software key": _med(xsign["signxml"])},
               note=setting + "C14N 1.0, SHA-256, signer certificate and intermediate in "
                    "KeyInfo; sign_xades verifies its own output before returning it; "
                    f"passes (ms): card {_spread(xsign['card'])}, software "
                    f"{_spread(xsign['software'])}, signxml {_spread(xsign['signxml'])}"),
        Figure(f"XAdES verification of a {xml_mb:.1f} MB CDA-like XML document "
               "(verify_xades with a Validator)", "ms", _med(xverify["ours"]),
               {"signxml XAdESVerifier, test root as ca_pem_file": _med(xverify["signxml"])},
               note=setting + "ours includes the RFC 5280 path validation with the test "
                    "PKI's complete and delta CRLs (hard-fail, purpose signature), one "
                    "Validator for all passes, and the hardened parse; signxml's checks the "
                    "chain with cryptography's verifier (an end-entity policy accepting "
                    "nonRepudiation), no revocation; passes (ms): ours "
                    f"{_spread(xverify['ours'])}, signxml {_spread(xverify['signxml'])}"),
        Figure(f"PAdES signature of a {pdf_mb:.0f} MB scanned-page PDF "
               "(sign_pdf, emulated card)", "ms", _med(psign["card"]),
               {"sign_pdf with a SoftwareSigner (same key)": _med(psign["software"]),
                "pyHanko SimpleSigner alone, software key": _med(psign["pyhanko"]),
                f"hashlib.sha256 of the {pdf_mb:.0f} MB": _med(hashed["sha256"])},
               note=setting + "incremental update, invisible signature, /ETSI.CAdES.detached, "
                    "SHA-256, intermediate embedded; pyHanko's SimpleSigner loads its "
                    "PKCS#8 key again (cryptography's key check) for each raw signature "
                    "and signs once more to size /Contents, where CardSigner's dry run "
                    f"signs nothing; passes (ms): card {_spread(psign['card'])}, software "
                    f"{_spread(psign['software'])}, pyHanko {_spread(psign['pyhanko'])}"),
        Figure(f"PAdES verification of a {pdf_mb:.0f} MB scanned-page PDF "
               "(verify_pdf with a Validator)", "ms", _med(pverify["ours"]),
               {"pyHanko validate_pdf_signature, same roots and CRLs, context kept":
                    _med(pverify["pyhanko"]),
                "the same, a new ValidationContext each time": _med(pverify["pyhanko-fresh"]),
                f"hashlib.sha256 of the {pdf_mb:.0f} MB": _med(hashed["sha256"])},
               note=setting + "ours includes the RFC 5280 path validation with the test "
                    "PKI's complete and delta CRLs (hard-fail, purpose signature), the "
                    "/ByteRange check and pyHanko's coverage check, one Validator for all "
                    "passes; pyHanko's ValidationContext trusts the same roots, holds the "
                    "intermediates and the same CRLs, hard-fail, no fetching; passes (ms): "
                    f"ours {_spread(pverify['ours'])}, pyHanko kept "
                    f"{_spread(pverify['pyhanko'])}, fresh {_spread(pverify['pyhanko-fresh'])}"),
    ]


if __name__ == "__main__":  # pragma: no cover - a run that writes nothing
    for fig in run():
        print(f"{fig.name}: {fig.ours} {fig.unit}  anchors: {fig.anchors}\n  {fig.note}")
