"""PIN-pad readers: PC/SC part 10 ("IFDs with Secure PIN Entry Capabilities").

A reader with a keypad takes the PIN itself: the host sends ``SCardControl``
with a ``PIN_VERIFY_STRUCTURE`` (or ``PIN_MODIFY_STRUCTURE``) that holds the
command APDU with a blank PIN block; the reader asks the holder for the digits,
writes them into the block as the structure describes, sends the APDU to the
card and hands its answer back. The PIN never reaches the host.

This module only encodes and decodes; the connection moves the bytes
(:meth:`cps.connection.Connection.control`). Everything a reader answers is
untrusted: a malformed answer is a :class:`~cps.errors.PinpadProtocolError`,
found in bounded time.

Layouts (pcsc-lite ``reader.h``, PC/SC part 10 v2.02.09): every multi-byte
field of the structures is little-endian (what the CCID driver has expected
since 1.4.1, and Windows' byte order); the feature list's control codes are
big-endian (part 10, 2.2).
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from .errors import (
    CardProtocolError,
    NotSupported,
    PinEntryCancelled,
    PinEntryError,
    PinEntryTimeout,
    PinpadProtocolError,
    ReaderError,
)

__all__ = [
    "FEATURE_VERIFY_PIN_DIRECT", "FEATURE_MODIFY_PIN_DIRECT", "FEATURE_IFD_PIN_PROPERTIES",
    "FEATURE_GET_TLV_PROPERTIES", "GET_FEATURE_REQUEST", "PinpadFeatures", "PinpadProperties",
    "PinBlockFormat", "NO_PINPAD", "scard_ctl_code", "parse_features", "parse_tlv_properties",
    "parse_pin_properties", "read_features", "verify_structure", "modify_structure",
    "reader_error", "split_answer", "keypad_entry",
]

#: ``CM_IOCTL_GET_FEATURE_REQUEST`` = ``SCARD_CTL_CODE(3400)``
GET_FEATURE_REQUEST = 3400
FEATURE_VERIFY_PIN_DIRECT = 0x06
FEATURE_MODIFY_PIN_DIRECT = 0x07
FEATURE_IFD_PIN_PROPERTIES = 0x0A
FEATURE_GET_TLV_PROPERTIES = 0x12

# GET_TLV_PROPERTIES tags (reader.h PCSCv2_PART10_PROPERTY_*) and their sizes.
_TLV_SIZES: Dict[int, Tuple[str, Optional[int]]] = {
    1: ("lcd_layout", 2), 2: ("entry_validation", 1), 3: ("timeout2", 1),
    4: ("lcd_max_characters", 2), 5: ("lcd_max_lines", 2), 6: ("min_pin_size", 1),
    7: ("max_pin_size", 1), 8: ("firmware_id", None), 9: ("ppdu_support", 1),
    10: ("max_apdu_data_size", 4), 11: ("vendor_id", 2), 12: ("product_id", 2),
}

#: bEntryValidationCondition bits
VALIDATION_MAX_SIZE, VALIDATION_KEY, VALIDATION_TIMEOUT = 0x01, 0x02, 0x04
#: wLangId: English (United States), what OpenSC and most drivers send; a reader
#: without that language shows its default prompts.
LANG_EN_US = 0x0409
#: More than any reader's feature list (19 features of 6 bytes) or property
#: list: a longer answer is not a part 10 answer.
MAX_ANSWER = 1024
#: The reader's own status words (part 10, 2.5.x; CCID driver)
SW_TIMEOUT, SW_CANCELLED, SW_MISMATCH, SW_LENGTH = 0x6400, 0x6401, 0x6402, 0x6403

# PC/SC codes meaning "this reader has no such control" (pcsc-lite's
# SCARD_E_UNSUPPORTED_FEATURE, Windows' own value, ERROR_INVALID_FUNCTION,
# ERROR_NOT_SUPPORTED, SCARD_E_INVALID_PARAMETER): a reader without part 10.
_UNSUPPORTED_CODES = frozenset({0x8010001F, 0x80100022, 0x00000001, 0x00000032, 0x80100004})


def scard_ctl_code(code: int, platform: Optional[str] = None) -> int:
    """``SCARD_CTL_CODE(code)`` as the platform's PC/SC defines it.

    pcsc-lite (Linux, BSD) and macOS: ``0x42000000 + code``. Windows:
    ``CTL_CODE(FILE_DEVICE_SMARTCARD, code, METHOD_BUFFERED, FILE_ANY_ACCESS)``
    = ``0x310000 | code << 2``.
    """
    if not 0 <= code <= 0xFFF:
        raise ValueError(f"control function {code} is out of range")
    if (platform or sys.platform) == "win32":
        return (0x31 << 16) | (code << 2)
    return 0x42000000 + code


@dataclass(frozen=True)
class PinpadProperties:
    """What a reader says of its keypad and display (``None``: not said).

    From ``FEATURE_GET_TLV_PROPERTIES`` (preferred) or the older
    ``FEATURE_IFD_PIN_PROPERTIES`` (layout, validation condition, timeout only).
    """

    lcd_layout: Optional[int] = None          #: wLcdLayout: 0xLLCC lines, characters; 0 = none
    entry_validation: Optional[int] = None    #: bEntryValidationCondition bits it supports
    timeout2: Optional[int] = None
    lcd_max_characters: Optional[int] = None
    lcd_max_lines: Optional[int] = None
    min_pin_size: Optional[int] = None        #: bMinPINSize
    max_pin_size: Optional[int] = None        #: bMaxPINSize
    firmware_id: Optional[str] = None
    ppdu_support: Optional[int] = None
    max_apdu_data_size: Optional[int] = None
    vendor_id: Optional[int] = None           #: wIdVendor (USB)
    product_id: Optional[int] = None          #: wIdProduct (USB)

    @property
    def has_display(self) -> Optional[bool]:
        """The reader has a display (``None``: it did not say)."""
        return None if self.lcd_layout is None else self.lcd_layout != 0


@dataclass(frozen=True)
class PinpadFeatures:
    """The part 10 features of a reader: control codes, ``None`` when absent."""

    verify_pin_direct: Optional[int] = None
    modify_pin_direct: Optional[int] = None
    ifd_pin_properties: Optional[int] = None
    get_tlv_properties: Optional[int] = None
    properties: PinpadProperties = PinpadProperties()
    #: every (tag, control code) the reader listed, unknown tags included
    listed: Tuple[Tuple[int, int], ...] = ()

    @property
    def can_verify(self) -> bool:
        """The reader takes a PIN on its keypad (``FEATURE_VERIFY_PIN_DIRECT``)."""
        return self.verify_pin_direct is not None

    @property
    def can_modify(self) -> bool:
        """The reader takes an old and a new PIN (``FEATURE_MODIFY_PIN_DIRECT``)."""
        return self.modify_pin_direct is not None


#: a reader without a PIN pad (or without part 10 at all)
NO_PINPAD = PinpadFeatures()


def _bounded(data: bytes, what: str) -> bytes:
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"{what} must be bytes, not {type(data).__name__}")
    if len(data) > MAX_ANSWER:
        raise PinpadProtocolError(f"{what}: {len(data)} bytes, more than any reader answers")
    return bytes(data)


def parse_features(data: bytes) -> PinpadFeatures:
    """The answer to ``CM_IOCTL_GET_FEATURE_REQUEST``: ``tag, 04, code (4 bytes, big-endian)``
    repeated (``PCSC_TLV_STRUCTURE``). An empty answer: no feature.

    :raises PinpadProtocolError: a length other than 4, a truncated entry, a tag
        listed twice, a control code of 0, or an answer beyond :data:`MAX_ANSWER`.
    """
    data = _bounded(data, "GET_FEATURE_REQUEST")
    codes: Dict[int, int] = {}
    listed = []
    for offset in range(0, len(data), 6):
        entry = data[offset:offset + 6]
        if len(entry) < 6:
            raise PinpadProtocolError(f"GET_FEATURE_REQUEST: truncated entry at byte {offset}")
        tag, length = entry[0], entry[1]
        if length != 4:
            raise PinpadProtocolError(f"GET_FEATURE_REQUEST: feature 0x{tag:02X} has length "
                                      f"{length}, not 4")
        if tag in codes:
            raise PinpadProtocolError(f"GET_FEATURE_REQUEST: feature 0x{tag:02X} listed twice")
        code = int.from_bytes(entry[2:], "big")
        if code == 0:
            raise PinpadProtocolError(f"GET_FEATURE_REQUEST: feature 0x{tag:02X} has no "
                                      "control code")
        codes[tag] = code
        listed.append((tag, code))
    return PinpadFeatures(
        verify_pin_direct=codes.get(FEATURE_VERIFY_PIN_DIRECT),
        modify_pin_direct=codes.get(FEATURE_MODIFY_PIN_DIRECT),
        ifd_pin_properties=codes.get(FEATURE_IFD_PIN_PROPERTIES),
        get_tlv_properties=codes.get(FEATURE_GET_TLV_PROPERTIES),
        listed=tuple(listed))


def parse_tlv_properties(data: bytes) -> PinpadProperties:
    """The answer to ``FEATURE_GET_TLV_PROPERTIES``: ``tag, length, value`` with
    little-endian integers. Unknown tags are skipped (later part 10 versions add some).

    :raises PinpadProtocolError: a truncated entry, a known tag of the wrong size
        or given twice, a firmware ID that is not ASCII.
    """
    data = _bounded(data, "GET_TLV_PROPERTIES")
    values: Dict[str, object] = {}
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise PinpadProtocolError(f"GET_TLV_PROPERTIES: truncated entry at byte {offset}")
        tag, length = data[offset], data[offset + 1]
        value = data[offset + 2:offset + 2 + length]
        if len(value) != length:
            raise PinpadProtocolError(f"GET_TLV_PROPERTIES: property {tag} announces {length} "
                                      f"bytes, {len(value)} follow")
        offset += 2 + length
        known = _TLV_SIZES.get(tag)
        if known is None:
            continue
        name, size = known
        if name in values:
            raise PinpadProtocolError(f"GET_TLV_PROPERTIES: property {tag} given twice")
        if size is None:
            try:
                values[name] = value.decode("ascii")
            except UnicodeDecodeError:
                raise PinpadProtocolError("GET_TLV_PROPERTIES: the firmware ID is not "
                                          "ASCII") from None
        elif length != size:
            raise PinpadProtocolError(f"GET_TLV_PROPERTIES: property {tag} ({name}) has "
                                      f"{length} bytes, not {size}")
        else:
            values[name] = int.from_bytes(value, "little")
    return PinpadProperties(**values)  # type: ignore[arg-type]


def parse_pin_properties(data: bytes) -> PinpadProperties:
    """The answer to ``FEATURE_IFD_PIN_PROPERTIES`` (``PIN_PROPERTIES_STRUCTURE``:
    wLcdLayout, bEntryValidationCondition, bTimeOut2; 4 bytes).

    :raises PinpadProtocolError: not 4 bytes.
    """
    data = _bounded(data, "IFD_PIN_PROPERTIES")
    if len(data) != 4:
        raise PinpadProtocolError(f"IFD_PIN_PROPERTIES: {len(data)} bytes, not 4")
    layout, validation, timeout2 = struct.unpack("<HBB", data)
    return PinpadProperties(lcd_layout=layout, entry_validation=validation, timeout2=timeout2)


def read_features(control: Callable[[int, bytes], bytes]) -> PinpadFeatures:
    """Ask a reader for its part 10 features, and for its PIN properties when it has
    a PIN pad.

    :param control: ``control(code, data) -> answer`` (``SCardControl`` on the card
        handle, :meth:`cps.connection.Connection.control`).
    :returns: :data:`NO_PINPAD` when the reader has no part 10 support at all (it
        refuses the request as unsupported).
    :raises PinpadProtocolError: a malformed answer.
    :raises ReaderError: any other failure of the reader (removed card, stopped service...).
    """
    try:
        answer = control(scard_ctl_code(GET_FEATURE_REQUEST), b"")
    except ReaderError as exc:
        if type(exc) is ReaderError and exc.code is not None and \
                exc.code & 0xFFFFFFFF in _UNSUPPORTED_CODES:
            return NO_PINPAD
        raise
    except NotSupported:
        return NO_PINPAD
    features = parse_features(answer)
    if not (features.can_verify or features.can_modify):
        return features
    properties = PinpadProperties()
    if features.get_tlv_properties is not None:
        properties = parse_tlv_properties(control(features.get_tlv_properties, b""))
    elif features.ifd_pin_properties is not None:
        properties = parse_pin_properties(control(features.ifd_pin_properties, b""))
    return PinpadFeatures(features.verify_pin_direct, features.modify_pin_direct,
                          features.ifd_pin_properties, features.get_tlv_properties,
                          properties, features.listed)


@dataclass(frozen=True)
class PinBlockFormat:
    """How the card wants a PIN in the APDU: ASCII digits, left-justified in a block
    of ``block_size`` bytes pre-filled with ``pad`` (the host-entry format of
    :meth:`cps.pkcs15.PinObject.encode`), ``min_length`` to ``max_length`` digits.
    """

    min_length: int
    max_length: int
    block_size: int
    pad: int = 0xFF

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length <= self.block_size <= 15:
            # bmPINBlockString has 4 bits for the block size.
            raise ValueError(f"PIN block {self.min_length}..{self.max_length} digits in "
                             f"{self.block_size} bytes cannot be described to a PIN pad")
        if not 0 <= self.pad <= 0xFF:
            raise ValueError("the pad is one byte")

    @property
    def template(self) -> bytes:
        """The blank PIN block the reader writes the digits into."""
        return bytes((self.pad,)) * self.block_size


#: bmFormatString for an ASCII PIN, left-justified, at the start of the APDU's
#: data (position 0), in byte units: bit 7 units = bytes, bits 6-3 position,
#: bit 2 justification (0 = left), bits 1-0 format (10 = ASCII).
FORMAT_ASCII_BYTES = 0x80 | 0x02


def _digits(fmt: PinBlockFormat, properties: PinpadProperties) -> int:
    """wPINMaxExtraDigit: ``min << 8 | max``, within what the reader allows."""
    low, high = fmt.min_length, fmt.max_length
    if properties.min_pin_size is not None:
        low = max(low, properties.min_pin_size)
    if properties.max_pin_size is not None and properties.max_pin_size > 0:
        high = min(high, properties.max_pin_size)
    if low > high:
        raise NotSupported(f"the reader's keypad takes {properties.min_pin_size} to "
                           f"{properties.max_pin_size} digits; the card's PIN has "
                           f"{fmt.min_length} to {fmt.max_length}: enter it on the computer")
    return (low << 8) | high


def _validation(properties: PinpadProperties) -> int:
    # The validation key (OK/Enter) ends the entry; a reader that says it has none
    # ends it when the PIN reaches its maximum size.
    supported = properties.entry_validation
    if supported is None or supported & VALIDATION_KEY:
        return VALIDATION_KEY
    if supported & VALIDATION_MAX_SIZE:
        return VALIDATION_MAX_SIZE
    raise NotSupported("the reader names no way to end a PIN entry it supports")


def _apdu(header: bytes, body: bytes) -> bytes:
    if len(header) != 4 or not 1 <= len(body) <= 255:
        raise ValueError("a PIN command is a short case-3 APDU")
    return header + bytes((len(body),)) + body


def _byte(value: int, name: str) -> int:
    """A one-byte field of a part 10 structure: a caller's value out of range is
    their mistake, never silently cut (300 s would become 44)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must be 0 to 255, not {value}")
    return value


