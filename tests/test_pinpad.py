"""PIN-pad readers (PC/SC part 10; PKCS#11 protected authentication path).

What runs where:

* Through the real stack (pcscd + vsmartcard-vpcd, marked ``pcsc``): vpcd has no
  keypad. Its answer to ``CM_IOCTL_GET_FEATURE_REQUEST`` (``SCARD_E_UNSUPPORTED_FEATURE``
  from the vpcd of Debian 12; a feature list with only ``GET_TLV_PROPERTIES`` from
  vsmartcard since 2023) must leave the card on host entry, and ``verify_pin(None)``
  is then a caller's mistake that sends no APDU.
* At the SCardControl boundary: :class:`CcidPinpad` stands where ``SCardControl``
  is. It reads the ``PIN_VERIFY_STRUCTURE`` / ``PIN_MODIFY_STRUCTURE`` bytes at the
  offsets of pcsc-lite's ``reader.h`` (not through the library's builder), writes
  the "typed" digits into the APDU as bmFormatString / bmPINBlockString /
  bmPINLengthFormat say, as a CCID reader does, and sends that APDU to the
  emulated card: the card itself judges the PIN and keeps the counter.
* PKCS#11: SoftHSM2 has no protected authentication path; the token's flag and
  the module's C_Login are stood in for at the python-pkcs11/ctypes boundary,
  and SoftHSM2 judges the PIN the "module" was given.
"""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from cps import errors, pinpad
from cps.card import KeyRole, LastTryRefused
from cps.connection import Connection
from cps.cps3 import Cps3Card
from cps.emulator.card import EmulatedCard

# ---------------------------------------------------------------- the test reader
# Control codes as the CCID driver lists them: SCARD_CTL_CODE(0x330000 + feature).
IOCTL_VERIFY = 0x42330006
IOCTL_MODIFY = 0x42330007
IOCTL_TLV = 0x42330012
IOCTL_PIN_PROPERTIES = 0x4233000A
GET_FEATURE_REQUEST = 0x42000000 + 3400   # pcsc-lite's SCARD_CTL_CODE(3400)


def feature(tag: int, code: int) -> bytes:
    """One PCSC_TLV_STRUCTURE: tag, 4, control code big-endian (part 10 2.2)."""
    return bytes((tag, 4)) + code.to_bytes(4, "big")


FEATURES = feature(0x06, IOCTL_VERIFY) + feature(0x07, IOCTL_MODIFY) + feature(0x12, IOCTL_TLV)
# A GET_TLV_PROPERTIES answer shaped like the CCID driver's: wLcdLayout 0x0210 (2 lines
# of 16), bEntryValidationCondition 7, bTimeOut2 0, bMinPINSize 1, bMaxPINSize 12,
# sFirmwareID, wIdVendor 0x076B, wIdProduct 0x3821, dwMaxAPDUDataSize 261.
TLV_PROPERTIES = bytes.fromhex("01021002" "020107" "030100" "060101" "07010C"
                               "0804" + b"1.00".hex() + "0B026B07" "0C022138"
                               "0A0405010000")

Entry = Union[str, tuple[str, ...]]


@dataclass
class Exchange:
    """One PIN entry the reader was asked for: its structure's fields as read."""

    code: int
    fields: dict[str, Any]
    apdu_sent: Optional[bytes] = None


