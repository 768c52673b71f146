"""cps.timestamp: RFC 3161 client and verifier against the real HTTP test TSA and openssl."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

import pytest
from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cps import errors
from cps.emulator.pki import POLICY_TEST_TSA, TSA_POLICY_TEST, TestPKI, timestamp_rejection
from cps.sign import SignatureError
from cps.testing.pkiserver import PkiServer
from cps.testing.tsa import TsaServer
from cps.timestamp import (
    MAX_ACCURACY,
    MAX_RESPONSE_SIZE,
    TimestampError,
    TimestampInfo,
    TimeStampResp,
    request_timestamp,
    timestamp_token,
    verify_timestamp,
)
from cps.trust import Validator

DATA = b"compte rendu operatoire, 12 pages\n" * 100
DIGEST = hashlib.sha256(DATA).digest()

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


# ---------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def validator(cps_pki) -> Validator:
    """The TEST roots only (intermediates come from the token), CRLs, hard-fail."""
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    return Validator(cps_pki.trust_store(intermediates=False),
                     crls=cps_pki.crls(at, deltas=True), revocation="hard-fail")


@pytest.fixture(scope="module")
def own_pki(tmp_path_factory) -> TestPKI:
    """A PKI of this module's own, for tests that revoke (the session PKI stays clean)."""
    return TestPKI.generate(tmp_path_factory.mktemp("ts-pki"), seed=b"timestamp-tests",
                            ca_key_bits=2048)


def pem(*objects) -> bytes:
    return b"".join(o.public_bytes(serialization.Encoding.PEM) for o in objects)


def openssl(*args: str, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def post(url: str, body: bytes, ctype: str = "application/timestamp-query"):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": ctype})
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - test URL
        return answer.status, answer.headers.get("Content-Type"), answer.read()


def query(digest: bytes = DIGEST, *, nonce: Optional[int] = 42, cert_req: bool = True,
          algorithm: str = "sha256", policy: Optional[str] = None) -> bytes:
    fields: dict[str, Any] = {
        "version": "v1", "cert_req": cert_req,
        "message_imprint": {"hash_algorithm": {"algorithm": algorithm, "parameters": None},
                            "hashed_message": digest}}
    if nonce is not None:
        fields["nonce"] = nonce
    if policy is not None:
        fields["req_policy"] = policy
    return tsp.TimeStampReq(fields).dump()


def make_token(cert: x509.Certificate, key, *, digest: bytes = DIGEST, chain=(),
               tst: Optional[dict] = None, ess: str = "v2", ess_cert: Optional[x509.Certificate]
               = None, tamper_tst: bool = False, imprint_algorithm: str = "sha256") -> bytes:
    """A token signed by any certificate and key, built by hand (forgeries, odd TSAs)."""
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    asn1_cert = asn1_x509.Certificate.load(cert_der)
    fields: dict[str, Any] = {
        "version": "v1", "policy": "1.2.3.4",
        "message_imprint": {"hash_algorithm": {"algorithm": imprint_algorithm,
                                               "parameters": None},
                            "hashed_message": digest},
        "serial_number": 7, "gen_time": dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
    }
    fields.update(tst or {})
    info = tsp.TSTInfo(fields)
    content = info.dump()
    attrs = [{"type": "content_type", "values": ["tst_info"]},
             {"type": "message_digest", "values": [hashlib.sha256(content).digest()]}]
    named = (ess_cert or cert).public_bytes(serialization.Encoding.DER)
    if ess == "v2":
        attrs.append({"type": "signing_certificate_v2", "values": [{"certs": [{
            "cert_hash": hashlib.sha256(named).digest()}]}]})
    elif ess == "v1":
        attrs.append({"type": "signing_certificate", "values": [{"certs": [{
            "cert_hash": hashlib.sha1(named).digest()}]}]})  # noqa: S324 - ESS v1 is SHA-1
    attributes = cms.CMSAttributes(attrs)
    signature = key.sign(attributes.dump(), padding.PKCS1v15(), hashes.SHA256())
    if tamper_tst:
        fields["serial_number"] = 8
        info = tsp.TSTInfo(fields)
    signed = cms.SignedData({
        "version": "v3",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
        "encap_content_info": {"content_type": "tst_info", "content": info},
        "certificates": [asn1_cert] + [asn1_x509.Certificate.load(
            c.public_bytes(serialization.Encoding.DER)) for c in chain],
        "signer_infos": [{
            "version": "v1",
            "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
                "issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number}}),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": attributes,
            "signature_algorithm": {"algorithm": "sha256_rsa", "parameters": core.Null()},
            "signature": signature,
        }],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


def leaf_certificate(pki: TestPKI, *, eku, eku_critical: bool = True, usage=None,
                     ca_name: str = "STANDARD ORGANISATIONS"):
    """A certificate of ``pki`` with the given EKU (to forge odd TSA certificates)."""
    ca = pki.ca(ca_name)
    key = pki.issue_tsa(ca_name)[1]  # any RSA key will do
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder()
               .serial_number(x509.random_serial_number())
               .issuer_name(ca.cert.subject)
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "odd TSA")]))
               .public_key(key.public_key())
               .not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=30)))
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(ca.key, hashes.SHA256()), key


