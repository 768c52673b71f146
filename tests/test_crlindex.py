"""cps.trust.crlindex: parity with cryptography, lookups, signatures, robustness.

Small CRLs only (TestPKI's, crlgen's with a few thousand entries, builder-made
ones): the million-entry figures belong to benchmarks/bench_crl.py.
"""

from __future__ import annotations

import contextlib
import os
import random
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.crlgen import make_crl
from cps.emulator import TestPKI
from cps.errors import CrlError
from cps.trust.crlindex import CrlIndex, IssuingDistributionPoint, RevokedEntry

DER = serialization.Encoding.DER
T0 = datetime(2026, 3, 1, 7, 0, tzinfo=timezone.utc)
# CPS_FUZZ_EXAMPLES=20000 for a deeper run than the default quick one.
FUZZ = settings(max_examples=int(os.environ.get("CPS_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> TestPKI:
    return TestPKI.generate(tmp_path_factory.mktemp("pki"), seed=1)


@pytest.fixture(scope="module")
def ca(pki):
    return pki.ca("FORT PERSONNES")


@pytest.fixture(scope="module")
def big_der(ca) -> bytes:
    """A crlgen CRL of 3000 entries (both 16- and 17-octet serials, a reason on 1 in 3)."""
    return make_crl(3000, ca.cert, ca.key, reasons_every=3, crl_number=42, seed=7)


@pytest.fixture(scope="module")
def small_der(ca) -> bytes:
    return make_crl(40, ca.cert, ca.key, reasons_every=2, crl_number=3, seed=3)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(ca, this_update: datetime = T0, next_update: datetime | None = None):
    builder = x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject) \
        .last_update(this_update)
    return builder.next_update(next_update or this_update + timedelta(days=1))


def _entry(serial: int, when: datetime = T0 - timedelta(days=3), *extensions):
    builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    return builder.build()


def _reason(entry: x509.RevokedCertificate):
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
    except x509.ExtensionNotFound:
        return None


def _assert_parity(idx: CrlIndex, crl: x509.CertificateRevocationList) -> None:
    """Every field of the index equals cryptography's view of the same CRL."""
    assert idx.issuer == crl.issuer
    assert idx.issuer_der == crl.issuer.public_bytes()
    assert idx.this_update == crl.last_update_utc
    assert idx.next_update == crl.next_update_utc
    assert bytes(idx.tbs_bytes) == crl.tbs_certlist_bytes
    assert idx.signature == crl.signature
    assert idx.signature_algorithm_oid == crl.signature_algorithm_oid.dotted_string
    assert len(idx) == idx.entry_count == len(crl)
    exts = crl.extensions
    for cls, attr, get in (
        (x509.CRLNumber, "crl_number", lambda v: v.crl_number),
        (x509.DeltaCRLIndicator, "base_crl_number", lambda v: v.crl_number),
        (x509.AuthorityKeyIdentifier, "authority_key_identifier", lambda v: v.key_identifier),
    ):
        try:
            expected = get(exts.get_extension_for_class(cls).value)
        except x509.ExtensionNotFound:
            expected = None
        assert getattr(idx, attr) == expected, attr
    assert idx.is_delta == (idx.base_crl_number is not None)
    try:
        fresh = exts.get_extension_for_class(x509.FreshestCRL).value
        urls = [n.value for dp in fresh for n in (dp.full_name or [])
                if isinstance(n, x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        urls = []
    assert idx.freshest_crl_urls == urls
    assert set(idx.extensions) == {e.oid.dotted_string for e in exts}
    ours = list(idx.iter_entries())
    assert [e.serial for e in ours] == [r.serial_number for r in crl]
    for mine, theirs in zip(ours, crl, strict=True):
        assert mine.revocation_date == theirs.revocation_date_utc
        assert mine.reason == _reason(theirs)
        assert idx.lookup(theirs.serial_number) == mine


# --------------------------------------------------------------------------- parity
@pytest.mark.parametrize("delta", [False, True], ids=["complete", "delta"])
def test_parity_with_cryptography_on_testpki_crls(pki, ca, delta):
    der = pki.crl("FORT PERSONNES", delta=delta)
    crl = x509.load_der_x509_crl(der)
    idx = CrlIndex.load(der, source="test")
    _assert_parity(idx, crl)
    assert idx.version == 2
    assert idx.is_delta is delta
    assert idx.unknown_critical_extensions == []
    assert idx.has_indirect_entries is False
    assert idx.issuing_distribution_point is None
    assert len(idx) > 0
    if delta:
        assert idx.base_crl_number is not None and idx.freshest_crl_urls == []
    else:
        assert idx.freshest_crl_urls == [ca.delta_crl_url]
    assert idx.verify_signature(ca.cert.public_key()) is True


def test_parity_on_crlgen_crl(ca, big_der):
    crl = x509.load_der_x509_crl(big_der)
    assert crl.is_signature_valid(ca.cert.public_key())
    idx = CrlIndex.load(big_der)
    _assert_parity(idx, crl)
    assert idx.crl_number == 42
    assert {len(hex(e.serial)) for e in idx.iter_entries()} >= {34}  # 16-octet serials


def test_from_crypto_and_bytes_like_inputs(big_der):
    crl = x509.load_der_x509_crl(big_der)
    for idx in (CrlIndex.from_crypto(crl, source="x"), CrlIndex.load(bytearray(big_der)),
                CrlIndex.load(memoryview(big_der))):
        assert len(idx) == 3000 and bytes(idx.tbs_bytes) == crl.tbs_certlist_bytes
    assert CrlIndex.from_crypto(crl, source="x").source == "x"


# --------------------------------------------------------------------------- lookups
def test_lookup_every_serial_hits_and_neighbours_miss(big_der):
    crl = x509.load_der_x509_crl(big_der)
    idx = CrlIndex.load(big_der)
    revoked = {r.serial_number: r for r in crl}
    assert len(revoked) == 3000
    for serial, entry in revoked.items():
        hit = idx.lookup(serial)
        assert isinstance(hit, RevokedEntry)
        assert hit.serial == serial
        assert hit.revocation_date == entry.revocation_date_utc
        assert hit.reason == _reason(entry)
        assert hit.invalidity_date is None and hit.certificate_issuer is None
        assert serial in idx
        for other in (serial + 1, serial - 1, serial ^ (1 << 64), -serial):
            if other not in revoked:
                assert idx.lookup(other) is None
                assert other not in idx
    rng = random.Random(5)
    for _ in range(3000):
        serial = rng.getrandbits(rng.choice((8, 64, 127, 128, 159)))
        assert (serial in idx) == (serial in revoked)
    assert idx.lookup(0) is None and "x" not in idx and 1.5 not in idx


def test_lookup_serial_edge_values(ca):
    serials = [1, 127, 128, 255, 256, 2**63, 2**64 - 1, 2**159 - 1]
    builder = _builder(ca)
    for s in serials:
        builder = builder.add_revoked_certificate(_entry(s))
    idx = CrlIndex.load(builder.sign(ca.key, hashes.SHA256()).public_bytes(DER))
    for s in serials:
        assert idx.lookup(s).serial == s
    for s in (0, 2, 126, 129, 254, 257, 2**63 - 1, 2**64, 2**159):
        assert idx.lookup(s) is None


def test_negative_serial_from_handmade_der(ca):
    """cryptography refuses to build negative serials, but old CAs issued them."""
    entries = [_der_entry(s) for s in (-1, -128, -129, 5)]
    idx = CrlIndex.load(_handmade_crl(ca, b"".join(entries)))
    for s in (-1, -128, -129, 5):
        assert idx.lookup(s).serial == s
    assert idx.lookup(255) is None and idx.lookup(-255) is None and idx.lookup(1) is None


def test_duplicate_serials_lookup_all_and_cap(ca):
    entries = [_der_entry(77, day) for day in (1, 2, 3)] + [_der_entry(78)]
    idx = CrlIndex.load(_handmade_crl(ca, b"".join(entries)))
    assert len(idx) == 4
    assert [e.revocation_date.day for e in idx.lookup_all(77)] == [1, 2, 3]
    assert idx.lookup(77).serial == 77 and idx.lookup_all(79) == []
    # Thousands of copies of one serial would make probing quadratic: refused.
    with pytest.raises(CrlError) as info:
        CrlIndex.load(_handmade_crl(ca, _der_entry(77) * 5000))
    assert info.value.reason == "malformed"


def test_gen_crl_loads_in_cryptography_and_verifies(ca):
    for n, every in ((0, 3), (1, 1), (1000, 3), (500, 0)):
        der = make_crl(n, ca.cert, ca.key, reasons_every=every, crl_number=n + 1,
                       next_update=None if n == 1 else timedelta(hours=6))
        crl = x509.load_der_x509_crl(der)
        assert len(crl) == n and crl.is_signature_valid(ca.cert.public_key())
        assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == n + 1
        idx = CrlIndex.load(der)
        _assert_parity(idx, crl)
        assert idx.verify_signature(ca.cert.public_key())
    assert make_crl(10, ca.cert, ca.key, seed=9) == make_crl(10, ca.cert, ca.key, seed=9)


# --------------------------------------------------------------------------- signatures
def test_signature_tampered_or_wrong_key(pki, ca, big_der):
    idx = CrlIndex.load(big_der)
    assert idx.verify_signature(ca.cert.public_key()) is True
    assert idx.verify_signature(pki.ca("FORT").cert.public_key()) is False
    assert idx.verify_signature(ec.generate_private_key(ec.SECP256R1()).public_key()) is False
    tampered = bytearray(big_der)
    entry = big_der.index(b"\x30", len(big_der) // 2)
    tampered[entry + 10] ^= 0x01  # inside a serial or a date: still well-formed
    try:
        bad = CrlIndex.load(bytes(tampered))
    except CrlError:  # landed on a date digit; flip a signature byte instead
        tampered = bytearray(big_der)
        tampered[-5] ^= 0x01
        bad = CrlIndex.load(bytes(tampered))
    assert bad.verify_signature(ca.cert.public_key()) is False
    sig = bytearray(big_der)
    sig[-1] ^= 0x80
    assert CrlIndex.load(bytes(sig)).verify_signature(ca.cert.public_key()) is False


def test_sha1_rsa_signature(ca):
    """cryptography no longer signs with SHA-1, but old CRLs may still be signed so."""
    der = _handmade_crl(ca, _der_entry(3), alg=bytes.fromhex("300d06092a864886f70d0101050500"),
                        hash_algorithm=hashes.SHA1())
    idx = CrlIndex.load(der)
    assert idx.signature_algorithm_oid == "1.2.840.113549.1.1.5"
    assert idx.verify_signature(ca.cert.public_key()) is True
    # (cryptography 50's is_signature_valid answers False for SHA-1: a policy, not a parse.)
    tampered = der[:-3] + bytes([der[-3] ^ 1]) + der[-2:]
    assert CrlIndex.load(tampered).verify_signature(ca.cert.public_key()) is False


@pytest.mark.parametrize("kind", ["sha224", "sha384", "sha512", "pss", "ecdsa", "ed25519"])
def test_signature_algorithms(ca, kind):
    if kind == "ecdsa":
        key = ec.generate_private_key(ec.SECP384R1())
        crl = _builder(ca).sign(key, hashes.SHA384())
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        crl = _builder(ca).sign(key, None)
    elif kind == "pss":
        key = ca.key
        crl = _builder(ca).sign(key, hashes.SHA256(), rsa_padding=padding.PSS(
            padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH))
    else:
        key = ca.key
        crl = _builder(ca).sign(key, {"sha224": hashes.SHA224(), "sha384": hashes.SHA384(),
                                      "sha512": hashes.SHA512()}[kind])
    idx = CrlIndex.load(crl.public_bytes(DER))
    assert idx.signature_algorithm_oid == crl.signature_algorithm_oid.dotted_string
    assert idx.verify_signature(key.public_key()) is True
    same_kind = {"ecdsa": lambda: ec.generate_private_key(ec.SECP384R1()),
                 "ed25519": ed25519.Ed25519PrivateKey.generate}.get(
        kind, lambda: rsa.generate_private_key(65537, 2048))()
    assert idx.verify_signature(same_kind.public_key()) is False
    assert idx.verify_signature(_FUZZ_KEY if kind != "ecdsa" else ca.cert.public_key()) is False


def test_unsupported_signature_algorithm(ca, small_der):
    # sha256WithRSAEncryption -> 1.2.840.113549.1.1.99, in both AlgorithmIdentifiers
    sha256_rsa = bytes.fromhex("06092a864886f70d01010b")
    assert small_der.count(sha256_rsa) == 2
    der = small_der.replace(sha256_rsa, sha256_rsa[:-1] + b"\x63")
    idx = CrlIndex.load(der, source="odd")
    with pytest.raises(CrlError) as info:
        idx.verify_signature(ca.cert.public_key())
    assert info.value.reason == "unsupported-algorithm" and info.value.source == "odd"


def test_algorithm_mismatch_between_tbs_and_outer_is_refused(small_der):
    sha256_rsa = bytes.fromhex("06092a864886f70d01010b")
    first = small_der.index(sha256_rsa)
    der = small_der[:first] + sha256_rsa[:-1] + b"\x0c" + small_der[first + len(sha256_rsa):]
    with pytest.raises(CrlError) as info:
        CrlIndex.load(der)
    assert info.value.reason == "malformed"


# --------------------------------------------------------------------------- extensions
def test_issuing_distribution_point(ca):
    idp = x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier("http://crl.example/a.crl"),
                   x509.DNSName("crl.example"),
                   x509.UniformResourceIdentifier("ldap://ldap.example/cn=a")],
        relative_name=None, only_contains_user_certs=True, only_contains_ca_certs=False,
        only_some_reasons=frozenset({x509.ReasonFlags.key_compromise,
                                     x509.ReasonFlags.aa_compromise}),
        indirect_crl=False, only_contains_attribute_certs=False)
    crl = _builder(ca).add_extension(idp, critical=True).sign(ca.key, hashes.SHA256())
    idx = CrlIndex.load(crl.public_bytes(DER))
    got = idx.issuing_distribution_point
    assert isinstance(got, IssuingDistributionPoint)
    assert got.full_name == ("http://crl.example/a.crl", "ldap://ldap.example/cn=a")
    assert got.only_user is True and got.only_ca is False and got.indirect is False
    assert got.only_attribute is False and got.relative_name_der is None
    assert got.only_some_reasons == {r.value for r in idp.only_some_reasons}
    assert got.full_name_der is not None
    assert idx.unknown_critical_extensions == []  # IDP is critical but understood

    relative = x509.IssuingDistributionPoint(
        full_name=None, relative_name=x509.RelativeDistinguishedName(
            [x509.NameAttribute(NameOID.COMMON_NAME, "CRL1")]),
        only_contains_user_certs=False, only_contains_ca_certs=True, only_some_reasons=None,
        indirect_crl=False, only_contains_attribute_certs=False)
    crl = _builder(ca).add_extension(relative, critical=True).sign(ca.key, hashes.SHA256())
    got = CrlIndex.load(crl.public_bytes(DER)).issuing_distribution_point
    assert got.full_name == () and got.full_name_der is None and got.only_ca is True
    # the RDN's SET, as found inside a Name
    assert got.relative_name_der == x509.Name([relative.relative_name]).public_bytes()[2:]
    assert got.only_some_reasons is None


def test_indirect_crl_certificate_issuer_inheritance(ca):
    other = x509.GeneralNames([x509.DirectoryName(_name("OTHER CA"))])
    idp = x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier("http://crl.example/ind.crl")],
        relative_name=None, only_contains_user_certs=False, only_contains_ca_certs=False,
        only_some_reasons=None, indirect_crl=True, only_contains_attribute_certs=False)
    crl = (_builder(ca).add_extension(idp, critical=True)
           .add_revoked_certificate(_entry(1))
           .add_revoked_certificate(_entry(2, T0 - timedelta(days=1),
                                           (x509.CertificateIssuer(other), True)))
           .add_revoked_certificate(_entry(3))  # inherits OTHER CA (RFC 5280 5.3.3)
           .sign(ca.key, hashes.SHA256()))
    idx = CrlIndex.load(crl.public_bytes(DER))
    assert idx.issuing_distribution_point.indirect is True
    assert idx.has_indirect_entries is True
    assert idx.lookup(1).certificate_issuer is None
    raw = idx.lookup(2).certificate_issuer
    assert raw is not None and _name("OTHER CA").public_bytes() in raw
    assert idx.lookup(3).certificate_issuer == raw
    assert [e.certificate_issuer for e in idx.iter_entries()] == [None, raw, raw]
    assert idx.unknown_critical_extensions == []


def test_entry_extensions_reason_invalidity_and_generalized_time(ca):
    late = datetime(2051, 6, 1, 12, 30, 5, tzinfo=timezone.utc)  # GeneralizedTime from 2050
    crl = (_builder(ca, this_update=late, next_update=late + timedelta(days=2))
           .add_revoked_certificate(_entry(
               10, datetime(2049, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
               (x509.CRLReason(x509.ReasonFlags.remove_from_crl), False),
               (x509.InvalidityDate(datetime(2049, 1, 2, 3, 4, 5)), False)))
           .add_revoked_certificate(_entry(
               11, datetime(2050, 1, 1, tzinfo=timezone.utc),
               (x509.CRLReason(x509.ReasonFlags.unspecified), False)))
           .add_revoked_certificate(_entry(12, datetime(1950, 1, 1, tzinfo=timezone.utc)))
           .sign(ca.key, hashes.SHA256()))
    der = crl.public_bytes(DER)
    assert b"\x18\x0f2051" in der  # thisUpdate really is a GeneralizedTime
    idx = CrlIndex.load(der)
    _assert_parity(idx, crl)
    e10 = idx.lookup(10)
    assert e10.reason == "removeFromCRL"
    assert e10.invalidity_date == datetime(2049, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert idx.lookup(11).reason == "unspecified"
    assert idx.lookup(11).revocation_date.year == 2050
    assert idx.lookup(12).revocation_date.year == 1950 and idx.lookup(12).reason is None


def test_common_extension_shapes_recognised_by_the_fast_paths(ca, monkeypatch):
    """reasonCode and/or invalidityDate, in either order: the build's regex path."""
    slow = []
    general = CrlIndex._general_entry_extensions
    monkeypatch.setattr(CrlIndex, "_general_entry_extensions",
                        lambda self, d, s, e, entry: slow.append(entry) or general(
                            self, d, s, e, entry))
    inval = (x509.InvalidityDate(datetime(2025, 2, 3, 4, 5, 6)), False)
    crl = _builder(ca)
    shapes = {
        20: [(x509.CRLReason(x509.ReasonFlags.key_compromise), False)],
        21: [inval],
        22: [(x509.CRLReason(x509.ReasonFlags.superseded), False), inval],
        23: [inval, (x509.CRLReason(x509.ReasonFlags.aa_compromise), False)],
        24: [(x509.CRLReason(x509.ReasonFlags.certificate_hold), True)],  # critical: general path
    }
    for serial, extensions in shapes.items():
        crl = crl.add_revoked_certificate(_entry(serial, T0 - timedelta(days=9), *extensions))
    crl = crl.sign(ca.key, hashes.SHA256())
    idx = CrlIndex.load(crl.public_bytes(DER))
    _assert_parity(idx, crl)
    assert [idx.lookup(s).reason for s in shapes] == [
        "keyCompromise", None, "superseded", "aACompromise", "certificateHold"]
    assert [idx.lookup(s).invalidity_date is not None for s in shapes] == [
        False, True, True, True, False]
    assert idx.unknown_critical_extensions == [] and not idx.has_indirect_entries
    assert len(slow) == 1  # only the critical reasonCode took the general path


def test_pickle_reindexes(big_der):
    import pickle

    idx = pickle.loads(pickle.dumps(CrlIndex.load(big_der, source="p")))
    assert len(idx) == 3000 and idx.source == "p"
    first = next(idx.iter_entries())
    assert idx.lookup(first.serial) == first


def test_crlgen_serials_and_cache(ca, tmp_path):
    from benchmarks.crlgen import cached_crl, cached_crl_path, crl_serials

    der = make_crl(50, ca.cert, ca.key, seed=4)
    assert [r.serial_number for r in x509.load_der_x509_crl(der)] == crl_serials(50, seed=4)
    path = cached_crl_path(50, ca.cert, ca.key, cache_dir=tmp_path, seed=4)
    assert path.read_bytes() == der
    assert cached_crl(50, ca.cert, ca.key, cache_dir=tmp_path, seed=4) == der
    assert cached_crl_path(50, ca.cert, ca.key, cache_dir=tmp_path, seed=5) != path


def test_unknown_critical_extensions_reported(ca):
    crl = (_builder(ca)
           .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"),
                                                     b"\x05\x00"), critical=True)
           .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.6"),
                                                     b"\x05\x00"), critical=False)
           .add_revoked_certificate(_entry(5, T0 - timedelta(days=1), (
               x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.7"), b"\x05\x00"),
               True)))
           .sign(ca.key, hashes.SHA256()))
    idx = CrlIndex.load(crl.public_bytes(DER))
    assert idx.unknown_critical_extensions == ["1.2.3.4.5", "1.2.3.4.7"]
    assert idx.extensions["1.2.3.4.6"] == (False, b"\x05\x00")
    assert idx.lookup(5).serial == 5


