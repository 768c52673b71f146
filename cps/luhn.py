"""The Luhn check digit (ISO/IEC 7812-1), the one implementation of the project.

Card numbers (the PAN of EF.SN.ICC: issuer 8025000001, card number, Luhn
digit) and RPPS numbers (11 digits, the last a Luhn digit) use it.

Only strings of at least two ASCII digits (something, then its check digit)
can be Luhn-valid: the empty string, one digit, or anything with another
character is not.
"""

from __future__ import annotations

__all__ = ["check_digit", "is_valid"]

#: a digit -> the digit its double adds up to (for the doubled positions)
_DOUBLED = str.maketrans("0123456789", "0246813579")


def _is_digits(text: object) -> bool:
    return isinstance(text, str) and text.isascii() and text.isdigit()


def check_digit(digits: str) -> str:
    """The Luhn check digit to append to ``digits``.

    :param digits: decimal digits (the empty string gives ``"0"``).
    :raises ValueError: anything else than ASCII digits.
    """
    if digits and not _is_digits(digits):
        raise ValueError(f"not a string of digits: {digits!r}")
    # From the right: the digit left of the check digit and every second one
    # before it are doubled (their digits summed), the others count as they are.
    summed = digits[::-1][::2].translate(_DOUBLED) + digits[-2::-2]
    return str(-(sum(summed.encode("ascii")) - 48 * len(digits)) % 10)  # "0" is 48


def is_valid(digits: str) -> bool:
    """Whether ``digits`` ends with a correct Luhn check digit.

    :param digits: decimal digits, check digit last.
    :returns: ``False`` for anything that is not at least two ASCII digits
        (the empty string included).
    """
    if not (_is_digits(digits) and len(digits) > 1):
        return False
    summed = digits[::-2] + digits[-2::-2].translate(_DOUBLED)
    return (sum(summed.encode("ascii")) - 48 * len(digits)) % 10 == 0
