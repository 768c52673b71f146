"""Errors a person can act on (issue 15, item 5).

* a caller's mistake (naive datetime, unknown mode, wrong type) is a
  ``TypeError``/``ValueError``, never a ``CpsError``;
* no bare ``CpsError`` is raised: each failure has its own subclass;
* an error about a certificate names it (position in the path, subject);
* ``AuthResult`` and ``ValidationResult`` have one-line reprs without DER;
* ``TrustStore.anchors`` gives cryptography certificates;
* messages name this project's distribution, ``cps-middleware``.
"""

from __future__ import annotations

import ast
import datetime as dt
import socket
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

import cps
from cps import errors
from cps.auth import ChallengeIssuer, MemoryNonceStore, RedisNonceStore
from cps.trust import TrustStore, Validator
from cps.trust import certs as certs_mod

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def now(cps_pki):
    return cps_pki.reference_time + dt.timedelta(days=30)


@pytest.fixture(scope="module")
def medecin(cps_pki):
    return cps_pki.issue_card("cps3-medecin")


@pytest.fixture(scope="module")
def validator(cps_pki, now):
    return cps_pki.validator(now)


def _token(cps_card_factory, issuer, origin=ORIGIN):
    emu = cps_card_factory("cps3-medecin")
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        return card.auth_token(issuer.issue().nonce, origin)


# ---------------------------------------------------------------- caller mistakes
def test_a_naive_validation_time_is_a_type_error(validator, medecin):
    with pytest.raises(TypeError, match="naive") as info:
        validator.validate(medecin.auth_cert, at=dt.datetime(2026, 3, 1))
    assert not isinstance(info.value, errors.CpsError)
    with pytest.raises(TypeError, match="naive"):
        certs_mod.time_key(dt.datetime(2026, 3, 1))


def test_a_clock_giving_naive_times_is_a_type_error(cps_pki, medecin):
    naive = Validator(cps_pki.trust_store(), revocation="off",
                      clock=lambda: dt.datetime(2026, 3, 1))
    with pytest.raises(TypeError, match="naive"):
        naive.validate(medecin.auth_cert)
    with pytest.raises(TypeError, match="naive"):
        ChallengeIssuer(clock=lambda: dt.datetime(2026, 3, 1)).issue()


def test_a_verifier_clock_giving_naive_times_is_a_type_error(cps_pki, cps_card_factory):
    issuer = ChallengeIssuer()
    verifier = cps_pki.verifier(ORIGIN, issuer=issuer, clock=lambda: dt.datetime(2026, 3, 1))
    token = _token(cps_card_factory, issuer)
    with pytest.raises(TypeError, match="naive"):
        verifier.verify(token, origin=ORIGIN)


def test_an_unknown_revocation_mode_is_a_value_error(cps_pki):
    with pytest.raises(ValueError, match="'hard-fail', 'soft-fail', 'off'.*'hardfail'") as info:
        Validator(cps_pki.trust_store(), revocation="hardfail")
    assert not isinstance(info.value, errors.CpsError)


@pytest.mark.parametrize("wrong", [42, "-----BEGIN CERTIFICATE-----", None])
def test_a_certificate_of_the_wrong_type_is_a_type_error(validator, wrong):
    with pytest.raises(TypeError, match="DER bytes or a cryptography x509.Certificate"):
        validator.validate(wrong)
    with pytest.raises(TypeError):
        TrustStore.from_certificates([wrong])


def test_garbage_bytes_stay_a_certificate_parse_error(validator):
    # untrusted input is not a caller's mistake: the domain error stays
    with pytest.raises(errors.CertificateParseError):
        validator.validate(b"not a certificate")


def test_a_crl_of_the_wrong_type_is_a_type_error(cps_pki):
    v = Validator(cps_pki.trust_store(), revocation="off")
    for call in (v.add_crl, v.verify_crl):
        with pytest.raises(TypeError, match="a CRL must be"):
            call(["not", "a", "CRL"])


def test_an_empty_trust_store_is_a_value_error():
    with pytest.raises(ValueError, match="at least one anchor"):
        TrustStore([])


def test_nonce_keys_are_checked_as_arguments():
    with pytest.raises(TypeError, match="bytes"):
        MemoryNonceStore(key="a string key of 32 characters...")
    with pytest.raises(ValueError, match="at least 16 bytes, not 3"):
        MemoryNonceStore(key=b"abc")
    store = MemoryNonceStore(key=b"k" * 32)
    with pytest.raises(ValueError, match="another key"):
        store.use_key(b"x" * 32)


def test_a_store_without_a_key_refuses_one():
    class Legacy:  # a store written for the former API: no use_key
        def put(self, *args):
            pass

    with pytest.raises(TypeError, match="Legacy does not take a key"):
        ChallengeIssuer(Legacy(), key=b"k" * 32)


def test_signing_helpers_take_bytes_or_certificates(medecin):
    from cps.sign import verify_pkcs1

    with pytest.raises(TypeError, match="DER or PEM bytes"):
        verify_pkcs1("-----BEGIN CERTIFICATE-----...", b"\x00" * 256, b"data")
    with pytest.raises(errors.CertificateParseError):  # bytes that do not decode: parse error
        verify_pkcs1(b"garbage", b"\x00" * 256, b"data")


# ---------------------------------------------------------------- specific classes
_PENDING = {  # raise sites outside this change's files, still to convert
    "cps/info.py", "cps/trust/files.py",
}


