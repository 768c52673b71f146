"""cps.trust.ocsp against the test PKI's responder on a real HTTP server (127.0.0.1)."""

from __future__ import annotations

import base64
import logging
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest
from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from cps.errors import OcspError, RevocationUnavailable
from cps.testing.pkiserver import serve_test_pki
from cps.trust.fetch import Fetcher
from cps.trust.ocsp import NONCE_SIZE, OcspClient, build_request, ocsp_urls, validate_response

DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def pki_env(tmp_path_factory):
    with serve_test_pki(tmp_path_factory.mktemp("pki")) as (pki, server):
        yield pki, server


@pytest.fixture
def pki(pki_env):
    return pki_env[0]


@pytest.fixture
def server(pki_env):
    """The module's server, reset: no faults, no hook, empty log."""
    _, srv = pki_env
    srv.faults.reset()
    srv.ocsp_hook = None
    srv.ocsp_time = None
    srv.ocsp_methods = {"GET", "POST"}
    srv.clear_requests()
    yield srv
    srv.faults.reset()
    srv.ocsp_hook = None


def client(**options) -> OcspClient:
    fetcher = options.pop("fetcher", None) or Fetcher(proxies={}, timeout=5,
                                                      clock=options.pop("clock", None))
    return OcspClient(fetcher, timeout=options.pop("timeout", 5), **options)


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


# --------------------------------------------------------------------------- response forgery kit


def make_responder(issuer_name: x509.Name, signing_key, *, eku: bool = True,
                   nocheck: bool = True, not_before: datetime | None = None,
                   not_after: datetime | None = None, subject: str = "TEST OCSP ROGUE"):
    """A responder certificate (EC key) issued under ``issuer_name`` by ``signing_key``."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .serial_number(x509.random_serial_number())
               .issuer_name(issuer_name)
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key())
               .not_valid_before(not_before or now() - timedelta(days=30))
               .not_valid_after(not_after or now() + timedelta(days=30)))
    if eku:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    if nocheck:
        builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    return builder.sign(signing_key or key, hashes.SHA256()), key


def forged_answer(request_der: bytes, cert, issuer, signer_cert, signer_key, *,
                  include: bool = True, status=ocsp.OCSPCertStatus.GOOD,
                  this_update: datetime | None = None, next_update: datetime | None = "day",
                  nonce: bytes | None | str = "echo") -> bytes:
    """A signed answer about ``cert`` echoing the request's nonce (unless told otherwise)."""
    moment = this_update or now()
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=issuer, algorithm=hashes.SHA1(),  # noqa: S303 - the usual CertID
        cert_status=status,
        this_update=moment,
        next_update=moment + timedelta(days=1) if next_update == "day" else next_update,
        revocation_time=None, revocation_reason=None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert)
    if include:
        builder = builder.certificates([signer_cert])
    if nonce == "echo":
        request = ocsp.load_der_ocsp_request(request_der)
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            nonce = None
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(signer_key, hashes.SHA256()).public_bytes(DER)


def without_nonce(request_der: bytes, nonce: bytes | None = None) -> bytes:
    """The same request with its nonce removed (or replaced)."""
    request = ocsp.load_der_ocsp_request(request_der)
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        request.issuer_name_hash, request.issuer_key_hash, request.serial_number,
        request.hash_algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(DER)


def tamper(response_der: bytes, edit) -> bytes:
    """Re-encode a response after ``edit(basic_response)`` changed it (signature untouched)."""
    response = asn1_ocsp.OCSPResponse.load(response_der)
    basic = response["response_bytes"]["response"].parsed
    edit(basic)
    response["response_bytes"]["response"] = asn1_core.ParsableOctetString(basic.dump(force=True))
    return response.dump(force=True)


def flip_signature_bit(basic) -> None:
    signature = bytearray(basic["signature"].native)
    signature[-1] ^= 0x01
    basic["signature"] = bytes(signature)


def move_produced_at(basic) -> None:
    basic["tbs_response_data"]["produced_at"] = \
        basic["tbs_response_data"]["produced_at"].native - timedelta(seconds=1)


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize("profile, ca_name", [("cps3-medecin", "FORT PERSONNES"),
                                              ("cps3-cpe", "STANDARD PERSONNES")])
