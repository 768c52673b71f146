"""cps.sign: raw PKCS#1 and CMS / CAdES-BES, with emulated cards, the TEST PKI and openssl."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Iterator, List

import pytest
from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cps
from cps import errors
from cps.card import KeyRole
from cps.sign import (
    MAX_CMS_SIZE,
    CmsError,
    CmsVerification,
    DigestMismatch,
    SignatureError,
    SignatureInvalid,
    SigningCertificateMismatch,
    SoftwareSigner,
    sign_cms,
    sign_pkcs1,
    verify_cms,
    verify_pkcs1,
)
from cps.trust import Validator

DATA = b"%PDF-1.7\nordonnance: amoxicilline 1 g, 3 fois par jour, 6 jours\n" * 40

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def validator(cps_pki) -> Validator:
    """The TEST roots only (intermediates must come from the CMS), CRLs, hard-fail."""
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)  # before any signing time
    crls = cps_pki.crls(at, deltas=True)
    store = cps_pki.trust_store(intermediates=False, name="TEST")
    return Validator(store, crls=crls, revocation="hard-fail")


@pytest.fixture(scope="module")
def medecin(cps_pki):
    return cps_pki.issue_card("cps3-medecin")


@pytest.fixture(scope="module")
def software_cms(medecin) -> bytes:
    return sign_cms(SoftwareSigner(medecin.sign_key, medecin.sign_cert), DATA,
                    chain=[medecin.chain[0]])


@contextlib.contextmanager
def signing_card(emu) -> Iterator[cps.Card]:
    """An emulated card opened in process, PIN verified."""
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        yield card


def pem(*objects) -> bytes:
    return b"".join(o.public_bytes(serialization.Encoding.PEM) for o in objects)


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


def openssl_verify(tmp: Path, p7s: bytes, data: bytes, root: x509.Certificate,
                   intermediate: x509.Certificate, *extra: str) -> subprocess.CompletedProcess:
    """`openssl cms -verify` as docs/signing.md shows it (OpenSSL 3.0 has no -untrusted:
    extra certificates go in -certfile)."""
    (tmp / "sig.p7s").write_bytes(p7s)
    (tmp / "data.bin").write_bytes(data)
    (tmp / "root.pem").write_bytes(pem(root))
    (tmp / "inter.pem").write_bytes(pem(intermediate))
    return openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp / "sig.p7s"),
                   "-content", str(tmp / "data.bin"), "-CAfile", str(tmp / "root.pem"),
                   "-certfile", str(tmp / "inter.pem"), "-purpose", "any",
                   "-out", str(tmp / "out.bin"), *extra)


def openssl_sign(tmp: Path, creds, data: bytes, *extra: str) -> bytes:
    (tmp / "data.bin").write_bytes(data)
    (tmp / "signer.pem").write_bytes(pem(creds.sign_cert))
    (tmp / "inter.pem").write_bytes(pem(creds.chain[0]))
    (tmp / "key.pem").write_bytes(creds.sign_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    done = openssl("cms", "-sign", "-binary", "-md", "sha256", "-outform", "DER",
                   "-signer", str(tmp / "signer.pem"), "-inkey", str(tmp / "key.pem"),
                   "-certfile", str(tmp / "inter.pem"), "-in", str(tmp / "data.bin"),
                   "-out", str(tmp / "sig.p7s"), *extra)
    assert done.returncode == 0, done.stderr
    return (tmp / "sig.p7s").read_bytes()


def resign(p7s: bytes, key, attributes: List[dict] = None, signature: bytes = None) -> bytes:
    """Rebuild a CMS with other signed attributes (signed again with ``key``) or signature."""
    info = cms.ContentInfo.load(p7s)
    signer_info = info["content"]["signer_infos"][0]
    if attributes is not None:
        attrs = cms.CMSAttributes(attributes)
        signer_info["signed_attrs"] = attrs
        signature = key.sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    signer_info["signature"] = signature
    return info.dump(force=True)


def attributes_of(p7s: bytes) -> dict:
    info = cms.ContentInfo.load(p7s)
    return {a["type"].native: a for a in info["content"]["signer_infos"][0]["signed_attrs"]}


# ---------------------------------------------------------------- raw PKCS#1 v1.5
@pytest.mark.parametrize("hash_name", ["sha256", "sha1"])
def test_card_pkcs1_signature_verifies(cps_card_factory, hash_name):
    emu = cps_card_factory("cps3-medecin")
    with signing_card(emu) as card:
        signature = sign_pkcs1(card, DATA, hash=hash_name)
        cert = card.certificate(KeyRole.SIGN)
    assert len(signature) == 256
    verify_pkcs1(cert, signature, DATA, hash=hash_name)
    verify_pkcs1(cert.public_bytes(serialization.Encoding.DER), signature, DATA, hash=hash_name)
    with pytest.raises(SignatureInvalid) as info:
        verify_pkcs1(cert, signature, DATA + b"x", hash=hash_name)
    assert info.value.reason == "signature" and "810100123453" in info.value.subject
    assert isinstance(info.value, errors.CpsError) and not isinstance(info.value, ValueError)


def test_pkcs1_signature_with_another_certificate_fails(cps_card_factory, medecin):
    with signing_card(cps_card_factory("cps3-medecin")) as card:
        signature = sign_pkcs1(card, DATA)
    with pytest.raises(SignatureInvalid):
        verify_pkcs1(medecin.auth_cert, signature, DATA)


def test_signing_needs_the_pin(cps_card_factory):
    emu = cps_card_factory("cps3-medecin")
    with cps.open_card(connection=emu.connection()) as card:
        with pytest.raises(errors.SecurityStatusNotSatisfied):
            sign_cms(card, DATA)


# ---------------------------------------------------------------- what we produce
def test_cms_structure_is_cades_bes(medecin):
    when = dt.datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=dt.timezone.utc)
    p7s = sign_cms(SoftwareSigner(medecin.sign_key, medecin.sign_cert), DATA,
                   chain=[medecin.chain[0]], signing_time=when)
    info = cms.ContentInfo.load(p7s, strict=True)
    assert info.dump(force=True) == p7s  # DER: re-encoding changes nothing (SET OFs sorted)
    signed = info["content"]
    assert info["content_type"].native == "signed_data" and signed["version"].native == "v1"
    assert signed["encap_content_info"]["content_type"].native == "data"
    assert signed["encap_content_info"]["content"].native is None  # detached
    digest_alg = signed["digest_algorithms"][0]
    assert digest_alg["algorithm"].native == "sha256"
    assert isinstance(digest_alg["parameters"], core.Void)  # RFC 5754: absent
    certs = [c.chosen.dump() for c in signed["certificates"]]
    ders = [c.public_bytes(serialization.Encoding.DER) for c in (medecin.sign_cert,
                                                                 medecin.chain[0])]
    assert sorted(certs) == sorted(ders)  # signer + intermediate, no root

    (signer_info,) = signed["signer_infos"]
    assert signer_info["version"].native == "v1"
    sid = signer_info["sid"]
    assert sid.name == "issuer_and_serial_number"
    assert sid.chosen["serial_number"].native == medecin.sign_cert.serial_number
    assert signer_info["signature_algorithm"]["algorithm"].native == "sha256_rsa"
    assert signer_info["signature_algorithm"]["parameters"].native is None  # NULL

    attrs = {a["type"].native: a["values"] for a in signer_info["signed_attrs"]}
    assert set(attrs) == {"content_type", "signing_time", "message_digest",
                          "signing_certificate_v2"}
    assert attrs["content_type"][0].native == "data"
    assert attrs["signing_time"][0].name == "utc_time"
    assert attrs["signing_time"][0].native == when.replace(microsecond=0)
    assert attrs["message_digest"][0].native == hashlib.sha256(DATA).digest()
    (ess,) = attrs["signing_certificate_v2"][0]["certs"]
    assert ess["cert_hash"].native == hashlib.sha256(ders[0]).digest()
    assert b"\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01" not in ess.dump()  # DEFAULT: omitted
    assert ess["issuer_serial"]["serial_number"].native == medecin.sign_cert.serial_number
    issuer = asn1_x509.Certificate.load(ders[0]).issuer
    assert ess["issuer_serial"]["issuer"][0].chosen == issuer

    # the signature is PKCS#1 v1.5 over the DER of the signed attributes as a SET OF
    set_of = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    medecin.sign_cert.public_key().verify(signer_info["signature"].native, set_of,
                                          padding.PKCS1v15(), hashes.SHA256())

    result = verify_cms(p7s, DATA)
    assert result.signing_time == when.replace(microsecond=0)
    assert result.signer == medecin.sign_cert and result.certificates == (medecin.chain[0],)
    assert result.digest_algorithm == "sha256" and result.signing_certificate_bound
    assert result.validation is None
    assert result.practitioner.idnat == "810100123453" and not result.practitioner.validated


def test_default_chain_embeds_no_unknown_ca(medecin):
    # A TEST card is not issued by a bundled IGC-Santé CA: only its own certificate goes in.
    p7s = sign_cms(SoftwareSigner(medecin.sign_key, medecin.sign_cert), DATA)
    assert verify_cms(p7s, DATA).certificates == ()


def test_default_chain_embeds_the_bundled_issuer(medecin, cps_pki, monkeypatch):
    # What a production card gets from the bundled IGC-Santé intermediates, shown
    # with the TEST hierarchy standing in for the bundle.
    import cps.sign as sign_module

    store = cps_pki.trust_store()
    monkeypatch.setattr(sign_module, "_igc_sante_store", lambda: store)
    p7s = sign_cms(SoftwareSigner(medecin.sign_key, medecin.sign_cert), DATA)
    assert verify_cms(p7s, DATA).certificates == (medecin.chain[0],)  # the root stays out


def test_attached_cms(medecin):
    p7s = sign_cms(SoftwareSigner(medecin.sign_key, medecin.sign_cert), DATA, detached=False)
    assert verify_cms(p7s, None).signer == medecin.sign_cert
    assert verify_cms(p7s, DATA).signer == medecin.sign_cert
    with pytest.raises(SignatureInvalid) as info:
        verify_cms(p7s, b"another document")
    assert info.value.reason == "content-mismatch"


def test_pem_armoured_cms_is_accepted(software_cms):
    import base64

    body = base64.encodebytes(software_cms)
    assert verify_cms(b"-----BEGIN CMS-----\n" + body + b"-----END CMS-----\n", DATA)


def test_sha384_with_a_software_key(medecin):
    p7s = sign_cms(SoftwareSigner(medecin.sign_key, medecin.sign_cert), DATA, hash="sha384")
    assert verify_cms(p7s, DATA).digest_algorithm == "sha384"


def test_sha1_and_naive_times_are_refused(medecin):
    signer = SoftwareSigner(medecin.sign_key, medecin.sign_cert)
    with pytest.raises(errors.NotSupported):
        sign_cms(signer, DATA, hash="sha1")
    with pytest.raises(ValueError):
        sign_cms(signer, DATA, signing_time=dt.datetime(2026, 1, 1))


def test_software_signer_checks_its_key(medecin):
    with pytest.raises(ValueError):
        SoftwareSigner(medecin.auth_key, medecin.sign_cert)
    assert "key" not in repr(SoftwareSigner(medecin.sign_key, medecin.sign_cert)).lower()


def test_a_signer_whose_key_does_not_match_is_caught_when_signing(medecin):
    class Faulty:  # a card answering with another key than its certificate's
        def sign(self, data, hash="sha256"):
            return medecin.auth_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

        def certificate(self, role):
            return medecin.sign_cert

    with pytest.raises(SignatureInvalid):
        sign_cms(Faulty(), DATA)


# ---------------------------------------------------------------- emulated card + openssl
@needs_openssl
def test_card_cms_is_accepted_by_openssl(cps_card_factory, tmp_path):
    emu = cps_card_factory("cps3-medecin")
    with signing_card(emu) as card:
        p7s = sign_cms(card, DATA, chain=[emu.credentials.chain[0]])
    root, intermediate = emu.credentials.chain[1], emu.credentials.chain[0]
    done = openssl_verify(tmp_path, p7s, DATA, root, intermediate)
    assert done.returncode == 0 and "Verification successful" in done.stderr, done.stderr
    # -cades makes openssl check our signing-certificate-v2 too
    done = openssl_verify(tmp_path, p7s, DATA, root, intermediate, "-cades")
    assert done.returncode == 0 and "CAdES Verification successful" in done.stderr, done.stderr
    # openssl really checks: another document fails
    done = openssl_verify(tmp_path, p7s, DATA + b"!", root, intermediate)
    assert done.returncode != 0 and "verification failure" in done.stderr


@needs_openssl
def test_openssl_crl_check_agrees_on_revocation(cps_pki, cps_card_factory, tmp_path):
    crl = x509.load_der_x509_crl(cps_pki.crl("FORT PERSONNES"))
    for profile, ok in (("cps3-medecin", True), ("cps3-revoked", False)):
        emu = cps_card_factory(profile)
        with signing_card(emu) as card:
            p7s = sign_cms(card, DATA, chain=[emu.credentials.chain[0]])
        (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        root = tmp_path / "root+crl.pem"
        root.write_bytes(pem(emu.credentials.chain[1]) + (tmp_path / "crl.pem").read_bytes())
        (tmp_path / "sig.p7s").write_bytes(p7s)
        (tmp_path / "data.bin").write_bytes(DATA)
        done = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in",
                       str(tmp_path / "sig.p7s"), "-content", str(tmp_path / "data.bin"),
                       "-CAfile", str(root), "-purpose", "any", "-crl_check",
                       "-out", str(tmp_path / "out.bin"))
        assert (done.returncode == 0) is ok, done.stderr
        assert ok or "certificate revoked" in done.stderr


def test_card_cms_verifies_with_the_validator(cps_card_factory, validator):
    emu = cps_card_factory("cps3-medecin")
    with signing_card(emu) as card:
        p7s = sign_cms(card, DATA, chain=[emu.credentials.chain[0]])
    result = verify_cms(p7s, DATA, validator)
    assert isinstance(result, CmsVerification)
    assert result.validation.path == [emu.credentials.sign_cert, *emu.credentials.chain]
    assert result.validation.purpose is KeyRole.SIGN
    # judged now (the validator's clock), not at the signingTime the signer wrote
    assert result.validation.validated_at == result.validation_time
    assert result.validation_time_source == "now"
    assert result.signing_time <= result.validation_time
    assert [s.status for s in result.validation.revocation][:2] == ["good", "good"]
    assert result.practitioner.validated and result.practitioner.national_id == "10100123453"


@needs_openssl
@pytest.mark.parametrize("cades", [False, True])
def test_openssl_made_cms_verifies_with_cps(cps_pki, validator, medecin, tmp_path, cades):
    p7s = openssl_sign(tmp_path, medecin, DATA, *(["-cades"] if cades else []))
    result = verify_cms(p7s, DATA, validator)
    assert result.signer == medecin.sign_cert
    assert result.signing_certificate_bound is cades  # openssl adds ESS v2 only with -cades
    assert result.validation.leaf == medecin.sign_cert
    assert result.validation.anchor == medecin.chain[1]
    assert result.practitioner.validated
    with pytest.raises(DigestMismatch):
        verify_cms(p7s, DATA[:-1], validator)


@needs_openssl
def test_openssl_attached_cms(validator, medecin, tmp_path):
    p7s = openssl_sign(tmp_path, medecin, DATA, "-nodetach")
    assert verify_cms(p7s, None, validator).signer == medecin.sign_cert


@needs_openssl
def test_openssl_weak_and_attribute_less_cms_are_refused(medecin, tmp_path):
    with pytest.raises(CmsError) as info:
        verify_cms(openssl_sign(tmp_path, medecin, DATA, "-md", "sha1"), DATA)
    assert info.value.reason == "weak-algorithm"
    with pytest.raises(CmsError) as info:
        verify_cms(openssl_sign(tmp_path, medecin, DATA, "-noattr"), DATA)
    assert info.value.reason == "unsupported"


# ---------------------------------------------------------------- negative cases
def test_tampered_data_is_a_digest_mismatch(software_cms):
    with pytest.raises(DigestMismatch) as info:
        verify_cms(software_cms, DATA.replace(b"1 g", b"9 g"))
    err = info.value
    assert err.reason == "message-digest" and err.algorithm == "sha256"
    assert err.expected == hashlib.sha256(DATA).digest() != err.actual


def test_tampered_signature_is_invalid(software_cms, medecin):
    info = cms.ContentInfo.load(software_cms)
    signature = bytearray(info["content"]["signer_infos"][0]["signature"].native)
    signature[100] ^= 0x01
    with pytest.raises(SignatureInvalid) as caught:
        verify_cms(resign(software_cms, None, signature=bytes(signature)), DATA)
    assert caught.value.reason == "signature" and type(caught.value) is SignatureInvalid


def test_signing_certificate_v2_of_another_certificate(software_cms, medecin):
    other = medecin.auth_cert.public_bytes(serialization.Encoding.DER)
    attrs = [a for name, a in attributes_of(software_cms).items()
             if name != "signing_certificate_v2"]
    attrs.append({"type": "signing_certificate_v2", "values": [{"certs": [
        {"cert_hash": hashlib.sha256(other).digest()}]}]})
    forged = resign(software_cms, medecin.sign_key, attributes=attrs)
    with pytest.raises(SigningCertificateMismatch) as info:
        verify_cms(forged, DATA)
    assert info.value.expected == hashlib.sha256(other).digest()
    # ... and an issuerSerial naming another certificate, with the right hash
    own = medecin.sign_cert.public_bytes(serialization.Encoding.DER)
    attrs[-1] = {"type": "signing_certificate_v2", "values": [{"certs": [{
        "cert_hash": hashlib.sha256(own).digest(),
        "issuer_serial": {"issuer": [asn1_x509.GeneralName(
            {"directory_name": asn1_x509.Certificate.load(own).issuer})],
            "serial_number": medecin.auth_cert.serial_number}}]}]}
    with pytest.raises(SigningCertificateMismatch):
        verify_cms(resign(software_cms, medecin.sign_key, attributes=attrs), DATA)


def test_revoked_signer(cps_card_factory, validator):
    emu = cps_card_factory("cps3-revoked")
    with signing_card(emu) as card:
        p7s = sign_cms(card, DATA, chain=[emu.credentials.chain[0]])
    assert verify_cms(p7s, DATA).signer == emu.credentials.sign_cert  # the mathematics hold
    with pytest.raises(errors.CertificateRevoked) as info:
        verify_cms(p7s, DATA, validator)
    assert info.value.revocation_reason and info.value.position == 0


def test_authentication_certificate_cannot_sign(medecin, validator):
    p7s = sign_cms(SoftwareSigner(medecin.auth_key, medecin.auth_cert), DATA,
                   chain=[medecin.chain[0]])
    assert verify_cms(p7s, DATA).signer == medecin.auth_cert
    with pytest.raises(errors.CertificatePurposeError) as info:
        verify_cms(p7s, DATA, validator)
    assert info.value.purpose in ("sign", KeyRole.SIGN)


def test_validation_time_can_be_forced(software_cms, cps_pki, medecin):
    # no CRL covers that future time: revocation "off" isolates the date check
    validator = Validator(cps_pki.trust_store(intermediates=False), revocation="off")
    later = medecin.sign_cert.not_valid_after_utc + dt.timedelta(days=1)
    with pytest.raises(errors.CertificateExpired) as info:
        verify_cms(software_cms, DATA, validator, at=later)
    assert info.value.position == 0


# ---------------------------------------------------------------- which time (issue 13, item 2)
def backdated(creds, signing_time: dt.datetime) -> bytes:
    """A CMS by ``creds``' signature key claiming ``signing_time``."""
    return sign_cms(SoftwareSigner(creds.sign_key, creds.sign_cert), DATA,
                    chain=[creds.chain[0]], signing_time=signing_time)