def key_usage(**bits) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment",
             "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
             "encipher_only", "decipher_only")
    return x509.KeyUsage(**{n: bits.get(n, False) for n in names})


# ---------------------------------------------------------------- the TSA and the client
def test_request_and_verify_over_http(cps_tsa, cps_pki, validator):
    token = request_timestamp(cps_tsa.url, DIGEST)
    info = verify_timestamp(token, DIGEST, validator=validator)
    tsa_cert, _ = cps_pki.issue_tsa()
    assert isinstance(info, TimestampInfo)
    assert info.tsa_certificate == tsa_cert and info.token == token
    assert info.policy == TSA_POLICY_TEST.dotted_string
    assert info.accuracy == dt.timedelta(seconds=1) and info.ordering is False
    assert info.hash_algorithm == "sha256" and info.message_imprint == DIGEST
    assert info.nonce is not None and info.nonce > 0
    assert info.tsa_name == tsa_cert.subject.rfc4514_string()
    assert info.gen_time.tzinfo is not None and info.gen_time.microsecond == 0
    assert abs(info.gen_time - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(seconds=30)
    assert info.validation is not None and len(info.validation.path_der) == 3
    assert info.validation_time == info.gen_time == info.validation.validated_at
    assert info.certificates == (cps_pki.intermediates["STANDARD ORGANISATIONS"],)
    assert info.earliest < info.gen_time < info.latest
    # the wire: RFC 3161 3.4 media types
    (record,) = cps_tsa.requests
    assert record.method == "POST" and record.status == 200
    assert record.headers["content-type"] == "application/timestamp-query"
    assert tsp.TimeStampReq.load(record.body)["message_imprint"]["hashed_message"].native \
        == DIGEST
    assert "token" not in repr(info)  # the bytes stay out of reprs


def test_serials_are_unique_and_nonces_random(cps_tsa):
    infos = [verify_timestamp(request_timestamp(cps_tsa.url, DIGEST), DIGEST) for _ in range(5)]
    assert len({i.serial_number for i in infos}) == 5
    assert len({i.nonce for i in infos}) == 5


@pytest.mark.parametrize("name", ["sha384", "sha512"])
def test_other_hashes(cps_tsa, name):
    digest = hashlib.new(name, DATA).digest()
    info = verify_timestamp(request_timestamp(cps_tsa.url, digest, hash=name), digest, hash=name)
    assert info.hash_algorithm == name
    assert verify_timestamp(info.token, data=DATA).hash_algorithm == name
    with pytest.raises(TimestampError) as exc:  # a sha256 digest is not what was stamped
        verify_timestamp(info.token, DIGEST)
    assert exc.value.reason == "imprint-mismatch"


def test_verify_with_the_data(cps_tsa):
    token = request_timestamp(cps_tsa.url, DIGEST)
    assert verify_timestamp(token, data=DATA).message_imprint == DIGEST
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(token, data=DATA + b"!")
    assert exc.value.reason == "imprint-mismatch"
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(token, data=DATA, hash="sha512")
    assert exc.value.reason == "imprint-mismatch"
    with pytest.raises(TypeError):
        verify_timestamp(token, DIGEST, data=DATA)
    with pytest.raises(TypeError):
        verify_timestamp(token)


def test_nonce_checked_when_given(cps_tsa):
    token = request_timestamp(cps_tsa.url, DIGEST)
    info = verify_timestamp(token, DIGEST)
    assert verify_timestamp(token, DIGEST, nonce=info.nonce).nonce == info.nonce
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(token, DIGEST, nonce=info.nonce + 1)
    assert exc.value.reason == "nonce-mismatch"


def test_without_nonce_and_without_certificate(cps_tsa):
    token = request_timestamp(cps_tsa.url, DIGEST, nonce=False, cert_req=False)
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(token, DIGEST)
    assert exc.value.reason == "no-tsa-certificate"
    info = verify_timestamp(token, DIGEST, certificates=[cps_tsa.certificate])
    assert info.nonce is None and info.certificates == ()


def test_pem_token_is_accepted(cps_tsa):
    token = request_timestamp(cps_tsa.url, DIGEST)
    armoured = (b"-----BEGIN CMS-----\n" + __import__("base64").encodebytes(token)
                + b"-----END CMS-----\n")
    assert verify_timestamp(armoured, DIGEST).token == token


def test_requested_policy(cps_tsa):
    token = request_timestamp(cps_tsa.url, DIGEST, policy=TSA_POLICY_TEST.dotted_string)
    assert verify_timestamp(token, DIGEST).policy == TSA_POLICY_TEST.dotted_string
    with pytest.raises(TimestampError) as exc:
        request_timestamp(cps_tsa.url, DIGEST, policy="1.2.3.4")
    assert exc.value.reason == "rejected" and exc.value.fail_info == ("unaccepted_policy",)


def test_injected_clock_makes_timestamps_in_the_past(cps_tsa, cps_pki, validator):
    past = cps_pki.reference_time + dt.timedelta(days=3, hours=5)
    cps_tsa.clock = lambda: past
    info = verify_timestamp(request_timestamp(cps_tsa.url, DIGEST), DIGEST, validator=validator)
    assert info.gen_time == past and info.validation.validated_at == past


def test_tsa_certificate_profile(cps_pki):
    cert, key = cps_pki.issue_tsa()
    assert cps_pki.issue_tsa() == (cert, key)  # issued once
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_encipherment
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier for p in policies] == [POLICY_TEST_TSA]
    for kind in (x509.CRLDistributionPoints, x509.FreshestCRL, x509.AuthorityInformationAccess,
                 x509.SubjectKeyIdentifier, x509.AuthorityKeyIdentifier):
        cert.extensions.get_extension_for_class(kind)
    assert cert.issuer == cps_pki.intermediates["STANDARD ORGANISATIONS"].subject
    assert key.key_size == 2048
    assert cert.not_valid_before_utc < cps_pki.reference_time < cert.not_valid_after_utc
    with pytest.raises(ValueError):
        cps_pki.issue_tsa("FORT")


