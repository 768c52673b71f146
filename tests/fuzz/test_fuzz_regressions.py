"""Regression inputs for the bugs the fuzzers found in the library.

Each test feeds the (minimised) input and states what the library must do.
All the bugs below are fixed; each test pins its fix. A new bug found by the
fuzzers gets a test here (a strict xfail while it is open) and an entry in
``fuzz.engine.KNOWN_BUGS`` until it is fixed.

BUG-1  cps.pkcs15.parse_prkdf          AttributeError on typeAttributes without SEQUENCE
BUG-2  cps.pkcs15.PinObject.encode     pads to a card-given storedLength: unbounded allocation
BUG-3  cps.trust.certs.ParsedCert.public_key   cryptography's UnsupportedAlgorithm escapes
BUG-4  cps.trust.crlindex.CrlIndex.issuer      cryptography's TypeError escapes
BUG-5  cps.trust.ocsp.validate_response        ValueError / TypeError / UnsupportedAlgorithm
       escape from lazily decoded responder certificates
BUG-6  cps.apdu.WrongLength            resends VERIFY / CHANGE REFERENCE DATA / RESET RETRY
       COUNTER (with the PIN) on 6Cxx: one verify_pin can block the card
BUG-8  cps.trust.certs._time           impossible dates parse, then time_from_key raises
BUG-13 cps.trust.certs.basic_constraints  IndexError on an empty pathLenConstraint INTEGER
BUG-14 cps.trust.certs.oid_to_str          IndexError on an OID whose last byte continues
"""

from __future__ import annotations

import datetime as dt
import tracemalloc

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from cps import errors, tlv
from cps.connection import Connection, split_response

h = bytes.fromhex


# --------------------------------------------------------------------------- BUG-1
# Found by the `pkcs15` harness. A PrKDF entry whose typeAttributes [1] holds no
# SEQUENCE: pkcs15.py:217 calls _children(None).
PRKDF_TYPEATTRS_WITHOUT_SEQUENCE = h(
    "304630170c114350535f505249565f544543485f41555403020700301f040ee828bd080f8025000001"
    "ff001003030205200101ff030204b002020083a10a35083002040002020800")


def test_bug1_prkdf_type_attributes_without_sequence():
    from cps import pkcs15

    with pytest.raises(errors.CardProtocolError):
        pkcs15.parse_prkdf(PRKDF_TYPEATTRS_WITHOUT_SEQUENCE)


