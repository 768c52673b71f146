"""PC/SC transport on pyscard (imported here only, never by ``import cps``).

Talks to pcscd through pyscard's thin ``smartcard.scard`` binding so every
PC/SC return code is seen and mapped to a typed :mod:`cps.errors` error:

=============================  ===========================
PC/SC code                     error
=============================  ===========================
SCARD_E_NO_SERVICE             PcscServiceUnavailable
SCARD_E_NO_READERS_AVAILABLE   NoReaders
SCARD_E_UNKNOWN_READER         ReaderNotFound
SCARD_E_NO_SMARTCARD           NoCard
SCARD_W_REMOVED_CARD           CardRemoved
SCARD_W_RESET_CARD             CardReset
SCARD_E_SHARING_VIOLATION      SharingViolation
SCARD_E_TIMEOUT                ReaderTimeout
=============================  ===========================
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Tuple

from . import errors
from ._extras import require
from .connection import Connection, split_response

__all__ = ["PcscReader", "PcscConnection", "list_pcsc_readers", "pcsc_error"]

# PC/SC return codes (winscard.h). Kept here so that mapping does not need pyscard.
SCARD_S_SUCCESS = 0x00000000
SCARD_E_CANCELLED = 0x80100002
SCARD_E_INVALID_HANDLE = 0x80100003
SCARD_E_UNKNOWN_READER = 0x80100009
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_SHARING_VIOLATION = 0x8010000B
SCARD_E_NO_SMARTCARD = 0x8010000C
SCARD_E_PROTO_MISMATCH = 0x8010000F
SCARD_E_NOT_TRANSACTED = 0x80100016
SCARD_E_READER_UNAVAILABLE = 0x80100017
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_SERVICE_STOPPED = 0x8010001E
SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_W_UNRESPONSIVE_CARD = 0x80100066
SCARD_W_UNPOWERED_CARD = 0x80100067
SCARD_W_RESET_CARD = 0x80100068
SCARD_W_REMOVED_CARD = 0x80100069

_MAP = {
    SCARD_E_NO_SERVICE: (errors.PcscServiceUnavailable,
                         "the PC/SC service (pcscd) is not running"),
    SCARD_E_SERVICE_STOPPED: (errors.PcscServiceUnavailable, "the PC/SC service stopped"),
    SCARD_E_NO_READERS_AVAILABLE: (errors.NoReaders, "no smart card reader is connected"),
    SCARD_E_UNKNOWN_READER: (errors.ReaderNotFound, "the reader is not known to PC/SC"),
    SCARD_E_READER_UNAVAILABLE: (errors.ReaderNotFound, "the reader is no longer available"),
    SCARD_E_NO_SMARTCARD: (errors.NoCard, "no card in the reader"),
    SCARD_W_REMOVED_CARD: (errors.CardRemoved, "the card was removed"),
    SCARD_W_UNPOWERED_CARD: (errors.CardRemoved, "the card is not powered"),
    SCARD_W_RESET_CARD: (errors.CardReset, "the card was reset"),
    SCARD_E_SHARING_VIOLATION: (errors.SharingViolation,
                                "another application holds the card exclusively"),
    SCARD_E_TIMEOUT: (errors.ReaderTimeout, "the reader did not answer in time"),
    SCARD_W_UNRESPONSIVE_CARD: (errors.ReaderTimeout, "the card does not answer (mute card)"),
    SCARD_E_PROTO_MISMATCH: (errors.ReaderError, "the card does not speak T=0 or T=1"),
    SCARD_E_NOT_TRANSACTED: (errors.ReaderError, "the reader could not transmit the command"),
    SCARD_E_INVALID_HANDLE: (errors.CardReset, "the card handle is no longer valid"),
}


def pcsc_error(code: int, action: str, reader: Optional[str] = None) -> errors.ReaderError:
    """Map a PC/SC return code to the matching :class:`~cps.errors.ReaderError`."""
    code &= 0xFFFFFFFF
    cls, text = _MAP.get(code, (errors.ReaderError, "PC/SC error"))
    where = f" ({reader})" if reader else ""
    return cls(f"{action}{where}: {text} [0x{code:08X}]", reader=reader, code=code)


def _scard() -> Any:
    """pyscard's ``smartcard.scard``.

    Loaded on first use only (never by `import cps`): this module is the PC/SC
    backend, the one place that talks to pyscard.

    :raises MissingExtra: pyscard is not installed (``extra == "card"``).
    """
    return require("smartcard.scard", "card", "pyscard")


@dataclass(frozen=True)
class PcscReader:
    """A reader as PC/SC sees it: name, whether a card is present, its ATR."""

    name: str
    card_present: bool
    atr: bytes


class _Context:
    """An SCARDCONTEXT, released on close."""

    def __init__(self) -> None:
        self.scard = _scard()
        rv, self.handle = self.scard.SCardEstablishContext(self.scard.SCARD_SCOPE_USER)
        if rv != SCARD_S_SUCCESS:
            raise pcsc_error(rv, "connecting to the PC/SC service")

    def close(self) -> None:
        if self.handle is not None:
            self.scard.SCardReleaseContext(self.handle)
            self.handle = None

    def readers(self) -> List[str]:
        rv, names = self.scard.SCardListReaders(self.handle, [])
        if rv == SCARD_E_NO_READERS_AVAILABLE or (rv == SCARD_S_SUCCESS and not names):
            return []
        if rv != SCARD_S_SUCCESS:
            raise pcsc_error(rv, "listing readers")
        return list(names)

    def states(self, names: List[str]) -> List[PcscReader]:
        if not names:
            return []
        s = self.scard
        rv, states = s.SCardGetStatusChange(self.handle, 0, [(n, s.SCARD_STATE_UNAWARE)
                                                             for n in names])
        if rv != SCARD_S_SUCCESS:
            raise pcsc_error(rv, "reading reader states")
        out = []
        for name, event, atr in states:
            present = bool(event & s.SCARD_STATE_PRESENT) and not (event & s.SCARD_STATE_MUTE)
            out.append(PcscReader(name, present, bytes(atr) if present else b""))
        return out


def list_pcsc_readers() -> List[PcscReader]:
    """Every PC/SC reader with its card state and ATR.

    :raises PcscServiceUnavailable: pcscd is not reachable.
    """
    ctx = _Context()
    try:
        return ctx.states(ctx.readers())
    finally:
        ctx.close()


class PcscConnection(Connection):
    """A connection to the card in one PC/SC reader.

    :param reader: the exact reader name.
    :param exclusive: ask for exclusive access instead of the default shared mode.
    """

    def __init__(self, reader: str, exclusive: bool = False) -> None:
        self.reader = reader
        self._ctx = _Context()
        s = self._ctx.scard
        self._share = s.SCARD_SHARE_EXCLUSIVE if exclusive else s.SCARD_SHARE_SHARED
        self._lock = threading.RLock()
        self._depth = 0
        self._removed = False   # the reader said the card was pulled out
        try:
            rv, self._card, proto = s.SCardConnect(
                self._ctx.handle, reader, self._share,
                s.SCARD_PROTOCOL_T0 | s.SCARD_PROTOCOL_T1)
            if rv != SCARD_S_SUCCESS:
                raise pcsc_error(rv, "connecting to the card", reader)
            self._set_protocol(proto)
            self._atr = self._read_atr()
        except BaseException:
            self._ctx.close()
            raise

    def _set_protocol(self, proto: int) -> None:
        s = self._ctx.scard
        self.protocol = "T0" if proto == s.SCARD_PROTOCOL_T0 else "T1"
        self._pci = s.SCARD_PCI_T0 if self.protocol == "T0" else s.SCARD_PCI_T1

    def _read_atr(self) -> bytes:
        rv, _reader, _state, _proto, atr = self._ctx.scard.SCardStatus(self._card)
        if rv != SCARD_S_SUCCESS:
            raise pcsc_error(rv, "reading the card status", self.reader)
        return bytes(atr)

    @property
    def atr(self) -> bytes:
        return self._atr

    def send_and_receive(self, apdu: bytes) -> Tuple[bytes, int]:
        if self._card is None:
            raise errors.ReaderError("connection closed", reader=self.reader)
        rv, response = self._ctx.scard.SCardTransmit(self._card, self._pci, list(apdu))
        if rv != SCARD_S_SUCCESS:
            self._removed = self._removed or rv in (SCARD_W_REMOVED_CARD, SCARD_E_NO_SMARTCARD)
            raise pcsc_error(rv, "sending a command", self.reader)
        if not response:
            # Some drivers (vpcd among them) report success with no bytes at all
            # when the card fell silent: that is a mute card, not a bad answer.
            raise errors.ReaderTimeout("the card gave no answer (mute card)", reader=self.reader)
        return split_response(bytes(response))

    def control(self, code: int, data: bytes = b"") -> bytes:
        """``SCardControl`` on the card handle (PC/SC part 10 PIN pads: :mod:`cps.pinpad`).

        ``code`` is already the platform's control code: a reader's feature list
        gives them so, and :func:`cps.pinpad.scard_ctl_code` computes
        ``SCARD_CTL_CODE`` for pcsc-lite/macOS or Windows. A PIN entry holds
        this call until the holder has typed (or the reader's timeout).

        :raises ReaderError: the reader refused (``code`` says why; a reader
            without the function answers ``SCARD_E_UNSUPPORTED_FEATURE``).
        """
        if self._card is None:
            raise errors.ReaderError("connection closed", reader=self.reader)
        with self._lock:  # one exchange with the reader at a time from this process
            rv, response = self._ctx.scard.SCardControl(self._card, code, list(data))
        if rv != SCARD_S_SUCCESS:
            self._removed = self._removed or rv in (SCARD_W_REMOVED_CARD, SCARD_E_NO_SMARTCARD)
            raise pcsc_error(rv, f"control command 0x{code:08X}", self.reader)
        return bytes(response)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A PC/SC transaction (re-entrant within this connection and thread)."""
        with self._lock:
            if self._depth == 0:
                rv = self._ctx.scard.SCardBeginTransaction(self._card)
                if rv != SCARD_S_SUCCESS:
                    raise pcsc_error(rv, "starting a transaction", self.reader)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._card is not None:
                    # A removed or reset card ends the transaction by itself;
                    # the error that matters is the one already raised.
                    self._ctx.scard.SCardEndTransaction(self._card,
                                                       self._ctx.scard.SCARD_LEAVE_CARD)

    def check_present(self) -> None:
        """``SCardStatus``: CardRemoved / CardReset when the card left or was reset.

        An absent card makes SCardStatus fail (SCARD_W_REMOVED_CARD, on
        pcsc-lite and Windows alike): its state bits differ between the two.
        """
        if self._card is None:
            raise errors.ReaderError("connection closed", reader=self.reader)
        if self._removed:
            raise errors.CardRemoved("the card was removed", reader=self.reader)
        rv = self._ctx.scard.SCardStatus(self._card)[0]
        if rv != SCARD_S_SUCCESS:
            self._removed = self._removed or rv in (SCARD_W_REMOVED_CARD, SCARD_E_NO_SMARTCARD)
            raise pcsc_error(rv, "checking that the card is there", self.reader)

    def reconnect(self, reset: bool = False) -> None:
        """Re-establish the link after ``CardReset`` (optionally resetting the card)."""
        s = self._ctx.scard
        init = s.SCARD_RESET_CARD if reset else s.SCARD_LEAVE_CARD
        rv, proto = s.SCardReconnect(self._card, self._share,
                                     s.SCARD_PROTOCOL_T0 | s.SCARD_PROTOCOL_T1, init)
        if rv != SCARD_S_SUCCESS:
            raise pcsc_error(rv, "reconnecting to the card", self.reader)
        self._set_protocol(proto)
        self._atr = self._read_atr()

    def reset(self) -> None:
        """Warm-reset the card (``SCardReconnect`` with ``SCARD_RESET_CARD``).

        :raises CardRemoved: the card is gone (its state went with it): nothing
            is asked of the reader, since a reset of an absent card can leave
            pcsc-lite's reader unable to see the next insertion.
        """
        self.check_present()
        self.reconnect(reset=True)

    def close(self) -> None:
        card, self._card = getattr(self, "_card", None), None
        if card is not None:
            self._ctx.scard.SCardDisconnect(card, self._ctx.scard.SCARD_LEAVE_CARD)
        self._ctx.close()

    def __repr__(self) -> str:
        return f"PcscConnection(reader={self.reader!r}, protocol={self.protocol!r})"