class CcidPinpad(Connection):
    """A PIN-pad reader at the SCardControl boundary, in front of an emulated card.

    ``entries``: what the holder does at each PIN entry, in order: a PIN (verify),
    ``(old, new, confirmation)`` (modify), ``"cancel"`` or ``"timeout"``.
    """

    def __init__(self, inner: Connection, *, features: bytes = FEATURES,
                 properties: bytes = TLV_PROPERTIES,
                 feature_error: Optional[Exception] = None) -> None:
        self.inner = inner
        self.protocol = inner.protocol
        self.reader = "Test PIN pad 00 00"
        self.entries: list[Entry] = []
        self.features, self.properties = features, properties
        self.feature_error = feature_error
        self.answer: Optional[bytes] = None      # a forced answer to a PIN entry (junk tests)
        self.exchanges: list[Exchange] = []
        self.controls: list[int] = []

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        return self.inner.send_and_receive(apdu)

    def transaction(self) -> Any:
        return self.inner.transaction()

    def reset(self) -> None:
        self.inner.reset()

    def control(self, code: int, data: bytes = b"") -> bytes:
        self.controls.append(code)
        if code == GET_FEATURE_REQUEST:
            if self.feature_error is not None:
                raise self.feature_error
            return self.features
        if code in (IOCTL_TLV, IOCTL_PIN_PROPERTIES):
            return self.properties
        if code == IOCTL_VERIFY:
            return self._verify(data)
        if code == IOCTL_MODIFY:
            return self._modify(data)
        raise errors.ReaderError("unknown control code", code=0x8010001F)

    # -- the reader's side of part 10, read at reader.h's offsets
    @staticmethod
    def _common(data: bytes) -> dict[str, Any]:
        return {"bTimerOut": data[0], "bTimerOut2": data[1], "bmFormatString": data[2],
                "bmPINBlockString": data[3], "bmPINLengthFormat": data[4]}

    def _verify(self, data: bytes) -> bytes:
        f = self._common(data)
        f["wPINMaxExtraDigit"] = data[5] | data[6] << 8
        f["bEntryValidationCondition"] = data[7]
        f["bNumberMessage"] = data[8]
        f["wLangId"] = data[9] | data[10] << 8
        f["bMsgIndex"] = data[11]
        f["bTeoPrologue"] = data[12:15]
        f["ulDataLength"] = int.from_bytes(data[15:19], "little")
        f["abData"] = data[19:]
        exchange = Exchange(IOCTL_VERIFY, f)
        self.exchanges.append(exchange)
        if self.answer is not None:
            return self.answer
        assert f["ulDataLength"] == len(f["abData"])
        typed = self.entries.pop(0)
        if typed in ("cancel", "timeout"):
            return b"\x64\x01" if typed == "cancel" else b"\x64\x00"
        assert isinstance(typed, str)
        apdu = bytearray(f["abData"])
        if not self._fits(typed, f["wPINMaxExtraDigit"]):
            return b"\x64\x03"
        self._insert(apdu, 0, typed, f)
        return self._send(exchange, bytes(apdu))

    def _modify(self, data: bytes) -> bytes:
        f = self._common(data)
        f["bInsertionOffsetOld"] = data[5]
        f["bInsertionOffsetNew"] = data[6]
        f["wPINMaxExtraDigit"] = data[7] | data[8] << 8
        f["bConfirmPIN"] = data[9]
        f["bEntryValidationCondition"] = data[10]
        f["bNumberMessage"] = data[11]
        f["wLangId"] = data[12] | data[13] << 8
        f["bMsgIndex"] = tuple(data[14:17])
        f["bTeoPrologue"] = data[17:20]
        f["ulDataLength"] = int.from_bytes(data[20:24], "little")
        f["abData"] = data[24:]
        exchange = Exchange(IOCTL_MODIFY, f)
        self.exchanges.append(exchange)
        assert f["ulDataLength"] == len(f["abData"])
        typed = self.entries.pop(0)
        if typed in ("cancel", "timeout"):
            return b"\x64\x01" if typed == "cancel" else b"\x64\x00"
        assert isinstance(typed, tuple)
        old, new, again = typed
        if not all(self._fits(code, f["wPINMaxExtraDigit"]) for code in typed):
            return b"\x64\x03"
        if f["bConfirmPIN"] & 0x01 and new != again:
            return b"\x64\x02"
        apdu = bytearray(f["abData"])
        if f["bConfirmPIN"] & 0x02:
            self._insert(apdu, f["bInsertionOffsetOld"], old, f)
        self._insert(apdu, f["bInsertionOffsetNew"], new, f)
        return self._send(exchange, bytes(apdu))

    @staticmethod
    def _fits(digits: str, extra: int) -> bool:
        return (extra >> 8) <= len(digits) <= (extra & 0xFF)

    @staticmethod
    def _insert(apdu: bytearray, offset: int, digits: str, f: dict[str, Any]) -> None:
        """Write the digits as a CCID reader does: bmFormatString bit 7 units (bytes),
        bits 6-3 position, bit 2 justification, bits 1-0 type (10 = ASCII); the block
        of bmPINBlockString's low nibble; no length field (bmPINBlockString high
        nibble 0)."""
        fmt, block = f["bmFormatString"], f["bmPINBlockString"] & 0x0F
        assert fmt & 0x80, "units are bytes"
        assert fmt & 0x03 == 0x02, "ASCII"
        assert f["bmPINBlockString"] >> 4 == 0, "no PIN length field"
        position = 5 + offset + ((fmt >> 3) & 0x0F)
        body = digits.encode("ascii")
        start = position + (block - len(body) if fmt & 0x04 else 0)
        assert position + block <= len(apdu)
        apdu[start:start + len(body)] = body

    def _send(self, exchange: Exchange, apdu: bytes) -> bytes:
        exchange.apdu_sent = apdu
        data, sw = self.inner.send_and_receive(apdu)
        return data + sw.to_bytes(2, "big")


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def emu(cps_card_factory: Any) -> EmulatedCard:
    card: EmulatedCard = cps_card_factory("cps3-medecin")
    return card