# --------------------------------------------------------------------------- BUG-2
def _aodf_with_stored_length(stored: int) -> bytes:
    T = tlv.encode

    def seq(*parts: bytes) -> bytes:
        return T(0x30, b"".join(parts))

    stored_der = T(0x02, stored.to_bytes((stored.bit_length() + 8) // 8, "big"))
    attrs = (h("0303040C10") + h("0A0101") + h("020104") + stored_der + h("020104")
             + h("800101") + h("0401FF"))          # needs-padding flag, min 4, max 4, ref 1
    return seq(seq(T(0x0C, b"PIN"), h("030108"), h("040102")), h("3003040101"),
               T(0xA1, seq(attrs)))


@pytest.mark.parametrize("stored", [2 ** 63 - 1, 50_000_000])
def test_bug2_pin_padding_to_a_hostile_stored_length(stored):
    from cps import pkcs15
    from cps.cps3 import Cps3Card

    (pin,) = pkcs15.parse_aodf(_aodf_with_stored_length(stored))
    tracemalloc.start()
    try:
        with pytest.raises(errors.CpsError):
            # what Cps3Card.verify_pin does with the PIN before anything is sent
            Cps3Card._check_code(None, pin, "1234", "PIN")  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


# --------------------------------------------------------------------------- BUG-3
def _with_unknown_key_algorithm(der: bytes) -> bytes:
    rsa = h("2a864886f70d010101")                   # rsaEncryption
    i = der.index(rsa, der.index(h("3082010a")) - 40)  # the SPKI's, not the signature's
    return der[:i] + h("2a864886f70d01017f") + der[i + len(rsa):]  # 1.2.840.113549.1.1.127


def test_bug3_certificate_with_an_unknown_key_algorithm(cps_pki):
    from cps.trust.certs import parse_cert

    der = cps_pki.issue_card("cps3-medecin").auth_cert.public_bytes(Encoding.DER)
    parsed = parse_cert(_with_unknown_key_algorithm(der))
    with pytest.raises(errors.CertificateParseError):
        parsed.public_key()


def test_bug3_reaches_the_auth_verifier(cps_pki, cps_card_factory):
    import base64
    import json

    import cps
    from cps.auth import ChallengeIssuer, Verifier
    from cps.auth.token import make_token
    from cps.trust.validate import Validator

    issuer = ChallengeIssuer()
    store = cps_pki.trust_store()
    verifier = Verifier(Validator(store, revocation="off"), issuer.store,
                        allowed_origins=["https://app.example"])
    emu = cps_card_factory("cps3-medecin")
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        token = make_token(card, issuer.issue().nonce, "https://app.example")
    der = base64.b64decode(token["certificate"])
    token["certificate"] = base64.b64encode(_with_unknown_key_algorithm(der)).decode()
    with pytest.raises(errors.CpsError):
        verifier.verify(json.dumps(token), origin="https://app.example")


# --------------------------------------------------------------------------- BUG-4
def test_bug4_crl_issuer_with_a_bit_string_attribute(cps_pki):
    from cps.trust.crlindex import CrlIndex

    der = cps_pki.crl(next(iter(cps_pki.intermediates)))
    country = h("060355040613024652")               # C = PrintableString "FR"
    assert country in der
    bad = der.replace(country, h("060355040603024652"), 1)  # the same value as a BIT STRING
    index = CrlIndex.load(bad, source="regression")  # the entries parse fine
    with pytest.raises(errors.CrlError):
        index.issuer


# --------------------------------------------------------------------------- BUG-5
def _ocsp_answer(pki):
    from cps.trust.ocsp import build_request

    creds = pki.issue_card("cps3-medecin")
    at = pki.reference_time + dt.timedelta(days=10)
    nonce = b"\x42" * 16
    request = build_request(creds.auth_cert, creds.chain[0], nonce=nonce)
    der = pki.ocsp_response(request, at=at - dt.timedelta(hours=1))
    responder = ocsp.load_der_ocsp_response(der).certificates[0].public_bytes(Encoding.DER)
    return creds, at, nonce, der, responder


def _edit_responder(der: bytes, responder: bytes, old: bytes, new: bytes, nth: int = 1) -> bytes:
    # The responder certificate sits outside the signed tbsResponseData: anyone on
    # the path (OCSP goes over plain HTTP) can change it.
    i = -1
    for _ in range(nth):
        i = responder.index(old, i + 1)
    edited = responder[:i] + new + responder[i + len(old):]
    assert len(edited) == len(responder)
    return der.replace(responder, edited)


@pytest.mark.parametrize("edit", [
    # the RSA key of the responder is not an RSA key: ValueError in _key_hash
    (h("3082010a02820101"), h("3082010a04820101"), 1),
    # an unknown key algorithm: UnsupportedAlgorithm in _key_hash
    (h("2a864886f70d010101"), h("2a864886f70d01017f"), 1),
    # subject C as a BIT STRING: TypeError when the subject is decoded
    (h("060355040613024652"), h("060355040603024652"), 2),
    # invalid UTF-8 in the subject CN: ValueError when the subject is decoded
    (b"TEST OCSP", b"TEST \xff\xfeSP", 1),
], ids=["key-not-rsa", "unknown-key-algorithm", "subject-bit-string", "subject-bad-utf8"])
def test_bug5_ocsp_answer_with_a_broken_responder_certificate(cps_pki, edit):
    from cps.trust.ocsp import validate_response

    creds, at, nonce, der, responder = _ocsp_answer(cps_pki)
    bad = _edit_responder(der, responder, *edit)
    with pytest.raises(errors.OcspError):
        validate_response(bad, creds.auth_cert, creds.chain[0], at=at, nonce=nonce)


# --------------------------------------------------------------------------- BUG-6
class _WrongLengthOnSecrets(Connection):
    """A card (or reader, or driver) that executes VERIFY / CHANGE / RESET RETRY COUNTER
    -- spending the try -- and then answers ``6C 08`` as if Le were wrong."""

    protocol = "T0"
    reader = "regression"

    def __init__(self, emu) -> None:
        self.emu = emu
        self.sent = []
        emu.power_up()

    @property
    def atr(self) -> bytes:
        return self.emu.atr

    def send_and_receive(self, apdu: bytes):
        self.sent.append(bytes(apdu))
        raw = self.emu.transmit(apdu)
        if apdu[1] in (0x20, 0x24, 0x2C) and len(apdu) > 5:
            return split_response(b"\x6c\x08")
        return split_response(raw)

    def secrets_sent(self) -> int:
        return sum(1 for a in self.sent if a[1] in (0x20, 0x24, 0x2C) and len(a) > 5)


def test_bug6_a_6cxx_answer_to_verify_never_resends_the_pin(cps_card_factory):
    from cps.cps3 import Cps3Card

    emu = cps_card_factory("cps3-medecin")
    connection = _WrongLengthOnSecrets(emu)
    card = Cps3Card(connection)
    with pytest.raises(errors.CpsError):
        card.verify_pin("0000")            # a wrong PIN, once
    assert connection.secrets_sent() == 1
    assert emu.os.chvs[1].tries_left == 2   # one try spent, not three


# --------------------------------------------------------------------------- BUG-8
# Found by the `x509-fast-parser` harness. cps.trust.certs._time accepts any day
# 01-31 of any month and second 60; time_from_key (datetime) cannot represent
# them. Reached with a card certificate by `cps card info` / `cps certs list`
# (cps_cli.view.certificate_summary), and by Validator.validate when such a date is
# the one a CertificateExpired reports.
@pytest.mark.parametrize("date", [b"300231000000Z", b"301231235960Z", b"300431120000Z"],
                         ids=["31-february", "second-60", "31-april"])
def test_bug8_impossible_dates(cps_pki, date):
    from cps.trust.certs import parse_cert, time_from_key

    der = cps_pki.issue_card("cps3-medecin").auth_cert.public_bytes(Encoding.DER)
    parsed = parse_cert(der)
    old = b"\x17\x0d" + parsed.not_after[2:] + b"Z"        # the UTCTime notAfter
    assert old in der
    bad = der.replace(old, b"\x17\x0d" + date, 1)
    try:
        parsed = parse_cert(bad)
    except errors.CertificateParseError:
        return                                              # refusing it is fine
    time_from_key(parsed.not_after)                         # else it must convert


# --------------------------------------------------------------------------- BUG-13
# Found by `make fuzz` (x509-fast-parser): a basicConstraints pathLenConstraint
# INTEGER with no content byte made ParsedCert.basic_constraints index past it.
def test_bug13_empty_path_length_integer():
    from cps.trust.certs import OID, ParsedCert

    cert = ParsedCert(der=b"", tbs=b"", sig_alg=b"", signature=b"", version=3, serial=1,
                      issuer=b"", subject=b"", not_before=b"", not_after=b"", spki=b"",
                      extensions={OID.BASIC_CONSTRAINTS: (True, h("30050101ff0200"))})
    with pytest.raises(errors.CertificateParseError):
        cert.basic_constraints()


# --------------------------------------------------------------------------- BUG-14
# Found by `make fuzz` (x509-fast-parser, through cps_cli.view.certificate_summary): a
# policy OID whose every byte has bit 8 set (``06 04 b4 e2 df ff``) decodes to no
# arc at all, and oid_to_str indexed the empty list. The validator reaches the
# same function for the policies of a leaf under anyPolicy.
def test_bug14_oid_without_a_last_byte():
    from cps.trust.certs import oid_to_str

    with pytest.raises(errors.CertificateParseError):
        oid_to_str(h("b4e2dfff"))
    assert oid_to_str(h("2a864886f70d010101")) == "1.2.840.113549.1.1.1"


def test_bug14_certificate_summary_of_such_a_policy(cps_pki):
    from cps.trust.certs import oid_from_str
    from cps_cli.view import certificate_summary

    der = cps_pki.issue_card("cps3-medecin").auth_cert.public_bytes(Encoding.DER)
    policy = oid_from_str("1.2.250.1.213.1.7.2.1.1.1.1")  # the TEST authentication policy
    assert policy in der
    # the same length, the last byte made to continue: still well-formed DER around it
    broken = der.replace(b"\x06" + bytes([len(policy)]) + policy,
                         b"\x06" + bytes([len(policy)]) + policy[:-1] + b"\xff", 1)
    assert broken != der
    with pytest.raises(errors.CertificateParseError):
        certificate_summary(broken)