def test_expired_card_cannot_backdate(cps_pki, validator):
    """An expired card signs today with a signingTime inside its validity: the
    signature verifies, the certificate does not (judged now, not at the claim)."""
    creds = cps_pki.issue_card("cps3-expired")
    claimed = creds.sign_cert.not_valid_after_utc - dt.timedelta(days=30)
    p7s = backdated(creds, claimed)
    assert verify_cms(p7s, DATA).signing_time == claimed  # the mathematics hold
    with pytest.raises(errors.CertificateExpired) as info:
        verify_cms(p7s, DATA, validator)
    assert info.value.position == 0
    # the caller who has a reason to believe the date says so
    result = verify_cms(p7s, DATA, validator, at=claimed)
    assert result.validation_time == result.validation.validated_at == claimed
    assert result.validation_time_source == "caller" and result.practitioner.validated


def test_superseded_card_cannot_backdate(cps_pki, validator):
    """A card revoked as superseded (not a key compromise) signs with a
    signingTime before its revocation: refused by default; accepted only with
    an explicit ``at`` before the revocation."""
    creds = cps_pki.issue_card("cps3-revoked-recent")
    revoked = cps_pki.reference_time - dt.timedelta(days=0.5)
    claimed = revoked - dt.timedelta(days=30)
    p7s = backdated(creds, claimed)
    with pytest.raises(errors.CertificateRevoked) as info:
        verify_cms(p7s, DATA, validator)
    assert info.value.revocation_reason == "superseded" and info.value.position == 0
    result = verify_cms(p7s, DATA, validator, at=claimed)
    assert result.signing_time == result.validation_time == claimed
    assert result.validation_time_source == "caller"
    with pytest.raises(errors.CertificateRevoked):  # at= after the revocation
        verify_cms(p7s, DATA, validator, at=revoked + dt.timedelta(seconds=1))