def test_empty_crl(ca):
    crl = _builder(ca).add_extension(x509.CRLNumber(9), critical=False) \
        .sign(ca.key, hashes.SHA256())
    der = crl.public_bytes(DER)
    idx = CrlIndex.load(der)
    _assert_parity(idx, crl)
    assert len(idx) == 0 and list(idx.iter_entries()) == [] and idx.lookup(1) is None
    assert 0 not in idx and idx.crl_number == 9 and idx.verify_signature(ca.cert.public_key())
    # v1 CRL: no version, no extensions, no nextUpdate, no revokedCertificates
    v1 = _handmade_crl(ca, None, version=False, extensions=False, next_update=False)
    idx = CrlIndex.load(v1)
    assert idx.version == 1 and idx.next_update is None and idx.crl_number is None
    assert x509.load_der_x509_crl(v1).next_update_utc is None
    assert idx.verify_signature(ca.cert.public_key())


def test_repr_and_lazy_issuer(pki, ca):
    idx = CrlIndex.load(pki.crl("FORT PERSONNES", delta=True), source="file.crl")
    assert "delta" in repr(idx) and "file.crl" in repr(idx)
    assert idx.issuer == ca.cert.subject


# --------------------------------------------------------------------------- robustness
def _exercise(der: bytes) -> None:
    """Load and use an index; only CrlError may escape."""
    try:
        idx = CrlIndex.load(der, source="fuzz")
    except CrlError as exc:
        assert exc.reason in ("malformed", "too-large") and exc.source == "fuzz"
        return
    try:
        entries = list(idx.iter_entries())
        for e in entries[:20]:
            assert e in entries and idx.lookup(e.serial) is not None
        idx.lookup(12345)
        _ = idx.issuer
        idx.verify_signature(_FUZZ_KEY)
    except CrlError as exc:
        assert exc.source == "fuzz"