def test_good(pki, server, profile, ca_name):
    card = pki.issue_card(profile)
    before = now()
    status = client().check(card.auth_cert, card.chain[0])
    assert status.status == "good"
    assert status.revocation_time is None and status.revocation_reason is None
    assert status.source == f"{server.base_url}/ocsp" == ocsp_urls(card.auth_cert)[0]
    assert status.responder.startswith(f"CN=TEST OCSP IGC-SANTE {ca_name},")
    assert status.authorized_by == "delegated" and not status.responder_unchecked
    assert status.nonce_echoed is True and status.notes == ()
    assert before - timedelta(seconds=1) <= status.this_update <= now()
    assert status.next_update == status.this_update + timedelta(days=1)
    assert [r.method for r in server.requests] == ["POST"]
    assert server.requests[0].headers["content-type"] == "application/ocsp-request"


def test_revoked_with_time_and_reason(pki, server):
    card = pki.issue_card("cps3-revoked")
    status = client().check(card.auth_cert, card.chain[0])
    assert status.status == "revoked"
    assert status.revocation_time == pki.reference_time - timedelta(days=30)
    assert status.revocation_reason == "keyCompromise"
    recent = pki.issue_card("cps3-revoked-recent")
    status = client().check(recent.sign_cert, recent.chain[0])
    assert status.status == "revoked" and status.revocation_reason == "superseded"
    assert status.revocation_time == pki.reference_time - timedelta(hours=12)


def test_unknown_for_a_serial_the_ca_never_issued(pki, server):
    ca = pki.ca("FORT PERSONNES")
    template = pki.issue_card("cps3-medecin").auth_cert
    key = ec.generate_private_key(ec.SECP256R1())
    foreign = (x509.CertificateBuilder().serial_number(x509.random_serial_number())
               .issuer_name(ca.cert.subject).subject_name(template.subject)
               .public_key(key.public_key())
               .not_valid_before(template.not_valid_before_utc)
               .not_valid_after(template.not_valid_after_utc)
               .add_extension(template.extensions.get_extension_for_class(
                   x509.AuthorityInformationAccess).value, critical=False)
               .sign(ca.key, hashes.SHA256()))
    assert client().check(foreign, ca.cert).status == "unknown"


def test_answer_signed_by_the_issuer_itself(pki, server):
    intermediate, root = pki.intermediates["FORT PERSONNES"], pki.roots["FORT"]
    assert ocsp_urls(intermediate) == []
    status = client().check(intermediate, root, url=server.ocsp_url)
    assert status.status == "good" and status.authorized_by == "issuer"
    assert status.responder == root.subject.rfc4514_string()


def test_sha256_cert_id(pki, server):
    card = pki.issue_card("cps3-medecin")
    assert client(hash_algorithm="sha256").check(card.auth_cert, card.chain[0]).status == "good"
    request = ocsp.load_der_ocsp_request(server.requests[0].body)
    assert isinstance(request.hash_algorithm, hashes.SHA256)


def test_get_method_for_short_requests(pki, server):
    card = pki.issue_card("cps3-medecin")
    status = client(method="get").check(card.auth_cert, card.chain[0])
    assert status.status == "good" and status.nonce_echoed
    (request,) = server.requests
    assert request.method == "GET" and request.path.startswith("/ocsp/")
    der = base64.b64decode(urllib.parse.unquote(request.path[len("/ocsp/"):]))
    assert ocsp.load_der_ocsp_request(der).serial_number == card.auth_cert.serial_number


def test_post_refused_falls_back_to_get(pki, server):
    server.ocsp_methods = {"GET"}
    card = pki.issue_card("cps3-medecin")
    assert client().check(card.auth_cert, card.chain[0]).status == "good"
    assert [(r.method, r.status) for r in server.requests] == [("POST", 405), ("GET", 200)]


def test_no_responder_url(pki, server):
    with pytest.raises(RevocationUnavailable) as err:
        client().check(pki.intermediates["FORT PERSONNES"], pki.roots["FORT"])
    assert err.value.reason == "no-responder"


# --------------------------------------------------------------------------- nonce


def test_nonce_is_sent_and_echoed(pki, server):
    card = pki.issue_card("cps3-medecin")
    ocsp_client = client()
    ocsp_client.check(card.auth_cert, card.chain[0])
    ocsp_client.check(card.auth_cert, card.chain[0])
    nonces = [ocsp.load_der_ocsp_request(r.body).extensions
              .get_extension_for_class(x509.OCSPNonce).value.nonce for r in server.requests]
    assert [len(n) for n in nonces] == [NONCE_SIZE, NONCE_SIZE] and nonces[0] != nonces[1]