def test_tsa_certificate_is_deterministic(cps_pki):
    again = TestPKI.generate(cps_pki.directory, seed=1)
    assert again.issue_tsa()[0].public_bytes(serialization.Encoding.DER) == \
        cps_pki.issue_tsa()[0].public_bytes(serialization.Encoding.DER)
    other = again.issue_tsa("FORT ORGANISATIONS")[0]
    assert other.issuer == cps_pki.intermediates["FORT ORGANISATIONS"].subject


def test_the_ca_knows_the_tsa_certificate(cps_pki):
    """OCSP answers good for it (the CA registered its serial)."""
    from cryptography.x509 import ocsp

    cert = cps_pki.issue_tsa()[0]
    issuer = cps_pki.intermediates["STANDARD ORGANISATIONS"]
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    answer = ocsp.load_der_ocsp_response(
        cps_pki.ocsp_response(request.public_bytes(serialization.Encoding.DER)))
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD


# ---------------------------------------------------------------- the test TSA's refusals
@pytest.mark.parametrize(("request_der", "fail_info"), [
    (b"garbage", "bad_data_format"),
    (query(algorithm="sha1", digest=hashlib.sha1(DATA).digest()), "bad_alg"),  # noqa: S324
    (query(digest=DIGEST[:20]), "bad_data_format"),
    (query(policy="1.2.3"), "unaccepted_policy"),
])
def test_timestamp_response_refusals(cps_pki, request_der, fail_info):
    with pytest.raises(TimestampError) as exc:
        timestamp_token(cps_pki.timestamp_response(request_der))
    assert exc.value.reason == "rejected" and exc.value.status == "rejection"
    assert exc.value.fail_info == (fail_info,)


