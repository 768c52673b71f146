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
    assert result.validation_time == result.timestamp.latest     # genTime + accuracy, as CAdES-T
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


# ---------------------------------------------------------------- issue 17 review (BUG-61..63)
_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
_ENVELOPED = DS + "enveloped-signature"
_BASE64 = DS + "base64"
_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _canonical(node) -> bytes:
    """Inclusive C14N 1.0 of a reparsed copy, as signxml digests an element."""
    return etree.tostring(etree.fromstring(etree.tostring(node)), method="c14n")


def hand_signature(parent, creds):
    """A ds:Signature (appended to ``parent``, or standalone) with SignedProperties naming
    ``creds.sign_cert`` by SigningCertificateV2: references are added with add_reference."""
    def d(name: str) -> str:
        return f"{{{DS}}}{name}"

    def x(name: str) -> str:
        return f"{{{XADES}}}{name}"

    sig = etree.SubElement(parent, d("Signature"), nsmap={"ds": DS}) if parent is not None \
        else etree.Element(d("Signature"), nsmap={"ds": DS})
    sig.set("Id", "sig")
    signed_info = etree.SubElement(sig, d("SignedInfo"))
    etree.SubElement(signed_info, d("CanonicalizationMethod"), Algorithm=_C14N)
    etree.SubElement(signed_info, d("SignatureMethod"),
                     Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    etree.SubElement(sig, d("SignatureValue"))
    x509_data = etree.SubElement(etree.SubElement(sig, d("KeyInfo")), d("X509Data"))
    for cert in (creds.sign_cert, creds.chain[0]):
        etree.SubElement(x509_data, d("X509Certificate")).text = _b64(
            cert.public_bytes(serialization.Encoding.DER))
    qualifying = etree.SubElement(etree.SubElement(sig, d("Object")), x("QualifyingProperties"),
                                  nsmap={"xades": XADES}, Target="#sig")
    props = etree.SubElement(qualifying, x("SignedProperties"), Id="props")
    ssp = etree.SubElement(props, x("SignedSignatureProperties"))
    etree.SubElement(ssp, x("SigningTime")).text = "2026-01-01T00:00:00Z"
    cert_digest = etree.SubElement(etree.SubElement(etree.SubElement(
        ssp, x("SigningCertificateV2")), x("Cert")), x("CertDigest"))
    etree.SubElement(cert_digest, d("DigestMethod"), Algorithm=_SHA256)
    etree.SubElement(cert_digest, d("DigestValue")).text = _b64(hashlib.sha256(
        creds.sign_cert.public_bytes(serialization.Encoding.DER)).digest())
    return sig


def add_reference(sig, uri: str, transforms, digest: bytes, type=None) -> None:
    ref = etree.SubElement(sig.find(f"{{{DS}}}SignedInfo"), f"{{{DS}}}Reference", URI=uri)
    if type:
        ref.set("Type", type)
    if transforms:
        holder = etree.SubElement(ref, f"{{{DS}}}Transforms")
        for algorithm in transforms:
            etree.SubElement(holder, f"{{{DS}}}Transform", Algorithm=algorithm)
    etree.SubElement(ref, f"{{{DS}}}DigestMethod", Algorithm=_SHA256)
    etree.SubElement(ref, f"{{{DS}}}DigestValue").text = _b64(digest)


def finish_signature(sig, key) -> None:
    """Reference the SignedProperties, then sign SignedInfo."""
    props = sig.find(f"{{{DS}}}Object/{{{XADES}}}QualifyingProperties/"
                     f"{{{XADES}}}SignedProperties")
    add_reference(sig, "#props", [_C14N], hashlib.sha256(_canonical(props)).digest(),
                  type="http://uri.etsi.org/01903#SignedProperties")
    from cryptography.hazmat.primitives.asymmetric import padding

    sig.find(f"{{{DS}}}SignatureValue").text = _b64(key.sign(
        _canonical(sig.find(f"{{{DS}}}SignedInfo")), padding.PKCS1v15(), hashes.SHA256()))


def many_references(creds, count: int, *, filler: int = 0) -> bytes:
    """An enveloped signature with ``count`` element references (+ SignedProperties),
    ``filler`` empty ``<a/>`` elements in front."""
    root = etree.Element("doc")
    for _ in range(filler):
        etree.SubElement(root, "a")
    targets = []
    for index in range(count):
        target = etree.SubElement(root, "t", Id=f"t{index}")
        target.text = "x"
        targets.append(target)
    sig = hand_signature(root, creds)
    for target in targets:
        add_reference(sig, f"#{target.get('Id')}", [_C14N],
                      hashlib.sha256(_canonical(target)).digest())
    finish_signature(sig, creds.sign_key)
    return etree.tostring(root)


_BOMB_CHILD = """
import resource, sys, time
from cps.xades import XmlSignatureError, verify_xades
xml = open(sys.argv[1], "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # interpreter, imports, input
start = time.monotonic()
try:
    verify_xades(xml, whole_document=False)
    reason = "verified"
except XmlSignatureError as exc:
    reason = exc.reason
print(reason, time.monotonic() - start,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)
"""


def test_an_xml_node_bomb_with_many_references_is_refused_in_bounded_memory(tmp_path, medecin):
    """BUG-61: 41 MB of <a/> (under MAX_XML_SIZE) took 1.4 GB to parse, 5.5 GB with 64
    references (signxml copies the document per reference). Refused by counting first."""
    import sys

    from cps.xades import MAX_XML_ELEMENTS, MAX_XML_SIZE

    signed = many_references(medecin, 63)
    bomb = signed.replace(b"<doc>", b"<doc>" + b"<a/>" * 11_000_000, 1)
    assert 40 * 2**20 < len(bomb) < MAX_XML_SIZE
    (tmp_path / "bomb.xml").write_bytes(bomb)
    del bomb
    # In a child process: the growth of its peak RSS is this verification's alone
    # (ru_maxrss is a high-water mark; the interpreter, imports and input come before).
    out = subprocess.run([sys.executable, "-c", _BOMB_CHILD, str(tmp_path / "bomb.xml")],
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    reason, seconds, growth_kib = out[0], float(out[1]), int(out[2])
    assert reason == "too-large"
    # was 5.5 GB; the counting parse keeps the input and little else
    assert growth_kib * 1024 < 200 * 2**20, f"peak RSS grew {growth_kib // 1024} MiB"
    assert seconds < 5
    # the same references without the bomb: too many of them, refused before any digest
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(signed, whole_document=False)
    assert info.value.reason == "too-many-references"
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(b"<doc>" + b"<a/>" * (MAX_XML_ELEMENTS + 1) + b"</doc>")
    assert info.value.reason == "too-large"
    # under the reference limit, references x nodes is bounded too (4 x max_elements)
    twenty = many_references(medecin, 19, filler=1000)
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(twenty, whole_document=False, max_elements=4000)
    assert info.value.reason == "too-large"
    result = verify_xades(twenty, whole_document=False)
    assert len(result.covered) == 19


def test_an_untrusted_signer_is_refused_before_any_reference_is_digested(medecin, validator,
                                                                        monkeypatch):
    """BUG-61: references were digested before the certificate was judged, so an
    attacker's own certificate bought the whole digest work."""
    from cps.xades import _verifier_class

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "attacker")])
    now = dt.datetime.now(dt.timezone.utc)
    own = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
           .sign(key, hashes.SHA256()))
    attacker = type("Creds", (), {"sign_cert": own, "chain": [medecin.chain[0]],
                                  "sign_key": key})()
    xml = many_references(attacker, 8)
    digested = []
    verifier = _verifier_class()
    original = verifier._verify_reference

    def spy(self, reference, *args, **kwargs):
        digested.append(reference.get("URI"))
        return original(self, reference, *args, **kwargs)

    monkeypatch.setattr(verifier, "_verify_reference", spy)
    with pytest.raises(errors.CertificateInvalid):
        verify_xades(xml, validator, whole_document=False)
    assert digested == []
    assert len(verify_xades(xml, whole_document=False).covered) == 8   # the mathematics hold
    assert len(digested) == 9