def _lang(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise ValueError(f"lang_id must be a 16-bit language id, not {value!r}")
    return value


def verify_structure(header: bytes, fmt: PinBlockFormat,
                     properties: PinpadProperties = PinpadProperties(), *,
                     timeout: int = 0, lang_id: int = LANG_EN_US) -> bytes:
    """A ``PIN_VERIFY_STRUCTURE`` for ``FEATURE_VERIFY_PIN_DIRECT``.

    :param header: CLA INS P1 P2 of the VERIFY command (``00 20 00 01`` on a CPS3).
    :param fmt: the card's PIN block.
    :param properties: the reader's, to keep within its PIN sizes and validation.
    :param timeout: bTimerOut in seconds, 0 to 255 (0: the reader's default).
    :raises NotSupported: the card's PIN cannot be entered on this keypad.
    :raises ValueError: ``timeout`` or ``lang_id`` out of range.
    """
    apdu = _apdu(header, fmt.template)
    messages = 0 if properties.has_display is False else 1
    return struct.pack("<BBBBBHBBHB3sI", _byte(timeout, "timeout"), 0, FORMAT_ASCII_BYTES,
                       fmt.block_size, 0x00, _digits(fmt, properties),
                       _validation(properties), messages, _lang(lang_id), 0, b"\0\0\0",
                       len(apdu)) + apdu


def modify_structure(header: bytes, fmt: PinBlockFormat,
                     properties: PinpadProperties = PinpadProperties(), *,
                     timeout: int = 0, lang_id: int = LANG_EN_US) -> bytes:
    """A ``PIN_MODIFY_STRUCTURE`` for ``FEATURE_MODIFY_PIN_DIRECT``: the current PIN
    then the new one (entered twice, the reader compares), each in a block of
    its own: ``CLA INS P1 P2 Lc <old block> <new block>``.

    :param header: CLA INS P1 P2 of CHANGE REFERENCE DATA (``00 24 00 01``).
    """
    apdu = _apdu(header, fmt.template * 2)
    messages = 0 if properties.has_display is False else 3
    return struct.pack("<BBBBBBBHBBBHBBB3sI", _byte(timeout, "timeout"), 0, FORMAT_ASCII_BYTES,
                       fmt.block_size, 0x00,
                       0,                 # bInsertionOffsetOld: the first block
                       fmt.block_size,    # bInsertionOffsetNew: the second block
                       _digits(fmt, properties),
                       0x03,              # bConfirmPIN: current PIN asked, new PIN confirmed
                       _validation(properties), messages, _lang(lang_id), 0, 1, 2, b"\0\0\0",
                       len(apdu)) + apdu


def reader_error(sw: int, what: str = "PIN") -> Optional[PinEntryError]:
    """The reader's own refusal of a PIN entry (the card was not asked: no try spent),
    or ``None`` for a status word that is the card's.

    ``6400`` timeout, ``6401`` cancelled, ``6402`` the two new PINs differ,
    ``6403`` a PIN of a length the card does not take.
    """
    if sw == SW_TIMEOUT:
        return PinEntryTimeout(f"no {what} was entered on the reader's keypad in time "
                               "(no try spent)", sw=sw, what=what)
    if sw == SW_CANCELLED:
        return PinEntryCancelled(f"the {what} entry was cancelled on the reader's keypad "
                                 "(no try spent)", sw=sw, what=what)
    if sw == SW_MISMATCH:
        return PinEntryError(f"the new {what} and its confirmation differ (no try spent)",
                             sw=sw, what=what, reason="mismatch")
    if sw == SW_LENGTH:
        return PinEntryError(f"the {what} entered on the keypad has a length the card does "
                             "not take (no try spent)", sw=sw, what=what, reason="length")
    return None


def split_answer(answer: bytes) -> Tuple[bytes, int]:
    """The reader's answer to a PIN command: ``(card data, status word)``.

    :raises CardProtocolError: fewer than two bytes.
    """
    if len(answer) < 2:
        raise CardProtocolError(f"the reader answered a PIN entry with {len(answer)} bytes: "
                                "no status word")
    if len(answer) > MAX_ANSWER:
        raise PinpadProtocolError("the reader's answer to a PIN entry is too long")
    return bytes(answer[:-2]), (answer[-2] << 8) | answer[-1]


def keypad_entry(has_pinpad: Callable[[], bool], *codes: Optional[str]) -> bool:
    """Whether a PIN operation takes its codes from the reader's keypad.

    Every code ``None``: the keypad (when there is one). Every code given: the
    host (a PIN-pad reader takes host-entered PINs too), and the reader is not
    asked anything (``has_pinpad`` is called only when no code is given).

    :raises ValueError: ``None`` without a keypad, or some codes ``None`` and
        others given (a caller's mistake: nothing is sent).
    """
    missing = [code is None for code in codes]
    if not any(missing):
        return False
    if not all(missing):
        raise ValueError("give every code, or none of them to enter them on the reader's "
                         "keypad")
    if not has_pinpad():
        raise ValueError("no PIN given, and this reader has no PIN pad to enter it on: "
                         "pass the PIN")
    return True
