"""CAdES-T: sign_cms(timestamp=...) and verify_cms judging the signer at the timestamp's time."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cps
from cps import errors
from cps.emulator.pki import TestPKI
from cps.sign import CmsVerification, SoftwareSigner, sign_cms, verify_cms
from cps.testing.tsa import TsaServer
from cps.timestamp import TimestampError, TimestampInfo, request_timestamp, verify_timestamp
from cps.trust import Validator

DATA = b"%PDF-1.7\nordonnance securisee: paracetamol 1 g\n" * 50
TIMESTAMP_OID = "1.2.840.113549.1.9.16.2.14"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


@pytest.fixture(scope="module")
def validator(cps_pki) -> Validator:
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    return Validator(cps_pki.trust_store(intermediates=False),
                     crls=cps_pki.crls(at, deltas=True), revocation="hard-fail")


def signer(creds) -> SoftwareSigner:
    return SoftwareSigner(creds.sign_key, creds.sign_cert)


def cades_t(pki: TestPKI, creds, tsa_url: str, **options) -> bytes:
    return sign_cms(signer(creds), DATA, chain=[creds.chain[0]], timestamp=tsa_url, **options)


def later_validator(pki: TestPKI, when: dt.datetime) -> Validator:
    """Verification at ``when``: CRLs issued then, clock set then."""
    return Validator(pki.trust_store(intermediates=False), crls=pki.crls(when, deltas=True),
                     revocation="hard-fail", clock=lambda: when)


def unsigned_tokens(p7s: bytes) -> list:
    signer_info = cms.ContentInfo.load(p7s)["content"]["signer_infos"][0]
    return [value.dump() for attr in signer_info["unsigned_attrs"]
            if attr["type"].dotted == TIMESTAMP_OID for value in attr["values"]]


def replace_tokens(p7s: bytes, tokens: list) -> bytes:
    """The CMS with these signature timestamps instead (rebuilt from its parsed parts,
    which keep their encodings: asn1crypto's dump(force=True) takes seconds)."""
    signed_data = cms.ContentInfo.load(p7s)["content"]
    signer_info = signed_data["signer_infos"][0]
    fields = ("version", "sid", "digest_algorithm", "signed_attrs", "signature_algorithm",
              "signature")
    new_signer = cms.SignerInfo({
        **{name: signer_info[name] for name in fields},
        "unsigned_attrs": cms.CMSAttributes([{
            "type": "signature_time_stamp_token",
            "values": [cms.ContentInfo.load(t) for t in tokens]}])})
    new_data = cms.SignedData({
        **{name: signed_data[name] for name in ("version", "digest_algorithms",
                                                 "encap_content_info", "certificates")},
        "signer_infos": [new_signer]})
    return cms.ContentInfo({"content_type": "signed_data", "content": new_data}).dump()


# ---------------------------------------------------------------- structure and round trip
def test_cades_t_structure(cps_pki, cps_tsa):
    creds = cps_pki.issue_card("cps3-medecin")
    p7s = cades_t(cps_pki, creds, cps_tsa.url)
    signer_info = cms.ContentInfo.load(p7s)["content"]["signer_infos"][0]
    (token,) = unsigned_tokens(p7s)
    # RFC 3161 appendix A: the imprint is the hash of the signature value
    signature = signer_info["signature"].native
    info = verify_timestamp(token, hashlib.sha256(signature).digest())
    assert info.tsa_certificate == cps_tsa.certificate
    # signed attributes unchanged: still CAdES-BES underneath
    signed = {a["type"].native for a in signer_info["signed_attrs"]}
    assert signed == {"content_type", "signing_time", "message_digest",
                      "signing_certificate_v2"}
    assert len(cps_tsa.requests) == 1


def test_emulated_card_cades_t_verifies_at_the_timestamp(cps_card_factory, cps_tsa, validator):
    emu = cps_card_factory("cps3-medecin")
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        p7s = sign_cms(card, DATA, chain=[emu.credentials.chain[0]], timestamp=cps_tsa.url)
    result = verify_cms(p7s, DATA, validator)
    assert isinstance(result, CmsVerification) and isinstance(result.timestamp, TimestampInfo)
    assert result.validation_time_source == "timestamp"
    assert result.validation_time == result.timestamp.latest == result.validation.validated_at
    assert result.timestamp.gen_time <= result.validation_time
    assert result.timestamp.validation is not None  # the TSA was judged too
    assert result.practitioner.validated


def test_without_validator_the_timestamp_is_still_verified(cps_pki, cps_tsa):
    creds = cps_pki.issue_card("cps3-medecin")
    result = verify_cms(cades_t(cps_pki, creds, cps_tsa.url), DATA)
    assert result.timestamp is not None and result.timestamp.validation is None
    assert result.validation is None and result.validation_time_source is None


def test_bes_has_no_timestamp(cps_pki, validator):
    creds = cps_pki.issue_card("cps3-medecin")
    result = verify_cms(sign_cms(signer(creds), DATA, chain=[creds.chain[0]]), DATA, validator)
    assert result.timestamp is None and result.validation_time_source == "now"


def test_explicit_at_wins(cps_pki, cps_tsa, validator):
    creds = cps_pki.issue_card("cps3-medecin")
    p7s = cades_t(cps_pki, creds, cps_tsa.url)
    at = cps_pki.reference_time + dt.timedelta(days=2)
    result = verify_cms(p7s, DATA, validator, at=at)
    assert result.validation_time == at and result.validation_time_source == "caller"
    assert result.timestamp is not None


def test_callable_timestamp_source(cps_pki, cps_tsa, validator):
    creds = cps_pki.issue_card("cps3-medecin")
    seen = []

    def tsa(digest: bytes) -> bytes:
        seen.append(digest)
        return request_timestamp(cps_tsa.url, digest, hash="sha384")

    p7s = sign_cms(signer(creds), DATA, chain=[creds.chain[0]], hash="sha384", timestamp=tsa)
    assert len(seen[0]) == 48
    result = verify_cms(p7s, DATA, validator)
    assert result.timestamp.hash_algorithm == "sha384"
    assert result.timestamp.message_imprint == seen[0]


def test_a_callable_returning_a_bad_token_fails_signing(cps_pki, cps_tsa):
    creds = cps_pki.issue_card("cps3-medecin")
    other = request_timestamp(cps_tsa.url, hashlib.sha256(b"something else").digest())
    with pytest.raises(TimestampError) as exc:
        sign_cms(signer(creds), DATA, timestamp=lambda digest: other)
    assert exc.value.reason == "imprint-mismatch"
    with pytest.raises(TimestampError) as exc:
        sign_cms(signer(creds), DATA, timestamp=lambda digest: b"junk")
    assert exc.value.reason == "malformed"
    with pytest.raises(TypeError):
        sign_cms(signer(creds), DATA, timestamp=lambda digest: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign_cms(signer(creds), DATA, timestamp=42)  # type: ignore[arg-type]


def test_tsa_down_means_no_signature(cps_pki, cps_tsa):
    creds = cps_pki.issue_card("cps3-medecin")
    cps_tsa.faults.reject = "system_failure"
    with pytest.raises(TimestampError) as exc:
        cades_t(cps_pki, creds, cps_tsa.url)
    assert exc.value.reason == "rejected"
    cps_tsa.faults.reset()
    cps_tsa.faults.down = True
    with pytest.raises(TimestampError) as exc:
        cades_t(cps_pki, creds, cps_tsa.url)
    assert exc.value.reason == "unreachable"


# ---------------------------------------------------------------- the point: which time
def test_timestamped_while_valid_verifies_after_expiry(cps_pki, cps_tsa):
    """Signed and timestamped while the card was valid; verified after it expired."""
    creds = cps_pki.issue_card("cps3-medecin")
    signed_at = creds.sign_cert.not_valid_before_utc + dt.timedelta(days=100)
    cps_tsa.clock = lambda: signed_at
    p7s = cades_t(cps_pki, creds, cps_tsa.url, signing_time=signed_at)
    bes = sign_cms(signer(creds), DATA, chain=[creds.chain[0]], signing_time=signed_at)
    after = creds.sign_cert.not_valid_after_utc + dt.timedelta(days=30)
    validator = later_validator(cps_pki, after)
    result = verify_cms(p7s, DATA, validator)
    assert result.validation_time_source == "timestamp"
    assert result.timestamp.gen_time == signed_at
    assert result.validation_time == signed_at + dt.timedelta(seconds=1)  # + accuracy
    with pytest.raises(errors.CertificateExpired):  # the same signature without proof of time
        verify_cms(bes, DATA, validator)
    with pytest.raises(errors.CertificateExpired):  # a caller's at= still wins
        verify_cms(p7s, DATA, validator, at=after)


def test_timestamp_after_expiry_does_not_help(cps_pki, cps_tsa, validator):
    """An expired card's signature timestamped today: judged today, refused."""
    creds = cps_pki.issue_card("cps3-expired")
    with pytest.raises(errors.CertificateExpired):
        verify_cms(cades_t(cps_pki, creds, cps_tsa.url), DATA, validator)


def test_superseded_after_the_timestamp_verifies(cps_pki, cps_tsa, validator):
    """cps3-revoked-recent is revoked (superseded) half a day before the reference
    time: a signature timestamped before that still verifies; a BES does not."""
    creds = cps_pki.issue_card("cps3-revoked-recent")
    revoked = cps_pki.reference_time - dt.timedelta(days=0.5)
    cps_tsa.clock = lambda: revoked - dt.timedelta(days=20)
    p7s = cades_t(cps_pki, creds, cps_tsa.url)
    result = verify_cms(p7s, DATA, validator)
    assert result.validation_time_source == "timestamp"
    assert result.validation_time < revoked
    with pytest.raises(errors.CertificateRevoked):
        verify_cms(sign_cms(signer(creds), DATA, chain=[creds.chain[0]]), DATA, validator)
    cps_tsa.clock = lambda: revoked + dt.timedelta(hours=1)  # timestamped after the revocation
    with pytest.raises(errors.CertificateRevoked) as exc:
        verify_cms(cades_t(cps_pki, creds, cps_tsa.url), DATA, validator)
    assert exc.value.revocation_reason == "superseded"


def test_key_compromise_refuses_even_with_an_earlier_timestamp(cps_pki, cps_tsa, validator):
    creds = cps_pki.issue_card("cps3-revoked")  # keyCompromise, 30 days before reference
    cps_tsa.clock = lambda: cps_pki.reference_time - dt.timedelta(days=60)
    p7s = cades_t(cps_pki, creds, cps_tsa.url)
    assert verify_cms(p7s, DATA).timestamp is not None  # the mathematics hold
    with pytest.raises(errors.CertificateRevoked) as exc:
        verify_cms(p7s, DATA, validator)
    assert exc.value.revocation_reason == "keyCompromise"


@pytest.fixture(scope="module")
def own_pki(tmp_path_factory) -> TestPKI:
    """A PKI of this module's own: these tests revoke certificates with TestPKI.revoke."""
    return TestPKI.generate(tmp_path_factory.mktemp("cades-t-pki"), seed=b"cades-t",
                            ca_key_bits=2048)


@pytest.fixture
def own_tsa(own_pki) -> Iterator[TsaServer]:
    with TsaServer(own_pki) as server:
        yield server


@pytest.mark.parametrize(("index", "reason", "verifies"), [
    (1, x509.ReasonFlags.superseded, True),
    (2, x509.ReasonFlags.affiliation_changed, True),
    (3, x509.ReasonFlags.cessation_of_operation, True),
    (4, x509.ReasonFlags.key_compromise, False),
])
def test_revoked_later_with_revoke(own_pki, own_tsa, index, reason, verifies):
    """TestPKI.revoke after the timestamp: only keyCompromise reaches back."""
    cert, key = own_pki.issue_leaf("FORT PERSONNES", index, role="sign")
    made = own_pki.reference_time + dt.timedelta(days=40)
    own_tsa.clock = lambda: made
    p7s = sign_cms(SoftwareSigner(key, cert), DATA,
                   chain=[own_pki.intermediates["FORT PERSONNES"]], timestamp=own_tsa.url)
    own_pki.revoke("FORT PERSONNES", cert.serial_number, made + dt.timedelta(days=5), reason)
    now = made + dt.timedelta(days=60)
    validator = later_validator(own_pki, now)
    if verifies:
        result = verify_cms(p7s, DATA, validator)
        assert result.validation_time_source == "timestamp"
        assert result.validation.revocation[0].status == "good"
    else:
        with pytest.raises(errors.CertificateRevoked):
            verify_cms(p7s, DATA, validator)
    with pytest.raises(errors.CertificateRevoked):  # judged now, it is revoked
        verify_cms(p7s, DATA, validator, at=now)


# ---------------------------------------------------------------- bad timestamps are errors
def test_imprint_of_another_signature(cps_pki, cps_tsa, validator):
    creds = cps_pki.issue_card("cps3-medecin")
    p7s = cades_t(cps_pki, creds, cps_tsa.url)
    other = cades_t(cps_pki, creds, cps_tsa.url, signing_time=cps_pki.reference_time)
    spliced = replace_tokens(p7s, unsigned_tokens(other))
    for v in (None, validator):
        with pytest.raises(TimestampError) as exc:
            verify_cms(spliced, DATA, v)
        assert exc.value.reason == "imprint-mismatch"


def test_corrupted_timestamp(cps_pki, cps_tsa):
    creds = cps_pki.issue_card("cps3-medecin")
    p7s = cades_t(cps_pki, creds, cps_tsa.url)
    (token,) = unsigned_tokens(p7s)
    broken = bytearray(token)
    broken[-3] ^= 0x40  # the TSA's signature value
    with pytest.raises(TimestampError) as exc:
        verify_cms(replace_tokens(p7s, [bytes(broken)]), DATA)
    assert exc.value.reason == "signature"
    with pytest.raises(TimestampError) as exc:
        verify_cms(replace_tokens(p7s, [token[:-40] + b"\x00" * 40]), DATA)
    assert exc.value.reason in ("signature", "malformed")


def test_untrusted_tsa(cps_pki, own_pki, own_tsa, validator):
    """A TSA outside the signer validator's roots is refused, unless a
    tsa_validator trusts it."""
    creds = cps_pki.issue_card("cps3-medecin")
    p7s = cades_t(cps_pki, creds, own_tsa.url)
    with pytest.raises(TimestampError) as exc:
        verify_cms(p7s, DATA, validator)
    assert exc.value.reason == "untrusted-tsa"
    result = verify_cms(p7s, DATA, validator, tsa_validator=own_pki.validator())
    assert result.validation_time_source == "timestamp"
    with pytest.raises(TimestampError):  # even when only the TSA is judged
        verify_cms(p7s, DATA, tsa_validator=validator)


def test_several_timestamps_all_verified_earliest_used(cps_pki, cps_tsa, validator):
    creds = cps_pki.issue_card("cps3-medecin")
    p7s = cades_t(cps_pki, creds, cps_tsa.url)
    signature = cms.ContentInfo.load(p7s)["content"]["signer_infos"][0]["signature"].native
    earlier = cps_pki.reference_time + dt.timedelta(days=1)
    cps_tsa.clock = lambda: earlier
    second = request_timestamp(cps_tsa.url, hashlib.sha256(signature).digest())
    both = replace_tokens(p7s, unsigned_tokens(p7s) + [second])
    result = verify_cms(both, DATA, validator)
    assert result.timestamp.gen_time == earlier
    not_a_token = sign_cms(signer(creds), DATA, detached=False)  # a SignedData, no TSTInfo
    junk = replace_tokens(p7s, unsigned_tokens(p7s) + [not_a_token])
    with pytest.raises(TimestampError):
        verify_cms(junk, DATA, validator)
    with pytest.raises(errors.CpsError):
        verify_cms(replace_tokens(p7s, unsigned_tokens(p7s) * 9), DATA)


def tsa_token(pki: TestPKI, digest: bytes, gen_time: dt.datetime, accuracy: dict) -> bytes:
    """A token over ``digest`` from the PKI's (trusted) TSA, with the TSTInfo accuracy given:
    a TSA that misbehaves, or a stolen TSA key."""
    cert, key = pki.issue_tsa()
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    tsa_cert = asn1_x509.Certificate.load(cert_der)
    tst_info = tsp.TSTInfo({
        "version": "v1", "policy": "1.2.3.4", "serial_number": 12345, "gen_time": gen_time,
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256", "parameters": None},
                            "hashed_message": digest},
        "accuracy": accuracy})
    attributes = cms.CMSAttributes([
        {"type": "content_type", "values": ["tst_info"]},
        {"type": "message_digest", "values": [hashlib.sha256(tst_info.dump()).digest()]},
        {"type": "signing_certificate_v2", "values": [{"certs": [{
            "cert_hash": hashlib.sha256(cert_der).digest()}]}]}])
    signed = cms.SignedData({
        "version": "v3",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256", "parameters": None})],
        "encap_content_info": {"content_type": "tst_info", "content": tst_info},
        "certificates": [tsa_cert, asn1_x509.Certificate.load(pki.intermediates[
            "STANDARD ORGANISATIONS"].public_bytes(serialization.Encoding.DER))],
        "signer_infos": [{
            "version": "v1",
            "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
                "issuer": tsa_cert.issuer, "serial_number": tsa_cert.serial_number}}),
            "digest_algorithm": {"algorithm": "sha256", "parameters": None},
            "signed_attrs": attributes,
            "signature_algorithm": {"algorithm": "sha256_rsa", "parameters": core.Null()},
            "signature": key.sign(attributes.dump(), padding.PKCS1v15(), hashes.SHA256())}]})
    return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


