"""cps.trust on the emulator's TEST IGC-Santé hierarchy: anchors, paths, revocation, purposes."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from cps import errors
from cps.card import KeyRole
from cps.trust import anchors as anchors_mod
from cps.trust.anchors import TrustStore
from cps.trust.validate import Validator

TEST_AUTH_POLICY = "1.2.250.1.213.1.7.2.1.1.1.1"


@pytest.fixture(scope="module")
def now(cps_pki):
    # Inside every valid certificate's life, whatever today's date.
    return cps_pki.reference_time + dt.timedelta(days=30)


@pytest.fixture(scope="module")
def store(cps_pki):
    return cps_pki.trust_store(name="TEST")


@pytest.fixture(scope="module")
def crls(cps_pki, now):
    return cps_pki.crls(now, deltas=True)


@pytest.fixture
def validator(store, crls):
    return Validator(store, crls=crls)


def card(cps_pki, name):
    return cps_pki.issue_card(name)


# ---------------------------------------------------------------- anchors
def test_igc_sante_store_is_pinned():
    store = TrustStore.igc_sante()
    assert len(store.anchors) == 3 and len(store.intermediates) == 6
    assert all(isinstance(a, x509.Certificate) for a in store.anchors)
    subjects = {a.subject.rfc4514_string() for a in store.anchors}
    assert any("AC RACINE IGC-SANTE FORT" in s for s in subjects)


def test_a_modified_anchor_is_refused(monkeypatch):
    pins = dict(anchors_mod.IGC_SANTE_PINS)
    pins["ACR_FORT_20130625.der"] = "00" * 32
    monkeypatch.setattr(anchors_mod, "IGC_SANTE_PINS", pins)
    with pytest.raises(anchors_mod.PinMismatch):
        TrustStore.igc_sante()


def test_test_cards_do_not_chain_to_production(cps_pki, now):
    with pytest.raises(errors.UntrustedCertificate) as info:
        Validator(TrustStore.igc_sante(), revocation="off").validate(
            card(cps_pki, "cps3-medecin").auth_cert, at=now)
    assert info.value.position == 0 and "810100123453" in info.value.subject


# ---------------------------------------------------------------- paths
def test_valid_authentication_certificate(validator, cps_pki, now):
    creds = card(cps_pki, "cps3-medecin")
    result = validator.validate(creds.auth_cert, at=now, purpose=KeyRole.AUTH)
    assert result.path == [creds.auth_cert, creds.chain[0], creds.chain[1]]
    assert result.anchor == creds.chain[1]
    assert TEST_AUTH_POLICY in result.policies
    assert [s.status for s in result.revocation] == ["good", "good", "not-checked"]
    assert result.revocation[0].next_update is not None
    assert result.validated_at == now and result.purpose is KeyRole.AUTH


def test_input_forms(validator, cps_pki, now):
    creds = card(cps_pki, "cps3-pharmacien")
    validator.validate(creds.auth_cert.public_bytes(Encoding.DER), at=now)
    with pytest.raises(errors.CertificateParseError):
        validator.validate(b"\x30\x03\x02\x01\x01", at=now)
    with pytest.raises(errors.CertificateParseError):
        validator.validate(b"not a certificate", at=now)


def test_intermediate_given_by_the_caller(cps_pki, crls, now):
    store = cps_pki.trust_store(intermediates=False)  # no intermediates known
    v = Validator(store, crls=crls)
    creds = card(cps_pki, "cps3-cpe")
    with pytest.raises(errors.UntrustedCertificate):
        v.validate(creds.auth_cert, at=now)
    assert len(v.validate(creds.auth_cert, intermediates=[creds.chain[0]], at=now).path) == 3


@pytest.mark.parametrize("role, cert_attr, ok", [
    (KeyRole.AUTH, "auth_cert", True), (KeyRole.SIGN, "sign_cert", True),
    (KeyRole.SIGN, "auth_cert", False), (KeyRole.AUTH, "sign_cert", False)])
def test_purpose(validator, cps_pki, now, role, cert_attr, ok):
    cert = getattr(card(cps_pki, "cps3-medecin"), cert_attr)
    if ok:
        validator.validate(cert, at=now, purpose=role)
    else:
        with pytest.raises(errors.CertificatePurposeError) as info:
            validator.validate(cert, at=now, purpose=role)
        assert info.value.purpose == role.value and info.value.position == 0


def test_expired_certificate(validator, cps_pki, now):
    with pytest.raises(errors.CertificateExpired) as info:
        validator.validate(card(cps_pki, "cps3-expired").auth_cert, at=now)
    e = info.value
    assert e.position == 0 and e.reason == "expired" and e.not_after < now


def test_not_yet_valid(validator, cps_pki, now):
    creds = card(cps_pki, "cps3-medecin")
    before = creds.auth_cert.not_valid_before_utc - dt.timedelta(days=1)
    with pytest.raises(errors.CertificateExpired) as info:
        Validator(validator.store, revocation="off").validate(creds.auth_cert, at=before)
    assert info.value.reason == "not-yet-valid"


# ---------------------------------------------------------------- revocation
def test_revoked_in_the_complete_crl(validator, cps_pki, now):
    with pytest.raises(errors.CertificateRevoked) as info:
        validator.validate(card(cps_pki, "cps3-revoked").auth_cert, at=now)
    e = info.value
    assert e.revocation_reason == "keyCompromise" and e.position == 0
    assert e.revocation_date < now


def test_revoked_in_the_delta_only(store, cps_pki):
    # The complete CRL dates from the delta's base (a day before the reference
    # time); the card was revoked 12 h before the reference time: only the
    # delta CRL issued after it knows.
    at = cps_pki.reference_time + dt.timedelta(hours=1)
    base = cps_pki.delta_base_time
    names = list(cps_pki.intermediates) + list(cps_pki.roots)
    completes = [cps_pki.crl(n, at=base, next_update=dt.timedelta(days=7)) for n in names]
    deltas = [cps_pki.crl(n, at=at, delta=True) for n in cps_pki.intermediates]
    cert = card(cps_pki, "cps3-revoked-recent").auth_cert
    with pytest.raises(errors.CertificateRevoked) as info:
        Validator(store, crls=completes + deltas).validate(cert, at=at)
    assert info.value.revocation_reason == "superseded"
    status = Validator(store, crls=completes + deltas, use_delta_crls=False).validate(cert, at=at)
    assert status.revocation[0].status == "good"


def test_revoked_after_the_validation_time_is_valid_then(store, crls, cps_pki, now):
    cert = card(cps_pki, "cps3-revoked-recent").auth_cert   # superseded, not a key compromise
    before = cps_pki.reference_time - dt.timedelta(days=2)
    v = Validator(store, crls=crls)
    # CRLs issued after the validation time are used: they list the revocation,
    # dated after that time, and a superseded key was good then.
    result = v.validate(cert, at=before)
    assert result.revocation[0].status == "good"
    with pytest.raises(errors.CertificateRevoked):
        v.validate(cert, at=now)


def test_key_compromise_is_retroactive(store, cps_pki, now):
    cert = card(cps_pki, "cps3-revoked").auth_cert
    crls = [cps_pki.crl(n, at=now, next_update=dt.timedelta(days=400))
            for n in list(cps_pki.intermediates) + list(cps_pki.roots)]
    v = Validator(store, crls=crls, clock_skew=dt.timedelta(days=400))
    with pytest.raises(errors.CertificateRevoked):
        v.validate(cert, at=now - dt.timedelta(days=60))


def test_hard_fail_without_crl(store, cps_pki, now):
    with pytest.raises(errors.RevocationUnavailable) as info:
        Validator(store).validate(card(cps_pki, "cps3-medecin").auth_cert, at=now)
    assert info.value.position in (0, 1)


def test_soft_fail_reports_unknown_but_refuses_revoked(store, crls, cps_pki, now):
    v = Validator(store, revocation="soft-fail")
    result = v.validate(card(cps_pki, "cps3-medecin").auth_cert, at=now)
    assert [s.status for s in result.revocation][:2] == ["unknown", "unknown"]
    v = Validator(store, crls=crls, revocation="soft-fail")
    with pytest.raises(errors.CertificateRevoked):
        v.validate(card(cps_pki, "cps3-revoked").auth_cert, at=now)


def test_revocation_off(store, cps_pki, now):
    result = Validator(store, revocation="off").validate(card(cps_pki, "cps3-revoked").auth_cert,
                                                         at=now)
    assert result.revocation[0].status == "not-checked"


def test_expired_crl_is_not_used(store, cps_pki, now):
    old = now - dt.timedelta(days=10)
    crls = cps_pki.crls(old)
    with pytest.raises(errors.RevocationUnavailable) as info:
        Validator(store, crls=crls).validate(card(cps_pki, "cps3-medecin").auth_cert, at=now)
    assert info.value.reason == "expired" and info.value.next_update is not None
    assert info.value.next_update < now


def test_crl_with_a_bad_signature_is_not_used(store, cps_pki, now):
    crls = []
    for n in list(cps_pki.intermediates) + list(cps_pki.roots):
        der = bytearray(cps_pki.crl(n, at=now))
        der[-5] ^= 0xFF   # inside the signature
        crls.append(bytes(der))
    with pytest.raises(errors.RevocationUnavailable) as info:
        Validator(store, crls=crls).validate(card(cps_pki, "cps3-revoked").auth_cert, at=now)
    assert "bad CRL signature" in str(info.value) and info.value.reason == "bad-signature"


def test_crl_of_another_ca_is_not_used(store, cps_pki, now):
    # A card of FORT PERSONNES with only the STANDARD PERSONNES CRL (plus root CRLs)
    crls = [cps_pki.crl("STANDARD PERSONNES", at=now)] + [cps_pki.crl(r, at=now)
                                                         for r in cps_pki.roots]
    with pytest.raises(errors.RevocationUnavailable) as info:
        Validator(store, crls=crls).validate(card(cps_pki, "cps3-revoked").auth_cert, at=now)
    assert info.value.position == 0


# ---------------------------------------------------------------- policies
def test_initial_policy_set(store, crls, cps_pki, now):
    cert = card(cps_pki, "cps3-medecin").auth_cert
    ok = Validator(store, crls=crls, initial_policies=[TEST_AUTH_POLICY], explicit_policy=True)
    assert ok.validate(cert, at=now).policies == {TEST_AUTH_POLICY}
    other = Validator(store, crls=crls, initial_policies=["1.2.3.4"], explicit_policy=True)
    with pytest.raises(errors.CertificatePolicyError):
        other.validate(cert, at=now)
    # without explicit policy the path stays valid, with an empty policy set
    assert Validator(store, crls=crls, initial_policies=["1.2.3.4"]).validate(
        cert, at=now).policies == frozenset()


def test_bad_mode():
    with pytest.raises(ValueError, match="sometimes"):
        Validator(TrustStore.igc_sante(), revocation="sometimes")


def test_revocation_status_subject_is_readable(validator, cps_pki, now):
    result = validator.validate(card(cps_pki, "cps3-medecin").auth_cert, at=now)
    assert "MARCHAND" in result.revocation[0].subject