def test_missing_nonce_refused_unless_not_required(pki, server, caplog):
    card = pki.issue_card("cps3-medecin")
    server.ocsp_hook = lambda request: pki.ocsp_response(without_nonce(request))
    strict = client()
    with caplog.at_level(logging.WARNING, logger="cps.trust.ocsp"):
        for _ in range(3):
            with pytest.raises(OcspError) as err:
                strict.check(card.auth_cert, card.chain[0])
            # A reason of its own (not "nonce-mismatch"), and a message saying what to do.
            assert err.value.reason == "nonce-not-echoed"
            assert err.value.source == server.ocsp_url
            message = str(err.value)
            assert "did not echo" in message and "pre-computed" in message
            assert "require_nonce=False" in message and "max_age" in message
    # Visible in a long-running server's log, but once per responder URL, not per request.
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and server.ocsp_url in r.getMessage()]
    assert len(warnings) == 1 and "require_nonce=False" in warnings[0].getMessage()
    assert len(server.requests_for("/ocsp")) == 3  # a refusal is never cached either
    lenient = client(require_nonce=False).check(card.auth_cert, card.chain[0])
    assert lenient.status == "good" and lenient.nonce_echoed is False
    assert any("nonce" in note for note in lenient.notes)


def test_wrong_nonce_always_refused(pki, server):
    card = pki.issue_card("cps3-medecin")
    server.ocsp_hook = lambda request: pki.ocsp_response(without_nonce(request, b"\x00" * 16))
    for require in (True, False):
        with pytest.raises(OcspError) as err:
            client(require_nonce=require).check(card.auth_cert, card.chain[0])
        assert err.value.reason == "nonce-mismatch"


def test_no_nonce_when_disabled(pki, server):
    card = pki.issue_card("cps3-medecin")
    status = client(use_nonce=False).check(card.auth_cert, card.chain[0])
    assert status.nonce_echoed is False
    assert len(ocsp.load_der_ocsp_request(server.requests[0].body).extensions) == 0


# --------------------------------------------------------------------------- responder authority


def _rogue_responders(pki):
    fort = pki.ca("FORT PERSONNES")
    other = pki.ca("STANDARD PERSONNES")
    past = now() - timedelta(days=60)
    return {
        # A proper delegated responder, but of another CA.
        "issued-by-another-ca": make_responder(other.cert.subject, other.key),
        # Claims the right issuer name, signed by an unrelated key.
        "forged-issuer-signature": make_responder(fort.cert.subject, None),
        # Issued by the right CA, but not for OCSP signing.
        "no-ocsp-signing-eku": make_responder(fort.cert.subject, fort.key, eku=False),
        # Issued by the right CA, expired.
        "expired": make_responder(fort.cert.subject, fort.key, not_before=past,
                                  not_after=past + timedelta(days=1)),
    }


@pytest.mark.parametrize("case", ["issued-by-another-ca", "forged-issuer-signature",
                                  "no-ocsp-signing-eku", "expired", "certificate-not-included"])
def test_unauthorised_responders_are_refused(pki, server, case):
    card = pki.issue_card("cps3-medecin")
    if case == "certificate-not-included":
        fort = pki.ca("FORT PERSONNES")
        signer, key = make_responder(fort.cert.subject, fort.key)
        include = False
    else:
        signer, key = _rogue_responders(pki)[case]
        include = True
    server.ocsp_hook = lambda request: forged_answer(request, card.auth_cert, card.chain[0],
                                                     signer, key, include=include)
    with pytest.raises(OcspError) as err:
        client().check(card.auth_cert, card.chain[0])
    assert err.value.reason == "unauthorized-responder"


def test_locally_trusted_responder_is_accepted(pki, server):
    card = pki.issue_card("cps3-medecin")
    signer, key = make_responder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                               "TEST OCSP ROGUE")]), None)
    server.ocsp_hook = lambda request: forged_answer(request, card.auth_cert, card.chain[0],
                                                     signer, key, include=False)
    with pytest.raises(OcspError):
        client().check(card.auth_cert, card.chain[0])
    status = client().check(card.auth_cert, card.chain[0], trusted_responders=[signer])
    assert status.status == "good" and status.authorized_by == "trusted"