def test_a_huge_accuracy_is_a_timestamp_error_not_an_overflow(cps_pki, cps_tsa, validator):
    """BUG-64: a TSTInfo accuracy of 10^13 s made verify_cms raise an untyped OverflowError;
    one of two years moved the judged time (genTime + accuracy) two years ahead."""
    creds = cps_pki.issue_card("cps3-medecin")
    p7s = cades_t(cps_pki, creds, cps_tsa.url)
    signature = cms.ContentInfo.load(p7s)["content"]["signer_infos"][0]["signature"].native
    digest = hashlib.sha256(signature).digest()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=5)
    for accuracy in ({"seconds": 10**13}, {"seconds": 86400 * 365 * 2}):
        forged = replace_tokens(p7s, [tsa_token(cps_pki, digest, now, accuracy)])
        for v in (None, validator):
            with pytest.raises(TimestampError) as exc:
                verify_cms(forged, DATA, v)
            assert exc.value.reason == "accuracy"
        with pytest.raises(TimestampError):  # nor can such a token be put into a signature
            sign_cms(signer(creds), DATA, chain=[creds.chain[0]],
                     timestamp=lambda d, a=accuracy: tsa_token(cps_pki, d, now, a))
    fair = replace_tokens(p7s, [tsa_token(cps_pki, digest, now, {"seconds": 2})])
    result = verify_cms(fair, DATA, validator)
    assert result.validation_time == now + dt.timedelta(seconds=2)


