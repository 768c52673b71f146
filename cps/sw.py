"""The one status-word table: code, name, text, and the error each maps to.

Status words are translated into errors here and nowhere else. Exact codes
(``6A82``) are looked up first, then the families whose low byte carries a
value (``61xx`` bytes available, ``6Cxx`` exact length, ``63Cx`` tries left).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Type

from . import errors

__all__ = ["StatusWord", "SW_OK", "lookup", "error_for_sw", "pin_error", "describe"]

SW_OK = 0x9000


@dataclass(frozen=True)
class StatusWord:
    """An entry of the status-word table.

    :ivar code: the status word, or the family's high bits for ranges.
    :ivar name: a stable upper-case identifier (``FILE_NOT_FOUND``).
    :ivar text: a short English explanation.
    """

    code: int
    name: str
    text: str


_E = errors
# code -> (name, text, error class)
_EXACT: Dict[int, Tuple[str, str, Optional[Type[errors.CardError]]]] = {
    0x9000: ("OK", "success", None),
    0x6281: ("DATA_CORRUPTED", "part of returned data may be corrupted", _E.CardError),
    0x6282: ("END_OF_FILE", "end of file reached before reading Le bytes", _E.CardError),
    0x6283: ("FILE_DEACTIVATED", "selected file deactivated", _E.CardError),
    0x6284: ("BAD_FCI_FORMAT", "file control information not formatted correctly", _E.CardError),
    0x6300: ("VERIFICATION_FAILED", "verification failed", _E.CardError),
    0x6581: ("MEMORY_FAILURE", "memory failure", _E.CardError),
    0x6700: ("WRONG_LENGTH", "wrong length (Lc or Le)", _E.CardError),
    0x6881: ("LOGICAL_CHANNEL_NOT_SUPPORTED", "logical channel not supported", _E.CardError),
    0x6882: ("SECURE_MESSAGING_NOT_SUPPORTED", "secure messaging not supported", _E.CardError),
    0x6883: ("LAST_COMMAND_EXPECTED", "last command of the chain expected", _E.CardError),
    0x6884: ("CHAINING_NOT_SUPPORTED", "command chaining not supported", _E.CardError),
    0x6900: ("COMMAND_NOT_ALLOWED", "command not allowed", _E.CardError),
    0x6981: ("INCOMPATIBLE_FILE", "command incompatible with file structure", _E.CardError),
    0x6982: ("SECURITY_STATUS_NOT_SATISFIED", "security status not satisfied",
             _E.SecurityStatusNotSatisfied),
    0x6983: ("AUTH_METHOD_BLOCKED", "authentication method blocked", _E.PinBlocked),
    0x6984: ("REFERENCE_DATA_NOT_USABLE", "reference data not usable", _E.CardError),
    0x6985: ("CONDITIONS_NOT_SATISFIED", "conditions of use not satisfied", _E.CardError),
    0x6986: ("NO_CURRENT_EF", "command not allowed (no current EF)", _E.CardError),
    0x6987: ("SM_DATA_MISSING", "expected secure messaging data objects missing", _E.CardError),
    0x6988: ("SM_DATA_INCORRECT", "incorrect secure messaging data objects", _E.CardError),
    0x6A80: ("INCORRECT_DATA", "incorrect parameters in the data field", _E.CardError),
    0x6A81: ("FUNCTION_NOT_SUPPORTED", "function not supported", _E.CardError),
    0x6A82: ("FILE_NOT_FOUND", "file or application not found", _E.CardError),
    0x6A83: ("RECORD_NOT_FOUND", "record not found", _E.CardError),
    0x6A84: ("NOT_ENOUGH_MEMORY", "not enough memory space in the file", _E.CardError),
    0x6A86: ("INCORRECT_P1P2", "incorrect parameters P1-P2", _E.CardError),
    0x6A87: ("LC_INCONSISTENT", "Lc inconsistent with P1-P2", _E.CardError),
    0x6A88: ("REFERENCE_NOT_FOUND", "referenced data or reference data not found", _E.CardError),
    0x6B00: ("WRONG_P1P2", "wrong parameters P1-P2", _E.CardError),
    0x6D00: ("INS_NOT_SUPPORTED", "instruction code not supported or invalid", _E.CardError),
    0x6E00: ("CLA_NOT_SUPPORTED", "class not supported", _E.CardError),
    0x6F00: ("NO_PRECISE_DIAGNOSIS", "no precise diagnosis", _E.CardError),
}

# (mask, value) -> (name, text); the low bits carry a number.
_FAMILIES = (
    (0xFF00, 0x6100, "BYTES_AVAILABLE", "{n} response bytes still available"),
    (0xFF00, 0x6C00, "WRONG_LE", "wrong Le: exactly {n} bytes available"),
    (0xFFF0, 0x63C0, "COUNTER", "verification failed, {n} tries left"),
    (0xFF00, 0x6400, "EXECUTION_ERROR", "execution error, memory unchanged"),
    (0xFF00, 0x6500, "MEMORY_CHANGED", "execution error, memory changed"),
    (0xFF00, 0x6600, "SECURITY_ERROR", "security-related error"),
    (0xFF00, 0x6200, "WARNING_UNCHANGED", "warning, memory unchanged"),
    (0xFF00, 0x6300, "WARNING_CHANGED", "warning, memory changed"),
)


def lookup(sw: int) -> StatusWord:
    """Return the table entry for a status word (never raises)."""
    entry = _EXACT.get(sw)
    if entry is not None:
        return StatusWord(sw, entry[0], entry[1])
    for mask, value, name, text in _FAMILIES:
        if sw & mask == value:
            low = sw & ~mask & 0xFFFF
            n = 256 if (value in (0x6100, 0x6C00) and low == 0) else low
            return StatusWord(sw, name, text.format(n=n))
    return StatusWord(sw, "UNKNOWN", "unknown status word")


def describe(sw: int) -> str:
    """``"6A82 FILE_NOT_FOUND: file or application not found"``."""
    entry = lookup(sw)
    return f"{sw:04X} {entry.name}: {entry.text}"


def pin_error(sw: int, what: str = "PIN", context: str = "") -> Optional[errors.PinError]:
    """The one reading of a PIN command's refusal (VERIFY, CHANGE, RESET RETRY COUNTER).

    ``63Cx``: the code was wrong, ``x`` tries left (``63C0``: it is now blocked);
    ``6983``: the code was already blocked (for an unblock: no unblock left).
    ``None`` for any other status word.

    :param what: ``"PIN"`` or ``"unblock code"``: carried by the error, so the
        caller knows which counter the card spoke of.
    """
    prefix = f"{context}: " if context else ""
    if sw & 0xFFF0 == 0x63C0:
        tries = sw & 0x0F
        if tries == 0:
            return errors.PinBlocked(f"{prefix}wrong {what}: now blocked", sw=sw, what=what)
        return errors.WrongPin(tries, sw=sw, what=what)
    if sw == 0x6983:
        return errors.PinBlocked(f"{prefix}{what} blocked", sw=sw, what=what)
    return None


def error_for_sw(sw: int, data: bytes = b"", context: str = "") -> errors.CardError:
    """Build the error for a failing status word.

    :param sw: the status word.
    :param data: response data returned with it.
    :param context: what was being done (``"SELECT 3F00"``), prefixed to the message.
    """
    prefix = f"{context}: " if context else ""
    if sw & 0xFFF0 == 0x63C0:
        pin = pin_error(sw, context=context)
        if pin is not None:                      # always so for 63Cx
            return pin
    entry = _EXACT.get(sw)
    cls: Optional[Type[errors.CardError]] = entry[2] if entry else None
    if cls is errors.PinBlocked:
        return errors.PinBlocked(f"{prefix}{describe(sw)}", sw=sw)
    if cls is None:
        cls = errors.CardError
    return cls(f"{prefix}{describe(sw)}", sw=sw, data=data)
