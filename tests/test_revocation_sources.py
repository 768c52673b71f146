"""Issue 13 item 4: revocation failures carry the reason they had where they
happened; OCSP answers the caller holds (stapled, from a file) and locally
trusted responders; an OCSP answer failing verification is a failure in soft-fail."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cps.errors import CertificateRevoked, RevocationUnavailable
from cps.testing.forge import forged_crl
from cps.trust import Validator
from cps.trust.ocsp import build_request


@pytest.fixture
def env(cps_pki):
    store = cps_pki.trust_store()
    card = cps_pki.issue_card("cps3-medecin")
    root = cps_pki.ca(cps_pki.ca(card.issuer).parent)
    now = dt.datetime.now(dt.timezone.utc)
    root_crl = cps_pki.crl(root.name, now - dt.timedelta(hours=1))
    return cps_pki, store, card, root_crl, now


def _answer(pki, card, at, revoked=False):
    if revoked:
        card = pki.issue_card("cps3-revoked")
    return pki.ocsp_response(build_request(card.auth_cert, card.chain[0], nonce=None), at=at)


def test_the_reason_is_where_the_failure_happened_not_in_the_words(env):
    """A source named "expired.crl" whose signature is bad: reason bad-signature."""
    pki, store, card, root_crl, now = env
    forged = forged_crl(pki, card.issuer, now - dt.timedelta(hours=1))
    v = Validator(store, crls=[root_crl])
    v.add_crl(forged, source="http://expired.example/expired.crl")
    with pytest.raises(RevocationUnavailable) as info:
        v.validate(card.auth_cert)
    assert info.value.reason == "bad-signature", info.value


def test_ocsp_answers_the_caller_holds_are_used(env):
    pki, store, card, root_crl, now = env
    good = _answer(pki, card, now - dt.timedelta(minutes=5))
    v = Validator(store, crls=[root_crl], ocsp_responses=[good])
    result = v.validate(card.auth_cert)
    assert result.revocation[0].status == "good"
    assert result.revocation[0].source.startswith("OCSP")
    revoked = pki.issue_card("cps3-revoked")
    v.add_ocsp_response(_answer(pki, card, now - dt.timedelta(minutes=5), revoked=True))
    with pytest.raises(CertificateRevoked):
        v.validate(revoked.auth_cert)
    # an answer about another certificate says nothing about this one
    lone = Validator(store, crls=[root_crl], ocsp_responses=[good])
    with pytest.raises(RevocationUnavailable):
        lone.validate(revoked.auth_cert)


@pytest.mark.parametrize("mode", ["hard-fail", "soft-fail"])
def test_an_answer_failing_verification_is_a_failure_in_every_mode(env, mode):
    pki, store, card, root_crl, now = env
    old = _answer(pki, card, now - dt.timedelta(days=30))   # replayed: past max_age
    v = Validator(store, crls=[root_crl], ocsp_responses=[old], revocation=mode)
    with pytest.raises(RevocationUnavailable) as info:
        v.validate(card.auth_cert)
    assert info.value.reason == "stale"


def test_a_locally_trusted_responder(env):
    """RFC 6960 4.2.2.2: a responder the relying party trusts, not certified by the CA."""
    pki, store, card, root_crl, now = env
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local OCSP")])
    responder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                 .public_key(key.public_key()).serial_number(7)
                 .not_valid_before(now - dt.timedelta(days=1))
                 .not_valid_after(now + dt.timedelta(days=30))
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]),
                                critical=False)
                 .sign(key, hashes.SHA256()))
    answer = (ocsp.OCSPResponseBuilder()
              .add_response(cert=card.auth_cert, issuer=card.chain[0], algorithm=hashes.SHA1(),
                            cert_status=ocsp.OCSPCertStatus.GOOD,
                            this_update=now - dt.timedelta(minutes=5),
                            next_update=now + dt.timedelta(hours=1),
                            revocation_time=None, revocation_reason=None)
              .responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
              .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    with pytest.raises(RevocationUnavailable) as info:
        Validator(store, crls=[root_crl], ocsp_responses=[answer],
                  revocation="soft-fail").validate(card.auth_cert)
    assert info.value.reason == "unauthorized-responder"
    trusted = Validator(store, crls=[root_crl], ocsp_responses=[answer],
                        trusted_responders=[responder])
    assert trusted.validate(card.auth_cert).revocation[0].status == "good"