def test_server_refuses_wrong_media_type_and_method(cps_tsa):
    with pytest.raises(urllib.error.HTTPError) as exc:
        post(cps_tsa.url, query(), ctype="application/octet-stream")
    assert exc.value.code == 415
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(cps_tsa.url, timeout=10)  # noqa: S310 - GET on the test TSA
    assert exc.value.code == 405
    status, ctype, body = post(cps_tsa.url, query())
    assert status == 200 and ctype == "application/timestamp-reply"
    assert verify_timestamp(timestamp_token(body), DIGEST, nonce=42).nonce == 42


# ---------------------------------------------------------------- hostile TSAs
def timed(call, limit: float):
    start = time.monotonic()
    with pytest.raises(TimestampError) as exc:
        call()
    elapsed = time.monotonic() - start
    assert elapsed < limit, f"took {elapsed:.1f} s"
    return exc.value


def test_garbage_answer(cps_tsa):
    cps_tsa.faults.garbage = True
    assert timed(lambda: request_timestamp(cps_tsa.url, DIGEST), 5).reason == "malformed"


def test_huge_answer_is_cut_off(cps_tsa):
    cps_tsa.faults.oversize = 50 * MAX_RESPONSE_SIZE
    error = timed(lambda: request_timestamp(cps_tsa.url, DIGEST), 5)
    assert error.reason == "too-large"


def test_huge_answer_without_length(cps_tsa):
    """Content-Length lies (says small): the size cap holds while reading."""
    big = b"\x30\x84" + b"\x7f\xff\xff\xff" + b"\x00" * (2 * MAX_RESPONSE_SIZE)
    cps_tsa.hook = lambda request: big
    error = timed(lambda: request_timestamp(cps_tsa.url, DIGEST), 5)
    assert error.reason == "too-large"


def test_wrong_nonce(cps_tsa):
    cps_tsa.faults.wrong_nonce = True
    assert timed(lambda: request_timestamp(cps_tsa.url, DIGEST), 5).reason == "nonce-mismatch"
    # no nonce asked: nothing to compare (the token echoes what the server invented)
    assert request_timestamp(cps_tsa.url, DIGEST, nonce=False)


def test_wrong_imprint(cps_tsa):
    cps_tsa.faults.wrong_imprint = True
    error = timed(lambda: request_timestamp(cps_tsa.url, DIGEST), 5)
    assert error.reason == "imprint-mismatch"
    error = timed(lambda: request_timestamp(cps_tsa.url, DIGEST, cert_req=False), 5)
    assert error.reason == "imprint-mismatch"


def test_rejection(cps_tsa):
    cps_tsa.faults.reject = "time_not_available"
    error = timed(lambda: request_timestamp(cps_tsa.url, DIGEST), 5)
    assert error.reason == "rejected" and error.status == "rejection"
    assert error.fail_info == ("time_not_available",)
    assert "test TSA told to refuse" in error.status_text and "time_not_available" in str(error)


def test_waiting_status_is_not_a_token(cps_tsa):
    cps_tsa.hook = lambda request: timestamp_rejection("system_failure", status="waiting")
    error = timed(lambda: request_timestamp(cps_tsa.url, DIGEST), 5)
    assert error.reason == "rejected" and error.status == "waiting"


def test_granted_without_token(cps_tsa):
    cps_tsa.hook = lambda request: TimeStampResp({"status": {"status": "granted"}}).dump()
    assert timed(lambda: request_timestamp(cps_tsa.url, DIGEST), 5).reason == "malformed"


def test_a_response_that_is_not_a_token(cps_tsa, cps_pki):
    """A granted answer carrying some other SignedData (an OCSP-like CMS)."""
    from cps.sign import SoftwareSigner, sign_cms

    creds = cps_pki.issue_card("cps3-medecin")
    other = sign_cms(SoftwareSigner(creds.sign_key, creds.sign_cert), b"x", detached=False)
    cps_tsa.hook = lambda request: TimeStampResp({
        "status": {"status": "granted"}, "time_stamp_token": cms.ContentInfo.load(other)}).dump()
    assert timed(lambda: request_timestamp(cps_tsa.url, DIGEST), 5).reason == "malformed"


