"""Challenge-response authentication, adversarially: each attack gets its own error."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading

import pytest

import cps
from cps import errors
from cps.auth import ChallengeIssuer, MemoryNonceStore, RedisNonceStore, Verifier
from cps.auth.nonces import TakeResult
from cps.auth.token import signed_data
from cps.trust import TrustStore, Validator

ORIGIN = "https://dmp.example.fr"


@pytest.fixture(scope="module")
def validator(cps_pki):
    return cps_pki.validator()


@pytest.fixture(params=["memory", "redis"])
def nonce_store(request):
    if request.param == "memory":
        return MemoryNonceStore()
    url = request.getfixturevalue("redis_url")
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    return RedisNonceStore(client)


@pytest.fixture
def issuer(nonce_store):
    return ChallengeIssuer(nonce_store)


@pytest.fixture
def verifier(validator, issuer):
    return Verifier(validator, issuer.store, [ORIGIN])


def token_for(cps_card_factory, issuer, profile="cps3-medecin", origin=ORIGIN, nonce=None):
    emu = cps_card_factory(profile)
    nonce = nonce or issuer.issue().nonce
    with cps.open_card(connection=emu.connection()) as card:
        if not card.contactless:
            card.verify_pin(emu.pin)
        return card.auth_token(nonce, origin)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------- the good path
def test_login(verifier, issuer, cps_card_factory):
    token = token_for(cps_card_factory, issuer)
    assert json.loads(json.dumps(token)) == token
    result = verifier.verify(json.dumps(token), ORIGIN)
    assert result.practitioner.idnat == "810100123453" and result.practitioner.validated
    assert len(result.validation.path) == 3


def test_challenges_are_unique_opaque_strings(issuer):
    nonces = {issuer.issue().nonce for _ in range(200)}
    assert len(nonces) == 200
    for n in nonces:   # base64url, no padding; the layout: docs/auth-token.md
        assert len(n) == 64 and len(base64.urlsafe_b64decode(n)) == 48


# ---------------------------------------------------------------- nonces
def test_replayed_token(verifier, issuer, cps_card_factory):
    token = token_for(cps_card_factory, issuer)
    verifier.verify(token, ORIGIN)
    with pytest.raises(errors.NonceReplayed):
        verifier.verify(token, ORIGIN)


def test_expired_nonce(validator, nonce_store, cps_card_factory):
    issuer = ChallengeIssuer(nonce_store, ttl=dt.timedelta(seconds=-60))
    token = token_for(cps_card_factory, issuer)
    with pytest.raises(errors.NonceExpired):
        Verifier(validator, nonce_store, [ORIGIN]).verify(token, ORIGIN)


def test_unknown_nonce(verifier, issuer, cps_card_factory):
    token = token_for(cps_card_factory, issuer, nonce="A" * 43)
    with pytest.raises(errors.UnknownNonce):
        verifier.verify(token, ORIGIN)


def test_nonce_from_another_issuer(validator, nonce_store, cps_card_factory):
    other = ChallengeIssuer(nonce_store, issuer_id="other-service")
    token = token_for(cps_card_factory, other)
    with pytest.raises(errors.NonceIssuerMismatch):
        Verifier(validator, nonce_store, [ORIGIN]).verify(token, ORIGIN)
    # and an issuer with a store of its own: the nonce is simply unknown here
    elsewhere = ChallengeIssuer(MemoryNonceStore())
    with pytest.raises(errors.UnknownNonce):
        Verifier(validator, nonce_store, [ORIGIN]).verify(
            token_for(cps_card_factory, elsewhere), ORIGIN)


# ---------------------------------------------------------------- origin
def test_foreign_origin(verifier, issuer, cps_card_factory):
    token = token_for(cps_card_factory, issuer, origin="https://phishing.example")
    with pytest.raises(errors.OriginMismatch) as info:
        verifier.verify(token, ORIGIN)
    assert info.value.got == "https://phishing.example"


def test_origin_not_allowed(verifier, issuer, cps_card_factory):
    token = token_for(cps_card_factory, issuer, origin="https://other.example")
    with pytest.raises(errors.OriginNotAllowed):
        verifier.verify(token, "https://other.example")


# ---------------------------------------------------------------- keys and certificates
def test_token_signed_with_the_signing_key(verifier, issuer, cps_card_factory):
    emu = cps_card_factory("cps3-medecin")
    nonce = issuer.issue().nonce
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        token = card.auth_token(nonce, ORIGIN)
        token["signature"] = b64(card.sign(signed_data(ORIGIN, nonce)))  # signing key
    with pytest.raises(errors.InvalidSignature):
        verifier.verify(token, ORIGIN)


def test_signing_certificate_presented_for_authentication(verifier, issuer, cps_card_factory,
                                                          cps_pki):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.serialization import Encoding

    creds = cps_pki.issue_card("cps3-medecin")
    nonce = issuer.issue().nonce
    token = token_for(cps_card_factory, issuer, nonce=nonce)
    token["certificate"] = b64(creds.sign_cert.public_bytes(Encoding.DER))
    token["signature"] = b64(creds.sign_key.sign(signed_data(ORIGIN, nonce), padding.PKCS1v15(),
                                                 hashes.SHA256()))
    with pytest.raises(errors.CertificatePurposeError):
        verifier.verify(token, ORIGIN)


@pytest.mark.parametrize("profile, error", [("cps3-revoked", errors.CertificateRevoked),
                                            ("cps3-expired", errors.CertificateExpired)])
def test_revoked_and_expired(verifier, issuer, cps_card_factory, profile, error):
    with pytest.raises(error):
        verifier.verify(token_for(cps_card_factory, issuer, profile=profile), ORIGIN)


def test_untrusted_ca(issuer, cps_card_factory):
    verifier = Verifier(Validator(TrustStore.igc_sante()), issuer.store, [ORIGIN])
    with pytest.raises(errors.UntrustedCertificate):
        verifier.verify(token_for(cps_card_factory, issuer), ORIGIN)


# ---------------------------------------------------------------- tampering
def _flip(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 0x01
    return b64(bytes(raw))


def test_tampered_signature(verifier, issuer, cps_card_factory):
    token = token_for(cps_card_factory, issuer)
    token["signature"] = _flip(token["signature"])
    with pytest.raises(errors.InvalidSignature):
        verifier.verify(token, ORIGIN)


def test_tampered_nonce(verifier, issuer, cps_card_factory):
    token = token_for(cps_card_factory, issuer)
    token["nonce"] = token["nonce"][:-2] + ("AA" if token["nonce"][-2:] != "AA" else "BB")
    with pytest.raises(errors.UnknownNonce):
        verifier.verify(token, ORIGIN)


def test_tampered_origin(validator, issuer, cps_card_factory):
    verifier = Verifier(validator, issuer.store, [ORIGIN, "https://evil.example"])
    token = token_for(cps_card_factory, issuer)
    token["origin"] = "https://evil.example"
    with pytest.raises(errors.InvalidSignature):
        verifier.verify(token, "https://evil.example")


def test_tampered_certificate(verifier, issuer, cps_card_factory):
    # Another practitioner's number in the (otherwise intact) certificate: the
    # token's signature still verifies with the key, the CA's signature does not.
    token = token_for(cps_card_factory, issuer)
    der = base64.b64decode(token["certificate"])
    assert der.count(b"810100123453") >= 1
    token["certificate"] = b64(der.replace(b"810100123453", b"810100123461"))
    with pytest.raises(errors.CertificateInvalid) as info:
        verifier.verify(token, ORIGIN)
    assert info.value.reason == "signature" and info.value.position == 0


def test_unsupported_algorithm(verifier, issuer, cps_card_factory):
    token = token_for(cps_card_factory, issuer)
    token["algorithm"] = "PS256"
    with pytest.raises(errors.UnsupportedAlgorithm):
        verifier.verify(token, ORIGIN)
    token["algorithm"], token["format"] = "RS256", "web-eid:1.0"
    with pytest.raises(errors.UnsupportedTokenFormat):
        verifier.verify(token, ORIGIN)


@pytest.mark.parametrize("mangle", [
    lambda t: "{not json",
    lambda t: b"\xff\xfe",
    lambda t: json.dumps([t]),
    lambda t: dict(t, signature="%%%not base64%%%"),
    lambda t: dict(t, certificate=12),
    lambda t: {k: v for k, v in t.items() if k != "nonce"},
])
def test_malformed_tokens(verifier, issuer, cps_card_factory, mangle):
    token = token_for(cps_card_factory, issuer)
    with pytest.raises(errors.MalformedToken):
        verifier.verify(mangle(token), ORIGIN)


@pytest.mark.parametrize("field, size", [("certificate", 20_000), ("signature", 4_000),
                                         ("nonce", 1_000), ("origin", 5_000)])
def test_oversized_fields(verifier, issuer, cps_card_factory, field, size):
    token = token_for(cps_card_factory, issuer)
    token[field] = "A" * size
    with pytest.raises(errors.TokenTooLarge):
        verifier.verify(token, ORIGIN)
    with pytest.raises(errors.TokenTooLarge):
        verifier.verify("x" * 100_000, ORIGIN)


def test_failed_checks_never_spend_another_users_nonce(verifier, issuer, cps_card_factory):
    good = token_for(cps_card_factory, issuer)
    bad = dict(good, algorithm="HS256")
    with pytest.raises(errors.UnsupportedAlgorithm):
        verifier.verify(bad, ORIGIN)   # rejected before the nonce is touched
    verifier.verify(good, ORIGIN)


# ---------------------------------------------------------------- races
def test_hundred_threads_one_success(verifier, issuer, cps_card_factory):
    token = json.dumps(token_for(cps_card_factory, issuer))
    outcomes = []
    lock = threading.Lock()
    barrier = threading.Barrier(100)

    def attempt():
        barrier.wait()
        try:
            verifier.verify(token, ORIGIN)
            result = "ok"
        except errors.NonceReplayed:
            result = "replayed"
        except Exception as exc:  # noqa: BLE001 - anything else is a failure of the test
            result = repr(exc)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes.count("ok") == 1 and outcomes.count("replayed") == 99, set(outcomes)


def test_memory_store_is_bounded():
    # issuing stores nothing; consumed nonces are bounded, and a full store refuses
    # new consumptions rather than forget one (tests/test_auth_nonces.py)
    store = MemoryNonceStore(max_entries=100)
    issuer = ChallengeIssuer(store)
    nonces = [issuer.issue().nonce for _ in range(1000)]
    assert len(store) == 0
    assert all(store.take(n, "default", 0) is TakeResult.OK for n in nonces[:100])
    assert len(store) == 100
    assert store.take(nonces[999], "default", 0) is TakeResult.FULL
    assert store.take(nonces[0], "default", 0) is TakeResult.USED


# ---------------------------------------------------------------- returning practitioners
@pytest.fixture
def fresh_validator(cps_pki):
    return cps_pki.validator()


def _count_parses(monkeypatch):
    from cps.auth import server

    calls = []
    real = server.parse_cert
    monkeypatch.setattr(server, "parse_cert", lambda der: calls.append(der) or real(der))
    return calls


def test_returning_practitioner_is_read_once(fresh_validator, cps_card_factory, monkeypatch):
    issuer = ChallengeIssuer()
    verifier = Verifier(fresh_validator, issuer.store, [ORIGIN])
    parses = _count_parses(monkeypatch)
    first = verifier.verify(token_for(cps_card_factory, issuer), ORIGIN)
    again = verifier.verify(token_for(cps_card_factory, issuer), ORIGIN)
    assert len(parses) == 1
    assert again.practitioner is first.practitioner and again.practitioner.validated
    assert again.validation.path == first.validation.path
    # nothing is remembered without the option
    plain = Verifier(fresh_validator, issuer.store, [ORIGIN], known_certificates=0)
    plain.verify(token_for(cps_card_factory, issuer), ORIGIN)
    plain.verify(token_for(cps_card_factory, issuer), ORIGIN)
    assert len(parses) == 3


def test_returning_practitioner_still_signs_each_token(fresh_validator, cps_card_factory):
    issuer = ChallengeIssuer()
    verifier = Verifier(fresh_validator, issuer.store, [ORIGIN])
    verifier.verify(token_for(cps_card_factory, issuer), ORIGIN)
    forged = token_for(cps_card_factory, issuer)
    forged["signature"] = _flip(forged["signature"])
    with pytest.raises(errors.InvalidSignature):
        verifier.verify(forged, ORIGIN)
    # the same certificate with one byte changed is another certificate: checked in full
    altered = token_for(cps_card_factory, issuer)
    der = base64.b64decode(altered["certificate"])
    altered["certificate"] = b64(der.replace(b"810100123453", b"810100123461"))
    with pytest.raises(errors.CertificateInvalid) as info:
        verifier.verify(altered, ORIGIN)
    assert info.value.reason == "signature"


def test_returning_practitioner_revoked_since(fresh_validator, cps_pki, cps_card_factory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    issuer = ChallengeIssuer()
    verifier = Verifier(fresh_validator, issuer.store, [ORIGIN])
    verifier.verify(token_for(cps_card_factory, issuer), ORIGIN)
    creds = cps_pki.issue_card("cps3-medecin")
    ca = cps_pki.ca(creds.issuer)
    now = dt.datetime.now(dt.timezone.utc)
    crl = (x509.CertificateRevocationListBuilder()
           .issuer_name(ca.cert.subject)
           .last_update(now - dt.timedelta(minutes=1))
           .next_update(now + dt.timedelta(days=1))
           .add_extension(x509.CRLNumber(10 ** 12), critical=False)
           .add_revoked_certificate(x509.RevokedCertificateBuilder()
                                    .serial_number(creds.auth_cert.serial_number)
                                    .revocation_date(now - dt.timedelta(seconds=30)).build())
           .sign(ca.key, hashes.SHA256()))
    fresh_validator.add_crl(crl)
    with pytest.raises(errors.CertificateRevoked):
        verifier.verify(token_for(cps_card_factory, issuer), ORIGIN)


def test_returning_practitioner_expired_since(fresh_validator, cps_pki, cps_card_factory):
    issuer = ChallengeIssuer()
    verifier = Verifier(fresh_validator, issuer.store, [ORIGIN])
    verifier.verify(token_for(cps_card_factory, issuer), ORIGIN)
    not_after = cps_pki.issue_card("cps3-medecin").auth_cert.not_valid_after_utc
    with pytest.raises(errors.CertificateExpired):
        verifier.verify(token_for(cps_card_factory, issuer), ORIGIN,
                        at=not_after + dt.timedelta(days=1))


def test_known_certificates_are_bounded(fresh_validator, cps_card_factory):
    issuer = ChallengeIssuer()
    verifier = Verifier(fresh_validator, issuer.store, [ORIGIN], known_certificates=2)
    who = [verifier.verify(token_for(cps_card_factory, issuer, profile=p), ORIGIN).practitioner
           for p in ("cps3-medecin", "cps3-pharmacien", "cps3-adeli")]
    assert len({p.idnat for p in who}) == 3
    assert len(verifier._known) == 2  # noqa: SLF001 - the bound is the point of this test
    remembered = {v[1].idnat for v in verifier._known.values()}  # noqa: SLF001
    assert remembered == {who[1].idnat, who[2].idnat}  # the oldest went first