def test_key_compromise_is_retroactive_even_with_at(cps_pki, validator):
    creds = cps_pki.issue_card("cps3-revoked")  # keyCompromise, 30 days before reference
    claimed = cps_pki.reference_time - dt.timedelta(days=60)
    with pytest.raises(errors.CertificateRevoked):
        verify_cms(backdated(creds, claimed), DATA, validator, at=claimed)


def test_now_is_the_validators_clock(cps_pki):
    """The default validation time is ``validator.clock()``, recorded in the result."""
    creds = cps_pki.issue_card("cps3-expired")
    then = creds.sign_cert.not_valid_after_utc - dt.timedelta(days=10)
    p7s = backdated(creds, then - dt.timedelta(days=1))
    store = cps_pki.trust_store(intermediates=False)
    result = verify_cms(p7s, DATA, Validator(store, revocation="off", clock=lambda: then))
    assert result.validation_time == result.validation.validated_at == then
    assert result.validation_time_source == "now"
    later = then + dt.timedelta(days=20)
    with pytest.raises(errors.CertificateExpired):
        verify_cms(p7s, DATA, Validator(store, revocation="off", clock=lambda: later))


def test_now_without_a_clock_is_the_system_time(software_cms):
    """A validator without ``clock`` (any object with ``validate``): the system time."""
    seen = []

    class Plain:
        def validate(self, cert, intermediates=(), at=None, purpose=None):
            seen.append(at)
            return "validated"

    before = dt.datetime.now(dt.timezone.utc)
    result = verify_cms(software_cms, DATA, Plain())
    assert seen == [result.validation_time] and result.validation == "validated"
    assert before <= result.validation_time <= dt.datetime.now(dt.timezone.utc)
    assert result.validation_time_source == "now"