# ---------------------------------------------------------------- openssl
def pem(*objects) -> bytes:
    return b"".join(o.public_bytes(serialization.Encoding.PEM) for o in objects)


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


@needs_openssl
def test_openssl_accepts_cades_t(cps_pki, cps_tsa, tmp_path):
    creds = cps_pki.issue_card("cps3-medecin")
    p7s = cades_t(cps_pki, creds, cps_tsa.url)
    (tmp_path / "sig.p7s").write_bytes(p7s)
    (tmp_path / "doc.bin").write_bytes(DATA)
    (tmp_path / "root.pem").write_bytes(pem(creds.chain[1], cps_pki.roots["STANDARD"]))
    (tmp_path / "inter.pem").write_bytes(pem(creds.chain[0],
                                             cps_pki.intermediates["STANDARD ORGANISATIONS"]))
    done = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", "sig.p7s",
                   "-content", "doc.bin", "-CAfile", "root.pem", "-certfile", "inter.pem",
                   "-purpose", "any", "-cades", "-out", "out.bin", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "CAdES Verification successful" in done.stderr
    # the embedded token passes `openssl ts -verify` over the signature value
    (token,) = unsigned_tokens(p7s)
    (tmp_path / "token.der").write_bytes(token)
    signature = cms.ContentInfo.load(p7s)["content"]["signer_infos"][0]["signature"].native
    (tmp_path / "signature.bin").write_bytes(signature)
    done = openssl("ts", "-verify", "-token_in", "-in", "token.der", "-data", "signature.bin",
                   "-CAfile", "root.pem", "-untrusted", "inter.pem", cwd=tmp_path)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    with contextlib.suppress(FileNotFoundError):
        (tmp_path / "out.bin").unlink()


# ---------------------------------------------------------------- fuzzing
@pytest.fixture(scope="module")
def sample_cades_t(cps_pki) -> bytes:
    creds = cps_pki.issue_card("cps3-medecin")
    with TsaServer(cps_pki) as tsa:
        return cades_t(cps_pki, creds, tsa.url)


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutated_cades_t_raises_only_cps_errors(sample_cades_t, validator, data):
    blob = bytearray(sample_cades_t)
    # mutate mostly the unsigned attribute (the timestamp token), at the end
    start = data.draw(st.sampled_from([0, len(blob) // 2, len(blob) - 3000]), label="region")
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        low = min(max(start, 0), len(blob) - 1)
        position = data.draw(st.integers(low, len(blob) - 1), label="position")
        kind = data.draw(st.sampled_from(["flip", "set", "cut"]))
        if kind == "flip":
            blob[position] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set":
            blob[position] = data.draw(st.integers(0, 255))
        else:
            del blob[position:]
            if not blob:
                break
    try:
        verify_cms(bytes(blob), DATA, validator)
    except errors.CpsError:
        pass