def test_a_one_megabyte_cda_is_well_under_the_node_limit(software, medecin, validator):
    """BUG-61: the node limit refuses the bomb early, not real documents."""
    from cps.xades import MAX_XML_ELEMENTS

    entries = "".join(
        f'<entry><observation classCode="OBS" moodCode="EVN"><code code="{i}" '
        f'codeSystem="2.16.840.1.113883.6.1"/><value unit="mg/L" value="{i % 97}"/>'
        f"<text>résultat {i}</text></observation></entry>" for i in range(6000))
    cda = ('<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">'
           f"<component><structuredBody>{entries}</structuredBody></component>"
           "</ClinicalDocument>").encode()
    assert len(cda) > 2**20
    nodes = len(list(etree.fromstring(cda).iter()))
    assert nodes * 10 < MAX_XML_ELEMENTS
    start = time.monotonic()
    result = verify_xades(sign_xades(software, cda, chain=[medecin.chain[0]]), validator)
    assert result.covered[0].kind == "document" and time.monotonic() - start < 10


def test_a_base64_transform_cannot_pass_a_part_for_the_whole_document(medecin, validator):
    """BUG-62: URI="" with [enveloped-signature, base64] digests only the root's first
    text, yet counted as the whole document: content added after signing passed."""
    inner = b"<prescription>amoxicilline 1 g</prescription>"
    root = etree.Element("prescription", Id="rx")
    root.text = _b64(inner)
    sig = hand_signature(root, medecin)
    add_reference(sig, "", [_ENVELOPED, _BASE64], hashlib.sha256(inner).digest())
    finish_signature(sig, medecin.sign_key)
    added = etree.Element("item")
    added.text = "morphine 100 mg"
    root.insert(0, added)
    for whole in (True, False):
        with pytest.raises(XmlSignatureError) as info:
            verify_xades(etree.tostring(root), validator, whole_document=whole)
        assert info.value.reason == "partial-coverage"
    # the root named by its Id is the whole document too
    root = etree.Element("prescription", Id="rx")
    root.text = _b64(inner)
    sig = hand_signature(root, medecin)
    add_reference(sig, "#rx", [_BASE64], hashlib.sha256(inner).digest())
    finish_signature(sig, medecin.sign_key)
    with pytest.raises(XmlSignatureError) as info:
        verify_xades(etree.tostring(root), validator)
    assert info.value.reason == "partial-coverage"