_FUZZ_KEY = ec.generate_private_key(ec.SECP256R1()).public_key()


@pytest.mark.parametrize("which", ["testpki", "crlgen"])
def test_every_truncation_is_refused(pki, small_der, which):
    der = pki.crl("FORT PERSONNES") if which == "testpki" else small_der
    for n in range(len(der)):
        with pytest.raises(CrlError) as info:
            CrlIndex.load(der[:n], source="cut")
        assert info.value.reason == "malformed" and info.value.source == "cut"
    with pytest.raises(CrlError):
        CrlIndex.load(der + b"\x00")


@pytest.mark.parametrize("der", [
    b"", b"\x30", b"\x30\x80\x00\x00", b"\x30\x84\xff\xff\xff\xff", b"\x30\x85" + b"\xff" * 5,
    b"\x30\x89" + b"\xff" * 9 + b"\x00", b"\x1f\x81\x00", b"\x30\x80" * 5000,
    b"\x30\x82\x00\x03\x30\x81\xff", b"\x02\x01\x01", b"\x30\x00",
])
def test_absurd_inputs(der):
    with pytest.raises(CrlError) as info:
        CrlIndex.load(der)
    assert info.value.reason == "malformed"


def test_absurd_entry_lengths_do_not_allocate(ca):
    # revokedCertificates claiming 4 GiB inside a 1 KiB CRL
    entries = b"\x30\x84\xff\xff\xff\xf0" + _der_entry(1)
    with pytest.raises(CrlError):
        CrlIndex.load(_handmade_crl(ca, entries, raw_entries=True))
    with pytest.raises(CrlError):  # non-minimal serial: lookups could never find it
        CrlIndex.load(_handmade_crl(ca, b"\x30\x14\x02\x02\x00\x05" + _utctime(1)))
    with pytest.raises(CrlError):  # a bad reason code (7 is unused)
        CrlIndex.load(_handmade_crl(ca, _der_entry(5, reason=7)))


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data):
    _exercise(data)
    _exercise(b"\x30\x82" + len(data).to_bytes(2, "big") + data)