def _bare_cps_error_raises(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            func = node.exc.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "CpsError":
                yield node.lineno


def test_no_bare_cps_error_is_raised():
    found = {}
    for path in sorted([*(ROOT / "cps").rglob("*.py"), *(ROOT / "cps_cli").rglob("*.py")]):
        lines = list(_bare_cps_error_raises(path))
        if lines:
            found[path.relative_to(ROOT).as_posix()] = lines
    assert set(found) <= _PENDING, found
    for module in ("cps/trust/validate.py", "cps/trust/anchors.py", "cps/auth", "cps/sign.py"):
        assert not [f for f in found if f.startswith(module)], found


def test_an_unreachable_redis_is_nonce_store_unavailable():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = RedisNonceStore(f"redis://127.0.0.1:{port}/0", key=b"k" * 32)
    nonce = ChallengeIssuer(store).issue().nonce
    with pytest.raises(errors.NonceStoreUnavailable) as info:
        store.take(nonce, "default", 0)
    assert isinstance(info.value, errors.AuthError)
    assert info.value.reason == "nonce-store-unavailable"
    assert info.value.store == "RedisNonceStore"


def test_a_missing_redis_names_this_distribution(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # "not installed"
    with pytest.raises(errors.MissingExtra) as info:
        RedisNonceStore("redis://127.0.0.1:6379/0")
    assert "cps-middleware[redis]" in str(info.value) and info.value.extra == "redis"


def test_messages_name_the_distribution_cps_middleware():
    offending = []
    for path in sorted([*(ROOT / "cps").rglob("*.py"), *(ROOT / "cps_cli").rglob("*.py")]):
        text = path.read_text(encoding="utf-8")
        for bad in ("pip install cps[", "pip install cps ", "pip install 'cps[",
                    'pip install "cps['):
            if bad in text:
                offending.append((path.relative_to(ROOT).as_posix(), bad))
    assert not offending


# ---------------------------------------------------------------- certificate named
def test_an_expired_leaf_is_named(validator, medecin):
    late = medecin.auth_cert.not_valid_after_utc + dt.timedelta(days=1)
    with pytest.raises(errors.CertificateExpired) as info:
        validator.validate(medecin.auth_cert, at=late)
    message = str(info.value)
    assert info.value.position == 0
    assert "leaf, path position 0" in message and "810100123453" in message
    assert info.value.subject in message


def test_an_intermediate_without_revocation_information_is_named(cps_pki, medecin, now):
    # only the leaf's CRL: the intermediate (position 1) has no status
    v = Validator(cps_pki.trust_store(), crls=[cps_pki.crl(medecin.issuer, now)])
    with pytest.raises(errors.RevocationUnavailable) as info:
        v.validate(medecin.auth_cert, at=now)
    assert info.value.position == 1
    assert "TEST AC IGC-SANTE FORT PERSONNES" in info.value.subject
    assert "[path position 1: " in str(info.value)
    assert info.value.subject in str(info.value)


def test_an_untrusted_leaf_is_named(cps_pki, medecin, now):
    other = TrustStore.from_certificates([cps_pki.ca("STANDARD").cert])
    with pytest.raises(errors.UntrustedCertificate) as info:
        Validator(other, revocation="off").validate(medecin.auth_cert, at=now)
    assert "leaf, path position 0" in str(info.value) and "810100123453" in str(info.value)


def test_a_wrong_purpose_is_named(validator, medecin, now):
    with pytest.raises(errors.CertificatePurposeError) as info:
        validator.validate(medecin.sign_cert, at=now, purpose=cps.KeyRole.AUTH)
    assert "leaf, path position 0" in str(info.value)
    assert info.value.subject in str(info.value)


# ---------------------------------------------------------------- reprs
def _one_line_without_der(text: str) -> None:
    assert "\n" not in text
    assert "b'" not in text and 'b"' not in text and "\\x" not in text
    assert len(text) < 800, len(text)


def test_validation_result_repr_is_one_line(validator, medecin, now):
    result = validator.validate(medecin.auth_cert, at=now, purpose=cps.KeyRole.AUTH)
    text = repr(result)
    _one_line_without_der(text)
    assert text.startswith("ValidationResult(") and "MARCHAND" in text
    assert "TEST AC RACINE IGC-SANTE FORT" in text and "good/good/not-checked" in text
    assert "'auth'" in text and now.isoformat() in text


def test_auth_result_repr_is_one_line(cps_pki, cps_card_factory):
    issuer = ChallengeIssuer()
    verifier = cps_pki.verifier(ORIGIN, issuer=issuer)
    result = verifier.verify(_token(cps_card_factory, issuer), origin=ORIGIN)
    text = repr(result)
    _one_line_without_der(text)
    assert text.startswith("AuthResult(idnat='810100123453'") and "card_type='CPS'" in text
    assert result.certificate_der  # the data is still there, only not in the repr


# ---------------------------------------------------------------- anchors
def test_trust_store_anchors_are_cryptography_certificates(cps_pki):
    store = cps_pki.trust_store()
    assert all(isinstance(a, x509.Certificate) for a in store.anchors)
    assert [a.public_bytes(Encoding.DER) for a in store.anchors] == \
        [a.public_bytes(Encoding.DER) for a in cps_pki.anchors()]
    store.anchors.clear()  # a copy: the store keeps its anchors
    assert len(store.anchors) == 3
    production = TrustStore.igc_sante()
    assert len(production.anchors) == 3
    assert all("AC RACINE IGC-SANTE" in a.subject.rfc4514_string() for a in production.anchors)
    # a store rebuilt from its own anchors works
    again = TrustStore.from_certificates(store.anchors, cps_pki.intermediates.values())
    assert repr(again).endswith("3 anchors, 6 intermediates)")


def test_errors_are_documented_and_exported():
    for name in ("NonceStoreUnavailable", "MissingExtra"):
        assert name in errors.__all__ and getattr(errors, name).__doc__
    assert issubclass(errors.NonceStoreUnavailable, errors.AuthError)