@pytest.fixture
def reader(emu: EmulatedCard) -> Iterator[CcidPinpad]:
    with emu.connection() as inner:
        yield CcidPinpad(inner)


@pytest.fixture
def card(reader: CcidPinpad) -> Iterator[Cps3Card]:
    c = Cps3Card(reader, owns_connection=False)
    yield c
    c.close()


def tries(emu: EmulatedCard) -> int:
    return emu.os.chvs[1].tries_left


def verifies(card: Cps3Card) -> None:
    """The card signs: the PIN was verified on the card itself."""
    signature = card.sign(b"ordonnance")
    key = card.certificate(KeyRole.SIGN).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, b"ordonnance", padding.PKCS1v15(), hashes.SHA256())


# ---------------------------------------------------------------- the structures
def test_verify_structure_field_by_field(card: Cps3Card, reader: CcidPinpad,
                                         emu: EmulatedCard) -> None:
    assert emu.pin is not None
    reader.entries.append(emu.pin)
    card.verify_pin(None)
    (exchange,) = reader.exchanges
    f = exchange.fields
    assert exchange.code == IOCTL_VERIFY
    assert f["bTimerOut"] == 0 and f["bTimerOut2"] == 0       # the reader's defaults
    assert f["bmFormatString"] == 0x82     # bytes, position 0, left-justified, ASCII
    assert f["bmPINBlockString"] == 0x08   # no length field, 8-byte block (stored length)
    assert f["bmPINLengthFormat"] == 0x00
    assert f["wPINMaxExtraDigit"] == 0x0404  # min 4, max 4 (the AODF's)
    assert f["bEntryValidationCondition"] == 0x02   # the validation key
    assert f["bNumberMessage"] == 0x01
    assert f["wLangId"] == 0x0409
    assert f["bMsgIndex"] == 0 and f["bTeoPrologue"] == b"\0\0\0"
    # The APDU the host would send, with a blank block padded as the AODF says (FF).
    assert f["abData"] == bytes.fromhex("0020000108FFFFFFFFFFFFFFFF")
    assert f["ulDataLength"] == 13
    assert exchange.apdu_sent == bytes.fromhex("0020000108") + emu.pin.encode() + b"\xff" * 4


def test_modify_structure_field_by_field(card: Cps3Card, reader: CcidPinpad,
                                         emu: EmulatedCard) -> None:
    assert emu.pin is not None
    old = emu.pin
    reader.entries.append((old, "9876", "9876"))
    card.change_pin(None, None)
    (exchange,) = reader.exchanges
    f = exchange.fields
    assert exchange.code == IOCTL_MODIFY
    assert f["bmFormatString"] == 0x82 and f["bmPINBlockString"] == 0x08
    assert f["bmPINLengthFormat"] == 0x00
    assert f["bInsertionOffsetOld"] == 0 and f["bInsertionOffsetNew"] == 8
    assert f["wPINMaxExtraDigit"] == 0x0404
    assert f["bConfirmPIN"] == 0x03        # current PIN asked, new PIN confirmed
    assert f["bEntryValidationCondition"] == 0x02
    assert f["bNumberMessage"] == 0x03 and f["bMsgIndex"] == (0, 1, 2)
    assert f["wLangId"] == 0x0409 and f["bTeoPrologue"] == b"\0\0\0"
    assert f["abData"] == bytes.fromhex("0024000110") + b"\xff" * 16
    assert f["ulDataLength"] == 21
    assert exchange.apdu_sent == (bytes.fromhex("0024000110") + old.encode() + b"\xff" * 4
                                  + b"9876" + b"\xff" * 4)
    assert emu.pin == "9876"  # the card changed it


def test_structure_sizes_match_reader_h() -> None:
    fmt = pinpad.PinBlockFormat(4, 8, 8)
    verify = pinpad.verify_structure(b"\x00\x20\x00\x01", fmt)
    modify = pinpad.modify_structure(b"\x00\x24\x00\x01", fmt)
    # PIN_VERIFY_STRUCTURE: 19 bytes before abData; PIN_MODIFY_STRUCTURE: 24 (packed).
    assert len(verify) == 19 + 5 + 8 and verify[5:7] == b"\x08\x04"   # max 8, min 4 LE
    assert len(modify) == 24 + 5 + 16 and modify[7:9] == b"\x08\x04"


def test_reader_limits_and_display_shape_the_structure() -> None:
    fmt = pinpad.PinBlockFormat(4, 8, 8)
    props = pinpad.PinpadProperties(lcd_layout=0, min_pin_size=6, max_pin_size=12,
                                    entry_validation=0x01)
    verify = pinpad.verify_structure(b"\x00\x20\x00\x01", fmt, props)
    assert verify[5] == 8 and verify[6] == 6     # the reader's minimum, the card's maximum
    assert verify[7] == 0x01                      # the only validation the reader names
    assert verify[8] == 0                         # no display: no message
    with pytest.raises(errors.NotSupported):
        pinpad.verify_structure(b"\x00\x20\x00\x01", fmt,
                                pinpad.PinpadProperties(max_pin_size=3))
    with pytest.raises(ValueError):
        pinpad.PinBlockFormat(4, 8, 16)  # bmPINBlockString has 4 bits for the block