def test_delegated_responder_without_nocheck_is_accepted_and_noted(pki, server):
    card = pki.issue_card("cps3-medecin")
    fort = pki.ca("FORT PERSONNES")
    signer, key = make_responder(fort.cert.subject, fort.key, nocheck=False)
    server.ocsp_hook = lambda request: forged_answer(request, card.auth_cert, card.chain[0],
                                                     signer, key)
    status = client().check(card.auth_cert, card.chain[0])
    assert status.status == "good" and status.authorized_by == "delegated"
    assert status.responder_unchecked and "nocheck" in status.notes[0]


@pytest.mark.parametrize("edit", [flip_signature_bit, move_produced_at])
def test_tampered_answer_fails_the_signature(pki, server, edit):
    card = pki.issue_card("cps3-medecin")
    server.ocsp_hook = lambda request: tamper(pki.ocsp_response(request), edit)
    with pytest.raises(OcspError) as err:
        client().check(card.auth_cert, card.chain[0])
    assert err.value.reason == "bad-signature"


# --------------------------------------------------------------------------- CertID, freshness


def test_answer_about_another_certificate_is_refused(pki, server):
    card = pki.issue_card("cps3-medecin")
    other = pki.issue_card("cps3-pharmacien")
    assert other.chain[0] == card.chain[0]

    def answer_about_other(request_der: bytes) -> bytes:
        request = ocsp.load_der_ocsp_request(request_der)
        nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        swapped = build_request(other.auth_cert, other.chain[0], nonce=nonce)
        return pki.ocsp_response(swapped)

    server.ocsp_hook = answer_about_other
    with pytest.raises(OcspError) as err:
        client().check(card.auth_cert, card.chain[0])
    assert err.value.reason == "certid-mismatch"


def test_stale_and_future_answers(pki, server):
    card = pki.issue_card("cps3-medecin")
    with pytest.raises(OcspError) as err:
        client(clock=lambda: now() + timedelta(days=2)).check(card.auth_cert, card.chain[0])
    assert err.value.reason == "stale"
    with pytest.raises(OcspError) as err:
        client().check(card.auth_cert, card.chain[0], at=now() - timedelta(hours=1))
    assert err.value.reason == "not-yet-valid"
    # Within the clock skew tolerance both ways.
    status = client().check(card.auth_cert, card.chain[0], at=now() - timedelta(minutes=4))
    assert status.status == "good"


def test_max_age_applies_without_next_update(pki, server):
    card = pki.issue_card("cps3-medecin")
    fort = pki.ca("FORT PERSONNES")
    signer, key = make_responder(fort.cert.subject, fort.key)
    server.ocsp_hook = lambda request: forged_answer(
        request, card.auth_cert, card.chain[0], signer, key,
        this_update=now() - timedelta(days=3), next_update=None)
    status = client().check(card.auth_cert, card.chain[0])
    assert status.next_update is None and status.status == "good"
    with pytest.raises(OcspError) as err:
        client().check(card.auth_cert, card.chain[0], max_age=timedelta(days=2))
    assert err.value.reason == "stale"


def test_far_next_update_does_not_extend_max_age(pki, server):
    card = pki.issue_card("cps3-medecin")
    fort = pki.ca("FORT PERSONNES")
    signer, key = make_responder(fort.cert.subject, fort.key)
    decade = timedelta(days=3652)

    def serve(this_update, next_update):
        server.ocsp_hook = lambda request: forged_answer(
            request, card.auth_cert, card.chain[0], signer, key,
            this_update=this_update, next_update=next_update)

    # thisUpdate ten years ago, nextUpdate ten years ahead: not current.
    serve(now() - decade, now() + decade)
    with pytest.raises(OcspError) as err:
        client().check(card.auth_cert, card.chain[0])
    assert err.value.reason == "stale" and "max_age" in str(err.value)
    # Eight days old with a far nextUpdate: past the default max_age (7 days)...
    serve(now() - timedelta(days=8), now() + decade)
    with pytest.raises(OcspError) as err:
        client().check(card.auth_cert, card.chain[0])
    assert err.value.reason == "stale"
    # ...and accepted when the client's or the check's max_age allows it.
    for status in (client(max_age=timedelta(days=9)).check(card.auth_cert, card.chain[0]),
                   client().check(card.auth_cert, card.chain[0], max_age=timedelta(days=9))):
        assert status.status == "good"
        assert status.usable_until == status.this_update + timedelta(days=9)
        assert status.usable_until < status.next_update
    # validate_response (answers obtained elsewhere) applies the same bound.
    request = build_request(card.auth_cert, card.chain[0], nonce=None)
    answer = forged_answer(request, card.auth_cert, card.chain[0], signer, key,
                           this_update=now() - timedelta(days=8), next_update=now() + decade)
    with pytest.raises(OcspError) as err:
        validate_response(answer, card.auth_cert, card.chain[0], at=now())
    assert err.value.reason == "stale"


