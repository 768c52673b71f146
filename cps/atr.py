"""Card identification by ATR, with a mask table in OpenSC's manner.

An entry matches when ``atr & mask == pattern & mask`` (same length). The
table holds every CPS ATR published (cps-domain.md section 1.2): CPS3 contact
and its variant, CPS3 contactless, and the CPS4 ATRs (the ANS Cryptolib 5.2's
exact ones, card-cps.c). A CPS4 is recognised so that no IAS-ECC command is sent
to it: :func:`cps.open_card` reaches it through the Cryptolib's PKCS#11 module
(:func:`cps.open.open_cps4`), and :func:`require_supported` -- the APDU
backend's gate -- refuses it by name.
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
    CPS4 = "cps4"                      #: CPS4 (NXP ChipDoc): through PKCS#11 only
    UNKNOWN = "unknown"

    @property
    def supported(self) -> bool:
        """The library speaks to this card itself (APDUs): the CPS3s. A CPS4 is not,
        but :func:`cps.open_card` opens it through the Cryptolib (:attr:`via_pkcs11`)."""
        return self in (CardKind.CPS3, CardKind.CPS3_CONTACTLESS)

    @property
    def via_pkcs11(self) -> bool:
        """Opened through a PKCS#11 module only (the CPS4: no IAS-ECC, no public APDUs)."""
        return self is CardKind.CPS4


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

    :raises UnsupportedCard: a recognised card the APDU backend does not speak to (a
        CPS4: :func:`cps.open_card` opens it through the Cryptolib's PKCS#11 module).
    :raises UnknownCard: not a CPS card at all.
    """
    entry = identify(atr)
    if entry is None:
        raise UnknownCard(f"not a CPS card: unknown ATR {atr.hex(' ').upper()}", atr=atr)
    if not entry.kind.supported:
        how = (": open it with cps.open_card(reader=...) (through the ANS Cryptolib CPS 5.2 "
               "or later) or backend='pkcs11'" if entry.kind.via_pkcs11 else "")
        raise UnsupportedCard(f"{entry.name} is recognised but not supported by the APDU "
                              f"backend{how}", atr=atr, card_name=entry.name)
    return entry
