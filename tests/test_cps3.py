"""The CPS3 session (cps.cps3.Cps3Card) over the in-process emulated card and scripts."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

import cps
from cps import errors, pkcs15
from cps.card import KeyRole, LastTryRefused
from cps.cps3 import parse_serial
from cps.logs import TRAFFIC
from cps.testing.scripted import ScriptedConnection

h = bytes.fromhex


@pytest.fixture
def emu(cps_emulated_card):
    return cps_emulated_card


@pytest.fixture
def card(emu):
    with cps.open_card(connection=emu.connection()) as c:
        yield c


def _verify(cert, signature, data, alg="sha256"):
    algo = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}[alg]
    cert.public_key().verify(signature, data, padding.PKCS1v15(), algo)


# ---------------------------------------------------------------- identification
@pytest.mark.parametrize("atr, cls, name", [
    ("3B9B188001001225006480040100009044", errors.UnsupportedCard, "CPS4"),
    ("3BDC18FF00001225006480000401009000", errors.UnsupportedCard, "CPS4"),
    ("3B8F8001804F0CA000000306030001000000006A", errors.UnknownCard, None),
])
def test_atr_identification(atr, cls, name):
    conn = ScriptedConnection([], atr=h(atr))
    with pytest.raises(cls) as info:
        cps.open_card(connection=conn)
    assert info.value.atr == h(atr)
    if name:
        assert name in info.value.card_name and name in str(info.value)
    assert conn.sent == []  # nothing sent to a card we do not know


def test_card_number_from_ef_sn_icc(card, emu):
    assert card.card_number == emu.profile.card_number
    assert card.pan == emu.profile.pan


@pytest.mark.parametrize("data", ["5A0A80250000019921384500", "5A0A70250000019921384 50F",
                                  "5A02", "", "4F0A8025000001992138450F"])
def test_bad_serials_are_protocol_errors(data):
    with pytest.raises(errors.CardProtocolError):
        parse_serial(h(data.replace(" ", "")))


def test_real_card_serial():
    assert parse_serial(h("5A0A80250000019921384 50F".replace(" ", ""))) == "99213845"


# ---------------------------------------------------------------- PKCS#15 leniency
def test_non_der_bit_strings_are_read_as_real_cards_write_them():
    assert pkcs15.bits(h("0108")) == 1 << 4                  # unused=1 but value 08
    assert pkcs15.bits(h("0800")) == 0                        # unused=8 (invalid DER)
    assert pkcs15.bits(h("060040")) == 1 << 9                 # nonRepudiation
    assert pkcs15.bits(h("05E0")) == 0b111


@pytest.mark.parametrize("blob", ["30", "3003", "3005300304", "3082FFFF00", "A003300104"])
def test_truncated_pkcs15_is_a_protocol_error(blob):
    parsers = [pkcs15.parse_odf]
    if blob[:2] == "30":  # (the object lists skip unknown context tags such as A0)
        parsers += [pkcs15.parse_aodf, pkcs15.parse_prkdf, pkcs15.parse_cdf]
    for parser in parsers:
        with pytest.raises(errors.CardProtocolError):
            parser(h(blob))


def test_pkcs15_objects_of_the_card(card):
    pins = card.pin_objects()
    assert [p.reference for p in pins] == [1, 2]
    assert pins[0].label == "Code porteur de la carte CPX" and pins[0].max_length == 4
    assert pins[0].encode("1234") == b"1234\xff\xff\xff\xff"
    keys = {k.label: k for k in card.key_objects()}
    assert keys["CPS_PRIV_SIG"].key_reference == 0x81
    assert keys["CPS_PRIV_SIG"].usage & pkcs15.USAGE_NON_REPUDIATION
    assert keys["CPS_PRIV_AUT"].key_reference == 0x82
    assert keys["CPS_PRIV_AUT"].modulus_length == 2048


# ---------------------------------------------------------------- certificates, economy
def test_certificates_are_the_profiles(card, emu):
    assert card.certificate(KeyRole.AUTH) == emu.credentials.auth_cert
    assert card.certificate(KeyRole.SIGN) == emu.credentials.sign_cert


def test_opening_reading_everything_costs_few_apdus_and_nothing_is_read_twice(card, emu):
    card.card_number
    card.practitioner
    card.certificate(KeyRole.AUTH)
    card.certificate(KeyRole.SIGN)
    card.pin_status()
    first = emu.apdu_count
    # Each file: SELECT with FCP (61xx + GET RESPONSE) then reads of at most 0xE7
    # bytes: serial 3 + ODF 3 + CDF 3 + each certificate 2 + ceil(size / 231);
    # then SELECT MF 1 + 2 DOCP x 2 (GET DATA + GET RESPONSE).
    reads = sum(-(-len(card.certificate_der(role)) // 0xE7) for role in (KeyRole.AUTH,
                                                                          KeyRole.SIGN))
    assert first == 3 + 3 + 3 + 2 * 2 + reads + 1 + 2 * 2
    card.card_number, card.practitioner, card.certificate(KeyRole.AUTH)
    card.certificate(KeyRole.SIGN)
    assert emu.apdu_count == first  # cached for the card session


# ---------------------------------------------------------------- PIN
def test_pin_status_spends_nothing(card, emu):
    for _ in range(3):
        status = card.pin_status()
    assert (status.tries_left, status.max_tries, status.blocked) == (3, 3, False)
    assert (status.unblock_tries_left, status.unblock_max_tries) == (10, 10)
    assert status.unblock_uses_left == 100 and not status.unblock_blocked
    assert emu.os.chvs[1].tries_left == 3


def test_wrong_pin_is_never_retried(card, emu):
    card.pin_objects()  # the AODF, read once on first use
    emu.journal = []
    with pytest.raises(errors.WrongPin) as info:
        card.verify_pin("0000")
    assert info.value.tries_left == 2 and info.value.sw == 0x63C2
    assert "0000" not in str(info.value) and "0000" not in repr(info.value)
    # the counter from the DOCP (SELECT MF, GET DATA, GET RESPONSE), then exactly
    # one VERIFY, with data (never the data-less status VERIFY)
    sent = [command for command, _ in emu.journal]
    assert [c[:4].hex() for c in sent] == ["00a4090c", "00cb3fff", "00c00000", "00200001"]
    assert sent[-1] == h("0020000108") + b"0000" + b"\xff" * 4
    assert emu.os.chvs[1].tries_left == 2


def test_last_try_is_refused_unless_asked(card, emu):
    for expected in (2, 1):
        with pytest.raises(errors.WrongPin) as info:
            card.verify_pin("0000")
        assert info.value.tries_left == expected
    with pytest.raises(LastTryRefused):
        card.verify_pin(emu.pin)
    assert emu.os.chvs[1].tries_left == 1  # nothing spent
    card.verify_pin(emu.pin, allow_last_try=True)
    assert card.pin_status().tries_left == 3


@pytest.mark.cps_profile("cps3-pin-blocked")
def test_blocked_card(card, emu):
    assert card.pin_status().blocked
    with pytest.raises(errors.PinBlocked):
        card.verify_pin(emu.puk[:4])


@pytest.mark.parametrize("bad", ["12a4", "123", "12345", "", "１２３４"])
def test_malformed_pins_never_reach_the_card(card, emu, bad):
    card.pin_objects()
    before = emu.apdu_count
    with pytest.raises(errors.PinError) as info:
        card.verify_pin(bad)
    if bad:
        assert bad not in str(info.value)
    assert emu.os.chvs[1].tries_left == 3 and emu.apdu_count == before


def test_change_pin(card, emu):
    old = emu.pin
    card.change_pin(old, "9876")
    assert emu.pin == "9876"
    with pytest.raises(errors.WrongPin):
        card.verify_pin(old)
    card.verify_pin("9876")


@pytest.mark.cps_profile("cps3-pin-blocked")
def test_unblock_pin_uses_one_unblock(card, emu):
    before = card.pin_status()
    card.unblock_pin(emu.puk, "2468")
    after = card.pin_status()
    assert emu.pin == "2468" and after.tries_left == 3 and not after.blocked
    assert after.unblock_uses_left == before.unblock_uses_left - 1
    card.verify_pin("2468")


def test_wrong_unblock_code(card, emu):
    with pytest.raises(errors.WrongPin) as info:
        card.unblock_pin("00000000", "2468")
    assert info.value.tries_left == 9 and info.value.what == "unblock code"
    assert card.pin_status().unblock_tries_left == 9


def test_pin_never_reaches_the_log(card, emu, caplog):
    caplog.set_level(TRAFFIC, logger="cps")
    card.verify_pin(emu.pin)
    card.change_pin(emu.pin, "8642")
    with pytest.raises(errors.WrongPin):
        card.verify_pin("1357")
    text = caplog.text
    assert "redacted" in text
    for secret in ("1234", "8642", "1357"):
        assert secret not in text
        assert secret.encode().hex(" ").upper() not in text
    assert "8642" not in repr(card)


# ---------------------------------------------------------------- signature and authentication
@pytest.mark.parametrize("alg", ["sha256", "sha1"])
@pytest.mark.parametrize("size", [0, 64, 1000])
def test_sign_last_hash_step_on_card(card, emu, alg, size):
    card.verify_pin(emu.pin)
    data = bytes(range(256)) * 4
    data = data[:size]
    _verify(emu.credentials.sign_cert, card.sign(data, hash=alg), data, alg)


def test_sign_hash_off_card_and_prehashed(card, emu):
    card.verify_pin(emu.pin)
    _verify(emu.credentials.sign_cert, card.sign(b"doc", hash_on_card=False), b"doc")
    digest = hashlib.sha256(b"doc").digest()
    signature = card.sign(digest, prehashed=True)
    emu.credentials.sign_cert.public_key().verify(signature, digest, padding.PKCS1v15(),
                                                  utils.Prehashed(hashes.SHA256()))
    with pytest.raises(ValueError):                      # the caller's mistake
        card.sign(b"short", prehashed=True)


def test_signing_without_the_pin_is_refused_by_the_card(card):
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        card.sign(b"doc")


def test_authenticate(card, emu):
    card.verify_pin(emu.pin)
    _verify(emu.credentials.auth_cert, card.authenticate(b"challenge", hash="sha256"),
            b"challenge")
    raw = card.authenticate(b"\x01" * 102)   # the 40 % limit, exactly
    assert len(raw) == 256


def test_authenticate_input_limit_is_enforced_before_the_card(card, emu):
    card.verify_pin(emu.pin)
    card.key_objects()
    before = emu.apdu_count
    with pytest.raises(errors.NotSupported, match="40 %"):
        card.authenticate(b"\x01" * 103)
    assert emu.apdu_count == before


@pytest.mark.cps_profile("cps3-contactless")
def test_contactless_mode(card, emu):
    assert card.contactless and card.card_number == emu.profile.card_number
    signature = card.authenticate(b"badge", hash="sha256")       # no PIN
    _verify(emu.credentials.tech_cert, signature, b"badge")
    with pytest.raises(errors.NotSupported, match="contactless"):
        card.sign(b"doc")
    with pytest.raises(errors.NotSupported):
        card.pin_status()
    with pytest.raises(errors.NotSupported):
        card.verify_pin("1234")
    with pytest.raises(errors.NotSupported):
        card.certificate(KeyRole.AUTH)


def test_reset_in_the_middle_of_a_signature_is_reported(card, emu):
    card.verify_pin(emu.pin)
    emu.faults.reset_next = True   # lands on the first APDU of the signature
    with pytest.raises(errors.CpsError):
        card.sign(b"doc")
    card.verify_pin(emu.pin)        # the session stays usable
    _verify(emu.credentials.sign_cert, card.sign(b"doc"), b"doc")


def test_garbage_docp_is_a_protocol_error():
    from cps.cps3 import _docp_counters

    for blob in ["", "7000", "7003BF8101", "7008BF810105A0039A0103",
                 "700CBF810108A0069A01039B0109"]:
        with pytest.raises(errors.CardProtocolError):
            _docp_counters(h(blob))
