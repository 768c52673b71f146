"""Issue 13 item 1: path building does bounded work whatever helper certificates come.

n useless helper certificates sharing one subject (no key identifiers) used to be
tried in every order: 10 helpers took minutes. The work is counted here (issuers
considered, signatures checked), never timed; benchmarks/bench_paths.py times it.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from cps.errors import UntrustedCertificate, ValidationBudgetExceeded
from cps.trust import TrustStore, Validator
from cps.trust import validate as validate_module

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer: str, key, signer, serial: int, ca: bool = True):
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(NOW - dt.timedelta(days=1))
               .not_valid_after(NOW + dt.timedelta(days=9)))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def keys():
    # 1024-bit test keys: 65 of them must be generated quickly; their strength is irrelevant.
    return [rsa.generate_private_key(65537, 1024) for _ in range(65)]  # noqa: S505


@pytest.fixture(scope="module")
def root(keys):
    return _cert("root", "root", keys[64], keys[64], 1)


class CountingStore(TrustStore):
    """Counts the issuers path building asks for."""

    calls = 0

    def issuers_of(self, cert, extra=()):
        CountingStore.calls += 1
        return super().issuers_of(cert, extra)


@pytest.mark.parametrize("shared", [True, False], ids=["one-key", "distinct-keys"])
@pytest.mark.parametrize("n", [7, 16, 64])
def test_useless_helpers_cost_work_linear_in_their_number(keys, root, n, shared):
    helpers = [_cert("X", "X", keys[0 if shared else i], keys[0 if shared else i], 100 + i)
               for i in range(n)]
    leaf = _cert("leaf", "X", keys[0], keys[0], 5, ca=False)
    store = CountingStore.from_certificates([root])
    CountingStore.calls = 0
    with pytest.raises(UntrustedCertificate):
        Validator(store, revocation="off").validate(leaf, intermediates=helpers, at=NOW)
    # each distinct (subject, key) is walked from once: at most n + 1 look-ups
    assert CountingStore.calls <= (1 if shared else n) + 1


def test_an_exhausted_budget_is_a_typed_error(keys, root, monkeypatch):
    ca = _cert("ca", "root", keys[1], keys[64], 2)
    leaf = _cert("leaf", "ca", keys[2], keys[1], 3, ca=False)
    store = TrustStore.from_certificates([root])
    v = Validator(store, revocation="off")
    assert len(v.validate(leaf, intermediates=[ca], at=NOW).path) == 3
    monkeypatch.setattr(validate_module, "MAX_SIGNATURES", 1)
    with pytest.raises(ValidationBudgetExceeded) as info:
        Validator(store, revocation="off").validate(leaf, intermediates=[ca], at=NOW)
    assert info.value.reason == "budget"
    monkeypatch.setattr(validate_module, "MAX_SIGNATURES", 256)
    monkeypatch.setattr(validate_module, "MAX_EDGES", 0)
    with pytest.raises(ValidationBudgetExceeded):
        Validator(store, revocation="off").validate(leaf, intermediates=[ca], at=NOW)


def test_copies_of_a_helper_count_once(keys, root):
    """Helpers equal in subject and key are one candidate, whatever else differs."""
    ca = _cert("ca", "root", keys[1], keys[64], 2)
    copies = [_cert("ca", "root", keys[1], keys[64], 10 + i) for i in range(50)]
    leaf = _cert("leaf", "ca", keys[2], keys[1], 3, ca=False)
    store = CountingStore.from_certificates([root])
    result = Validator(store, revocation="off").validate(leaf, intermediates=copies + [ca],
                                                         at=NOW)
    assert len(result.path) == 3


def _ec_helpers(n: int, subject: str, issuer_prefix: str, signer):
    """n CA certificates named ``subject`` with distinct EC keys (quick to make)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    out = []
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        out.append(x509.CertificateBuilder().subject_name(_name(subject))
                   .issuer_name(_name(f"{issuer_prefix}{i}")).public_key(key.public_key())
                   .serial_number(1000 + i).not_valid_before(NOW - dt.timedelta(days=1))
                   .not_valid_after(NOW + dt.timedelta(days=9))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                  critical=True)
                   .sign(signer, hashes.SHA256()))
    return out


def test_name_comparisons_with_many_helpers_count_in_the_budget(keys, root):
    """Helpers with one subject and distinct issuers: each lookup compares every
    helper's name (second review): the budget ends it instead of n^2 work."""
    leaf = _cert("leaf", "X", keys[0], keys[0], 5, ca=False)
    helpers = _ec_helpers(200, "X", "Y", keys[1])
    with pytest.raises(ValidationBudgetExceeded):
        Validator(TrustStore.from_certificates([root]), revocation="off").validate(
            leaf, intermediates=helpers, at=NOW)


def test_crl_signer_candidates_count_in_the_budget(keys, root):
    """A CRL the path's CA did not sign, and hundreds of helpers named like its issuer:
    each signature tried counts (second review)."""
    ca = _cert("ca", "root", keys[1], keys[64], 2)
    leaf = _cert("leaf", "ca", keys[2], keys[1], 3, ca=False)

    def crl(issuer, key):
        return (x509.CertificateRevocationListBuilder().issuer_name(_name(issuer))
                .last_update(NOW - dt.timedelta(hours=1)).next_update(NOW + dt.timedelta(days=1))
                .sign(key, hashes.SHA256()))

    crls = [crl("root", keys[64]), crl("ca", keys[3])]   # "ca"'s CRL, signed by another key
    helpers = _ec_helpers(300, "ca", "nobody", keys[4])
    with pytest.raises(ValidationBudgetExceeded):
        Validator(TrustStore.from_certificates([root]), crls=crls, revocation="soft-fail"
                  ).validate(leaf, intermediates=[ca] + helpers, at=NOW)
