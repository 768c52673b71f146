"""The APDU pipeline over scripted connections: encoding, chaining, bounds, SW mapping."""

from __future__ import annotations

import logging

import pytest

from cps import errors
from cps.apdu import ApduChannel, CommandApdu, encode_extended, encode_short, parse_command
from cps.logs import TRAFFIC
from cps.sw import describe, lookup
from cps.testing.scripted import ScriptedConnection

h = bytes.fromhex
OK = h("9000")


# ---------------------------------------------------------------- encoding
@pytest.mark.parametrize("apdu, short", [
    (CommandApdu(0, 0xA4, 0, 0x0C), "00A4000C"),
    (CommandApdu(0, 0xB0, 0, 0, ne=256), "00B0000000"),
    (CommandApdu(0, 0xB0, 0, 0, ne=0x0C), "00B000000C"),
    (CommandApdu(0, 0xA4, 9, 0x0C, h("3F00")), "00A4090C023F00"),
    (CommandApdu(0, 0x88, 0, 0, h("0102"), ne=256), "0088000002010200"),
])
def test_short_encoding_round_trips(apdu, short):
    assert encode_short(apdu).hex().upper() == short
    assert parse_command(h(short)) == apdu


@pytest.mark.parametrize("apdu, ext", [
    (CommandApdu(0, 0xB0, 0, 0, ne=65536), "00B00000000000"),
    (CommandApdu(0, 0xB0, 0, 0, ne=300), "00B0000000012C"),
    (CommandApdu(0, 0x2A, 0x80, 0x86, b"\x81" + bytes(256)), "002A80860001 01 81" + "00" * 256),
    (CommandApdu(0, 0x2A, 0x80, 0x86, bytes(300), ne=256), "002A808600012C" + "00" * 300 + "0100"),
])
def test_extended_encoding_round_trips(apdu, ext):
    raw = h(ext.replace(" ", ""))
    assert encode_extended(apdu) == raw
    assert parse_command(raw) == apdu


def test_short_encoding_refuses_extended_commands():
    with pytest.raises(errors.NotSupported):
        encode_short(CommandApdu(0, 0xB0, 0, 0, ne=300))


@pytest.mark.parametrize("raw", ["00A4", "00A4090C05 3F00", "00A4090C023F000000",
                                 "00B00000 000005 0102"])
def test_parse_rejects_malformed_commands(raw):
    with pytest.raises(errors.CardProtocolError):
        parse_command(h(raw.replace(" ", "")))


def test_command_fields_are_range_checked():
    with pytest.raises(errors.CardProtocolError):
        CommandApdu(0x100, 0, 0, 0)
    with pytest.raises(errors.CardProtocolError):
        CommandApdu(0, 0, 0, 0, ne=0)


# ---------------------------------------------------------------- response chaining
def test_61xx_chain_sends_get_response_with_le_sw2():
    conn = ScriptedConnection([
        (h("00880000020102"), h("6100")),
        (h("00C0000000"), bytes(range(256)) + h("6119")),
        (h("00C0000019"), b"\xAA" * 0x19 + OK),
    ], protocol="T0")
    data = ApduChannel(conn).send(0, 0x88, 0, 0, h("0102"), ne=256)
    assert data == bytes(range(256)) + b"\xAA" * 0x19


def test_61xx_keeps_data_returned_with_the_first_answer():
    conn = ScriptedConnection([(None, h("0102") + h("6102")), (h("00C0000002"), h("0304 9000"))])
    assert ApduChannel(conn).send(0, 0xCA, 0, 0, ne=256) == h("01020304")


def test_endless_61xx_raises_instead_of_hanging():
    # a card that keeps giving a little data and announcing more: bounded by rounds
    conn = ScriptedConnection([(None, bytes(16) + h("6110"))], repeat_last=True)
    with pytest.raises(errors.CardProtocolError, match="61xx"):
        ApduChannel(conn, max_response_rounds=50).send(0, 0xB0, 0, 0, ne=256)
    assert len(conn.sent) == 51  # the command and 50 GET RESPONSE, no more


