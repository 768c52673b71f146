"""The emulator's TEST PKI: keys, CA hierarchy, card certificates, CRLs, OCSP."""

from __future__ import annotations

import dataclasses
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cps.emulator.keys import (
    KEY_CACHE_ENV,
    HmacDrbg,
    cached_rsa_key,
    derive_rsa_key,
    seed_bytes,
    shared_key_cache,
)
from cps.emulator.pki import (
    OID_CARD_FLAGS,
    OID_CARD_ISSUER_ID,
    OID_CARD_TYPE,
    OID_MS_SMARTCARD_LOGON,
    OID_MS_UPN,
    OID_PROFESSION,
    POLICY_TEST_AUTH,
    POLICY_TEST_SIGN,
    POLICY_TEST_TECH,
    TestPKI,
    card_upn,
    default_reference_time,
)
from cps.emulator.profiles import CardProfile, CertificateSpec, Holder, load_profile, profile_names

REF = datetime(2025, 1, 1, tzinfo=timezone.utc)
BASE = "http://127.0.0.1:18080"
ANY_POLICY = x509.ObjectIdentifier("2.5.29.32.0")
DN_PREFIX = [
    (NameOID.COUNTRY_NAME, "FR"),
    (NameOID.ORGANIZATION_NAME, "ASIP-SANTE"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "0002 187512751"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "IGC-SANTE TEST"),
]


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("test-pki")


@pytest.fixture(scope="session")
def pki(pki_dir: Path) -> TestPKI:
    return TestPKI.generate(pki_dir, seed=1, base_url=BASE, reference_time=REF)


@pytest.fixture(scope="session")
def cards(pki: TestPKI) -> dict:
    return {name: pki.issue_card(name) for name in profile_names()}


def ext(cert: x509.Certificate | x509.CertificateRevocationList, cls_or_oid):
    if isinstance(cls_or_oid, x509.ObjectIdentifier):
        return cert.extensions.get_extension_for_oid(cls_or_oid)
    return cert.extensions.get_extension_for_class(cls_or_oid)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def string_types(cert: x509.Certificate) -> list[tuple[str, str]]:
    """(attribute type, ASN.1 string type) of every subject attribute."""
    subject = asn1_x509.Certificate.load(der(cert))["tbs_certificate"]["subject"]
    return [(atv["type"].native, atv["value"].name) for rdn in subject.chosen for atv in rdn]


# -- keys ----------------------------------------------------------------------


def test_key_derivation_is_deterministic_and_separated():
    a = derive_rsa_key(1, "label", 1024)
    assert a.private_numbers() == derive_rsa_key(1, "label", 1024).private_numbers()
    assert a.public_key().public_numbers().e == 65537
    assert a.key_size == 1024
    others = [derive_rsa_key(2, "label", 1024), derive_rsa_key(1, "other", 1024),
              derive_rsa_key(b"\x01", "label", 1024)]
    moduli = {k.public_key().public_numbers().n for k in [a, *others]}
    assert len(moduli) == 4


def test_derived_2048_key_signs_and_is_fast():
    start = time.perf_counter()
    key = derive_rsa_key(b"speed", "card/x/auth")
    assert time.perf_counter() - start < 3  # typically ~0.2 s
    assert key.key_size == 2048
    sig = key.sign(b"data", padding.PKCS1v15(), hashes.SHA256())
    key.public_key().verify(sig, b"data", padding.PKCS1v15(), hashes.SHA256())


def test_key_derivation_rejects_bad_input():
    with pytest.raises(ValueError):
        derive_rsa_key(1, "x", 1000)
    with pytest.raises(ValueError):
        seed_bytes(-1)
    with pytest.raises(TypeError):
        seed_bytes("1")  # type: ignore[arg-type]
    assert seed_bytes(1) != seed_bytes(b"\x01")


def test_hmac_drbg_is_reproducible():
    a, b = HmacDrbg(b"seed"), HmacDrbg(b"seed")
    assert a.generate(100) == b.generate(100)
    assert a.generate(32) != HmacDrbg(b"seed").generate(32)  # the stream moves on
    assert HmacDrbg(b"x").randbits(13) < 1 << 13


def test_cached_key_roundtrip_and_repair(tmp_path: Path):
    key = cached_rsa_key(tmp_path, 5, "cache", 1024)
    files = list(tmp_path.glob("*.pem"))
    assert len(files) == 1 and files[0].name.startswith("cache-1024-")
    assert cached_rsa_key(tmp_path, 5, "cache", 1024).private_numbers() == key.private_numbers()
    files[0].write_bytes(b"damaged")
    assert cached_rsa_key(tmp_path, 5, "cache", 1024).private_numbers() == key.private_numbers()