def test_usable_until(pki, server):
    card = pki.issue_card("cps3-medecin")
    status = client().check(card.auth_cert, card.chain[0])       # nextUpdate: +1 day
    assert status.usable_until == status.next_update == status.this_update + timedelta(days=1)
    status = client(max_age=timedelta(hours=1)).check(card.auth_cert, card.chain[0])
    assert status.usable_until == status.this_update + timedelta(hours=1)
    fort = pki.ca("FORT PERSONNES")
    signer, key = make_responder(fort.cert.subject, fort.key)
    server.ocsp_hook = lambda request: forged_answer(request, card.auth_cert, card.chain[0],
                                                     signer, key, next_update=None)
    status = client(max_age=timedelta(days=2)).check(card.auth_cert, card.chain[0])
    assert status.next_update is None
    assert status.usable_until == status.this_update + timedelta(days=2)


def test_client_max_age_is_the_default_of_check(pki, server):
    card = pki.issue_card("cps3-medecin")
    fort = pki.ca("FORT PERSONNES")
    signer, key = make_responder(fort.cert.subject, fort.key)
    server.ocsp_hook = lambda request: forged_answer(
        request, card.auth_cert, card.chain[0], signer, key,
        this_update=now() - timedelta(days=3), next_update=None)
    two_days = client(max_age=timedelta(days=2))
    with pytest.raises(OcspError) as err:
        two_days.check(card.auth_cert, card.chain[0])
    assert err.value.reason == "stale"
    assert two_days.check(card.auth_cert, card.chain[0],
                          max_age=timedelta(days=4)).status == "good"


@pytest.mark.parametrize("bad", [{"max_age": timedelta(0)}, {"max_age": timedelta(days=-1)},
                                 {"max_age": 3600}, {"cache_size": -1}, {"cache_size": 1.5}])
def test_constructor_refuses_bad_settings(bad):
    with pytest.raises(ValueError):
        OcspClient(Fetcher(proxies={}), **bad)


# --------------------------------------------------------------------------- answer cache