@pytest.fixture(scope="module")
def fuzz_seeds(pki, ca, small_der):
    inval = (x509.InvalidityDate(datetime(2025, 2, 3, 4, 5, 6)), False)
    other = x509.GeneralNames([x509.DirectoryName(_name("OTHER CA"))])
    varied = (_builder(ca)
              .add_revoked_certificate(_entry(7, T0, inval,
                                              (x509.CRLReason(x509.ReasonFlags.superseded), False)))
              .add_revoked_certificate(_entry(8, T0, (x509.CertificateIssuer(other), True)))
              .add_extension(x509.IssuingDistributionPoint(
                  full_name=[x509.UniformResourceIdentifier("http://x/y.crl")], relative_name=None,
                  only_contains_user_certs=True, only_contains_ca_certs=False,
                  only_some_reasons=frozenset({x509.ReasonFlags.superseded}),
                  indirect_crl=True, only_contains_attribute_certs=False), critical=True)
              .sign(ca.key, hashes.SHA256()).public_bytes(DER))
    return [pki.crl("FORT PERSONNES"), pki.crl("FORT PERSONNES", delta=True), small_der, varied]


@FUZZ
@given(which=st.integers(0, 3), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6),
       splice=st.one_of(st.none(), st.tuples(st.floats(0, 1), st.binary(max_size=8),
                                             st.integers(0, 8))))