def test_61xx_without_progress_stops_at_once():
    # a GET RESPONSE that gives nothing but asks again is a broken card
    conn = ScriptedConnection([(None, h("6110"))], repeat_last=True)
    with pytest.raises(errors.CardProtocolError, match="no data"):
        ApduChannel(conn).send(0, 0xB0, 0, 0, ne=256)
    assert len(conn.sent) == 2


def test_response_size_is_bounded_even_with_big_chunks():
    conn = ScriptedConnection([(None, bytes(256) + h("6100"))], repeat_last=True)
    with pytest.raises(errors.CardProtocolError, match="longer than"):
        ApduChannel(conn, max_response_rounds=10_000).send(0, 0xB0, 0, 0, ne=256)
    assert len(conn.sent) < 300


# ---------------------------------------------------------------- 6Cxx
def test_6cxx_resends_with_the_length_the_card_asks_for():
    conn = ScriptedConnection([
        (h("00B0000000"), h("6C0C")),
        (h("00B000000C"), bytes(12) + OK),
    ])
    assert ApduChannel(conn).send(0, 0xB0, 0, 0, ne=256) == bytes(12)


def test_6cxx_then_61xx_is_followed_through():
    conn = ScriptedConnection([
        (h("00CA010000"), h("6C05")),
        (h("00CA010005"), h("6105")),
        (h("00C0000005"), h("0102030405 9000")),
    ])
    assert ApduChannel(conn).send(0, 0xCA, 1, 0, ne=256) == h("0102030405")


def test_endless_6cxx_raises():
    conn = ScriptedConnection([(None, h("6C05"))], repeat_last=True)
    with pytest.raises(errors.CardProtocolError, match="6Cxx"):
        ApduChannel(conn).send(0, 0xB0, 0, 0, ne=256)
    assert len(conn.sent) == 3


# ---------------------------------------------------------------- command chaining
def test_command_chaining_splits_with_cla_bit_0x10():
    payload = bytes(range(256)) + b"\x01"  # 257 bytes, like a decipher cryptogram
    conn = ScriptedConnection([(None, OK), (None, bytes(5) + OK)], protocol="T1")
    assert ApduChannel(conn).send(0, 0x2A, 0x80, 0x86, payload, ne=256) == bytes(5)
    first, last = conn.sent
    assert first[:5] == h("102A8086FF") and first[5:] == payload[:255] and len(first) == 260
    assert last == h("002A808602") + payload[255:] + h("00")


def test_command_chaining_stops_at_the_first_refusal():
    conn = ScriptedConnection([(None, h("6884"))])
    with pytest.raises(errors.CardError) as info:
        ApduChannel(conn).send(0, 0x2A, 0x80, 0x86, bytes(600))
    assert info.value.sw == 0x6884
    assert len(conn.sent) == 1


# ---------------------------------------------------------------- T=0
def test_t0_case4_goes_without_le_and_fetches_with_get_response():
    conn = ScriptedConnection([
        (h("00880000020102"), h("6104")),       # no Le on the wire
        (h("00C0000004"), h("01020304 9000")),
    ], protocol="T0")
    assert ApduChannel(conn).send(0, 0x88, 0, 0, h("0102"), ne=256) == h("01020304")


def test_t1_case4_keeps_le():
    conn = ScriptedConnection([(h("008800000201 0200".replace(" ", "")), h("0102 9000"))],
                              protocol="T1")
    assert ApduChannel(conn).send(0, 0x88, 0, 0, h("0102"), ne=256) == h("0102")