def test_slow_server_hits_the_deadline(cps_tsa):
    cps_tsa.faults.slow = 30
    error = timed(lambda: request_timestamp(cps_tsa.url, DIGEST, timeout=1.0), 4)
    assert error.reason == "timeout"


def test_trickling_server_hits_the_deadline(cps_tsa):
    cps_tsa.faults.trickle = 0.3  # 16 bytes every 0.3 s: each read is quick, the sum is not
    error = timed(lambda: request_timestamp(cps_tsa.url, DIGEST, timeout=1.5), 5)
    assert error.reason == "timeout"


def test_down_and_stopped_servers(cps_pki):
    with TsaServer(cps_pki) as tsa:
        tsa.faults.down = True
        assert timed(lambda: request_timestamp(tsa.url, DIGEST), 5).reason == "unreachable"
        url = tsa.url
    assert timed(lambda: request_timestamp(url, DIGEST, timeout=3), 5).reason == "unreachable"


def test_http_errors(cps_tsa):
    cps_tsa.faults.http_status = 503
    error = timed(lambda: request_timestamp(cps_tsa.url, DIGEST), 5)
    assert error.reason == "http-status" and error.http_status == 503
    cps_tsa.faults.reset()
    error = timed(lambda: request_timestamp(cps_tsa.url.replace("/tsa", "/nothing"), DIGEST), 5)
    assert error.http_status == 404


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/tsa", "tsa.example",
                                 "http:///nohost"])
def test_only_http_urls(url):
    assert timed(lambda: request_timestamp(url, DIGEST), 2).reason == "bad-url"


def test_no_redirect_to_another_scheme():
    with PkiServer() as server:
        server.faults.redirect = "file:///etc/passwd"
        error = timed(lambda: request_timestamp(f"{server.base_url}/tsa", DIGEST), 5)
    assert error.reason == "bad-url"


def test_bad_arguments(cps_tsa):
    with pytest.raises(ValueError):
        request_timestamp(cps_tsa.url, DIGEST[:31])
    with pytest.raises(errors.NotSupported):
        request_timestamp(cps_tsa.url, hashlib.sha1(DATA).digest(), hash="sha1")  # noqa: S324
    with pytest.raises(TypeError):
        request_timestamp(cps_tsa.url, "digest")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        request_timestamp(cps_tsa.url, DIGEST, timeout=0)
    assert cps_tsa.requests == []  # nothing was sent


# ---------------------------------------------------------------- forged and odd tokens
def test_tampered_tstinfo(cps_pki):
    cert, key = cps_pki.issue_tsa()
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(make_token(cert, key, tamper_tst=True), DIGEST)
    assert exc.value.reason == "signature"


def test_tampered_signature(cps_tsa):
    token = bytearray(request_timestamp(cps_tsa.url, DIGEST))
    token[-5] ^= 0x01  # in the signature value, the last field
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(bytes(token), DIGEST)
    assert exc.value.reason == "signature"


def test_ess_binding_is_required_and_checked(cps_pki):
    cert, key = cps_pki.issue_tsa()
    assert verify_timestamp(make_token(cert, key), DIGEST).tsa_certificate == cert
    assert verify_timestamp(make_token(cert, key, ess="v1"), DIGEST).tsa_certificate == cert
    for token in (make_token(cert, key, ess="none"),
                  make_token(cert, key, ess_cert=cps_pki.issue_server().certificate)):
        with pytest.raises(TimestampError) as exc:
            verify_timestamp(token, DIGEST)
        assert exc.value.reason == "signing-certificate"


@pytest.mark.parametrize(("eku", "critical", "usage"), [
    (None, True, None),
    ([ExtendedKeyUsageOID.SERVER_AUTH], True, None),
    ([ExtendedKeyUsageOID.TIME_STAMPING], False, None),  # RFC 3161 2.3: MUST be critical
    ([ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CLIENT_AUTH], True, None),
    ([ExtendedKeyUsageOID.TIME_STAMPING], True, key_usage(key_encipherment=True)),
    ([ExtendedKeyUsageOID.TIME_STAMPING], True,
     key_usage(digital_signature=True, key_cert_sign=True)),
])
def test_not_a_tsa_certificate(cps_pki, eku, critical, usage):
    cert, key = leaf_certificate(cps_pki, eku=eku, eku_critical=critical, usage=usage)
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(make_token(cert, key), DIGEST)
    assert exc.value.reason == "not-a-tsa"