def test_scard_ctl_code_per_platform() -> None:
    # Known values of CM_IOCTL_GET_FEATURE_REQUEST: pcsc-lite/macOS 0x42000D48,
    # Windows CTL_CODE(FILE_DEVICE_SMARTCARD, 3400, METHOD_BUFFERED, FILE_ANY_ACCESS).
    assert pinpad.scard_ctl_code(3400, "linux") == 0x42000D48
    assert pinpad.scard_ctl_code(3400, "darwin") == 0x42000D48
    assert pinpad.scard_ctl_code(3400, "win32") == 0x00313520
    from smartcard.scard import SCARD_CTL_CODE  # pyscard's, for this platform

    assert pinpad.scard_ctl_code(3400) == SCARD_CTL_CODE(3400)


# ---------------------------------------------------------------- the card judges
def test_right_pin_on_the_keypad_verifies_and_signs(card: Cps3Card, reader: CcidPinpad,
                                                    emu: EmulatedCard) -> None:
    assert card.has_pinpad
    assert emu.pin is not None
    reader.entries.append(emu.pin)
    card.verify_pin()
    assert tries(emu) == 3
    assert card.pin_status_seen is not None and card.pin_status_seen.tries_left == 3
    verifies(card)


def test_wrong_pin_spends_exactly_one_try(card: Cps3Card, reader: CcidPinpad,
                                          emu: EmulatedCard) -> None:
    reader.entries.append("0000" if emu.pin != "0000" else "1111")
    before = emu.apdu_count
    with pytest.raises(errors.WrongPin) as caught:
        card.verify_pin(None)
    assert caught.value.tries_left == 2 and caught.value.sw == 0x63C2
    assert tries(emu) == 2
    assert len(reader.exchanges) == 1
    # The counter read (SELECT MF + GET DATA, no try) and the one VERIFY.
    verifies_sent = [e for e in reader.exchanges if e.apdu_sent]
    assert len(verifies_sent) == 1 and emu.apdu_count > before
    with pytest.raises(errors.SecurityStatusNotSatisfied):
        card.sign(b"x")


def test_last_try_refused_before_the_reader_is_asked(card: Cps3Card, reader: CcidPinpad,
                                                     emu: EmulatedCard) -> None:
    emu.os.chvs[1].tries_left = 1
    with pytest.raises(LastTryRefused):
        card.verify_pin(None)
    assert reader.exchanges == [] and tries(emu) == 1
    emu.os.chvs[1].tries_left = 0
    with pytest.raises(errors.PinBlocked):
        card.verify_pin(None)
    assert reader.exchanges == []
    emu.os.chvs[1].tries_left = 1
    assert emu.pin is not None
    reader.entries.append(emu.pin)
    card.verify_pin(None, allow_last_try=True)
    assert tries(emu) == 3


@pytest.mark.parametrize(("typed", "error", "sw", "reason"), [
    ("cancel", errors.PinEntryCancelled, 0x6401, "cancelled"),
    ("timeout", errors.PinEntryTimeout, 0x6400, "timeout"),
    ("12345", errors.PinEntryError, 0x6403, "length"),   # 5 digits: the card takes 4
])
def test_reader_refusals_spend_nothing(card: Cps3Card, reader: CcidPinpad, emu: EmulatedCard,
                                       typed: str, error: type[errors.PinEntryError], sw: int,
                                       reason: str) -> None:
    reader.entries.append(typed)
    with pytest.raises(error) as caught:
        card.verify_pin(None)
    assert type(caught.value) is error
    assert caught.value.sw == sw and caught.value.reason == reason
    assert caught.value.what == "PIN"
    assert isinstance(caught.value, errors.PinError)
    assert not isinstance(caught.value, errors.WrongPin)
    assert tries(emu) == 3
    assert reader.exchanges[0].apdu_sent is None   # the card saw no VERIFY
    assert len(reader.exchanges) == 1              # and nothing was retried
    from cps_cli import exitcodes  # the CLI: aborted, not a card error

    assert exitcodes.exit_code_for(caught.value) == exitcodes.ABORTED