# ---------------------------------------------------------------- status words
@pytest.mark.parametrize("sw, cls, attrs", [
    (0x63C2, errors.WrongPin, {"tries_left": 2}),
    (0x63C1, errors.WrongPin, {"tries_left": 1}),
    (0x63C0, errors.PinBlocked, {}),
    (0x6983, errors.PinBlocked, {}),
    (0x6982, errors.SecurityStatusNotSatisfied, {}),
    (0x6A82, errors.CardError, {}),
    (0x6D00, errors.CardError, {}),
    (0x6F00, errors.CardError, {}),
    (0x1234, errors.CardError, {}),
])
def test_status_words_map_to_typed_errors_carrying_sw(sw, cls, attrs):
    conn = ScriptedConnection([(None, b"\x7f" + sw.to_bytes(2, "big"))])
    with pytest.raises(cls) as info:
        ApduChannel(conn).send(0, 0x20, 0, 1, context="VERIFY")
    assert type(info.value) is cls
    assert info.value.sw == sw
    for name, value in attrs.items():
        assert getattr(info.value, name) == value


def test_sw_table_names_and_texts():
    assert lookup(0x6A82).name == "FILE_NOT_FOUND"
    assert lookup(0x6100).text == "256 response bytes still available"
    assert lookup(0x63C2).name == "COUNTER"
    assert describe(0x6982) == "6982 SECURITY_STATUS_NOT_SATISFIED: security status not satisfied"
    assert lookup(0x0000).name == "UNKNOWN"


def test_transmit_returns_error_sw_without_raising():
    conn = ScriptedConnection([(None, h("63C3"))])
    response = ApduChannel(conn).transmit(CommandApdu(0, 0x20, 0, 1))
    assert response.sw == 0x63C3 and not response.ok


def test_short_response_is_a_protocol_error():
    conn = ScriptedConnection([(None, h("90"))])
    with pytest.raises(errors.CardProtocolError):
        ApduChannel(conn).send(0, 0xA4, 0, 0x0C)


# ---------------------------------------------------------------- redaction
PIN = b"9876"
PUK = b"24681357"


@pytest.mark.parametrize("ins, p1, data", [
    (0x20, 0x00, PIN + b"\xff" * 4),          # VERIFY
    (0x24, 0x00, PIN + b"\xff" * 4 + b"1357\xff\xff\xff\xff"),  # CHANGE REFERENCE DATA
    (0x2C, 0x00, PUK + PIN + b"\xff" * 4),    # RESET RETRY COUNTER
])
def test_secret_bodies_never_reach_the_traffic_log(caplog, ins, p1, data):
    conn = ScriptedConnection([(None, h("63C2"))], protocol="T0")
    caplog.set_level(TRAFFIC, logger="cps")
    ApduChannel(conn).transmit(CommandApdu(0, ins, p1, 0x01, data))
    text = caplog.text
    assert "redacted" in text
    # The APDU did go out, with the secret in it...
    assert data in conn.sent[0]
    # ...but neither its hex (spaced or not) nor its ASCII appears in the log.
    for secret in (PIN, PUK, data):
        for form in (secret.hex(), secret.hex(" "), secret.hex().upper(),
                     secret.hex(" ").upper(), secret.decode("latin-1")):
            if secret is PUK and ins != 0x2C:
                continue
            assert form not in text
    assert any(r.levelno == TRAFFIC for r in caplog.records)


def test_non_secret_commands_are_logged_in_full(caplog):
    conn = ScriptedConnection([(None, h("3F00 9000"))])
    caplog.set_level(TRAFFIC, logger="cps")
    ApduChannel(conn).send(0, 0xA4, 0x09, 0x0C, h("3F00D003"))
    assert "00 A4 09 0C 04 3F 00 D0 03" in caplog.text
    assert "3F 00 9000" in caplog.text


def test_traffic_is_not_logged_at_debug(caplog):
    conn = ScriptedConnection([(None, OK)])
    caplog.set_level(logging.DEBUG, logger="cps")
    ApduChannel(conn).send(0, 0xA4, 0, 0x0C)
    assert not [r for r in caplog.records if r.levelno == TRAFFIC]


def test_secret_command_repr_hides_data():
    text = repr(CommandApdu(0, 0x20, 0, 1, PIN))
    assert PIN.hex() not in text and "9876" not in text and "<4 bytes>" in text