def test_fuzz_mutations_of_real_crls(fuzz_seeds, which, cut, flips, splice):
    data = bytearray(fuzz_seeds[which])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    if splice is not None:
        where, insert, delete = splice
        at = int(where * len(data))
        data[at:at + delete] = insert
    if cut < 0.2:
        data = data[:int(cut * 5 * len(data))]
    der = bytes(data)
    _exercise(der)
    try:
        theirs = x509.load_der_x509_crl(der)
        serials = [r.serial_number for r in theirs]
    except Exception:  # noqa: BLE001 - cryptography's own failures are not our concern
        return
    try:
        ours = CrlIndex.load(der)
    except CrlError:
        return  # stricter than cryptography is allowed (e.g. algorithm mismatch)
    # When both accept the input, they must see the same entries.
    with contextlib.suppress(CrlError):
        assert [e.serial for e in ours.iter_entries()] == serials


# --------------------------------------------------------------------------- DER helpers
def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + body


def _utctime(day: int) -> bytes:
    return _tlv(0x17, b"2601%02d000000Z" % day)


def _der_entry(serial: int, day: int = 1, reason: int | None = None) -> bytes:
    body = serial.to_bytes(((serial if serial >= 0 else ~serial).bit_length() + 8) // 8,
                           "big", signed=True)
    ext = b""
    if reason is not None:
        ext = _tlv(0x30, _tlv(0x30, b"\x06\x03\x55\x1d\x15" + _tlv(0x04, bytes((10, 1, reason)))))
    return _tlv(0x30, _tlv(0x02, body) + _utctime(day) + ext)


def _handmade_crl(ca, entries: bytes | None, *, raw_entries: bool = False, version: bool = True,
                  extensions: bool = True, next_update: bool = True,
                  alg: bytes = bytes.fromhex("300d06092a864886f70d01010b0500"),
                  hash_algorithm: hashes.HashAlgorithm | None = None) -> bytes:
    """A CRL assembled by hand (for what cryptography's builder refuses to make), signed."""
    tbs = (b"\x02\x01\x01" if version else b"") + alg + ca.cert.subject.public_bytes() \
        + _tlv(0x17, b"260301070000Z") + (_tlv(0x17, b"260302070000Z") if next_update else b"")
    if entries is not None:
        tbs += entries if raw_entries else _tlv(0x30, entries)
    if extensions:
        crl_number = _tlv(0x30, b"\x06\x03\x55\x1d\x14" + _tlv(0x04, b"\x02\x01\x07"))
        tbs += _tlv(0xA0, _tlv(0x30, crl_number))
    tbs = _tlv(0x30, tbs)
    sig = ca.key.sign(tbs, padding.PKCS1v15(), hash_algorithm or hashes.SHA256())
    return _tlv(0x30, tbs + alg + _tlv(0x03, b"\x00" + sig))