class Clock:
    """A clock the test moves."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def ocsp_requests(server) -> int:
    return len(server.requests_for("/ocsp"))


def test_ignored_nonce_accepted_and_cached_when_not_required(pki, server):
    card = pki.issue_card("cps3-medecin")
    server.ocsp_hook = lambda request: pki.ocsp_response(without_nonce(request))
    lenient = client(require_nonce=False, max_age=timedelta(hours=1))
    first = lenient.check(card.auth_cert, card.chain[0])
    assert first.status == "good" and first.nonce_echoed is False
    assert first.usable_until == first.this_update + timedelta(hours=1)
    second = lenient.check(card.auth_cert, card.chain[0])
    assert second == first
    assert ocsp_requests(server) == 1  # the second check made no HTTP request


def test_answers_without_nonce_are_cached_and_revoked_stays_revoked(pki, server):
    card, revoked = pki.issue_card("cps3-medecin"), pki.issue_card("cps3-revoked")
    ocsp_client = client(use_nonce=False)
    good = ocsp_client.check(card.auth_cert, card.chain[0])
    first = ocsp_client.check(revoked.auth_cert, revoked.chain[0])
    assert ocsp_requests(server) == 2
    assert ocsp_client.check(card.auth_cert, card.chain[0]) == good
    again = ocsp_client.check(revoked.auth_cert, revoked.chain[0])
    assert ocsp_requests(server) == 2
    assert again == first and again.status == "revoked"
    assert again.revocation_reason == "keyCompromise"
    assert again.revocation_time == pki.reference_time - timedelta(days=30)


def test_answers_echoing_the_nonce_are_never_reused(pki, server):
    card = pki.issue_card("cps3-medecin")
    for options in ({}, {"require_nonce": False}):
        server.clear_requests()
        ocsp_client = client(**options)
        first = ocsp_client.check(card.auth_cert, card.chain[0])
        second = ocsp_client.check(card.auth_cert, card.chain[0])
        assert first.nonce_echoed and second.nonce_echoed
        assert ocsp_requests(server) == 2, options


def test_cached_answer_not_used_past_usable_until(pki, server):
    card = pki.issue_card("cps3-medecin")
    clock = Clock(now())
    t0 = clock.moment
    # Genuine answers, dated by the test's clock (nextUpdate = thisUpdate + 1 day).
    server.ocsp_hook = lambda request: pki.ocsp_response(request, at=clock())
    hourly = client(use_nonce=False, max_age=timedelta(hours=1), clock=clock)
    first = hourly.check(card.auth_cert, card.chain[0])
    assert first.this_update == t0 and first.usable_until == t0 + timedelta(hours=1)
    clock.moment = t0 + timedelta(hours=1)                  # the bound itself is included
    assert hourly.check(card.auth_cert, card.chain[0]) == first
    assert ocsp_requests(server) == 1
    # A check with a smaller max_age does not take the older answer.
    fresh = hourly.check(card.auth_cert, card.chain[0], max_age=timedelta(minutes=30))
    assert ocsp_requests(server) == 2 and fresh.this_update == clock.moment
    clock.moment = t0 + timedelta(hours=2, seconds=1)       # past thisUpdate + max_age
    later = hourly.check(card.auth_cert, card.chain[0])
    assert ocsp_requests(server) == 3 and later.this_update == clock.moment
    # nextUpdate bounds it too, when it comes before thisUpdate + max_age.
    weekly = client(use_nonce=False, clock=clock)           # max_age 7 days
    start = clock.moment
    first = weekly.check(card.auth_cert, card.chain[0])
    assert first.usable_until == first.next_update == start + timedelta(days=1)
    clock.moment = start + timedelta(hours=23)
    assert weekly.check(card.auth_cert, card.chain[0]) == first
    assert ocsp_requests(server) == 4
    clock.moment = start + timedelta(days=1, seconds=1)
    assert weekly.check(card.auth_cert, card.chain[0]).this_update == clock.moment
    assert ocsp_requests(server) == 5
    # Nor before its thisUpdate (minus the clock skew): asked again, and refused.
    with pytest.raises(OcspError) as err:
        weekly.check(card.auth_cert, card.chain[0], at=clock.moment - timedelta(hours=1))
    assert err.value.reason == "not-yet-valid" and ocsp_requests(server) == 6


def test_forged_answers_are_never_cached(pki, server):
    card = pki.issue_card("cps3-medecin")
    clock = Clock(now())
    fort = pki.ca("FORT PERSONNES")
    rogue, rogue_key = make_responder(fort.cert.subject, None)   # not signed by the CA
    forgeries = {
        "bad-signature": lambda request: tamper(pki.ocsp_response(request, at=clock()),
                                                flip_signature_bit),
        "unauthorized-responder": lambda request: forged_answer(
            request, card.auth_cert, card.chain[0], rogue, rogue_key, this_update=clock()),
    }
    ocsp_client = client(use_nonce=False, max_age=timedelta(hours=1), clock=clock)
    for reason, forge in forgeries.items():
        server.ocsp_hook = forge
        for _ in range(2):
            with pytest.raises(OcspError) as err:
                ocsp_client.check(card.auth_cert, card.chain[0])
            assert err.value.reason == reason
    assert ocsp_requests(server) == 4        # every check asked: nothing was cached
    server.ocsp_hook = lambda request: pki.ocsp_response(request, at=clock())
    good = ocsp_client.check(card.auth_cert, card.chain[0])
    assert ocsp_client.check(card.auth_cert, card.chain[0]) == good
    assert ocsp_requests(server) == 5        # a verified answer is
    # Once it is stale, forged answers neither replace it nor let it be used longer.
    clock.moment += timedelta(hours=2)
    for reason, forge in forgeries.items():
        server.ocsp_hook = forge
        with pytest.raises(OcspError) as err:
            ocsp_client.check(card.auth_cert, card.chain[0])
        assert err.value.reason == reason
    assert ocsp_requests(server) == 7


def test_cache_keyed_by_content_not_identity(pki, server):
    card = pki.issue_card("cps3-medecin")
    ocsp_client = client(use_nonce=False)
    first = ocsp_client.check(card.auth_cert, card.chain[0])
    # The same certificates as other objects: the same entry.
    same_cert = x509.load_der_x509_certificate(card.auth_cert.public_bytes(DER))
    same_issuer = x509.load_der_x509_certificate(card.chain[0].public_bytes(DER))
    assert same_cert is not card.auth_cert
    assert ocsp_client.check(same_cert, same_issuer) == first
    assert ocsp_requests(server) == 1
    # Another serial of the same issuer, or another responder URL: other entries.
    other = pki.issue_card("cps3-pharmacien")
    assert other.chain[0] == card.chain[0]
    ocsp_client.check(other.auth_cert, other.chain[0])
    assert ocsp_requests(server) == 2
    alternate = ocsp_client.check(card.auth_cert, card.chain[0], url=server.ocsp_url + "?alt")
    assert alternate.source.endswith("?alt") and ocsp_requests(server) == 3


def test_cache_is_a_bounded_lru(pki, server):
    a, b, c = (pki.issue_card(p) for p in ("cps3-medecin", "cps3-pharmacien", "cps3-cpe"))

    def check(ocsp_client, card):
        return ocsp_client.check(card.auth_cert, card.chain[0]).status

    small = client(use_nonce=False, cache_size=2)
    for card in (a, b, c):
        check(small, card)                    # a is dropped when c comes in
    assert ocsp_requests(server) == 3
    check(small, c), check(small, b)
    assert ocsp_requests(server) == 3
    check(small, a)                           # asked again; c, least recently used, goes
    assert ocsp_requests(server) == 4
    check(small, b)
    assert ocsp_requests(server) == 4
    check(small, c)
    assert ocsp_requests(server) == 5
    server.clear_requests()
    disabled = client(use_nonce=False, cache_size=0)
    for _ in range(3):
        check(disabled, a)
    assert ocsp_requests(server) == 3


def test_cached_answer_of_a_trusted_responder_needs_that_trust(pki, server):
    card = pki.issue_card("cps3-medecin")
    signer, key = make_responder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                               "TEST OCSP PINNED")]), None)
    server.ocsp_hook = lambda request: forged_answer(request, card.auth_cert, card.chain[0],
                                                     signer, key, include=False)
    ocsp_client = client(use_nonce=False)
    first = ocsp_client.check(card.auth_cert, card.chain[0], trusted_responders=[signer])
    assert first.authorized_by == "trusted"
    assert ocsp_client.check(card.auth_cert, card.chain[0], trusted_responders=[signer]) == first
    assert ocsp_requests(server) == 1
    with pytest.raises(OcspError) as err:     # not served to a check that does not trust it
        ocsp_client.check(card.auth_cert, card.chain[0])
    assert err.value.reason == "unauthorized-responder" and ocsp_requests(server) == 2


def test_cached_revocation_is_final(pki, server, caplog):
    revoked = pki.issue_card("cps3-revoked")
    ca = next(pki.ca(name) for name in pki.intermediates
              if pki.ca(name).cert == revoked.chain[0])
    clock = Clock(now())
    server.ocsp_hook = lambda request: pki.ocsp_response(request, at=clock())
    ocsp_client = client(use_nonce=False, max_age=timedelta(hours=1), clock=clock)
    first = ocsp_client.check(revoked.auth_cert, revoked.chain[0])
    assert first.status == "revoked" and first.revocation_reason == "keyCompromise"
    # Later, a properly delegated responder says "good": the certificate stays revoked.
    signer, key = make_responder(ca.cert.subject, ca.key)
    server.ocsp_hook = lambda request: forged_answer(
        request, revoked.auth_cert, revoked.chain[0], signer, key, this_update=clock())
    clock.moment += timedelta(hours=2)
    with caplog.at_level(logging.WARNING, logger="cps.trust.ocsp"):
        later = ocsp_client.check(revoked.auth_cert, revoked.chain[0])
    assert ocsp_requests(server) == 2
    assert later.status == "revoked" and later.revocation_time == first.revocation_time
    assert "stays revoked" in later.notes[-1]
    assert any("stays revoked" in r.getMessage() for r in caplog.records)
    # (a client that never saw the revocation takes that answer)
    assert client(use_nonce=False, clock=clock).check(
        revoked.auth_cert, revoked.chain[0]).status == "good"
    # Nor does the responder going away undo it.
    server.faults.down = True
    clock.moment += timedelta(hours=2)
    gone = ocsp_client.check(revoked.auth_cert, revoked.chain[0])
    assert gone.status == "revoked" and "no usable answer" in gone.notes[-1]
    with pytest.raises(RevocationUnavailable):  # (without the remembered revocation: an error)
        client(use_nonce=False, clock=clock).check(revoked.auth_cert, revoked.chain[0])


def test_concurrent_checks_share_the_cache(pki, server):
    card = pki.issue_card("cps3-medecin")
    ocsp_client = client(use_nonce=False)
    statuses, errors = [], []

    def work():
        try:
            for _ in range(5):
                statuses.append(ocsp_client.check(card.auth_cert, card.chain[0]).status)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and statuses == ["good"] * 40
    assert 1 <= ocsp_requests(server) <= 8


# --------------------------------------------------------------------------- hostile responders


def test_unsuccessful_response_statuses(pki, server):
    card = pki.issue_card("cps3-medecin")
    server.ocsp_hook = lambda request: ocsp.OCSPResponseBuilder.build_unsuccessful(
        ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(DER)
    with pytest.raises(OcspError) as err:
        client().check(card.auth_cert, card.chain[0])
    assert err.value.reason == "responder-error:try_later"
    server.ocsp_hook = None
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger, _ = make_responder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "X")]),
                                 stranger_key)
    with pytest.raises(OcspError) as err:  # the responder does not serve that issuer
        client().check(card.auth_cert, stranger)
    assert err.value.reason == "responder-error:unauthorized"


def test_garbage_answer_is_malformed(pki, server):
    card = pki.issue_card("cps3-medecin")
    server.faults.garbage = True
    started = time.monotonic()
    with pytest.raises(OcspError) as err:
        client().check(card.auth_cert, card.chain[0])
    assert err.value.reason == "malformed" and time.monotonic() - started < 5


def test_huge_answer_is_cut_off(pki, server):
    card = pki.issue_card("cps3-medecin")
    server.faults.oversize = 100 * 1024 * 1024
    server.faults.no_length = True
    started = time.monotonic()
    with pytest.raises(RevocationUnavailable) as err:
        client().check(card.auth_cert, card.chain[0])
    assert err.value.reason == "too-large" and time.monotonic() - started < 5


@pytest.mark.parametrize("fault", ["slow", "trickle"])
def test_slow_responder_times_out_in_bounded_time(pki, server, fault):
    card = pki.issue_card("cps3-medecin")
    if fault == "slow":
        server.faults.slow = 10
    else:
        server.faults.trickle = 0.2  # never a single read long enough for a socket timeout
    started = time.monotonic()
    with pytest.raises(RevocationUnavailable) as err:
        client(timeout=1.0).check(card.auth_cert, card.chain[0])
    assert err.value.reason == "timeout"
    assert time.monotonic() - started < 1.0 + 2


def test_unreachable_responder(pki, server):
    card = pki.issue_card("cps3-medecin")
    server.faults.down = True
    with pytest.raises(RevocationUnavailable) as err:
        client().check(card.auth_cert, card.chain[0])
    assert err.value.reason == "unreachable" and err.value.source == server.ocsp_url
    server.faults.reset()
    server.faults.status = 500
    with pytest.raises(RevocationUnavailable) as err:
        client().check(card.auth_cert, card.chain[0])
    assert err.value.reason == "http-error:500"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_validate_response_only_raises_ocsp_errors(pki_env, data):
    pki = pki_env[0]
    card = pki.issue_card("cps3-medecin")
    with pytest.raises(OcspError):
        validate_response(data, card.auth_cert, card.chain[0], at=now())


def test_validate_response_on_a_recorded_answer(pki):
    card = pki.issue_card("cps3-medecin")
    request = build_request(card.auth_cert, card.chain[0], nonce=b"n" * 16)
    answer = pki.ocsp_response(request)
    status = validate_response(answer, card.auth_cert, card.chain[0], at=now(),
                               nonce=b"n" * 16, source="file:recorded")
    assert status.status == "good" and status.source == "file:recorded"


@pytest.mark.parametrize("count", [0, 2])
def test_test_responder_answers_malformed_to_zero_or_several_requests(pki, count):
    """The test PKI's responder answers malformedRequest (as a real one may), never
    raises, to an OCSPRequest listing no certificate or several (cryptography reads
    exactly one)."""
    card = pki.issue_card("cps3-medecin")
    single = ocsp.OCSPRequestBuilder().add_certificate(
        card.auth_cert, card.chain[0], hashes.SHA1()).build().public_bytes(DER)
    request = asn1_ocsp.OCSPRequest.load(single)
    one = request["tbs_request"]["request_list"][0]
    request["tbs_request"]["request_list"] = asn1_ocsp.Requests([one] * count)
    answer = ocsp.load_der_ocsp_response(pki.ocsp_response(request.dump(force=True)))
    assert answer.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
