"""Reader discovery: :func:`list_readers` and reader selection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from .atr import CardKind, card_kind
from .errors import NoReaders, ReaderNotFound

__all__ = ["ReaderInfo", "list_readers", "select_reader"]


@dataclass(frozen=True)
class ReaderInfo:
    """A PC/SC reader and what it holds.

    :ivar name: the PC/SC reader name.
    :ivar card_present: a powered card is in the reader.
    :ivar atr: the card's ATR (empty when no card).
    :ivar card_kind: what the ATR announces (:class:`~cps.atr.CardKind`), ``None`` without a card.
    """

    name: str
    card_present: bool
    atr: bytes
    card_kind: Optional[CardKind]


def list_readers() -> List[ReaderInfo]:
    """Every PC/SC reader, with card presence, ATR and card kind.

    :raises PcscServiceUnavailable: pcscd is not reachable.
    :raises MissingExtra: pyscard is not installed (``cps-middleware[card]``).
    """
    from .pcsc import list_pcsc_readers  # pyscard only when readers are asked for

    return [ReaderInfo(r.name, r.card_present, r.atr,
                       card_kind(r.atr) if r.card_present else None)
            for r in list_pcsc_readers()]


def select_reader(readers: List[ReaderInfo], selector: Optional[str] = None) -> ReaderInfo:
    """Pick a reader by index, name substring (case-insensitive) or ATR (hex).

    Without a selector: the first reader holding a CPS card, else the first
    reader holding any card, else the first reader.

    :raises NoReaders: the list is empty.
    :raises ReaderNotFound: nothing matches the selector.
    """
    if not readers:
        raise NoReaders("no smart card reader is connected")
    if selector is None or selector == "":
        for r in readers:
            if r.card_present and r.card_kind is not None and r.card_kind.supported:
                return r
        for r in readers:
            if r.card_present:
                return r
        return readers[0]
    if selector.isdigit() and len(selector) < 4:
        index = int(selector)
        if index < len(readers):
            return readers[index]
        raise ReaderNotFound(f"no reader at index {index} ({len(readers)} readers)")
    compact = selector.replace(" ", "").replace(":", "").lower()
    if len(compact) >= 8 and all(c in "0123456789abcdef" for c in compact):
        for r in readers:
            if r.atr and r.atr.hex().startswith(compact):
                return r
    lowered = selector.lower()
    matches = [r for r in readers if lowered in r.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ReaderNotFound(f"{len(matches)} readers match {selector!r}: be more precise")
    raise ReaderNotFound(f"no reader matches {selector!r}")