def test_change_on_the_keypad(card: Cps3Card, reader: CcidPinpad, emu: EmulatedCard) -> None:
    assert emu.pin is not None
    old = emu.pin
    reader.entries.append((old, "5555", "5556"))
    with pytest.raises(errors.PinEntryError) as caught:
        card.change_pin(None, None)
    assert caught.value.reason == "mismatch" and caught.value.sw == 0x6402
    assert emu.pin == old and tries(emu) == 3
    reader.entries.append(("0000" if old != "0000" else "1111", "5555", "5555"))
    with pytest.raises(errors.WrongPin) as wrong:
        card.change_pin(None, None)
    assert wrong.value.tries_left == 2 and emu.pin == old
    reader.entries.append((old, "5555", "5555"))
    card.change_pin(None, None)
    assert emu.pin == "5555" and tries(emu) == 3
    card.verify_pin("5555")   # host entry on a PIN-pad reader still works
    verifies(card)


def test_host_entry_on_a_pinpad_reader(card: Cps3Card, reader: CcidPinpad,
                                       emu: EmulatedCard) -> None:
    assert emu.pin is not None
    card.verify_pin(emu.pin)
    assert [c for c in reader.controls if c in (IOCTL_VERIFY, IOCTL_MODIFY)] == []
    verifies(card)


def test_caller_mistakes(card: Cps3Card, reader: CcidPinpad, emu: EmulatedCard) -> None:
    with pytest.raises(ValueError):
        card.change_pin("1234", None)
    with pytest.raises(ValueError):
        card.change_pin(None, "1234")
    assert reader.exchanges == []


def test_no_pinpad_verify_without_pin_is_a_caller_mistake(emu: EmulatedCard) -> None:
    with emu.connection() as conn, Cps3Card(conn, owns_connection=False) as c:
        assert conn.pinpad_features() == pinpad.NO_PINPAD
        assert not c.has_pinpad
        before = emu.apdu_count
        with pytest.raises(ValueError, match="no PIN pad"):
            c.verify_pin(None)
        with pytest.raises(ValueError, match="no PIN pad"):
            c.change_pin(None, None)
        assert emu.apdu_count == before and tries(emu) == 3


def test_reader_that_cannot_modify(emu: EmulatedCard) -> None:
    with emu.connection() as inner:
        reader = CcidPinpad(inner, features=feature(0x06, IOCTL_VERIFY))
        with Cps3Card(reader, owns_connection=False) as c:
            assert c.has_pinpad   # verifies on the keypad
            with pytest.raises(errors.NotSupported):
                c.change_pin(None, None)
            assert reader.exchanges == [] and tries(emu) == 3


def test_keypad_refused_when_the_reader_cannot_take_the_pin(emu: EmulatedCard) -> None:
    with emu.connection() as inner:
        reader = CcidPinpad(inner, properties=bytes.fromhex("070103"))  # bMaxPINSize 3
        with Cps3Card(reader, owns_connection=False) as c:
            with pytest.raises(errors.NotSupported):
                c.verify_pin(None)
            assert reader.exchanges == [] and tries(emu) == 3


# ---------------------------------------------------------------- untrusted answers
@pytest.mark.parametrize("junk", [
    FEATURES[:-1],                                   # truncated
    bytes((0x06, 3, 0x42, 0x33, 0x00)) + b"\x06",    # length 3
    feature(0x06, IOCTL_VERIFY) * 2,                 # listed twice
    feature(0x06, 0),                                # no control code
    feature(0x01, 1) * 200,                          # longer than any reader's list
])
def test_junk_feature_lists(junk: bytes, emu: EmulatedCard) -> None:
    with pytest.raises(errors.PinpadProtocolError):
        pinpad.parse_features(junk)
    with emu.connection() as inner:
        reader = CcidPinpad(inner, features=junk)
        with Cps3Card(reader, owns_connection=False) as c:
            before = emu.apdu_count
            with pytest.raises(errors.PinpadProtocolError):
                c.verify_pin(None)
            assert emu.apdu_count == before and tries(emu) == 3


@pytest.mark.parametrize("junk", [
    TLV_PROPERTIES[:-1],          # truncated value
    bytes.fromhex("01"),          # a lone tag
    bytes.fromhex("0103100200"),  # wLcdLayout on 3 bytes
    bytes.fromhex("060104060105"),  # bMinPINSize twice
    bytes.fromhex("0802FF00"),    # a firmware ID that is not ASCII
])
def test_truncated_or_malformed_properties(junk: bytes, emu: EmulatedCard) -> None:
    with pytest.raises(errors.PinpadProtocolError):
        pinpad.parse_tlv_properties(junk)
    with emu.connection() as inner:
        reader = CcidPinpad(inner, properties=junk)
        with Cps3Card(reader, owns_connection=False) as c, \
                pytest.raises(errors.PinpadProtocolError):
            c.verify_pin(None)
        assert tries(emu) == 3


