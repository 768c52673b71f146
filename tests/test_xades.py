"""cps.xades: XAdES and the DMP layout with the emulated card, the TEST PKI, xmlsec1 and signxml."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import cps
from cps import errors
from cps.sign import DigestMismatch, SignatureInvalid, SigningCertificateMismatch, SoftwareSigner
from cps.trust import Validator

pytest.importorskip("signxml")
etree = pytest.importorskip("lxml.etree")

from cps.xades import (  # noqa: E402 - after the skip
    DMP_PURPOSE_OF_SIGNATURE,
    DmpVerification,
    XadesVerification,
    XmlSignatureError,
    sign_dmp_submission,
    sign_xades,
    verify_dmp_submission,
    verify_xades,
)

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
DOC = ('<?xml version="1.0" encoding="UTF-8"?>\n'
       '<compteRendu xmlns="urn:test:cr"><patient>Élodie</patient>'
       '<conclusion a="1">Radiographie normale</conclusion><q xmlns="">x</q></compteRendu>'
       ).encode()
CDA = ('<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">'
       '<!-- a comment --><title>CR imagerie</title>\n  <component/></ClinicalDocument>').encode()
KOS = b"\x00" * 128 + b"DICM" + bytes(range(256))
SS_UID, CDA_UID, KOS_UID = "1.2.250.1.999.1.1", "1.2.250.1.999.1.2", "1.2.250.1.999.1.3"

needs_xmlsec1 = pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 missing")


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def validator(cps_pki) -> Validator:
    """The TEST roots only (the intermediate must come from KeyInfo), CRLs, hard-fail."""
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    store = cps_pki.trust_store(intermediates=False, name="TEST")
    return Validator(store, crls=cps_pki.crls(at, deltas=True), revocation="hard-fail")


@pytest.fixture(scope="module")
def medecin(cps_pki):
    return cps_pki.issue_card("cps3-medecin")


@pytest.fixture(scope="module")
def software(medecin) -> SoftwareSigner:
    return SoftwareSigner(medecin.sign_key, medecin.sign_cert)


@contextlib.contextmanager
def signing_card(emu) -> Iterator[cps.Card]:
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        yield card


@pytest.fixture
def card(cps_emulated_card) -> Iterator[cps.Card]:
    with signing_card(cps_emulated_card) as opened:
        yield opened


def pem(*objects) -> bytes:
    return b"".join(o.public_bytes(serialization.Encoding.PEM) for o in objects)


def xmlsec1(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["xmlsec1", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


@pytest.fixture
def trust_files(tmp_path, medecin) -> Path:
    (tmp_path / "root.pem").write_bytes(pem(medecin.chain[1]))
    (tmp_path / "intermediate.pem").write_bytes(pem(medecin.chain[0]))
    return tmp_path


def xmlsec1_verify(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return xmlsec1("--verify", "--trusted-pem", "root.pem", "--untrusted-pem",
                   "intermediate.pem", *extra, path.name,
                   cwd=path.parent)


def parse(xml: bytes):
    return etree.fromstring(xml, etree.XMLParser(resolve_entities=False))


def signature_of(root):
    return root if root.tag == f"{{{DS}}}Signature" else root.find(f".//{{{DS}}}Signature")


# ---------------------------------------------------------------- the card, every mode
@pytest.mark.parametrize("mode", ["enveloped", "enveloping", "detached"])
def test_card_signs_and_verifies(card, cps_emulated_card, validator, mode):
    when = dt.datetime(2025, 3, 1, 8, 30, tzinfo=dt.timezone.utc)
    signed = sign_xades(card, DOC, mode=mode, detached_uri="cr.xml", signing_time=when,
                        chain=[cps_emulated_card.credentials.chain[0]])
    result = verify_xades(signed, validator, detached={"cr.xml": DOC} if mode == "detached"
                          else None)
    assert isinstance(result, XadesVerification)
    creds = cps_emulated_card.credentials
    assert result.signer == creds.sign_cert
    assert result.certificates == (creds.chain[0],)       # the intermediate, from KeyInfo
    assert result.validation.path == [creds.sign_cert, *creds.chain]
    assert result.practitioner.validated and result.practitioner.national_id
    assert result.signing_time == when and result.validation_time_source == "now"
    assert result.signature_algorithm == "rsa-sha256" and result.level == "B-B"
    kinds = sorted(r.kind for r in result.references)
    data_kind = {"enveloped": "document", "enveloping": "object", "detached": "detached"}[mode]
    assert kinds == sorted([data_kind, "signed-properties", "key-info"])
    (covered,) = result.covered
    if mode == "detached":
        assert covered.data == DOC and covered.uri == "cr.xml"
    else:  # the canonical XML that was digested, parsed: never re-found in the input
        assert b"Radiographie normale" in covered.data
        assert covered.element is not None
    props = result.signed_properties
    assert props.find(f"{{{XADES}}}SignedSignatureProperties/{{{XADES}}}SigningCertificateV2"
                      ) is not None


def test_card_signs_binary_enveloping(card, cps_emulated_card, validator):
    signed = sign_xades(card, KOS, mode="enveloping",
                        chain=[cps_emulated_card.credentials.chain[0]])
    assert verify_xades(signed, validator).covered[0].data == KOS


def test_sha1_refused_for_xades(software):
    with pytest.raises(errors.NotSupported):
        sign_xades(software, DOC, hash="sha1")


def test_tampered_document(software):
    signed = sign_xades(software, DOC)
    with pytest.raises(DigestMismatch) as info:
        verify_xades(signed.replace(b"normale", b"anormale"))
    assert info.value.algorithm == "sha256" and info.value.expected != info.value.actual
    detached = sign_xades(software, DOC, mode="detached", detached_uri="cr.xml")
    with pytest.raises(DigestMismatch):
        verify_xades(detached, detached=DOC + b" ")
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(detached)                                    # not given
    assert info.value.reason == "no-content"
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(detached, detached={"cr.xml": DOC, "other.pdf": b"%PDF"})
    assert info.value.reason == "unreferenced-content"


def test_revoked_card_refused(cps_card_factory, validator):
    emu = cps_card_factory("cps3-revoked")
    with signing_card(emu) as card:
        signed = sign_xades(card, DOC, chain=[emu.credentials.chain[0]])
    assert verify_xades(signed).signer == emu.credentials.sign_cert   # the mathematics hold
    with pytest.raises(errors.CertificateRevoked):
        verify_xades(signed, validator)


def test_judged_at_caller_time(software, medecin, validator):
    signed = sign_xades(software, DOC, chain=[medecin.chain[0]])
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=30)
    result = verify_xades(signed, validator, at=at)
    assert result.validation_time == at and result.validation_time_source == "caller"


# ---------------------------------------------------------------- XAdES-T
def test_signature_timestamp(card, cps_tsa, cps_pki):
    validator = cps_pki.validator(dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1))
    signed = sign_xades(card, DOC, timestamp=cps_tsa.url)
    root = parse(signed)
    assert root.find(f".//{{{XADES}}}SignatureTimeStamp/{{{XADES}}}EncapsulatedTimeStamp"
                     ) is not None
    result = verify_xades(signed, validator)
    assert result.level == "B-T" and result.validation_time_source == "timestamp"
    assert result.validation_time == result.timestamp.gen_time
    # the timestamp covers the SignatureValue: another value breaks it
    value = signature_of(root).find(f"{{{DS}}}SignatureValue")
    forged = bytearray(base64.b64decode(value.text))
    forged[-1] ^= 1
    value.text = base64.b64encode(bytes(forged)).decode()
    with pytest.raises(errors.CpsError):
        verify_xades(etree.tostring(root), validator)


# ---------------------------------------------------------------- xmlsec1 verifies ours
@needs_xmlsec1
@pytest.mark.parametrize("mode", ["enveloped", "enveloping", "detached"])
def test_xmlsec1_verifies_card_signatures(card, trust_files, mode):
    signed = sign_xades(card, DOC, mode=mode, detached_uri="cr.xml")
    (trust_files / "cr.xml").write_bytes(DOC)
    (trust_files / "sig.xml").write_bytes(signed)
    extra = ["--url-map:cr.xml", str(trust_files / "cr.xml")] if mode == "detached" else []
    done = xmlsec1_verify(trust_files / "sig.xml", *extra)
    assert done.returncode == 0, done.stderr
    assert "SignedInfo References (ok/all): 3/3" in done.stderr
    (trust_files / "sig.xml").write_bytes(signed.replace(b"normale", b"anormale")
                                          if mode != "detached" else signed)
    if mode == "detached":
        (trust_files / "cr.xml").write_bytes(DOC + b" ")
    assert xmlsec1_verify(trust_files / "sig.xml", *extra).returncode != 0


@needs_xmlsec1
@pytest.mark.parametrize("hash", ["sha256", "sha1"])
def test_xmlsec1_verifies_dmp_layout_and_manifest(card, trust_files, hash):
    documents = {CDA_UID: CDA, KOS_UID: KOS}
    submission_set = b"<SubmissionSet>metadata</SubmissionSet>"
    signed = sign_dmp_submission(card, SS_UID, documents, hash=hash,
                                 submission_set=submission_set)
    for name, data in (("ss.xml", submission_set), ("cda.xml", CDA), ("kos.dcm", KOS)):
        (trust_files / name).write_bytes(data)
    (trust_files / "dmp.xml").write_bytes(signed)
    maps = [f"--url-map:urn:oid:{SS_UID}", "ss.xml", f"--url-map:urn:oid:{CDA_UID}", "cda.xml",
            f"--url-map:urn:oid:{KOS_UID}", "kos.dcm"]
    done = xmlsec1_verify(trust_files / "dmp.xml", *maps)
    assert done.returncode == 0, done.stderr
    assert "Manifests References (ok/all): 3/3" in done.stderr
    # the DRIMbox's placeholder submission-set digest: the XMLDSig core still verifies
    (trust_files / "dmp.xml").write_bytes(sign_dmp_submission(card, SS_UID, documents, hash=hash))
    done = xmlsec1_verify(trust_files / "dmp.xml", "--ignore-manifests")
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- ours verifies theirs
XMLSEC_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<doc xmlns="urn:test:xmlsec"><data>signed by xmlsec1</data>
<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="sig">
<ds:SignedInfo>
<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
<ds:Reference URI=""><ds:Transforms>
<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>
<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>
</ds:Reference>
<ds:Reference URI="#props" Type="http://uri.etsi.org/01903#SignedProperties"><ds:Transforms>
<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>
<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>
</ds:Reference>{extra}
</ds:SignedInfo>
<ds:SignatureValue/>
<ds:KeyInfo Id="ki"><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate>
<ds:X509Certificate>{intermediate}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
<ds:Object><xades:QualifyingProperties xmlns:xades="http://uri.etsi.org/01903/v1.3.2#"
 Target="#sig">
<xades:SignedProperties Id="props"><xades:SignedSignatureProperties>
<xades:SigningTime>2025-03-01T08:30:00Z</xades:SigningTime>
<xades:SigningCertificateV2><xades:Cert><xades:CertDigest>
<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
<ds:DigestValue>{cert_digest}</ds:DigestValue></xades:CertDigest></xades:Cert>
</xades:SigningCertificateV2></xades:SignedSignatureProperties></xades:SignedProperties>
</xades:QualifyingProperties></ds:Object>
</ds:Signature></doc>
"""
KEYINFO_REFERENCE = """
<ds:Reference URI="#ki"><ds:Transforms>
<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>
<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>
</ds:Reference>"""