def test_a_card_certificate_is_not_a_tsa(cps_pki):
    creds = cps_pki.issue_card("cps3-medecin")
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(make_token(creds.sign_cert, creds.sign_key), DIGEST)
    assert exc.value.reason == "not-a-tsa"


def test_tsa_name_must_match(cps_pki):
    cert, key = cps_pki.issue_tsa()
    other = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "another TSA")])
    name = asn1_x509.GeneralName({"directory_name": asn1_x509.Name.load(other.public_bytes())})
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(make_token(cert, key, tst={"tsa": name}), DIGEST)
    assert exc.value.reason == "tsa-name"
    uri = asn1_x509.GeneralName({"uniform_resource_identifier": "https://tsa.example/"})
    assert verify_timestamp(make_token(cert, key, tst={"tsa": uri}), DIGEST).tsa_name == \
        "uniform_resource_identifier:https://tsa.example/"


def test_critical_extension_and_versions(cps_pki):
    cert, key = cps_pki.issue_tsa()
    extension = {"extn_id": "1.2.3.4.5", "critical": True, "extn_value": b"\x05\x00"}
    for tst, reason in (({"extensions": [extension]}, "unsupported"),
                        ({"version": "v2"}, "unsupported")):
        with pytest.raises(TimestampError) as exc:
            verify_timestamp(make_token(cert, key, tst=tst), DIGEST)
        assert exc.value.reason == reason
    extension["critical"] = False
    assert verify_timestamp(make_token(cert, key, tst={"extensions": [extension]}), DIGEST)


def test_sha1_imprint_is_refused(cps_pki):
    cert, key = cps_pki.issue_tsa()
    sha1 = hashlib.sha1(DATA).digest()  # noqa: S324
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(make_token(cert, key, digest=sha1, imprint_algorithm="sha1"), data=DATA)
    assert exc.value.reason == "weak-algorithm"


def test_accuracy_is_reported(cps_pki):
    cert, key = cps_pki.issue_tsa()
    token = make_token(cert, key, tst={"accuracy": {"seconds": 2, "millis": 5, "micros": 7},
                                       "ordering": True})
    info = verify_timestamp(token, DIGEST)
    assert info.accuracy == dt.timedelta(seconds=2, milliseconds=5, microseconds=7)
    assert info.ordering is True
    with pytest.raises(TimestampError):
        verify_timestamp(make_token(cert, key, tst={"accuracy": {"millis": 1000}}), DIGEST)


def test_a_huge_accuracy_is_a_typed_refusal_not_an_overflow(cps_pki):
    """BUG-64: an accuracy of 10^13 s raised OverflowError (TimestampInfo.latest); one of
    two years moved the time the signer is judged at two years ahead."""
    cert, key = cps_pki.issue_tsa()
    for accuracy in ({"seconds": 10**13}, {"seconds": 86400 * 365 * 2},
                     {"seconds": int(MAX_ACCURACY.total_seconds()), "millis": 1},
                     {"millis": 1000}, {"micros": -1}):
        with pytest.raises(TimestampError) as exc:
            verify_timestamp(make_token(cert, key, tst={"accuracy": accuracy}), DIGEST)
        assert exc.value.reason == "accuracy", accuracy
    info = verify_timestamp(make_token(cert, key, tst={"accuracy": {
        "seconds": int(MAX_ACCURACY.total_seconds())}}), DIGEST)
    assert info.accuracy == MAX_ACCURACY and info.latest == info.gen_time + MAX_ACCURACY
    # genTime + accuracy must be a date too
    last = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(make_token(cert, key, tst={"gen_time": last,
                                                    "accuracy": {"seconds": 1}}), DIGEST)
    assert exc.value.reason == "accuracy"


def test_not_a_token(cps_pki):
    creds = cps_pki.issue_card("cps3-medecin")
    from cps.sign import SoftwareSigner, sign_cms

    p7s = sign_cms(SoftwareSigner(creds.sign_key, creds.sign_cert), DATA, detached=False)
    for blob in (b"", b"\x30\x00", b"junk" * 10, p7s, b"\x30" + b"\x00" * (3 * MAX_RESPONSE_SIZE)):
        with pytest.raises(TimestampError) as exc:
            verify_timestamp(blob, DIGEST)
        assert exc.value.reason in ("malformed", "too-large")


