"""cps.identity (Practitioner from a certificate) and cps.professions (TRE_G15).

Fast and hardware-free: certificates are built here with cryptography (or,
for shapes cryptography refuses, DER assembled by hand) and by the emulator's
test PKI.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import unicodedata
from datetime import datetime, timedelta, timezone

import pytest
from asn1crypto import core as asn1
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cps import errors, professions
from cps.emulator.profiles import load_profile, profile_names
from cps.identity import (
    CARD_TYPE_CODES,
    OID_CARD_ISSUER_ID,
    OID_CARD_TYPE,
    OID_MS_UPN,
    OID_PROFESSION,
    CardType,
    IdType,
    Practitioner,
    luhn_valid,
    parse_idnat,
)

CONTRACT = ["idnat", "id_type", "national_id", "last_name", "first_name", "profession_code",
            "profession_label", "structure_id", "structure_name", "card_type", "card_number"]

KEY = ec.generate_private_key(ec.SECP256R1())
ISSUER = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                       "TEST AC IGC-SANTE STANDARD PERSONNES")])
ATTRIBUTE_NAMES = {"SN": NameOID.SURNAME, "GN": NameOID.GIVEN_NAME, "title": NameOID.TITLE,
                   "pseudonym": NameOID.PSEUDONYM}
T0 = datetime(2017, 3, 23, tzinfo=timezone.utc)


# --------------------------------------------------------------------------- builders
def ext_card_type(code: int) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_CARD_TYPE),
                                      asn1.Integer(code).dump())


def ext_card_id(value: str) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_CARD_ISSUER_ID),
                                      asn1.PrintableString(value).dump())


def ext_profession(code: int) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_PROFESSION),
                                      asn1.Integer(code).dump())


def ext_upn(*upns: str, email: str | None = None) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    if email:
        names.append(x509.RFC822Name(email))
    names += [x509.OtherName(x509.ObjectIdentifier(OID_MS_UPN), asn1.UTF8String(u).dump())
              for u in upns]
    return x509.SubjectAlternativeName(names)


def make_cert(subject: x509.Name | str, *extensions: x509.ExtensionType) -> x509.Certificate:
    """A self-signed-ish certificate (EC key, fast) with the given subject and extensions."""
    if isinstance(subject, str):
        subject = x509.Name.from_rfc4514_string(subject, ATTRIBUTE_NAMES)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ISSUER)
               .public_key(KEY.public_key()).serial_number(0x6BC2874B9334BED19414E8EB4FB317D4)
               .not_valid_before(T0).not_valid_after(T0 + timedelta(days=3 * 365)))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(KEY, hashes.SHA256())


def der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def oid(dotted: str) -> bytes:
    return asn1.ObjectIdentifier(dotted).dump()


def raw_cert(rdns: list[list[tuple[str, int, bytes]]],
             extensions: list[tuple[str, bytes]] = ()) -> bytes:
    """A DER certificate assembled by hand: any string tag, any bytes (even invalid ones).

    Only the structure is right (no real key, no valid signature): enough for
    cps.identity, which reads claims and verifies nothing.
    """
    name = tlv(0x30, b"".join(
        tlv(0x31, b"".join(tlv(0x30, oid(o) + tlv(tag, value)) for o, tag, value in rdn))
        for rdn in rdns))
    alg = tlv(0x30, oid("1.2.840.113549.1.1.11") + b"\x05\x00")
    validity = tlv(0x30, tlv(0x17, b"170323000000Z") + tlv(0x17, b"200323000000Z"))
    spki = tlv(0x30, tlv(0x30, oid("1.2.840.113549.1.1.1") + b"\x05\x00") + tlv(0x03, b"\x00\x00"))
    tbs = (tlv(0xA0, tlv(0x02, b"\x02")) + tlv(0x02, b"\x01") + alg + tlv(0x30, b"") + validity
           + name + spki)
    if extensions:
        tbs += tlv(0xA3, tlv(0x30, b"".join(tlv(0x30, oid(o) + tlv(0x04, v))
                                            for o, v in extensions)))
    return tlv(0x30, tlv(0x30, tbs) + alg + tlv(0x03, b"\x00" + b"\x55" * 16))


UTF8, PRINTABLE, TELETEX, BMP, UNIVERSAL = 0x0C, 0x13, 0x14, 0x1E, 0x1C
CN, SN, GN, TITLE = "2.5.4.3", "2.5.4.4", "2.5.4.42", "2.5.4.12"


def fields(p: Practitioner) -> dict:
    return {name: getattr(p, name) for name in CONTRACT}


# --------------------------------------------------------------------------- real DN shapes
#: The subjects of cps-domain.md section 3.3, as RFC 4514 strings (most specific RDN first).
REAL_SHAPES = {
    # The public TEST CPE card 2600301752 (esignsante-ws), with its extensions.
    "test-cpe-card": (
        "GN=CHARLES+CN=30B0057881/CPET0002+SN=ADMINISTRATIF-CH057880002,"
        "title=Personnel santé ou social,OU=10B0057881,O=HOPITAL DES 3 DAMES,ST=Paris (75),C=FR",
        [ext_card_type(2), ext_card_id("8025000001/2600301752"),
         ext_upn("30B0057881/CPET0002@carte-cps.fr"),
         x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.250.1.71.1.2.5"), b"\x04\x01\x80")],
        dict(idnat="30B0057881/CPET0002", id_type=IdType.FINESS, national_id="0B0057881",
             last_name="ADMINISTRATIF-CH057880002", first_name="CHARLES", profession_code=None,
             profession_label="Personnel santé ou social", structure_id="10B0057881",
             structure_name="HOPITAL DES 3 DAMES", card_type=CardType.CPE,
             card_number="2600301752"),
        dict(internal_id="CPET0002", locality="Paris (75)", card_type_inferred=False,
             upn="30B0057881/CPET0002@carte-cps.fr", rpps_luhn_ok=None),
    ),
    "rpps-medecin": (
        "CN=810002813839+SN=DONNAT-GADY+GN=ISABELLE,title=Médecin,C=FR", [],
        dict(idnat="810002813839", id_type=IdType.RPPS, national_id="10002813839",
             last_name="DONNAT-GADY", first_name="ISABELLE", profession_code="10",
             profession_label="Médecin", structure_id=None, structure_name=None,
             card_type=CardType.UNKNOWN, card_number=None),
        dict(internal_id=None, rpps_luhn_ok=True, card_type_inferred=False, upn=None),
    ),
    "rpps-pharmacien-test": (
        "SN=PHARMACH0007512+CN=899700075122+GN=CAROLE,title=Pharmacien,C=FR", [],
        dict(idnat="899700075122", id_type=IdType.RPPS, national_id="99700075122",
             last_name="PHARMACH0007512", first_name="CAROLE", profession_code="21",
             profession_label="Pharmacien", structure_id=None, structure_name=None,
             card_type=CardType.UNKNOWN, card_number=None),
        dict(rpps_luhn_ok=True),
    ),
    "legacy-adeli": (
        "GN=HONORE+SN=MASSEUR1044+CN=00B7010446,OU=Masseur-Kinésithérapeute,O=TEST,C=FR", [],
        dict(idnat="00B7010446", id_type=IdType.ADELI, national_id="0B7010446",
             last_name="MASSEUR1044", first_name="HONORE", profession_code="70",
             profession_label="Masseur-Kinésithérapeute", structure_id=None,
             structure_name="TEST", card_type=CardType.UNKNOWN, card_number=None),
        dict(rpps_luhn_ok=None, internal_id=None, locality=None),
    ),
    "cpa": (
        "GN=PATRICE+SN=MAITRE0000029750001+CN=500000000029751/CPAT0001,OU=300000000029751,"
        "L=Paris (75),O=TEST,C=FR", [],
        dict(idnat="500000000029751/CPAT0001", id_type=IdType.SIRET,
             national_id="00000000029751", last_name="MAITRE0000029750001",
             first_name="PATRICE", profession_code=None, profession_label=None,
             structure_id="300000000029751", structure_name="TEST", card_type=CardType.CPA,
             card_number=None),
        dict(internal_id="CPAT0001", locality="Paris (75)", card_type_inferred=True),
    ),
    # Older IGC, printed by OpenSSL as
    # …/O=PHARMACIE CRISTOL - LOUIN/OU=1760021832/title=Carte de service santé ou social/
    #   pseudonym=EMPLOYE000000018/CN=3760021832/000000018
    "employee": (
        "CN=3760021832/000000018,pseudonym=EMPLOYE000000018,"
        "title=Carte de service santé ou social,OU=1760021832,O=PHARMACIE CRISTOL - LOUIN,C=FR",
        [],
        dict(idnat="3760021832/000000018", id_type=IdType.FINESS, national_id="760021832",
             last_name="EMPLOYE000000018", first_name=None, profession_code=None,
             profession_label="Carte de service santé ou social", structure_id="1760021832",
             structure_name="PHARMACIE CRISTOL - LOUIN", card_type=CardType.CPE,
             card_number=None),
        dict(internal_id="000000018", pseudonym="EMPLOYE000000018", card_type_inferred=True),
    ),
}


@pytest.mark.parametrize("shape", sorted(REAL_SHAPES))
def test_real_dn_shapes(shape):
    subject, extensions, expected, extras = REAL_SHAPES[shape]
    cert = make_cert(subject, *extensions)
    p = Practitioner.from_certificate(cert)
    assert fields(p) == expected
    for name, value in extras.items():
        assert getattr(p, name) == value, name
    assert p.warnings == ()
    assert p.validated is False
    # DER and PEM (bytes and str) give the same result as the certificate object
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert Practitioner.from_certificate(der_of(cert)) == p
    assert Practitioner.from_certificate(pem) == p
    assert Practitioner.from_certificate(pem.decode()) == p
    assert Practitioner.from_certificate(b"Bag Attributes\n  friendlyName: x\n" + pem) == p
    assert Practitioner.from_certificate(bytearray(der_of(cert))) == p


def _rebuilt(subject: str, layout: str, string_type: _ASN1Type | None) -> x509.Name:
    """The same attributes, laid out differently and/or with another string type."""
    name = x509.Name.from_rfc4514_string(subject, ATTRIBUTE_NAMES)

    def attr(a: x509.NameAttribute) -> x509.NameAttribute:
        if string_type is None or a.oid == NameOID.COUNTRY_NAME:
            return a
        value = a.value
        assert isinstance(value, str)
        if string_type is _ASN1Type.PrintableString and not value.isascii():
            return a
        return x509.NameAttribute(a.oid, value, string_type)

    rdns = [[attr(a) for a in rdn] for rdn in name.rdns]
    if layout == "single-valued":
        rdns = [[a] for rdn in rdns for a in rdn]
    elif layout == "reversed":
        rdns = [list(reversed(rdn)) for rdn in reversed(rdns)]
    elif layout == "all-in-one":
        rdns = [[a for rdn in rdns for a in rdn]]
    return x509.Name([x509.RelativeDistinguishedName(rdn) for rdn in rdns])


@pytest.mark.parametrize("shape", sorted(REAL_SHAPES))
@pytest.mark.parametrize("layout", ["single-valued", "reversed", "all-in-one"])
@pytest.mark.parametrize("string_type", [None, _ASN1Type.PrintableString, _ASN1Type.BMPString,
                                         _ASN1Type.UniversalString, _ASN1Type.T61String])
def test_rdn_layout_and_string_type_do_not_matter(shape, layout, string_type):
    subject, extensions, expected, _ = REAL_SHAPES[shape]
    p = Practitioner.from_certificate(make_cert(_rebuilt(subject, layout, string_type),
                                                *extensions))
    assert fields(p) == expected
    assert p.warnings == ()


def test_cryptography_refuses_the_subject_but_we_read_it():
    """Latin-1 bytes in a UTF8String: cryptography raises on .subject; we decode and warn."""
    cert = make_cert("CN=810002813839+SN=ZZZZZZ+GN=ISABELLE,title=Médecin,C=FR")
    bad = der_of(cert).replace(b"ZZZZZZ", "ÉLODIE".encode("latin-1"))
    loaded = x509.load_der_x509_certificate(bad)
    with pytest.raises(ValueError):
        loaded.subject  # noqa: B018 - the point: cryptography cannot decode it
    for source in (bad, loaded):
        p = Practitioner.from_certificate(source)
        assert p.last_name == "ÉLODIE"
        assert p.idnat == "810002813839" and p.profession_code == "10"
        assert any("SN" in w and "Latin-1" in w for w in p.warnings)


@pytest.mark.parametrize("tag, raw, expected, warned", [
    (UTF8, "MARCHAND-LEFÈVRE".encode(), "MARCHAND-LEFÈVRE", False),
    (PRINTABLE, b"MARCHAND", "MARCHAND", False),
    (TELETEX, "LEFÈVRE".encode("latin-1"), "LEFÈVRE", False),  # T61 in practice = Latin-1
    (TELETEX, "LEFÈVRE".encode(), "LEFÈVRE", False),
    (BMP, "LEFÈVRE".encode("utf-16-be"), "LEFÈVRE", False),
    (UNIVERSAL, "LEFÈVRE".encode("utf-32-be"), "LEFÈVRE", False),
    (UTF8, "LEFÈVRE".encode("latin-1"), "LEFÈVRE", True),
    (PRINTABLE, "LEFÈVRE".encode("latin-1"), "LEFÈVRE", True),
    (BMP, b"\x00L\x00", None, True),  # odd length
])
def test_string_types_and_undecodable_bytes(tag, raw, expected, warned):
    der = raw_cert([[("2.5.4.6", PRINTABLE, b"FR")],
                    [(CN, PRINTABLE, b"810002813839"), (SN, tag, raw), (GN, UTF8, b"ANNE")]])
    p = Practitioner.from_certificate(der)
    if expected is not None:
        assert p.last_name == expected
    else:
        assert isinstance(p.last_name, str)
    assert bool(p.warnings) is warned
    assert p.idnat == "810002813839" and p.first_name == "ANNE"


def test_non_string_attribute_is_ignored_with_a_warning():
    der = raw_cert([[(CN, UTF8, b"810002813839"), (SN, 0x04, b"\x01\x02")]])
    p = Practitioner.from_certificate(der)
    assert p.last_name is None
    assert any("SN" in w for w in p.warnings)


# --------------------------------------------------------------------------- emulator PKI
@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    from cps.emulator.pki import TestPKI

    return TestPKI.generate(tmp_path_factory.mktemp("pki"), seed=1)


@pytest.mark.parametrize("name", profile_names())
def test_emulator_profiles(pki, name):
    profile = load_profile(name)
    holder = profile.holder
    issued = pki.issue_card(name)
    certs = [issued.auth_cert, issued.sign_cert] + ([issued.tech_cert] if issued.tech_cert else [])
    for cert in certs:
        p = Practitioner.from_certificate(cert)
        assert (p.idnat, p.last_name, p.first_name, p.profession_code, p.profession_label,
                p.structure_id, p.structure_name, p.locality) == (
            holder.idnat, holder.last_name, holder.first_name, holder.profession_code,
            holder.profession_label, holder.structure_id, holder.structure_name,
            holder.locality)
        assert p.card_type is CardType(profile.card_type)
        assert p.card_type_inferred is False
        assert p.card_number == profile.card_number
        # the signature certificate has no UPN, like the real one
        assert p.upn == (None if cert is issued.sign_cert else f"{holder.idnat}@carte-cps.fr")
        assert p.profession_code_source == ("extension" if holder.profession_code else None)
        assert p.profession_mismatch is False
        assert p.id_type is not IdType.UNKNOWN
        assert p.idnat == p.id_type.value + p.national_id + (
            f"/{p.internal_id}" if p.internal_id else "")
        if p.id_type is IdType.RPPS:
            assert p.rpps == p.national_id and len(p.rpps) == 11 and p.rpps_luhn_ok is True
        assert p.warnings == ()
        assert p.validated is False
        json.dumps(p.to_dict())


# --------------------------------------------------------------------------- identifiers
@pytest.mark.parametrize("value, id_type, national, internal", [
    ("810002813839", IdType.RPPS, "10002813839", None),
    ("00B7010446", IdType.ADELI, "0B7010446", None),
    ("02A1234567", IdType.ADELI, "2A1234567", None),
    ("0697012345", IdType.ADELI, "697012345", None),
    ("1123456789/42", IdType.ADELI_CABINET, "123456789", "42"),
    ("30B0057881/CPET0002", IdType.FINESS, "0B0057881", "CPET0002"),
    ("3760021832/000000018", IdType.FINESS, "760021832", "000000018"),
    ("3750100125/1453", IdType.FINESS, "750100125", "1453"),
    ("4123456789/7", IdType.SIREN, "123456789", "7"),
    ("500000000029751/CPAT0001", IdType.SIRET, "00000000029751", "CPAT0001"),
    ("6123456/AB-1", IdType.RPPS_CABINET, "123456", "AB-1"),
    ("30B0057881", IdType.FINESS, "0B0057881", None),
])
def test_parse_idnat(value, id_type, national, internal):
    parsed = parse_idnat(value)
    assert (parsed.id_type, parsed.national_id, parsed.internal_id) == (id_type, national, internal)
    assert parsed.problems == ()
    assert parsed.value == value


@pytest.mark.parametrize("value", [
    "", "2123456789", "7123", "9999", "A810002813839", " 810002813839", "810002813839 ",
    "8100028138", "8100028138391", "8A0002813839", "81000281383/1", "00B7010446/1",
    "3/CPET0002", "30B0057881/", "30B0057881/é", "3 0B0057881", "8", "0", "810002813839\n",
    "8１０００２８１３８３９",  # full-width digits are not ASCII digits
])
def test_not_an_idnat_is_unknown_never_an_exception(value):
    parsed = parse_idnat(value)
    assert parsed.id_type is IdType.UNKNOWN
    assert parsed.national_id == value
    assert parsed.problems


def test_luhn_is_a_warning_only():
    # RPPS from certificate DNs pass Luhn; synthetic ANS FHIR examples do not (cps-domain §4)
    assert luhn_valid("10002813839") and luhn_valid("99700075122")
    assert not luhn_valid("10003461033") and not luhn_valid("10101201234")
    parsed = parse_idnat("810003461033")
    assert parsed.id_type is IdType.RPPS and parsed.rpps_luhn_ok is False
    assert any("Luhn" in p for p in parsed.problems)
    p = Practitioner.from_certificate(make_cert("CN=810003461033+SN=X+GN=Y,C=FR"))
    assert p.id_type is IdType.RPPS and p.rpps == "10003461033" and p.rpps_luhn_ok is False
    assert any("Luhn" in w for w in p.warnings)
    assert parse_idnat("00B7010446").rpps_luhn_ok is None
    for bad in ("", "7", "12a4", "١٢٣٤"):
        assert luhn_valid(bad) is False


def test_inferred_shapes_only_warn():
    parsed = parse_idnat("3123/1")  # FINESS should have 9 characters
    assert parsed.id_type is IdType.FINESS and parsed.national_id == "123"
    assert any("FINESS" in p for p in parsed.problems)
    with pytest.raises(TypeError):
        parse_idnat(810002813839)  # type: ignore[arg-type]


@pytest.mark.parametrize("cn", ["2123456789", "JEAN DUPONT", "9/1", "810002813839 "])
def test_unknown_prefix_gives_unknown_not_an_exception(cn):
    p = Practitioner.from_certificate(make_cert(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])))
    assert p.id_type is IdType.UNKNOWN and p.idnat == cn and p.national_id == cn
    assert p.card_type is CardType.UNKNOWN and p.warnings


def test_idtype_values_and_structure_based():
    assert {t.value for t in IdType} == {"0", "1", "3", "4", "5", "6", "8", "unknown"}
    assert {t for t in IdType if t.structure_based} == {
        IdType.ADELI_CABINET, IdType.FINESS, IdType.SIREN, IdType.SIRET, IdType.RPPS_CABINET}
    assert CARD_TYPE_CODES == {0: CardType.CPS, 1: CardType.CPF, 2: CardType.CPE, 3: CardType.CPA}


# --------------------------------------------------------------------------- extensions
@pytest.mark.parametrize("code", sorted(CARD_TYPE_CODES))
def test_card_type_extension_wins_over_inference(code):
    p = Practitioner.from_certificate(make_cert("CN=500000000029751/CPAT0001,C=FR",
                                                ext_card_type(code)))
    assert p.card_type is CARD_TYPE_CODES[code] and p.card_type_inferred is False


def test_card_type_unexpected_values():
    p = Practitioner.from_certificate(make_cert("CN=810002813839,C=FR", ext_card_type(7)))
    assert p.card_type is CardType.UNKNOWN and any("7" in w for w in p.warnings)
    garbage = x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_CARD_TYPE), b"\x04\x01\x02")
    p = Practitioner.from_certificate(make_cert("CN=810002813839,C=FR", garbage))
    assert p.card_type is CardType.UNKNOWN and p.warnings


def test_card_type_inference_is_conservative():
    def card(cn: str) -> Practitioner:
        return Practitioner.from_certificate(make_cert(f"CN={cn},C=FR"))

    assert (card("810002813839").card_type, card("810002813839").card_type_inferred) == (
        CardType.UNKNOWN, False)  # CPS or CPF: cannot tell
    assert card("00B7010446").card_type is CardType.UNKNOWN
    assert card("30B0057881").card_type is CardType.UNKNOWN  # no internal id: no guess
    assert (card("30B0057881/CPET0002").card_type, card("3760021832/000000018").card_type,
            card("500000000029751/cpat0001").card_type) == (CardType.CPE, CardType.CPE,
                                                            CardType.CPA)


@pytest.mark.parametrize("value, number, warned", [
    ("8025000001/2600301752", "2600301752", False),
    ("8025000001/99100003", "99100003", False),
    ("2600301752", "2600301752", True),
    ("9999999999/123", "123", True),
    ("8025000001/", None, True),
])
def test_card_number_extension(value, number, warned):
    p = Practitioner.from_certificate(make_cert("CN=810002813839,C=FR", ext_card_id(value)))
    assert p.card_number == number
    assert bool(p.warnings) is warned


def test_card_number_extension_not_a_string():
    ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_CARD_ISSUER_ID), b"\x02\x01\x05")
    p = Practitioner.from_certificate(make_cert("CN=810002813839,C=FR", ext))
    assert p.card_number is None and p.warnings


def test_upn_cross_check_never_gives_the_idnat():
    # consistent
    p = Practitioner.from_certificate(make_cert("CN=810002813839,C=FR",
                                                ext_upn("810002813839@carte-cps.fr",
                                                        email="a@b.fr")))
    assert p.upn == "810002813839@carte-cps.fr" and p.warnings == ()
    # different: the CN wins, a warning says so
    p = Practitioner.from_certificate(make_cert("CN=810002813839,C=FR",
                                                ext_upn("899700075122@carte-cps.fr")))
    assert p.idnat == "810002813839" and any("UPN" in w for w in p.warnings)
    # no CN: the UPN is NOT used as the idnat
    with pytest.raises(errors.CertificateParseError, match="CN"):
        Practitioner.from_certificate(make_cert("SN=DUPONT+GN=JEAN,C=FR",
                                                ext_upn("00B7010446@CARTE-CPS.FR")))
    # a CN that is not an idnat (a name) stays the idnat, UNKNOWN; the UPN is only compared
    p = Practitioner.from_certificate(make_cert("CN=JEAN DUPONT,C=FR",
                                                ext_upn("810002813839@carte-cps.fr")))
    assert p.idnat == "JEAN DUPONT" and p.id_type is IdType.UNKNOWN
    assert any("does not match" in w for w in p.warnings)
    # a UPN of another domain is reported, and never used
    p = Practitioner.from_certificate(make_cert("CN=810002813839,C=FR",
                                                ext_upn("810002813839@x.fr")))
    assert p.idnat == "810002813839" and any("domain" in w for w in p.warnings)
    with pytest.raises(errors.CertificateParseError):
        Practitioner.from_certificate(make_cert("SN=DUPONT,C=FR", ext_upn("810002813839@x.fr")))


@pytest.mark.parametrize("subject, upn", [
    # authentication certificate of a CPS / CPE card: <idnat>@carte-cps.fr
    ("GN=ISABELLE+CN=810002813839+SN=DONNAT-GADY,title=Médecin,C=FR",
     "810002813839@carte-cps.fr"),
    ("GN=CHARLES+CN=30B0057881/CPET0002+SN=ADMINISTRATIF,title=Personnel santé ou social,C=FR",
     "30B0057881/CPET0002@carte-cps.fr"),
    ("CN=00B7010446,C=FR", "00B7010446@CARTE-CPS.FR"),  # domain case does not matter
    # CPA card: 5.<SIRET>.<internal id>@carte-cps.fr
    ("GN=PATRICE+SN=MAITRE0000029750001+CN=500000000029751/CPAT0001,OU=300000000029751,"
     "L=Paris (75),O=TEST,C=FR", "5.00000000029751.CPAT0001@carte-cps.fr"),
    ("CN=500000000029751/CPAT0001,C=FR", "500000000029751/CPAT0001@carte-cps.fr"),
])
def test_both_observed_upn_forms_are_accepted_silently(subject, upn):
    p = Practitioner.from_certificate(make_cert(subject, ext_upn(upn)))
    assert p.upn == upn and p.warnings == ()
    assert p.idnat == x509.Name.from_rfc4514_string(subject, ATTRIBUTE_NAMES) \
        .get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


@pytest.mark.parametrize("subject, upn", [
    ("CN=500000000029751/CPAT0001,C=FR", "5.00000000029751.CPAT0002@carte-cps.fr"),
    ("CN=500000000029751/CPAT0001,C=FR", "5.00000000029752.CPAT0001@carte-cps.fr"),
    ("CN=500000000029751/CPAT0001,C=FR", "5.00000000029751CPAT0001@carte-cps.fr"),
    # the dotted form only exists for SIRET-based (type 5) identifiers
    ("CN=30B0057881/CPET0002,C=FR", "3.0B0057881.CPET0002@carte-cps.fr"),
    ("CN=810002813839,C=FR", "8.10002813839@carte-cps.fr"),
])
def test_other_upn_forms_are_reported(subject, upn):
    p = Practitioner.from_certificate(make_cert(subject, ext_upn(upn)))
    assert p.idnat == subject[3:].split(",")[0]  # the CN, whatever the UPN says
    assert p.upn == upn and any("does not match" in w for w in p.warnings)


def test_signature_certificate_without_upn():
    p = Practitioner.from_certificate(make_cert(
        "GN=OLIVIER+CN=00B6087510+SN=INFIRMCS ADELI8751,title=Infirmier,C=FR",
        ext_card_type(0), ext_card_id("8025000001/2800636234"), ext_profession(60)))
    assert (p.idnat, p.id_type, p.upn) == ("00B6087510", IdType.ADELI, None)
    assert (p.profession_code, p.profession_code_source, p.profession_mismatch) == \
        ("60", "extension", False)
    assert (p.card_type, p.card_number) == (CardType.CPS, "2800636234")
    assert p.warnings == ()


# --------------------------------------------------------------------------- profession ext
def test_profession_extension_absent_uses_the_title():
    p = Practitioner.from_certificate(make_cert("CN=810002813839,title=Pharmacien,C=FR"))
    assert (p.profession_code, p.profession_code_source, p.profession_mismatch) == \
        ("21", "title", False)
    staff = Practitioner.from_certificate(make_cert(
        "CN=30B0057881/CPET0002,title=Personnel santé ou social,C=FR"))
    assert (staff.profession_code, staff.profession_code_source) == (None, None)
    assert staff.warnings == ()


def test_profession_extension_without_title():
    p = Practitioner.from_certificate(make_cert("CN=810002813839,C=FR", ext_profession(10)))
    assert (p.profession_code, p.profession_label, p.profession_code_source) == \
        ("10", None, "extension")
    assert p.warnings == ()


def test_profession_extension_disagreeing_with_the_title():
    p = Practitioner.from_certificate(make_cert("CN=810002813839,title=Médecin,C=FR",
                                                ext_profession(21)))
    # the extension (a code signed by the CA) wins; the disagreement is flagged twice
    assert (p.profession_code, p.profession_label) == ("21", "Médecin")
    assert p.profession_code_source == "extension" and p.profession_mismatch is True
    [warning] = p.warnings
    assert "'21'" in warning and "'10'" in warning and "Médecin" in warning
    assert p.to_dict()["profession_mismatch"] is True


def test_profession_extension_with_a_staff_title_is_no_mismatch():
    p = Practitioner.from_certificate(make_cert(
        "CN=30B0057881/CPET0002,title=Personnel santé ou social,C=FR", ext_profession(60)))
    assert (p.profession_code, p.profession_mismatch, p.warnings) == ("60", False, ())


def test_profession_extension_unknown_code_is_kept_and_reported():
    p = Practitioner.from_certificate(make_cert("CN=810002813839,C=FR", ext_profession(99)))
    assert p.profession_code == "99" and p.profession_code_source == "extension"
    assert any("not in the TRE_G15 table" in w for w in p.warnings)
    p = Practitioner.from_certificate(make_cert("CN=810002813839,C=FR", ext_profession(5)))
    assert p.profession_code == "05"


@pytest.mark.parametrize("value", [
    b"",                                  # nothing
    b"\x02",                              # truncated TLV
    b"\x02\x00",                          # empty INTEGER
    b"\x02\x01",                          # length beyond the data
    b"\x02\x01\x0a\x00",                  # trailing byte
    b"\x02\x01\xff",                      # negative
    b"\x02\x03\x01\x00\x00",              # too large for a TRE_G15 code
    b"\x02\x02\x03\xe8",                  # 1000
    b"\x13\x0210",                        # PrintableString "10", not an INTEGER
    b"\x04\x01\x0a",                      # OCTET STRING
    b"\x02\x84\xff\xff\xff\xff\x0a",      # absurd length
    b"\x30\x03\x02\x01\x0a",              # SEQUENCE { INTEGER }
])
def test_malformed_profession_extension_is_a_warning(value):
    cert = make_cert("CN=810002813839,title=Infirmier,C=FR",
                     x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_PROFESSION), value))
    p = Practitioner.from_certificate(cert)
    # ignored, reported; the code falls back on the title
    assert (p.profession_code, p.profession_code_source, p.profession_mismatch) == \
        ("60", "title", False)
    assert any(OID_PROFESSION in w and "ignored" in w for w in p.warnings)
    # the same through the raw-DER path (extension assembled by hand)
    der = raw_cert([[(CN, UTF8, b"810002813839")], [(TITLE, UTF8, b"Infirmier")]],
                   [(OID_PROFESSION, value)])
    q = Practitioner.from_certificate(der)
    assert (q.profession_code, q.profession_code_source) == ("60", "title")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=12))
def test_profession_extension_fuzz_never_raises(value):
    der = raw_cert([[(CN, UTF8, b"810002813839")]], [(OID_PROFESSION, value)])
    p = Practitioner.from_certificate(der)
    assert p.profession_code is None or (p.profession_code.isdigit()
                                         and p.profession_code_source == "extension")


def test_profession_extension_through_parsed_certificate():
    from cps.trust import certs

    der = der_of(make_cert("CN=810002813839,title=Médecin,C=FR", ext_profession(21)))
    p = Practitioner.from_parsed_certificate(certs.parse_cert(der))
    assert p == Practitioner.from_certificate(der)
    assert p.profession_mismatch is True


# --------------------------------------------------------------------------- failures
def test_certificate_without_cn_raises():
    cert = make_cert("SN=DONNAT-GADY+GN=ISABELLE,title=Médecin,C=FR")
    with pytest.raises(errors.CertificateParseError, match="CN"):
        Practitioner.from_certificate(cert)
    empty = raw_cert([[("2.5.4.6", PRINTABLE, b"FR")], [(CN, UTF8, b"")]])
    with pytest.raises(errors.CertificateParseError, match="CN"):
        Practitioner.from_certificate(empty)
    blank = raw_cert([[(CN, UTF8, b"   ")]])
    with pytest.raises(errors.CertificateParseError, match="CN"):
        Practitioner.from_certificate(blank)
    with pytest.raises(errors.CertificateParseError):
        Practitioner.from_certificate(raw_cert([]))


def test_several_cns_prefer_the_idnat():
    der = raw_cert([[(CN, UTF8, "Dr Jean DUPONT".encode())], [(CN, UTF8, b"810002813839")]])
    p = Practitioner.from_certificate(der)
    assert p.idnat == "810002813839" and any("2 CNs" in w for w in p.warnings)


def _crl() -> bytes:
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ISSUER).last_update(T0)
           .next_update(T0 + timedelta(days=1)).sign(KEY, hashes.SHA256()))
    return crl.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("garbage", [
    b"", b"\x00", b"\x30", b"\x30\x80\x00\x00", b"\x30\x84\xff\xff\xff\xff", b"hello world",
    b"\x30\x03\x02\x01\x01", bytes(range(256)), b"\xff" * 64,
    b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n",
    "-----BEGIN PUBLIC KEY-----\nMAMCAQE=\n-----END PUBLIC KEY-----\n",
    "not a certificate",
    "lone -----BEGIN CERTIFICATE----- marker",
], ids=repr)
def test_garbage_raises_certificate_parse_error(garbage):
    with pytest.raises(errors.CertificateParseError) as caught:
        Practitioner.from_certificate(garbage)
    assert not isinstance(caught.value, ValueError)


def test_other_der_objects_and_trailing_bytes_raise():
    cert_der = der_of(make_cert("CN=810002813839,C=FR"))
    for data in (_crl(), cert_der + b"\x00", cert_der[:-1], cert_der[:40]):
        with pytest.raises(errors.CertificateParseError):
            Practitioner.from_certificate(data)


def test_wrong_type_is_a_type_error():
    for thing in (None, 42, ["x"], KEY.public_key()):
        with pytest.raises(TypeError):
            Practitioner.from_certificate(thing)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- properties
_CN_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=64)
_IDNAT_LIKE = st.from_regex(r"\A[0-9][0-9A-Za-z]{0,14}(/[0-9A-Za-z]{0,10})?\Z")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cn=st.one_of(_CN_TEXT, _IDNAT_LIKE),
       string_type=st.sampled_from([_ASN1Type.UTF8String, _ASN1Type.BMPString,
                                    _ASN1Type.UniversalString, _ASN1Type.T61String]))
def test_property_any_cn_string(cn, string_type):
    try:
        attribute = x509.NameAttribute(NameOID.COMMON_NAME, cn, string_type)
    except ValueError:
        return  # cryptography refuses to build it; nothing to parse
    try:
        p = Practitioner.from_certificate(make_cert(x509.Name([attribute])))
    except errors.CertificateParseError:
        assert not cn.strip()  # only a blank CN names nobody
        return
    assert p.idnat == cn
    parsed = parse_idnat(cn)
    assert (p.id_type, p.national_id, p.internal_id) == (
        parsed.id_type, parsed.national_id, parsed.internal_id)
    if p.id_type is IdType.UNKNOWN:
        assert p.national_id == cn
    else:
        assert cn == p.id_type.value + p.national_id + (
            f"/{p.internal_id}" if p.internal_id is not None else "")
    if p.id_type is IdType.RPPS:
        assert len(p.national_id) == 11 and p.national_id.isdigit()
    json.dumps(p.to_dict())


@settings(max_examples=300, deadline=None)
@given(tag=st.sampled_from([UTF8, PRINTABLE, TELETEX, BMP, UNIVERSAL, 0x16, 0x12, 0x1A,
                            0x04, 0x30, 0x02]),
       raw=st.binary(max_size=80), sn_raw=st.binary(max_size=20))
def test_property_any_cn_bytes(tag, raw, sn_raw):
    der = raw_cert([[(CN, tag, raw), (SN, UTF8, sn_raw)]])
    try:
        p = Practitioner.from_certificate(der)
    except errors.CertificateParseError:
        return
    assert isinstance(p.idnat, str) and p.idnat


_SAMPLE = der_of(make_cert(REAL_SHAPES["test-cpe-card"][0], *REAL_SHAPES["test-cpe-card"][1]))


@settings(max_examples=400, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, len(_SAMPLE) - 1), st.integers(0, 255)),
                      min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, len(_SAMPLE))))
def test_property_corrupted_certificates(edits, cut):
    data = bytearray(_SAMPLE)
    for position, value in edits:
        data[position] = value
    if cut is not None:
        data = data[:cut]
    try:
        p = Practitioner.from_certificate(bytes(data))
    except errors.CertificateParseError:
        return
    assert isinstance(p, Practitioner)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_property_random_bytes(data):
    try:
        Practitioner.from_certificate(data)
    except errors.CertificateParseError:
        pass


# --------------------------------------------------------------------------- the dataclass
def _medecin() -> Practitioner:
    return Practitioner.from_certificate(make_cert(REAL_SHAPES["rpps-medecin"][0]))


def test_contract_fields_come_first_and_extras_are_keyword_only():
    assert [f.name for f in dataclasses.fields(Practitioner)][:11] == CONTRACT
    p = Practitioner("810002813839", IdType.RPPS, "10002813839", "DONNAT-GADY", "ISABELLE",
                     "10", "Médecin", None, None, CardType.CPS, "2600301752")
    assert p.validated is False and p.internal_id is None and p.warnings == ()
    with pytest.raises(TypeError):
        Practitioner(*[getattr(p, n) for n in CONTRACT], None)  # type: ignore[misc]


def test_validated_flag():
    p = _medecin()
    assert p.validated is False
    v = p.as_validated()
    assert v.validated is True and p.validated is False
    assert dataclasses.replace(v, validated=False) == p
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.validated = True  # type: ignore[misc]


def test_to_dict_is_json_friendly():
    subject, extensions = REAL_SHAPES["test-cpe-card"][:2]
    p = Practitioner.from_certificate(make_cert(subject, *extensions))
    d = p.to_dict()
    assert list(d)[:11] == CONTRACT
    assert d["id_type"] == "3" and d["id_type_name"] == "FINESS" and d["card_type"] == "CPE"
    assert d["validated"] is False and d["warnings"] == []
    assert json.loads(json.dumps(d)) == d
    assert d["last_name"] == "ADMINISTRATIF-CH057880002"


def test_convenience_properties():
    p = _medecin()
    assert (p.rpps, p.adeli, p.display_name) == ("10002813839", None, "ISABELLE DONNAT-GADY")
    adeli = Practitioner.from_certificate(make_cert(REAL_SHAPES["legacy-adeli"][0]))
    assert (adeli.rpps, adeli.adeli) == (None, "0B7010446")
    bare = Practitioner.from_certificate(make_cert("CN=810002813839"))
    assert bare.display_name == "810002813839"
    assert (bare.last_name, bare.first_name, bare.profession_label) == (None, None, None)


def test_docs_say_it_is_a_claim():
    import cps.identity as identity

    for doc in (identity.__doc__, Practitioner.__doc__, Practitioner.from_certificate.__doc__):
        assert doc and "claim" in doc
    assert "cps.trust" in identity.__doc__ and "cps.auth" in identity.__doc__
    assert ":param cert:" in Practitioner.from_certificate.__doc__


def test_import_is_light():
    code = ("import sys, cps.identity, cps.professions; "
            "print(sorted(m for m in ('cryptography', 'asn1crypto', 'click', 'smartcard') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- TRE_G15
def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def test_tre_g15_table():
    table = professions.PROFESSIONS
    assert len(table) == 30
    assert {c for c, p in table.items() if p.deprecated} == {"35", "36", "37", "38", "39", "93"}
    assert table["93"].deprecated_since.isoformat() == "2021-12-17"
    assert table["35"].deprecated_since.isoformat() == "2024-12-13"
    assert table["10"].deprecated_since is None
    assert professions.TRE_G15_OID == "1.2.250.1.71.1.2.7"
    with pytest.raises(TypeError):
        table["99"] = table["10"]  # type: ignore[index]


@pytest.mark.parametrize("code", sorted(professions.PROFESSIONS))
def test_every_label_round_trips_whatever_the_case_and_accents(code):
    label = professions.label_for(code)
    assert label is not None
    for variant in (label, label.upper(), label.lower(), _strip_accents(label),
                    _strip_accents(label).upper(), unicodedata.normalize("NFD", label),
                    f"  {label.replace('-', ' ')}  ", label.replace(" ", "-")):
        assert professions.code_for(variant) == code, variant


@pytest.mark.parametrize("label, code", [
    ("Médecin", "10"), ("MEDECIN", "10"), ("médecin", "10"), ("Medecin", "10"),
    ("Pharmacien", "21"), ("PHARMACIENNE", "21"),
    ("Masseur-Kinésithérapeute", "70"), ("masseur kinesitherapeute", "70"),
    ("MASSEUR_KINÉSITHÉRAPEUTE", "70"), ("Sage-femme", "50"), ("SAGE FEMME", "50"),
    ("Chirurgien-dentiste", "40"), ("Infirmière", "60"), ("INFIRMIER", "60"),
    ("Opticien lunetier", "28"), ("Préparateur en pharmacie (officine)", "39"),
    ("preparateur en pharmacie officine", "39"), ("Manipulateur ERM", "98"),
    ("Épithésiste", "85"), ("Psychologue", "93"),
    ("Personnel santé ou social", None), ("Carte de service santé ou social", None),
    ("Médecin en formation", None), ("", None), ("   ", None), ("10", None),
])
def test_code_for(label, code):
    assert professions.code_for(label) == code


def test_label_for_and_lookups():
    assert professions.label_for("10") == "Médecin"
    assert professions.label_for(10) == "Médecin"
    assert professions.label_for(" 70 ") == "Masseur-Kinésithérapeute"
    for unknown in ("99", "1", "", "Médecin", -1, True, None):
        assert professions.label_for(unknown) is None  # type: ignore[arg-type]
    assert professions.code_for(None) is None  # type: ignore[arg-type]
    assert professions.profession("39").label == "Préparateur en pharmacie (officine)"
    assert professions.profession("39").deprecated is True


def test_aliases_never_shadow_an_official_label():
    official = {professions.normalize_label(p.label): p.code
                for p in professions.PROFESSIONS.values()}
    assert len(official) == len(professions.PROFESSIONS)
    for alias, code in professions.ALIASES.items():
        assert code in professions.PROFESSIONS
        assert official.get(professions.normalize_label(alias), code) == code, alias


def test_title_matching_tolerates_case_and_accents_in_certificates():
    p = Practitioner.from_certificate(make_cert("CN=810002813839,title=MEDECIN,C=FR"))
    assert (p.profession_code, p.profession_label) == ("10", "MEDECIN")
    p = Practitioner.from_certificate(make_cert("CN=00B7010446,OU=MASSEUR KINESITHERAPEUTE"))
    assert (p.profession_code, p.profession_label) == ("70", "MASSEUR KINESITHERAPEUTE")
    # a staff title and a profession OU: the title is the label, no code is made up
    p = Practitioner.from_certificate(
        make_cert("CN=30B0057881/CPET0002,title=Personnel santé ou social,OU=Infirmier"))
    assert (p.profession_code, p.profession_label) == (None, "Personnel santé ou social")


def test_der_containing_a_pem_marker_is_read_as_der():
    # found by test_profession_extension_fuzz_never_raises: DER bytes that contain
    # "-----BEGIN" were taken for PEM
    der = raw_cert([[(CN, UTF8, b"810002813839")], [(TITLE, UTF8, b"-----BEGIN")]])
    assert Practitioner.from_certificate(der).profession_label == "-----BEGIN"
    cert = make_cert("CN=810002813839,C=FR", ext_upn("-----BEGIN CERTIFICATE-----@x.fr"))
    assert Practitioner.from_certificate(der_of(cert)).idnat == "810002813839"
    pem = b"notes -----BEGIN\n" + cert.public_bytes(serialization.Encoding.PEM)
    assert Practitioner.from_certificate(pem).idnat == "810002813839"