def xmlsec1_sign(tmp_path: Path, creds, extra: str = "") -> bytes:
    der = creds.sign_cert.public_bytes(serialization.Encoding.DER)
    template = XMLSEC_TEMPLATE.format(
        cert=base64.b64encode(der).decode(), extra=extra,
        intermediate=base64.b64encode(creds.chain[0].public_bytes(
            serialization.Encoding.DER)).decode(),
        cert_digest=base64.b64encode(hashlib.sha256(der).digest()).decode())
    (tmp_path / "template.xml").write_text(template)
    (tmp_path / "key.pem").write_bytes(creds.sign_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (tmp_path / "cert.pem").write_bytes(pem(creds.sign_cert))
    done = xmlsec1("--sign", "--privkey-pem", "key.pem,cert.pem", "--id-attr:Id",
                   "SignedProperties", "--id-attr:Id", "KeyInfo", "--output", "signed.xml",
                   "template.xml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "signed.xml").read_bytes()


@needs_xmlsec1
def test_verifies_xmlsec1_signature(tmp_path, medecin, validator):
    signed = xmlsec1_sign(tmp_path, medecin)
    result = verify_xades(signed, validator)
    assert result.signer == medecin.sign_cert and result.practitioner.validated
    assert result.signing_time == dt.datetime(2025, 3, 1, 8, 30, tzinfo=dt.timezone.utc)
    assert b"signed by xmlsec1" in result.covered[0].data
    assert result.covered[0].kind == "document"


@needs_xmlsec1
def test_extra_reference_refused(tmp_path, medecin):
    """A validly signed signature that references the KeyInfo twice."""
    signed = xmlsec1_sign(tmp_path, medecin, extra=KEYINFO_REFERENCE * 2)
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(signed)
    assert info.value.reason == "unexpected-reference"


def test_verifies_signxml_signature(medecin, validator):
    from signxml.xades import XAdESSigner

    root = parse(DOC)
    signed = XAdESSigner().sign(root, key=medecin.sign_key,
                                cert=[medecin.sign_cert, medecin.chain[0]])
    result = verify_xades(etree.tostring(signed), validator)
    assert result.signer == medecin.sign_cert and result.validation is not None
    assert result.signing_time is not None


# ---------------------------------------------------------------- the DMP layout
def test_dmp_layout_with_the_card(card, cps_emulated_card, validator):
    when = dt.datetime(2025, 3, 1, 8, 30, tzinfo=dt.timezone.utc)
    documents = {CDA_UID: CDA, KOS_UID: KOS}
    signed = sign_dmp_submission(card, SS_UID, documents, signing_time=when,
                                 signature_uid="1.2.250.1.999.1.4",
                                 chain=[cps_emulated_card.credentials.chain[0]])
    root = parse(signed)
    assert root.tag == f"{{{DS}}}Signature" and root.get("Id") == "1.2.250.1.999.1.4"
    info = root.find(f"{{{DS}}}SignedInfo")
    assert info.find(f"{{{DS}}}CanonicalizationMethod").get("Algorithm").endswith(
        "#WithComments")
    refs = info.findall(f"{{{DS}}}Reference")
    assert [(r.get("URI"), r.get("Type")) for r in refs] == [
        ("#IHEManifest", DS + "Manifest"),
        ("#S0-SignedProperties", "http://uri.etsi.org/01903/v1.1.1#SignedProperties")]
    manifest = root.find(f"{{{DS}}}Object/{{{DS}}}Manifest")
    assert manifest.get("Id") == "IHEManifest"
    uris = [r.get("URI") for r in manifest.findall(f"{{{DS}}}Reference")]
    assert uris == [f"urn:oid:{SS_UID}", f"urn:oid:{CDA_UID}", f"urn:oid:{KOS_UID}"]
    assert manifest.findtext(f"{{{DS}}}Reference/{{{DS}}}DigestValue") == "AA=="
    prop = root.find(f"{{{DS}}}Object/{{{DS}}}SignatureProperties/{{{DS}}}SignatureProperty")
    assert prop.get("Id") == "purposeOfSignature" and prop.text == DMP_PURPOSE_OF_SIGNATURE

    result = verify_dmp_submission(signed, validator, documents=documents,
                                   submission_set_uid=SS_UID)
    assert isinstance(result, DmpVerification)
    assert result.signer == cps_emulated_card.credentials.sign_cert
    assert result.practitioner.validated and result.signing_time == when
    assert set(result.documents) == {CDA_UID, KOS_UID}
    assert result.documents[KOS_UID].data == KOS
    assert not result.submission_set_digest_checked
    assert result.purpose_of_signature == DMP_PURPOSE_OF_SIGNATURE
    assert result.signature_uid == "1.2.250.1.999.1.4"

    with pytest.raises(DigestMismatch):
        verify_dmp_submission(signed, documents={CDA_UID: CDA.replace(b"CR", b"XX"),
                                                 KOS_UID: KOS})
    with pytest.raises(XmlSignatureError) as info:
        verify_dmp_submission(signed, documents={CDA_UID: CDA})
    assert info.value.reason == "no-content"
    with pytest.raises(XmlSignatureError) as info:
        verify_dmp_submission(signed, documents={**documents, "1.2.3": b"x"})
    assert info.value.reason == "unreferenced-content"


def test_dmp_sha1_needs_allow_sha1(software):
    signed = sign_dmp_submission(software, SS_UID, {CDA_UID: CDA}, hash="sha1",
                                 submission_set=b"ss")
    with pytest.raises(XmlSignatureError) as info:
        verify_dmp_submission(signed, documents={CDA_UID: CDA})
    assert info.value.reason == "weak-algorithm"
    result = verify_dmp_submission(signed, documents={CDA_UID: CDA}, submission_set=b"ss",
                                   allow_sha1=True)
    assert result.signature_algorithm == "rsa-sha1" and result.submission_set_digest_checked


# ---------------------------------------------------------------- adversarial
def test_wrapping_duplicate_id(software):
    root = parse(sign_xades(software, DOC, mode="enveloping"))
    evil = etree.SubElement(root, f"{{{DS}}}Object", Id="object")
    evil.text = "forged"
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(etree.tostring(root))
    assert info.value.reason == "wrapping"


def test_wrapping_moved_signed_element(medecin):
    """XSW: the signed element moved under an attacker's root; only it is covered."""
    from signxml.xades import XAdESSigner

    doc = parse(b'<order><item Id="signed">10 mg</item></order>')
    signed = XAdESSigner().sign(doc, key=medecin.sign_key, cert=[medecin.sign_cert],
                                reference_uri="#signed")
    evil = etree.Element("order")
    etree.SubElement(evil, "item").text = "1000 mg"
    wrapper = etree.SubElement(evil, "wrapper")
    for child in list(signed):
        wrapper.append(child)
    xml = etree.tostring(evil)
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(xml)
    assert info.value.reason == "wrapping"
    result = verify_xades(xml, whole_document=False)     # parts allowed: only the part reported
    assert [r.data for r in result.covered] == [b'<item Id="signed">10 mg</item>']


def test_unsigned_content_refused(software):
    root = parse(sign_xades(software, DOC))
    obj = etree.SubElement(signature_of(root), f"{{{DS}}}Object")
    etree.SubElement(obj, "instruction").text = "pay 1000 EUR"
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(etree.tostring(root))
    assert info.value.reason == "unsigned-content"


def _same_key_certificate(creds) -> x509.Certificate:
    """Another certificate for the card's signing key (a re-issue, or a forgery)."""
    issuer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(creds.sign_cert.subject)
            .issuer_name(creds.sign_cert.issuer).public_key(creds.sign_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(issuer_key, hashes.SHA256()))


def test_swapped_keyinfo_certificate(medecin, software):
    signed = sign_dmp_submission(software, SS_UID, {CDA_UID: CDA}, chain=())
    root = parse(signed)
    node = root.find(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    node.text = base64.b64encode(_same_key_certificate(medecin).public_bytes(
        serialization.Encoding.DER)).decode()
    with pytest.raises(SigningCertificateMismatch):
        verify_dmp_submission(etree.tostring(root), documents={CDA_UID: CDA})
    node.text = base64.b64encode(medecin.auth_cert.public_bytes(
        serialization.Encoding.DER)).decode()                       # another key
    with pytest.raises(SignatureInvalid) as info:
        verify_dmp_submission(etree.tostring(root), documents={CDA_UID: CDA})
    assert info.value.reason == "signature"
    # XAdES from signxml references KeyInfo too: the swap breaks that digest first
    root = parse(sign_xades(software, DOC, chain=()))
    node = signature_of(root).find(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    node.text = base64.b64encode(_same_key_certificate(medecin).public_bytes(
        serialization.Encoding.DER)).decode()
    with pytest.raises(SignatureInvalid):
        verify_xades(etree.tostring(root))


def test_lying_encoding_declaration(software):
    signed = sign_xades(software, DOC)
    lying = signed.replace(b"encoding='UTF-8'", b"encoding='ISO-8859-1'", 1)
    assert lying != signed
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(lying)
    assert info.value.reason == "encoding-mismatch"
    latin1 = DOC.decode().encode("latin-1")          # declared UTF-8, bytes Latin-1
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(latin1)
    assert info.value.reason == "encoding-mismatch"
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(b'<?xml version="1.0" encoding="UTF-7"?><a/>')
    assert info.value.reason == "unsupported-encoding"
    # an honest Latin-1 document signs and verifies
    honest = ('<?xml version="1.0" encoding="ISO-8859-1"?><a>Élodie</a>').encode("latin-1")
    verify_xades(sign_xades(software, honest))


HOSTILE = {
    "xxe": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<r>&x;</r>',
    "billion-laughs": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                      + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1
                                                                else b"&lol;") * 10)
                                 for i in range(1, 10))
                      + b']><lolz>&lol9;</lolz>',
    "external-dtd": b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd"><r/>',
    "utf16-xxe": '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x SYSTEM '
                 '"file:///etc/passwd">]><r>&x;</r>'.encode("utf-16"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_dtd_refused_fast(name):
    start = time.monotonic()
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(HOSTILE[name])
    assert info.value.reason == "dtd-forbidden"
    assert time.monotonic() - start < 1
    with pytest.raises(XmlSignatureError):
        verify_dmp_submission(HOSTILE[name], documents={})


def test_huge_and_truncated(software):
    start = time.monotonic()
    huge = b"<a>" + b"x" * (50 * 1024 * 1024) + b"</a>"
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(huge)
    assert info.value.reason == "too-large" and time.monotonic() - start < 1
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(b"<a>" * 10 + b"</a>" * 10, max_size=16)
    assert info.value.reason == "too-large"
    signed = sign_xades(software, DOC)
    for cut in (10, len(signed) // 2, len(signed) - 3):
        with pytest.raises(XmlSignatureError) as info:
            verify_xades(signed[:cut])
        assert info.value.reason == "malformed"
    with pytest.raises(XmlSignatureError) as info:            # deeper than libxml2 allows
        verify_xades(b"<a>" * 100_000 + b"</a>" * 100_000)
    assert info.value.reason == "malformed"
    for junk in (b"", b"not xml", b"<a/>", b"\xff\xfe\x00"):
        with pytest.raises(XmlSignatureError):
            verify_xades(junk)


def test_mutations_give_typed_errors(software):
    """Every byte flip of a signature gives a CpsError, never a raw exception."""
    signed = sign_xades(software, DOC, mode="enveloping")
    step = max(1, len(signed) // 300)
    for index in range(0, len(signed), step):
        mutated = bytearray(signed)
        mutated[index] ^= 0x20
        try:
            verify_xades(bytes(mutated))
        except errors.CpsError:
            pass