# Entries shaped like part 10's (tag, length, value), with lengths that may lie.
_ENTRIES = st.lists(st.tuples(st.integers(0, 0x14), st.integers(0, 6), st.binary(max_size=6))
                    .map(lambda t: bytes((t[0], t[1])) + t[2]), max_size=12).map(b"".join)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.one_of(st.binary(max_size=2 * pinpad.MAX_ANSWER), _ENTRIES))
def test_any_reader_answer_is_parsed_or_refused(answer: bytes) -> None:
    """Whatever a reader answers: a result, or PinpadProtocolError; nothing else."""
    for parse in (pinpad.parse_features, pinpad.parse_tlv_properties,
                  pinpad.parse_pin_properties):
        try:
            parse(answer)
        except errors.PinpadProtocolError:
            pass
    try:
        data, sw = pinpad.split_answer(answer)
        assert data + sw.to_bytes(2, "big") == answer
    except (errors.CardProtocolError, errors.PinpadProtocolError):
        assert len(answer) < 2 or len(answer) > pinpad.MAX_ANSWER


def test_properties_parsed() -> None:
    props = pinpad.parse_tlv_properties(TLV_PROPERTIES + bytes.fromhex("7F0100"))  # unknown
    assert props.lcd_layout == 0x0210 and props.has_display
    assert props.entry_validation == 7 and props.timeout2 == 0
    assert (props.min_pin_size, props.max_pin_size) == (1, 12)
    assert (props.vendor_id, props.product_id) == (0x076B, 0x3821)
    assert props.firmware_id == "1.00" and props.max_apdu_data_size == 261
    old = pinpad.parse_pin_properties(bytes.fromhex("00000200"))
    assert old.lcd_layout == 0 and old.has_display is False and old.entry_validation == 2
    with pytest.raises(errors.PinpadProtocolError):
        pinpad.parse_pin_properties(b"\x00\x00\x02")


def test_old_pin_properties_feature_is_read(emu: EmulatedCard) -> None:
    with emu.connection() as inner:
        reader = CcidPinpad(inner, features=feature(0x06, IOCTL_VERIFY)
                            + feature(0x0A, IOCTL_PIN_PROPERTIES),
                            properties=bytes.fromhex("00000200"))
        features = reader.pinpad_features()
        assert features.can_verify and not features.can_modify
        assert features.properties.lcd_layout == 0
        assert reader.pinpad_features() is features            # asked once
        assert reader.controls.count(GET_FEATURE_REQUEST) == 1


def test_readers_without_part10(emu: EmulatedCard) -> None:
    with emu.connection() as inner:
        unsupported = CcidPinpad(inner, feature_error=errors.ReaderError(
            "control", code=0x8010001F))  # pcsc-lite's SCARD_E_UNSUPPORTED_FEATURE
        assert unsupported.pinpad_features() == pinpad.NO_PINPAD
        # vsmartcard's answer since 2023: GET_TLV_PROPERTIES only, no PIN pad.
        tlv_only = CcidPinpad(inner, features=feature(0x12, IOCTL_TLV))
        assert not tlv_only.pinpad_features().can_verify
        assert IOCTL_TLV not in tlv_only.controls     # no properties asked: no PIN pad
        removed = CcidPinpad(inner, feature_error=errors.CardRemoved("gone", code=0x80100069))
        with pytest.raises(errors.CardRemoved):
            removed.pinpad_features()


def test_junk_answer_to_a_pin_entry(card: Cps3Card, reader: CcidPinpad,
                                    emu: EmulatedCard) -> None:
    reader.answer = b"\x90"
    with pytest.raises(errors.CardProtocolError):
        card.verify_pin(None)
    reader.answer = b"\x61\x10"
    with pytest.raises(errors.CardProtocolError):
        card.verify_pin(None)
    assert tries(emu) == 3 and len(reader.exchanges) == 2


def test_no_pin_in_errors_or_reprs(card: Cps3Card, reader: CcidPinpad,
                                   emu: EmulatedCard) -> None:
    assert emu.pin is not None
    reader.entries.append(emu.pin)
    card.verify_pin(None)
    for text in (repr(card), repr(reader.inner), repr(pinpad.NO_PINPAD)):
        assert emu.pin not in text