def test_shared_key_cache_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(KEY_CACHE_ENV, str(tmp_path / "shared"))
    assert shared_key_cache() == tmp_path / "shared"
    monkeypatch.setenv(KEY_CACHE_ENV, "")
    assert shared_key_cache() is None  # empty: disabled
    monkeypatch.delenv(KEY_CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert shared_key_cache() == tmp_path / "xdg" / "cps" / "test-keys"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert shared_key_cache() == tmp_path / "home" / ".cache" / "cps" / "test-keys"


def test_shared_key_cache_serves_every_directory(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path):
    shared = tmp_path / "shared"
    monkeypatch.setenv(KEY_CACHE_ENV, str(shared))
    key = cached_rsa_key(tmp_path / "a", 5, "shared", 1024)
    [file] = shared.glob("*.pem")
    assert (shared.stat().st_mode & 0o777) == 0o700
    assert (tmp_path / "a" / file.name).read_bytes() == file.read_bytes()
    # another directory (or none) gets the key from the shared cache, not by derivation
    monkeypatch.setattr("cps.emulator.keys.derive_rsa_key",
                        lambda *a: pytest.fail("derived again"))
    for directory in (tmp_path / "b", None):
        again = cached_rsa_key(directory, 5, "shared", 1024)
        assert again.private_numbers() == key.private_numbers()
    assert (tmp_path / "b" / file.name).exists()


def test_shared_key_cache_ignored_when_unsafe_or_disabled(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # writable by others: another user could plant keys
    monkeypatch.setenv(KEY_CACHE_ENV, str(shared))
    key = cached_rsa_key(None, 6, "unsafe", 1024)
    assert list(shared.iterdir()) == []
    monkeypatch.setenv(KEY_CACHE_ENV, "")
    assert cached_rsa_key(None, 6, "unsafe", 1024).private_numbers() == key.private_numbers()
    # explicit argument: a damaged shared file is re-derived and repaired
    shared.chmod(0o700)
    cached_rsa_key(None, 6, "unsafe", 1024, shared_cache=shared)
    [file] = shared.glob("*.pem")
    file.write_bytes(b"damaged")
    assert cached_rsa_key(None, 6, "unsafe", 1024, shared_cache=shared).private_numbers() == \
        key.private_numbers()
    assert file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_ca_key_bits_2048_stays_available(tmp_path: Path):
    small = TestPKI.generate(None, seed=1, base_url=BASE, reference_time=REF,
                             ca_key_bits=2048, profiles=[])
    assert small.roots["FORT"].public_key().key_size == 2048
    cred = small.issue_card("cps3-medecin")
    assert cred.auth_cert.public_key().key_size == 2048  # card keys: RSA-2048 always
    cred.auth_cert.verify_directly_issued_by(cred.chain[0])


# -- CA hierarchy --------------------------------------------------------------


def test_hierarchy_names(pki: TestPKI):
    assert list(pki.roots) == ["ELEMENTAIRE", "STANDARD", "FORT"]
    assert set(pki.intermediates) == {f"{r} {d}" for r in pki.roots
                                      for d in ("PERSONNES", "ORGANISATIONS")}
    assert pki.anchors() == list(pki.roots.values())
    for name, cert in pki.roots.items():
        attrs = [(a.oid, a.value) for a in cert.subject]
        assert attrs == [*DN_PREFIX, (NameOID.COMMON_NAME, f"TEST AC RACINE IGC-SANTE {name}")]
        assert cert.issuer == cert.subject
    fo_pp = pki.intermediates["FORT PERSONNES"]
    assert [(a.oid, a.value) for a in fo_pp.subject] == [
        *DN_PREFIX, (NameOID.COMMON_NAME, "TEST AC IGC-SANTE FORT PERSONNES")]
    # Same string types as production: PrintableString country, UTF8String elsewhere.
    assert [t for _, t in string_types(fo_pp)] == ["printable_string"] + ["utf8_string"] * 4


def test_ca_lookup(pki: TestPKI):
    ca = pki.ca("fort personnes")
    assert ca.name == "FORT PERSONNES" and ca.parent == "FORT" and not ca.is_root
    assert ca.crl_url == f"{BASE}/crl/ACI-FO-PP-TEST.crl"
    assert ca.delta_crl_url == f"{BASE}/crl/ACI-FO-PP-TEST-delta.crl"
    assert ca.cert_url == f"{BASE}/ca/ACI-FO-PP-TEST.cer"
    assert pki.ca("FORT").is_root and pki.ca("FORT").delta_crl_url is None
    assert "key" not in repr(ca).split("cert=")[0]  # the private key is not in the repr
    with pytest.raises(KeyError, match="known"):
        pki.ca("FORTE")


def test_root_extensions(pki: TestPKI):
    for cert in pki.anchors():
        bc = ext(cert, x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length is None
        ku = ext(cert, x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        assert not ku.value.digital_signature and not ku.value.content_commitment
        policies = ext(cert, x509.CertificatePolicies)
        assert not policies.critical
        [policy] = policies.value
        assert policy.policy_identifier == ANY_POLICY
        assert policy.policy_qualifiers == ["http://igc-sante.esante.gouv.fr/PC%20TEST"]
        ski = ext(cert, x509.SubjectKeyIdentifier).value
        assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
        cert.verify_directly_issued_by(cert)
        assert cert.not_valid_before_utc <= REF - timedelta(days=3650)
        assert cert.not_valid_after_utc >= REF + timedelta(days=3650)
        assert cert.public_key().key_size == 4096  # as IGC-Santé's (default ca_key_bits)


def test_intermediate_extensions(pki: TestPKI):
    for name, cert in pki.intermediates.items():
        root = pki.ca(pki.ca(name).parent)
        bc = ext(cert, x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == 0
        ku = ext(cert, x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        assert [p.policy_identifier for p in ext(cert, x509.CertificatePolicies).value] == \
            [ANY_POLICY]
        [point] = ext(cert, x509.CRLDistributionPoints).value
        assert [u.value for u in point.full_name] == [root.crl_url]
        assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == \
            ext(root.cert, x509.SubjectKeyIdentifier).value.digest
        cert.verify_directly_issued_by(root.cert)
        # Like production, an intermediate ends one day before its root.
        assert cert.not_valid_after_utc == root.cert.not_valid_after_utc - timedelta(days=1)


def test_ca_serials_mirror_production_prefix(pki: TestPKI):
    for ca in [pki.ca(n) for n in [*pki.roots, *pki.intermediates]]:
        raw = ca.cert.serial_number.to_bytes(18, "big")
        assert raw[:2] == b"\x11\x20"


# -- card certificates ---------------------------------------------------------


def test_card_subject_shape(cards: dict):
    cred = cards["cps3-medecin"]
    holder = cred.profile.holder
    for cert in (cred.auth_cert, cred.sign_cert):
        rdns = list(cert.subject.rdns)
        assert [(a.oid, a.value) for a in rdns[0]] == [(NameOID.COUNTRY_NAME, "FR")]
        assert [(a.oid, a.value) for a in rdns[1]] == [(NameOID.TITLE, "Médecin")]
        multi = {a.oid: a.value for a in rdns[-1]}
        assert multi == {NameOID.GIVEN_NAME: holder.first_name,
                         NameOID.COMMON_NAME: holder.idnat,
                         NameOID.SURNAME: holder.last_name}
        assert len(rdns) == 3
        types = dict(string_types(cert))
        assert types.pop("country_name") == "printable_string"
        assert set(types.values()) == {"utf8_string"}
    assert cred.auth_cert.subject.get_attributes_for_oid(NameOID.GIVEN_NAME)[0].value == "ÉLODIE"


def test_staff_card_subject_has_structure(cards: dict):
    cred = cards["cps3-cpe"]
    assert cred.issuer == "STANDARD PERSONNES"
    assert [(a.oid, a.value) for rdn in list(cred.auth_cert.subject.rdns)[:5] for a in rdn] == [
        (NameOID.COUNTRY_NAME, "FR"),
        (NameOID.STATE_OR_PROVINCE_NAME, "Loire-Atlantique (44)"),
        (NameOID.ORGANIZATION_NAME, "HÔPITAL SAINTE-CÉCILE"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "10B0012345"),
        (NameOID.TITLE, "Personnel santé ou social"),
    ]
    cn = cred.auth_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "30B0012345/CPET0001"
    assert cred.auth_cert.issuer == cred.chain[0].subject
    assert ext(cred.auth_cert, OID_CARD_TYPE).value.value == bytes.fromhex("020102")


def test_auth_certificate_extensions(pki: TestPKI, cards: dict):
    cred = cards["cps3-medecin"]
    cert = cred.auth_cert
    assert cert.version == x509.Version.v3
    assert len(cert.serial_number.to_bytes(16, "big")) == 16 and cert.serial_number >> 120
    assert cert.signature_hash_algorithm.name == "sha256"
    assert cert.public_key().key_size == 2048
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.content_commitment
    assert not ku.value.key_cert_sign
    eku = ext(cert, x509.ExtendedKeyUsage)
    assert not eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH, OID_MS_SMARTCARD_LOGON]
    [policy] = ext(cert, x509.CertificatePolicies).value
    assert policy.policy_identifier == POLICY_TEST_AUTH
    [upn] = ext(cert, x509.SubjectAlternativeName).value
    assert isinstance(upn, x509.OtherName) and upn.type_id == OID_MS_UPN
    assert upn.value == b"\x0c\x19" + b"810100123453@carte-cps.fr"  # UTF8String
    assert not ext(cert, x509.BasicConstraints).value.ca
    [dp] = ext(cert, x509.CRLDistributionPoints).value
    assert [u.value for u in dp.full_name] == [f"{BASE}/crl/ACI-FO-PP-TEST.crl"]
    [fresh] = ext(cert, x509.FreshestCRL).value
    assert [u.value for u in fresh.full_name] == [f"{BASE}/crl/ACI-FO-PP-TEST-delta.crl"]
    aia = {(d.access_method, d.access_location.value)
           for d in ext(cert, x509.AuthorityInformationAccess).value}
    assert aia == {(x509.AuthorityInformationAccessOID.OCSP, f"{BASE}/ocsp"),
                   (x509.AuthorityInformationAccessOID.CA_ISSUERS,
                    f"{BASE}/ca/ACI-FO-PP-TEST.cer")}
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == \
        ext(cred.chain[0], x509.SubjectKeyIdentifier).value.digest
    # Private GIP-CPS extensions, exact DER of the extension values.
    assert ext(cert, OID_CARD_FLAGS).value.value == bytes.fromhex("040180")
    assert ext(cert, OID_CARD_TYPE).value.value == bytes.fromhex("020100")  # CPS = 0
    assert ext(cert, OID_CARD_ISSUER_ID).value.value == b"\x13\x15" + b"8025000001/2990000101"
    assert ext(cert, OID_PROFESSION).value.value == bytes.fromhex("02010a")  # Médecin = 10
    critical = {e.oid for e in cert.extensions if e.critical}
    assert critical == {x509.OID_KEY_USAGE}
    ku = ext(cert, x509.KeyUsage).value  # digitalSignature only, as on the real card
    assert [name for name in ("digital_signature", "content_commitment", "key_encipherment",
                              "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")
            if getattr(ku, name)] == ["digital_signature"]


def test_sign_certificate_differs_from_auth(cards: dict):
    cred = cards["cps3-medecin"]
    cert = cred.sign_cert
    ku = ext(cert, x509.KeyUsage)
    # nonRepudiation only (critical), EKU emailProtection, no subjectAltName: the shape
    # of the real TEST signature certificate (padoa/tlsi-ins SAML fixture).
    assert ku.critical
    assert [name for name in ("digital_signature", "content_commitment", "key_encipherment",
                              "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")
            if getattr(ku.value, name)] == ["content_commitment"]
    eku = ext(cert, x509.ExtendedKeyUsage)
    assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, x509.SubjectAlternativeName)
    assert ext(cert, OID_CARD_FLAGS).value.value == bytes.fromhex("040180")
    assert ext(cert, OID_CARD_TYPE).value.value == bytes.fromhex("020100")
    assert ext(cert, OID_CARD_ISSUER_ID).value.value == b"\x13\x15" + b"8025000001/2990000101"
    assert ext(cert, OID_PROFESSION).value.value == bytes.fromhex("02010a")
    assert {e.oid for e in cert.extensions if e.critical} == {x509.OID_KEY_USAGE}
    assert [p.policy_identifier for p in ext(cert, x509.CertificatePolicies).value] == \
        [POLICY_TEST_SIGN]
    assert cert.serial_number != cred.auth_cert.serial_number
    assert cert.public_key().public_numbers() != cred.auth_cert.public_key().public_numbers()
    assert cert.subject == cred.auth_cert.subject
    assert cred.tech_cert is None and cred.tech_key is None


def test_contactless_technical_certificate(cards: dict):
    cred = cards["cps3-contactless"]
    assert cred.tech_cert is not None and cred.tech_key is not None
    assert [p.policy_identifier for p in ext(cred.tech_cert, x509.CertificatePolicies).value] \
        == [POLICY_TEST_TECH]
    assert list(ext(cred.tech_cert, x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ext(cred.tech_cert, x509.KeyUsage).value.digital_signature
    assert cred.tech_cert.public_key().public_numbers() == \
        cred.tech_key.public_key().public_numbers()
    cred.tech_cert.verify_directly_issued_by(cred.chain[0])


@pytest.mark.parametrize("name", profile_names())
def test_private_extensions_per_profile(cards: dict, name: str):
    cred = cards[name]
    profile = cred.profile
    certs = [cred.auth_cert, cred.sign_cert] + ([cred.tech_cert] if cred.tech_cert else [])
    for cert in certs:
        assert ext(cert, OID_CARD_TYPE).value.value == bytes([2, 1, profile.card_type_code])
        assert ext(cert, OID_CARD_ISSUER_ID).value.value[2:].decode() == \
            f"8025000001/{profile.card_number}"
        if profile.holder.profession_code is None:  # staff: no profession extension
            with pytest.raises(x509.ExtensionNotFound):
                ext(cert, OID_PROFESSION)
        else:
            assert ext(cert, OID_PROFESSION).value.value == \
                bytes([2, 1, int(profile.holder.profession_code)])
    # the UPN is on the authentication (and technical) certificate only
    [upn] = ext(cred.auth_cert, x509.SubjectAlternativeName).value
    assert upn.value[2:].decode() == f"{profile.holder.idnat}@carte-cps.fr"
    with pytest.raises(x509.ExtensionNotFound):
        ext(cred.sign_cert, x509.SubjectAlternativeName)


def _cpa_profile() -> CardProfile:
    holder = Holder(idnat="512345678900017/CPAT0001", last_name="MAITRE", first_name="PATRICE",
                    profession_label="Personnel santé ou social", structure_id="312345678900017",
                    structure_name="CENTRE DE SANTÉ TEST", locality="Paris (75)")
    return CardProfile(name="test-cpa", description="CPA card built in the test",
                       interface="contact", card_type="CPA", card_number="2990000190",
                       holder=holder, certificates=CertificateSpec(issuer="STANDARD PERSONNES"),
                       pin="1234", puk="12345678")


def test_cpa_card_upn_has_the_dotted_siret_form(pki: TestPKI):
    profile = _cpa_profile()
    assert card_upn(profile) == "5.12345678900017.CPAT0001@carte-cps.fr"
    assert card_upn(load_profile("cps3-cpe")) == "30B0012345/CPET0001@carte-cps.fr"
    cred = pki.issue_card(profile)
    [upn] = ext(cred.auth_cert, x509.SubjectAlternativeName).value
    assert upn.value == asn1_core.UTF8String("5.12345678900017.CPAT0001@carte-cps.fr").dump()
    assert ext(cred.auth_cert, OID_CARD_TYPE).value.value == bytes.fromhex("020103")  # CPA = 3
    with pytest.raises(x509.ExtensionNotFound):
        ext(cred.auth_cert, OID_PROFESSION)
    from cps.identity import Practitioner

    who = Practitioner.from_certificate(cred.auth_cert)
    assert who.idnat == "512345678900017/CPAT0001" and who.warnings == ()
    assert who.upn == "5.12345678900017.CPAT0001@carte-cps.fr"


@pytest.mark.parametrize("name", profile_names())
def test_chain_verifies_and_keys_match(cards: dict, name: str):
    cred = cards[name]
    intermediate, root = cred.chain
    expected = "STANDARD PERSONNES" if cred.profile.card_type in ("CPE", "CPA") \
        else "FORT PERSONNES"
    assert cred.issuer == expected
    for key, cert in ((cred.auth_key, cred.auth_cert), (cred.sign_key, cred.sign_cert)):
        cert.verify_directly_issued_by(intermediate)
        assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    intermediate.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    assert ext(cred.auth_cert, OID_CARD_ISSUER_ID).value.value[2:].decode() == \
        cred.profile.issuer_card_id


def test_chain_passes_cryptography_client_verifier(pki: TestPKI, cards: dict):
    from cryptography.x509.verification import PolicyBuilder, Store

    if not hasattr(PolicyBuilder, "build_client_verifier"):
        pytest.skip("client verification needs cryptography >= 43")
    verifier = (PolicyBuilder().store(Store(pki.anchors())).time(REF + timedelta(days=1))
                .build_client_verifier())
    cred = cards["cps3-pharmacien"]
    result = verifier.verify(cred.auth_cert, [cred.chain[0]])
    assert result.chain == [cred.auth_cert, *cred.chain]


def test_validity_dates(pki: TestPKI, cards: dict):
    valid = cards["cps3-medecin"].auth_cert
    assert valid.not_valid_before_utc == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert valid.not_valid_after_utc == datetime(2028, 1, 1, tzinfo=timezone.utc)
    expired = cards["cps3-expired"]
    for cert in (expired.auth_cert, expired.sign_cert):
        assert cert.not_valid_after_utc < REF  # expired at the reference time
        assert cert.not_valid_before_utc < cert.not_valid_after_utc
        cert.verify_directly_issued_by(expired.chain[0])


def test_default_reference_time():
    ref = default_reference_time()
    now = datetime.now(timezone.utc)
    assert (ref.month, ref.day, ref.hour, ref.minute) == (1, 1, 0, 0)
    assert ref.year == now.year and ref.tzinfo is not None


def test_naive_datetimes_are_refused(pki: TestPKI):
    with pytest.raises(ValueError, match="naive"):
        pki.crl("FORT PERSONNES", at=datetime(2025, 2, 1))


# -- determinism and reuse -----------------------------------------------------


def test_issue_card_is_memoized_and_pin_independent(pki: TestPKI, cards: dict):
    assert pki.issue_card("cps3-medecin") is cards["cps3-medecin"]
    other_pin = dataclasses.replace(load_profile("cps3-medecin"), pin="9999")
    cred = pki.issue_card(other_pin)
    assert cred.profile.pin == "9999"
    assert der(cred.auth_cert) == der(cards["cps3-medecin"].auth_cert)
    text = repr(cards["cps3-medecin"])
    assert "pin=" not in text and "puk=" not in text and "12345678" not in text


def test_same_seed_gives_identical_der(pki_dir: Path, tmp_path: Path, pki: TestPKI,
                                      cards: dict):
    # Keys are covered by test_key_derivation_is_deterministic_and_separated; sharing
    # the key cache keeps this test fast while certificates are rebuilt from scratch.
    shutil.copytree(pki_dir / "keys", tmp_path / "keys")
    again = TestPKI.generate(tmp_path, seed=1, base_url=BASE, reference_time=REF)
    for name in ("FORT", "FORT PERSONNES", "STANDARD PERSONNES"):
        assert (tmp_path / "ca" / f"{again.ca(name).stem}.cer").read_bytes() == \
            (pki_dir / "ca" / f"{again.ca(name).stem}.cer").read_bytes()
    for name in ("cps3-medecin", "cps3-contactless"):
        fresh, first = again.issue_card(name), cards[name]
        assert der(fresh.auth_cert) == der(first.auth_cert)
        assert der(fresh.sign_cert) == der(first.sign_cert)
    assert der(fresh.tech_cert) == der(first.tech_cert)
    at = REF + timedelta(days=3)
    assert again.crl("FORT PERSONNES", at) == pki.crl("FORT PERSONNES", at)
    assert again.crl("FORT PERSONNES", at, delta=True) == \
        pki.crl("FORT PERSONNES", at, delta=True)


def test_different_seed_gives_different_keys(tmp_path: Path, cards: dict):
    other = TestPKI.generate(tmp_path, seed=2, base_url=BASE, reference_time=REF)
    first = cards["cps3-medecin"]
    assert other.roots["FORT"].public_key().public_numbers() != \
        first.chain[1].public_key().public_numbers()
    assert other.roots["FORT"].subject == first.chain[1].subject
    card = other.issue_card("cps3-medecin")
    assert card.auth_cert.serial_number != first.auth_cert.serial_number
    assert card.auth_key.private_numbers() != first.auth_key.private_numbers()


def test_generate_reuses_directory(pki_dir: Path, pki: TestPKI, tmp_path: Path):
    start = time.perf_counter()
    again = TestPKI.generate(pki_dir, seed=1, base_url=BASE, reference_time=REF)
    assert time.perf_counter() - start < 2  # no key derivation
    assert der(again.roots["FORT"]) == der(pki.roots["FORT"])
    manifest = (pki_dir / "manifest.json").read_text()
    assert '"base_url": "http://127.0.0.1:18080"' in manifest
    # Another base URL in a copy of the directory: same keys, new URLs.
    shutil.copytree(pki_dir, tmp_path / "copy")
    moved = TestPKI.generate(tmp_path / "copy", seed=1, base_url="http://localhost:9/",
                             reference_time=REF)
    inter = moved.intermediates["FORT PERSONNES"]
    [point] = ext(inter, x509.CRLDistributionPoints).value
    assert point.full_name[0].value == "http://localhost:9/crl/ACR-FO-TEST.crl"
    assert inter.public_key().public_numbers() == \
        pki.intermediates["FORT PERSONNES"].public_key().public_numbers()


def test_published_files(pki_dir: Path, pki: TestPKI):
    resources = pki.http_resources(REF + timedelta(days=1))
    assert "/crl/ACI-FO-PP-TEST.crl" in resources
    assert "/crl/ACI-FO-PP-TEST-delta.crl" in resources
    assert "/crl/ACR-FO-TEST.crl" in resources and "/ca/ACR-FO-TEST.cer" in resources
    assert "/crl/ACR-FO-TEST-delta.crl" not in resources
    for path in resources:
        assert (pki_dir / path.lstrip("/")).is_file()
    written = pki.publish(pki_dir / "www", REF)
    assert len(written) == len(resources)


# -- CRLs ----------------------------------------------------------------------


def revoked_serials(pki_crl: x509.CertificateRevocationList) -> dict[int, x509.RevokedCertificate]:
    return {r.serial_number: r for r in pki_crl}


def reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags:
    return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason


def test_complete_crl_lists_revoked_cards(pki: TestPKI, cards: dict):
    at = REF + timedelta(days=2)
    ca = pki.ca("FORT PERSONNES")
    crl = x509.load_der_x509_crl(pki.crl("FORT PERSONNES", at))
    assert crl.is_signature_valid(ca.cert.public_key())
    assert crl.issuer == ca.cert.subject
    assert crl.last_update_utc == at and crl.next_update_utc == at + timedelta(days=1)
    # One sequence for complete and delta CRLs (RFC 5280 5.2.3): 2 t, deltas 2 t + 1.
    assert ext(crl, x509.CRLNumber).value.crl_number == 2 * int(at.timestamp())
    assert ext(crl, x509.AuthorityKeyIdentifier).value.key_identifier == \
        ext(ca.cert, x509.SubjectKeyIdentifier).value.digest
    [fresh] = ext(crl, x509.FreshestCRL).value
    assert fresh.full_name[0].value == ca.delta_crl_url
    entries = revoked_serials(crl)
    revoked, recent = cards["cps3-revoked"], cards["cps3-revoked-recent"]
    for cert in (revoked.auth_cert, revoked.sign_cert):
        entry = entries.pop(cert.serial_number)
        assert reason(entry) == x509.ReasonFlags.key_compromise
        assert entry.revocation_date_utc == REF - timedelta(days=30)
    for cert in (recent.auth_cert, recent.sign_cert):
        entry = entries.pop(cert.serial_number)
        assert reason(entry) == x509.ReasonFlags.superseded
        assert entry.revocation_date_utc == REF - timedelta(hours=12)
    assert entries == {}  # nothing else, in particular not the valid cards


def test_crl_before_revocation_and_other_cas(pki: TestPKI, cards: dict):
    early = x509.load_der_x509_crl(pki.crl("FORT PERSONNES", REF - timedelta(days=60)))
    assert len(early) == 0
    staff = x509.load_der_x509_crl(pki.crl("STANDARD PERSONNES", REF))
    assert len(staff) == 0 and staff.is_signature_valid(pki.ca("STANDARD PERSONNES").key
                                                        .public_key())
    root = x509.load_der_x509_crl(pki.crl("FORT", REF))
    assert len(root) == 0 and root.is_signature_valid(pki.roots["FORT"].public_key())
    with pytest.raises(x509.ExtensionNotFound):
        ext(root, x509.FreshestCRL)


def test_delta_crl(pki: TestPKI, cards: dict):
    at = REF + timedelta(days=2)
    ca = pki.ca("FORT PERSONNES")
    delta = x509.load_der_x509_crl(pki.crl("FORT PERSONNES", at, delta=True))
    assert delta.is_signature_valid(ca.cert.public_key())
    indicator = ext(delta, x509.DeltaCRLIndicator)
    assert indicator.critical
    assert indicator.value.crl_number == 2 * int(pki.delta_base_time.timestamp())
    assert ext(delta, x509.CRLNumber).value.crl_number == 2 * int(at.timestamp()) + 1
    assert ext(delta, x509.CRLNumber).value.crl_number > indicator.value.crl_number
    # RFC 5280 5.2.4: the delta comes after the complete CRL issued at the same instant.
    same_time = x509.load_der_x509_crl(pki.crl("FORT PERSONNES", at))
    assert ext(delta, x509.CRLNumber).value.crl_number > \
        ext(same_time, x509.CRLNumber).value.crl_number
    recent = cards["cps3-revoked-recent"]
    assert set(revoked_serials(delta)) == {recent.auth_cert.serial_number,
                                           recent.sign_cert.serial_number}
    # The complete CRL the delta is based on predates that revocation.
    base = x509.load_der_x509_crl(pki.crl("FORT PERSONNES", pki.delta_base_time))
    assert ext(base, x509.CRLNumber).value.crl_number == indicator.value.crl_number
    assert recent.auth_cert.serial_number not in revoked_serials(base)
    assert cards["cps3-revoked"].auth_cert.serial_number in revoked_serials(base)


def test_custom_revoked_profile_is_published(tmp_path: Path, pki_dir: Path):
    shutil.copytree(pki_dir / "keys", tmp_path / "keys")
    pki = TestPKI.generate(tmp_path, seed=1, base_url=BASE, reference_time=REF, profiles=[])
    assert len(x509.load_der_x509_crl(pki.crl("FORT PERSONNES", REF))) == 0
    base = load_profile("cps3-medecin")
    custom = dataclasses.replace(
        base, name="custom", certificates=dataclasses.replace(
            base.certificates, revoked=True, revocation_reason="cessationOfOperation",
            revoked_days_ago=3.0))
    cred = pki.issue_card(custom)
    entries = revoked_serials(x509.load_der_x509_crl(pki.crl("FORT PERSONNES", REF)))
    assert reason(entries[cred.auth_cert.serial_number]) == \
        x509.ReasonFlags.cessation_of_operation
    # The last profile issued for a card number is the one the CA knows.
    pki.issue_card(base)
    assert len(x509.load_der_x509_crl(pki.crl("FORT PERSONNES", REF))) == 0
    pki.issue_card(custom)
    assert len(x509.load_der_x509_crl(pki.crl("FORT PERSONNES", REF))) == 2


# -- OCSP ----------------------------------------------------------------------


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None,
                 algorithm: hashes.HashAlgorithm | None = None) -> bytes:
    # SHA-1 CertIDs are what OCSP clients send by default (RFC 6960 / 5019).
    algorithm = algorithm or hashes.SHA1()  # noqa: S303
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def utc_attr(response: ocsp.OCSPResponse, name: str) -> datetime:
    """``response.<name>_utc``, which OCSP responses gained in cryptography 43 (floor: 42)."""
    value = getattr(response, f"{name}_utc", None)
    return value or getattr(response, name).replace(tzinfo=timezone.utc)


def verify_ocsp_signature(response: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    signer.public_key().verify(response.signature, response.tbs_response_bytes,
                               padding.PKCS1v15(), response.signature_hash_algorithm)


def test_ocsp_revoked_certificate(pki: TestPKI, cards: dict):
    cred = cards["cps3-revoked"]
    at = REF + timedelta(days=1)
    nonce = bytes(range(16))
    raw = pki.ocsp_response(ocsp_request(cred.auth_cert, cred.chain[0], nonce), at)
    response = ocsp.load_der_ocsp_response(raw)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.serial_number == cred.auth_cert.serial_number
    assert utc_attr(response, "revocation_time") == REF - timedelta(days=30)
    assert response.revocation_reason == x509.ReasonFlags.key_compromise
    # producedAt is the signing time (cryptography sets it).
    assert utc_attr(response, "this_update") == at
    assert utc_attr(response, "next_update") == at + timedelta(days=1)
    assert ext(response, x509.OCSPNonce).value.nonce == nonce
    # Delegated responder: issued by the intermediate, OCSPSigning, no-check.
    [responder] = response.certificates
    responder.verify_directly_issued_by(cred.chain[0])
    assert list(ext(responder, x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.OCSP_SIGNING]
    ext(responder, x509.OCSPNoCheck)
    assert response.responder_key_hash == \
        ext(responder, x509.SubjectKeyIdentifier).value.digest
    verify_ocsp_signature(response, responder)


def test_ocsp_other_statuses(pki: TestPKI, cards: dict):
    good = cards["cps3-medecin"]
    at = REF + timedelta(days=1)
    response = ocsp.load_der_ocsp_response(
        pki.ocsp_response(ocsp_request(good.sign_cert, good.chain[0], algorithm=hashes.SHA256()),
                          at))
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    with pytest.raises(x509.ExtensionNotFound):
        ext(response, x509.OCSPNonce)
    # Before its revocation date, a revoked certificate is still good.
    revoked = cards["cps3-revoked"]
    early = ocsp.load_der_ocsp_response(pki.ocsp_response(
        ocsp_request(revoked.sign_cert, revoked.chain[0]), REF - timedelta(days=31)))
    assert early.certificate_status == ocsp.OCSPCertStatus.GOOD
    # An unknown serial under a known issuer.
    stranger = (ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        response.issuer_name_hash, response.issuer_key_hash, 12345, hashes.SHA256()).build()
        .public_bytes(serialization.Encoding.DER))
    unknown = ocsp.load_der_ocsp_response(pki.ocsp_response(stranger, at))
    assert unknown.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    # Intermediates are answered by their root, which signs itself.
    root = good.chain[1]
    by_root = ocsp.load_der_ocsp_response(pki.ocsp_response(ocsp_request(good.chain[0], root),
                                                            at))
    assert by_root.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert by_root.certificates == []
    verify_ocsp_signature(by_root, root)
    # Another issuer; garbage.
    foreign = pki.ocsp_response(ocsp_request(good.auth_cert, pki.intermediates["FORT "
                                                                               "ORGANISATIONS"]))
    assert ocsp.load_der_ocsp_response(foreign).response_status == \
        ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert ocsp.load_der_ocsp_response(pki.ocsp_response(b"garbage")).response_status == \
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