def test_a_base64_object_with_child_elements_is_not_reported_as_signed_xml(medecin, validator):
    """BUG-62: a base64 ds:Object digests its first text only: children (or text after
    a comment) were inside a "covered" Object without being signed."""
    payload = b"%PDF-1.7 ordonnance"

    def enveloping(build_object) -> bytes:
        sig = hand_signature(None, medecin)
        obj = etree.SubElement(sig, f"{{{DS}}}Object", Id="doc")
        build_object(obj)
        add_reference(sig, "#doc", [_BASE64], hashlib.sha256(payload).digest())
        finish_signature(sig, medecin.sign_key)
        return etree.tostring(sig)

    def with_child(obj) -> None:
        obj.text = _b64(payload)
        etree.SubElement(obj, "instruction").text = "pay 1000 EUR"

    def with_comment(obj) -> None:
        obj.text = _b64(payload)
        obj.append(etree.Comment("x"))
        obj[-1].tail = _b64(b"unsigned")

    def plain(obj) -> None:
        obj.text = _b64(payload)

    for build in (with_child, with_comment):
        with pytest.raises(XmlSignatureError) as info:
            verify_xades(enveloping(build), validator)
        assert info.value.reason == "partial-coverage"
    result = verify_xades(enveloping(plain), validator)
    assert [(c.kind, c.data) for c in result.covered] == [("object", payload)]

    def not_base64(obj) -> None:                # characters the decoder would skip
        obj.text = "JVBERi0xLjcg b3Jkb25uYW5jZQ== morphine!"

    with pytest.raises(XmlSignatureError) as info:
        verify_xades(enveloping(not_base64), validator)
    assert info.value.reason == "malformed"
    # sign_xades's own base64 enveloping still verifies
    assert verify_xades(sign_xades(SoftwareSigner(medecin.sign_key, medecin.sign_cert),
                                   payload, mode="enveloping", chain=[medecin.chain[0]]),
                        validator).covered[0].data == payload


@pytest.fixture(scope="module")
def own_pki(tmp_path_factory):
    """A PKI of this module's own: the test below revokes certificates."""
    from cps.emulator.pki import TestPKI

    return TestPKI.generate(tmp_path_factory.mktemp("xades-pki"), seed=b"xades-t",
                            ca_key_bits=2048)


def test_xades_t_is_judged_at_gen_time_plus_accuracy_like_cades_t(own_pki):
    """BUG-63: XAdES-T judged the signer at genTime, CAdES-T and PAdES-T at genTime +
    accuracy: a revocation inside the accuracy window was missed by XAdES only."""
    from cps.sign import sign_cms, verify_cms
    from cps.testing.tsa import TsaServer

    made = own_pki.reference_time + dt.timedelta(days=40)
    signed = {}
    with TsaServer(own_pki, clock=lambda: made) as tsa:
        for index in (1, 2):
            cert, key = own_pki.issue_leaf("FORT PERSONNES", index, role="sign")
            signer = SoftwareSigner(key, cert)
            chain = [own_pki.intermediates["FORT PERSONNES"]]
            signed[index] = (sign_cms(signer, b"doc", chain=chain, timestamp=tsa.url),
                             sign_xades(signer, DOC, chain=chain, timestamp=tsa.url))
            # 1: revoked (superseded) inside the TSA's 1 s accuracy; 2: just after it
            own_pki.revoke("FORT PERSONNES", cert.serial_number,
                           made + dt.timedelta(seconds=index), x509.ReasonFlags.superseded)
    now = made + dt.timedelta(days=10)
    validator = Validator(own_pki.trust_store(intermediates=False),
                          crls=own_pki.crls(now, deltas=True), revocation="hard-fail",
                          clock=lambda: now)
    p7s, xml = signed[1]
    with pytest.raises(errors.CertificateRevoked):
        verify_cms(p7s, b"doc", validator)
    with pytest.raises(errors.CertificateRevoked):
        verify_xades(xml, validator)
    p7s, xml = signed[2]
    cades, xades = verify_cms(p7s, b"doc", validator), verify_xades(xml, validator)
    assert cades.validation_time == xades.validation_time == made + dt.timedelta(seconds=1)
    assert xades.validation_time == xades.timestamp.latest
    assert xades.validation_time_source == "timestamp"
