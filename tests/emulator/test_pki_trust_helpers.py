"""TestPKI's ready-made trust objects: trust_store(), crls(), validator(), verifier()."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

import cps
from cps import errors
from cps.auth import ChallengeIssuer, MemoryNonceStore, Verifier
from cps.trust import TrustStore, Validator
from cps.trust.crlindex import CrlIndex

ORIGIN = "https://app.test"


def _der(cert):
    return cert.public_bytes(Encoding.DER)


def test_trust_store_is_the_boilerplate(cps_pki):
    store = cps_pki.trust_store()
    by_hand = TrustStore.from_certificates(cps_pki.anchors(), cps_pki.intermediates.values())
    assert [_der(a) for a in store.anchors] == [_der(a) for a in by_hand.anchors]
    assert [c.der for c in store.intermediates] == [c.der for c in by_hand.intermediates]
    assert store.name == "TEST PKI" and cps_pki.trust_store(name="x").name == "x"
    roots_only = cps_pki.trust_store(intermediates=False)
    assert len(roots_only.anchors) == 3 and roots_only.intermediates == []


def test_crls_are_every_cas_complete_crl(cps_pki):
    at = cps_pki.reference_time
    crls = cps_pki.crls(at)
    names = list(cps_pki.intermediates) + list(cps_pki.roots)
    assert crls == [cps_pki.crl(n, at) for n in names]
    with_deltas = cps_pki.crls(at, deltas=True)
    assert with_deltas[:len(names)] == crls
    assert with_deltas[len(names):] == [cps_pki.crl(n, at, delta=True)
                                        for n in cps_pki.intermediates]
    assert [CrlIndex.load(d).is_delta for d in with_deltas].count(True) == 6


def test_crls_share_one_issue_time_and_options(cps_pki):
    crls = [x509.load_der_x509_crl(d) for d in cps_pki.crls(deltas=True,
                                                           next_update=dt.timedelta(days=7))]
    assert len({c.last_update_utc for c in crls}) == 1
    assert {c.next_update_utc - c.last_update_utc for c in crls} == {dt.timedelta(days=7)}
    base = cps_pki.reference_time - dt.timedelta(days=2)
    at = cps_pki.reference_time
    assert cps_pki.crls(at, deltas=True, base=base)[-1] == \
        cps_pki.crl(list(cps_pki.intermediates)[-1], at, delta=True, base=base)
    with pytest.raises(ValueError, match="deltas=True"):
        cps_pki.crls(at, base=base)


def test_validator_validates_the_pkis_cards(cps_pki):
    v = cps_pki.validator()
    assert isinstance(v, Validator) and v.revocation == "hard-fail"
    result = v.validate(cps_pki.issue_card("cps3-medecin").auth_cert,
                        purpose=cps.KeyRole.AUTH)
    assert [s.status for s in result.revocation] == ["good", "good", "not-checked"]
    with pytest.raises(errors.CertificateRevoked):
        v.validate(cps_pki.issue_card("cps3-revoked").auth_cert)


def test_validator_passes_its_arguments_on(cps_pki):
    off = cps_pki.validator(revocation="off", allow_sha1=False)
    assert off.revocation == "off" and off.allow_sha1 is False
    mine = cps_pki.trust_store(intermediates=False)
    assert cps_pki.validator(store=mine, crls=[]).store is mine


def test_verifier_accepts_the_pkis_cards(cps_pki, cps_card_factory):
    verifier = cps_pki.verifier(ORIGIN)
    assert isinstance(verifier, Verifier) and isinstance(verifier.store, MemoryNonceStore)
    issuer = ChallengeIssuer(verifier.store)
    emu = cps_card_factory("cps3-medecin")
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        token = card.auth_token(issuer.issue().nonce, ORIGIN)
        other = card.auth_token(issuer.issue().nonce, "https://elsewhere.test")
    assert verifier.verify(token, origin=ORIGIN).practitioner.validated
    with pytest.raises(errors.OriginNotAllowed):
        verifier.verify(other, origin="https://elsewhere.test")


def test_verifier_uses_the_issuer_given(cps_pki):
    issuer = ChallengeIssuer(issuer_id="login")
    validator = cps_pki.validator(revocation="off")
    verifier = cps_pki.verifier([ORIGIN, "https://b.test"], issuer=issuer, validator=validator,
                                known_certificates=0)
    assert verifier.store is issuer.store and verifier.issuer_id == "login"
    assert verifier.validator is validator and verifier.known_certificates == 0
    assert verifier.allowed_origins == {ORIGIN, "https://b.test"}
