"""Card identification by ATR, with a mask table in OpenSC's manner.

An entry matches when ``atr & mask == pattern & mask`` (same length). The
table holds every CPS ATR published (cps-domain.md section 1.2): CPS3 contact
and its variant, CPS3 contactless, and the CPS4 ATRs, which are recognised in
order to be refused by name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Tuple

from .errors import UnknownCard, UnsupportedCard

__all__ = ["CardKind", "AtrEntry", "ATR_TABLE", "identify", "require_supported"]


class CardKind(str, enum.Enum):
    """What kind of card an ATR announces."""

    CPS3 = "cps3"                      #: CPS3, contact interface (IAS-ECC, T=0)
    CPS3_CONTACTLESS = "cps3-contactless"
    CPS4 = "cps4"                      #: CPS4 (NXP ChipDoc): recognised, not supported
    UNKNOWN = "unknown"

    @property
    def supported(self) -> bool:
        return self in (CardKind.CPS3, CardKind.CPS3_CONTACTLESS)


@dataclass(frozen=True)
class AtrEntry:
    name: str
    kind: CardKind
    pattern: bytes
    mask: Optional[bytes] = None  # None: exact match

    def matches(self, atr: bytes) -> bool:
        if len(atr) != len(self.pattern):
            return False
        if self.mask is None:
            return atr == self.pattern
        return all((a & m) == (p & m) for a, p, m in zip(atr, self.pattern, self.mask, strict=True))


_h = bytes.fromhex
ATR_TABLE: Tuple[AtrEntry, ...] = (
    # Exact CPS4 entries come first: OpenSC's CPx mask below also matches the
    # CPS4 "T=0 only" ATR (3B DC 18 FF 00 00 12 25 00 64 80 ... 00 90 00), so
    # a mask-first table would take a CPS4 for a CPS3.
    AtrEntry("CPS4 (NXP ChipDoc)", CardKind.CPS4, _h("3B9B18800100122500648004010000" "9044")),
    AtrEntry("CPS4 (NXP ChipDoc, release candidate)", CardKind.CPS4,
             _h("3B9B1880010012250064800004010090" "44")),
    AtrEntry("CPS4 (NXP ChipDoc, T=0)", CardKind.CPS4, _h("3BDC18FF0000122500648000040100" "9000")),
    # OpenSC's CPx mask: ignores TB1..TC2-ish bytes and the pre-issuing data, so the
    # "Sesam Vitale card CPS" variant (...80 82 02 12 00 90 00) matches too.
    AtrEntry("CPS3 (IAS-ECC CPx, contact)", CardKind.CPS3,
             _h("3BAC00402A001225006480000310009000"),
             _h("FF00000000FFFFFFFFFFFF000000FFFFFF")),
    AtrEntry("CPS3 (IAS-ECC CPx, contactless)", CardKind.CPS3_CONTACTLESS,
             _h("3B8F800100" "31B86404B0ECC1739401808290000E"),
             _h("FFFFFFFFFFFFFFFF0000FFC0FFFFFFFFFFFFFFFF")),
)


def identify(atr: bytes) -> Optional[AtrEntry]:
    """Return the table entry matching ``atr``, or ``None``."""
    for entry in ATR_TABLE:
        if entry.matches(atr):
            return entry
    return None


def card_kind(atr: bytes) -> CardKind:
    """The :class:`CardKind` an ATR announces (``UNKNOWN`` when none)."""
    entry = identify(atr)
    return entry.kind if entry else CardKind.UNKNOWN


def require_supported(atr: bytes) -> AtrEntry:
    """Identify a card this library can use, or raise.

    :raises UnsupportedCard: a recognised card we do not support (CPS4).
    :raises UnknownCard: not a CPS card at all.
    """
    entry = identify(atr)
    if entry is None:
        raise UnknownCard(f"not a CPS card: unknown ATR {atr.hex(' ').upper()}", atr=atr)
    if not entry.kind.supported:
        raise UnsupportedCard(f"{entry.name} is recognised but not supported", atr=atr,
                              card_name=entry.name)
    return entry