# ---------------------------------------------------------------- trust in the TSA
def test_untrusted_tsa(cps_tsa, own_pki):
    token = request_timestamp(cps_tsa.url, DIGEST)
    stranger = own_pki.validator()  # other roots
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(token, DIGEST, validator=stranger)
    assert exc.value.reason == "untrusted-tsa"
    assert isinstance(exc.value.cause, errors.UntrustedCertificate)


def test_tsa_judged_at_gen_time(own_pki):
    """A token made while the TSA certificate was valid stays good after it expired;
    one dated outside its validity is refused."""
    tsa_cert = own_pki.issue_tsa()[0]
    later = tsa_cert.not_valid_after_utc + dt.timedelta(days=200)
    validator = own_pki.validator(later, clock=lambda: later)
    with TsaServer(own_pki, clock=lambda: own_pki.reference_time) as tsa:
        good = request_timestamp(tsa.url, DIGEST)
        tsa.clock = lambda: tsa_cert.not_valid_before_utc - dt.timedelta(days=1)
        early = request_timestamp(tsa.url, DIGEST)
    info = verify_timestamp(good, DIGEST, validator=validator)
    assert info.validation_time == own_pki.reference_time
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(early, DIGEST, validator=validator)
    assert exc.value.reason == "untrusted-tsa"
    assert isinstance(exc.value.cause, errors.CertificateExpired)
    with pytest.raises(TimestampError) as exc:  # at= wins over the genTime
        verify_timestamp(good, DIGEST, validator=validator, at=later)
    assert isinstance(exc.value.cause, errors.CertificateExpired)


def test_revoked_tsa(tmp_path_factory):
    """The TSA certificate revoked after the token: still good unless the key was
    compromised (cps.trust's retroactive rule)."""
    pki = TestPKI.generate(tmp_path_factory.mktemp("revoked-tsa"), seed=b"revoked-tsa",
                           ca_key_bits=2048)
    made = pki.reference_time + dt.timedelta(days=10)
    with TsaServer(pki, clock=lambda: made) as tsa:
        token = request_timestamp(tsa.url, DIGEST)
    serial = pki.issue_tsa()[0].serial_number
    pki.revoke("STANDARD ORGANISATIONS", serial, made + dt.timedelta(days=1),
               x509.ReasonFlags.superseded)
    now = made + dt.timedelta(days=30)
    assert verify_timestamp(token, DIGEST, validator=pki.validator(now, clock=lambda: now))
    compromised = TestPKI.generate(tmp_path_factory.mktemp("compromised-tsa"),
                                   seed=b"compromised-tsa", ca_key_bits=2048)
    with TsaServer(compromised, clock=lambda: made) as tsa:
        token = request_timestamp(tsa.url, DIGEST)
    compromised.revoke("STANDARD ORGANISATIONS", compromised.issue_tsa()[0].serial_number,
                       made + dt.timedelta(days=1), x509.ReasonFlags.key_compromise)
    with pytest.raises(TimestampError) as exc:
        verify_timestamp(token, DIGEST, validator=compromised.validator(now, clock=lambda: now))
    assert exc.value.reason == "untrusted-tsa"
    assert isinstance(exc.value.cause, errors.CertificateRevoked)


def test_errors_are_signature_errors():
    assert issubclass(TimestampError, SignatureError)
    assert issubclass(TimestampError, errors.CpsError)
    assert not issubclass(TimestampError, ValueError)


# ---------------------------------------------------------------- openssl
def write_trust(tmp: Path, pki: TestPKI) -> None:
    (tmp / "root.pem").write_bytes(pem(pki.roots["STANDARD"]))
    (tmp / "inter.pem").write_bytes(pem(pki.intermediates["STANDARD ORGANISATIONS"]))