def test_no_validator_no_validation_time(software_cms):
    result = verify_cms(software_cms, DATA)
    assert result.validation is None and result.validation_time is None
    assert result.validation_time_source is None and result.signing_time is not None


@pytest.mark.parametrize("blob", [b"", b"\x00", b"garbage" * 10, b"\x30\x80", b"\x30\x03\x02\x01",
                                  b"-----BEGIN CMS-----\n!!!\n-----END CMS-----\n"])
def test_garbage_is_a_cms_error(blob):
    with pytest.raises(CmsError):
        verify_cms(blob, DATA)


def test_truncated_cms_is_a_cms_error(software_cms):
    for cut in (1, 10, len(software_cms) // 2, len(software_cms) - 1):
        with pytest.raises(CmsError):
            verify_cms(software_cms[:cut], DATA)
    with pytest.raises(CmsError):
        verify_cms(software_cms + b"\x00", DATA)  # trailing data


def test_oversized_cms_is_refused_before_parsing():
    with pytest.raises(CmsError) as info:
        verify_cms(b"\x30" + b"\x00" * MAX_CMS_SIZE, DATA)
    assert info.value.reason == "too-large"


def test_detached_cms_without_data(software_cms):
    with pytest.raises(CmsError) as info:
        verify_cms(software_cms, None)
    assert info.value.reason == "no-content"


def test_errors_are_cps_errors():
    for cls in (SignatureInvalid, DigestMismatch, SigningCertificateMismatch, CmsError):
        assert issubclass(cls, SignatureError) and issubclass(cls, errors.CpsError)
        assert not issubclass(cls, ValueError)


# ---------------------------------------------------------------- fuzzing
@pytest.mark.filterwarnings("ignore")  # cryptography warns about the mutated certificates
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutated_cms_raises_only_cps_errors(software_cms, validator, data):
    blob = bytearray(software_cms)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        position = data.draw(st.integers(0, len(blob) - 1), label="position")
        kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if kind == "flip":
            blob[position] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set":
            blob[position] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del blob[position:]
            if not blob:
                break
        elif kind == "insert":
            blob[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del blob[position:position + data.draw(st.integers(1, 16))]
            if not blob:
                break
    try:
        verify_cms(bytes(blob), DATA, validator if data.draw(st.booleans()) else None)
    except errors.CpsError:
        pass