# ---------------------------------------------------------------- the CLI
class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_says_enter_on_the_keypad(card: Cps3Card, reader: CcidPinpad, emu: EmulatedCard,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from cps_cli.pinflow import KEYPAD_PROMPT, verify_with_tries

    monkeypatch.setattr(sys, "stdin", Tty(""))
    assert emu.pin is not None
    reader.entries.append(emu.pin)
    verify_with_tries(card, None, False, False)
    out, err = capsys.readouterr()
    assert KEYPAD_PROMPT in err and KEYPAD_PROMPT == "Enter your PIN on the reader's keypad."
    assert "PIN verified" in out
    assert emu.pin not in out and emu.pin not in err
    assert len(reader.exchanges) == 1
    verifies(card)


def test_cli_last_try_needs_force_before_the_keypad(card: Cps3Card, reader: CcidPinpad,
                                                    emu: EmulatedCard,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from cps_cli import exitcodes
    from cps_cli.pinflow import KEYPAD_PROMPT, verify_with_tries
    from cps_cli.util import CliFail

    monkeypatch.setattr(sys, "stdin", Tty(""))
    emu.os.chvs[1].tries_left = 1
    with pytest.raises(CliFail) as caught:
        verify_with_tries(card, None, False, False)
    assert caught.value.exit_code == exitcodes.LAST_TRY_REFUSED
    assert KEYPAD_PROMPT not in capsys.readouterr().err
    assert reader.exchanges == []
    assert emu.pin is not None
    reader.entries.append(emu.pin)
    verify_with_tries(card, None, True, False)
    assert KEYPAD_PROMPT in capsys.readouterr().err and tries(emu) == 3


def test_cli_cancel_on_the_keypad(card: Cps3Card, reader: CcidPinpad, emu: EmulatedCard,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from cps_cli import exitcodes
    from cps_cli.pinflow import verify_with_tries

    monkeypatch.setattr(sys, "stdin", Tty(""))
    reader.entries.append("cancel")
    with pytest.raises(errors.PinEntryCancelled) as caught:
        verify_with_tries(card, None, False, False)
    assert exitcodes.exit_code_for(caught.value) == exitcodes.ABORTED
    err = capsys.readouterr().err
    assert "Before: PIN: 3 of 3 tries left" in err and "After:  PIN: 3 of 3 tries left" in err
    assert tries(emu) == 3


def test_cli_piped_pin_is_host_entry(card: Cps3Card, reader: CcidPinpad, emu: EmulatedCard,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from cps_cli.pinflow import KEYPAD_PROMPT, verify_with_tries

    assert emu.pin is not None
    monkeypatch.setattr(sys, "stdin", io.StringIO(emu.pin + "\n"))
    verify_with_tries(card, None, False, False)
    out, err = capsys.readouterr()
    assert KEYPAD_PROMPT not in err and reader.exchanges == []
    assert emu.pin not in out and emu.pin not in err


def test_cli_change_on_the_keypad(card: Cps3Card, reader: CcidPinpad, emu: EmulatedCard,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from cps_cli.pin import pin_change
    from cps_cli.pinflow import KEYPAD_CHANGE_PROMPT, keypad_change

    monkeypatch.setattr(sys, "stdin", Tty(""))
    assert keypad_change(card, None, None)
    assert not keypad_change(card, "env:X", None)
    # The command's own body, with the card the reader double holds.
    callback = pin_change.callback
    assert callback is not None
    inner = getattr(callback, "__wrapped__", None)
    assert emu.pin is not None
    reader.entries.append((emu.pin, "2468", "2468"))
    if inner is None:  # pragma: no cover - with_card keeps __wrapped__ (functools.wraps)
        pytest.fail("with_card does not expose the command body")
    inner(card, pin_spec=None, new_pin_spec=None, force=True, as_json=False)
    out, err = capsys.readouterr()
    assert KEYPAD_CHANGE_PROMPT in err and "PIN changed" in out
    assert emu.pin == "2468" and "2468" not in out + err


# ---------------------------------------------------------------- the real stack
@pytest.mark.pcsc
def test_vpcd_has_no_pinpad(cps_vpcd_card: EmulatedCard) -> None:
    """pcscd + vpcd: whatever this vpcd answers to GET_FEATURE_REQUEST, no PIN pad."""
    from cps.pcsc import PcscConnection

    emu = cps_vpcd_card
    with PcscConnection(emu.attachment.reader_name) as conn:
        try:
            raw = conn.control(pinpad.scard_ctl_code(pinpad.GET_FEATURE_REQUEST))
        except errors.ReaderError as exc:   # Debian 12's vpcd: no control at all
            assert type(exc) is errors.ReaderError and exc.code == 0x8010001F
        else:                               # vsmartcard >= 2023: GET_TLV_PROPERTIES only
            assert not pinpad.parse_features(raw).can_verify
        features = conn.pinpad_features()
        assert not features.can_verify and not features.can_modify
        with Cps3Card(conn, owns_connection=False) as c:
            assert not c.has_pinpad
            before = emu.apdu_count
            with pytest.raises(ValueError, match="no PIN pad"):
                c.verify_pin(None)
            assert emu.apdu_count == before
            assert emu.pin is not None
            c.verify_pin(emu.pin)   # host entry, through pcscd
            assert tries(emu) == 3
            signature = c.sign(b"ordonnance")
            key = c.certificate(KeyRole.SIGN).public_key()
            assert isinstance(key, rsa.RSAPublicKey)
            key.verify(signature, b"ordonnance", padding.PKCS1v15(), hashes.SHA256())


# ---------------------------------------------------------------- PKCS#11
class ProtectedToken:
    """The SoftHSM2 token as a module with a protected authentication path shows it."""

    def __init__(self, token: Any) -> None:
        self._token = token
        self.flags = token.flags | 0x100     # CKF_PROTECTED_AUTHENTICATION_PATH

    def __getattr__(self, name: str) -> Any:
        return getattr(self._token, name)


class ProtectedLogin:
    """C_Login as such a module does it: a NULL PIN makes it ask the holder (here:
    the next entry), then the real module (SoftHSM2) checks what was entered."""

    def __init__(self, raw: Any, entries: list[Optional[str]]) -> None:
        self._raw, self.entries = raw, entries
        self.calls: list[tuple[bool, int]] = []

    def login(self, handle: int, user: int, pin: Optional[bytes], length: int) -> int:
        self.calls.append((pin is None, length))
        if pin is None:
            typed = self.entries.pop(0)
            if typed is None:
                return 0x50   # CKR_FUNCTION_CANCELED
            pin = typed.encode()
            length = len(pin)
        result: int = self._raw.login(handle, user, pin, length)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@pytest.fixture
def p11(emu: EmulatedCard, tmp_path: Path) -> Iterator[tuple[Any, ProtectedLogin]]:
    from cps.emulator.softhsm import provision_softhsm
    from cps.pkcs11 import Pkcs11Card

    token = provision_softhsm(emu, tmp_path)
    token.get_token()
    c = Pkcs11Card.open(module=token.module, token_label=token.token_label)
    assert not c.has_pinpad          # SoftHSM2: no protected path
    c._token = ProtectedToken(c._token)  # noqa: SLF001 - the flag SoftHSM2 lacks
    login = ProtectedLogin(c._raw, [])  # noqa: SLF001
    c._raw = login  # noqa: SLF001
    yield c, login
    c.close()


def test_pkcs11_protected_path(p11: tuple[Any, ProtectedLogin], emu: EmulatedCard) -> None:
    card, login = p11
    assert card.has_pinpad
    assert emu.pin is not None
    login.entries.append(emu.pin)
    card.verify_pin(None)
    assert login.calls == [(True, 0)]     # C_Login(NULL, 0), once
    assert card.logged_in
    digest = hashlib.sha256(b"x").digest()
    assert card.authenticate(digest)


def test_pkcs11_protected_path_wrong_and_cancelled(p11: tuple[Any, ProtectedLogin],
                                                   emu: EmulatedCard) -> None:
    card, login = p11
    login.entries.append(None)
    with pytest.raises(errors.PinEntryCancelled):
        card.verify_pin(None)
    login.entries.append("0000" if emu.pin != "0000" else "1111")
    with pytest.raises(errors.PinError) as caught:
        card.verify_pin(None)
    assert not isinstance(caught.value, errors.PinEntryError)
    assert login.calls == [(True, 0), (True, 0)]   # each once, never retried
    with pytest.raises(errors.NotSupported):
        card.change_pin(None, None)
    with pytest.raises(ValueError):
        card.change_pin("1234", None)


def test_pkcs11_protected_path_last_try(p11: tuple[Any, ProtectedLogin],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from pkcs11 import TokenFlag

    card, login = p11
    flags = TokenFlag.USER_PIN_FINAL_TRY
    slot = card._token.slot  # noqa: SLF001

    class Slot:
        def get_token(self) -> Any:
            real = slot.get_token()
            return type("T", (), {"flags": real.flags | flags})()

    monkeypatch.setattr(card._token, "slot", Slot(), raising=False)  # noqa: SLF001
    with pytest.raises(LastTryRefused):
        card.verify_pin(None)
    assert login.calls == []    # the module was not asked
    flags = TokenFlag.USER_PIN_LOCKED
    with pytest.raises(errors.PinBlocked):
        card.verify_pin(None)
    assert login.calls == []



@pytest.mark.parametrize("timeout", [-1, 256, 300])
def test_a_keypad_timeout_out_of_range_is_the_callers_mistake(timeout):
    """bTimerOut is one byte: 300 s is refused, not cut to 44 s."""
    fmt = pinpad.PinBlockFormat(4, 8, 8)
    for build in (pinpad.verify_structure, pinpad.modify_structure):
        with pytest.raises(ValueError, match="timeout"):
            build(bytes.fromhex("00200001"), fmt, timeout=timeout)
    assert pinpad.verify_structure(bytes.fromhex("00200001"), fmt, timeout=255)[0] == 255