@needs_openssl
def test_openssl_verifies_our_tokens(cps_tsa, cps_pki, tmp_path):
    """`openssl ts -verify` accepts what our TSA answers to an `openssl ts -query` request."""
    write_trust(tmp_path, cps_pki)
    (tmp_path / "doc.bin").write_bytes(DATA)
    done = openssl("ts", "-query", "-data", "doc.bin", "-sha256", "-cert", "-out", "req.tsq",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    status, ctype, reply = post(cps_tsa.url, (tmp_path / "req.tsq").read_bytes())
    assert status == 200 and ctype == "application/timestamp-reply"
    (tmp_path / "resp.tsr").write_bytes(reply)
    done = openssl("ts", "-verify", "-in", "resp.tsr", "-data", "doc.bin", "-CAfile", "root.pem",
                   "-untrusted", "inter.pem", cwd=tmp_path)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    done = openssl("ts", "-verify", "-in", "resp.tsr", "-queryfile", "req.tsq",
                   "-CAfile", "root.pem", "-untrusted", "inter.pem", cwd=tmp_path)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    done = openssl("ts", "-reply", "-in", "resp.tsr", "-text", cwd=tmp_path)
    assert TSA_POLICY_TEST.dotted_string in done.stdout and "Status: Granted" in done.stdout
    # and our verifier agrees on openssl's request
    assert verify_timestamp(timestamp_token(reply), data=DATA).message_imprint == DIGEST
    # a token our client fetched, verified by openssl as a bare token
    (tmp_path / "token.der").write_bytes(request_timestamp(cps_tsa.url, DIGEST))
    done = openssl("ts", "-verify", "-token_in", "-in", "token.der", "-digest", DIGEST.hex(),
                   "-CAfile", "root.pem", "-untrusted", "inter.pem", cwd=tmp_path)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    # and refuses other data
    (tmp_path / "other.bin").write_bytes(DATA + b"!")
    done = openssl("ts", "-verify", "-in", "resp.tsr", "-data", "other.bin",
                   "-CAfile", "root.pem", "-untrusted", "inter.pem", cwd=tmp_path)
    assert done.returncode != 0


TS_CNF = """\
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/inter.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5.6
digests = sha256, sha384, sha512
accuracy = secs:1, millisecs:500, microsecs:100
clock_precision_digits = 0
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = {ess}
"""


def openssl_tsa(tmp: Path, pki: TestPKI, ess: str):
    """A hook for TsaServer: `openssl ts -reply` answers each request (OpenSSL's TSA)."""
    cert, key = pki.issue_tsa()
    write_trust(tmp, pki)
    (tmp / "tsa.pem").write_bytes(pem(cert))
    (tmp / "tsa.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (tmp / "serial").write_text("01\n")
    (tmp / "ts.cnf").write_text(TS_CNF.format(dir=tmp, ess=ess))

    def hook(request: bytes) -> bytes:
        (tmp / "req.tsq").write_bytes(request)
        done = openssl("ts", "-reply", "-config", "ts.cnf", "-queryfile", "req.tsq",
                       "-out", "resp.tsr", cwd=tmp)
        assert done.returncode == 0, done.stderr
        return (tmp / "resp.tsr").read_bytes()

    return hook


@needs_openssl
@pytest.mark.parametrize("ess", ["sha1", "sha256"])  # ESS signing-certificate v1 / v2
def test_our_client_accepts_openssl_tokens(cps_tsa, cps_pki, validator, tmp_path, ess):
    cps_tsa.hook = openssl_tsa(tmp_path, cps_pki, ess)
    token = request_timestamp(cps_tsa.url, DIGEST)
    info = verify_timestamp(token, DIGEST, validator=validator)
    assert info.policy == "1.2.3.4.1" and info.ordering is True
    assert info.accuracy == dt.timedelta(seconds=1, milliseconds=500, microseconds=100)
    assert info.tsa_certificate == cps_pki.issue_tsa()[0]
    assert info.validation is not None
    assert info.serial_number in (1, 2)  # the serial file's value, or the next one
    # nonce and imprint checks apply to openssl's answers too
    cps_tsa.faults.wrong_nonce = True
    with pytest.raises(TimestampError) as exc:
        request_timestamp(cps_tsa.url, DIGEST)
    assert exc.value.reason == "nonce-mismatch"


# ---------------------------------------------------------------- fuzzing
@pytest.fixture(scope="module")
def sample_token(cps_pki) -> bytes:
    return timestamp_token(cps_pki.timestamp_response(query()))


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutated_tokens_raise_only_cps_errors(sample_token, validator, data):
    blob = bytearray(sample_token)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        position = data.draw(st.integers(0, len(blob) - 1), label="position")
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
        verify_timestamp(bytes(blob), DIGEST, validator=validator, nonce=42)
    except errors.CpsError:
        pass
    try:
        timestamp_token(bytes(blob))
    except errors.CpsError:
        pass
