"""The transport contract every card connection fulfils.

A :class:`Connection` moves one APDU to a card and brings the answer back. It
knows nothing of status words beyond splitting them off. Everything else
(encoding, chaining, ``61xx``/``6Cxx``, SW to error mapping) is stacked on top
of it in :mod:`cps.apdu`, so the PC/SC reader, the in-process emulator, a
PKCS#11-free test double or a recorded trace are interchangeable.
"""

from __future__ import annotations

import abc
import contextlib
from typing import TYPE_CHECKING, ContextManager, Optional, Tuple

from .errors import CardProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from .pinpad import PinpadFeatures

__all__ = ["Connection", "split_response"]


def split_response(raw: bytes) -> Tuple[bytes, int]:
    """Split a raw response APDU into ``(data, sw)``.

    :raises CardProtocolError: fewer than two bytes (no status word).
    """
    if len(raw) < 2:
        raise CardProtocolError(f"response APDU too short ({len(raw)} bytes): no status word")
    return bytes(raw[:-2]), (raw[-2] << 8) | raw[-1]


class Connection(abc.ABC):
    """A link to one card.

    Subclasses implement :meth:`send_and_receive` and :attr:`atr`; they may
    override :meth:`transaction` (PC/SC) and :meth:`close`.

    :ivar protocol: ``"T0"``, ``"T1"`` or ``None`` when unknown. On T=0 a
        case-4 command is sent without Le and the card answers ``61xx``.
    :ivar reader: the reader's name, or ``None``.
    """

    protocol: Optional[str] = None
    reader: Optional[str] = None
    _pinpad_features: Optional["PinpadFeatures"] = None

    @property
    @abc.abstractmethod
    def atr(self) -> bytes:
        """The card's Answer To Reset."""

    @abc.abstractmethod
    def send_and_receive(self, apdu: bytes) -> Tuple[bytes, int]:
        """Send one command APDU, return ``(response data, status word)``."""

    def transaction(self) -> ContextManager[None]:
        """Hold the card for a multi-APDU sequence (a PC/SC transaction).

        Nothing else may talk to the card until the context exits. The default
        does nothing, which is right for connections that only we can use.
        """
        return contextlib.nullcontext()

    def reset(self) -> None:
        """Warm-reset the card: its security state (PIN verification) is lost.

        Other programs sharing the card lose theirs too. The default raises
        :class:`~cps.errors.NotSupported` (a connection that cannot reset).
        """
        from .errors import NotSupported

        raise NotSupported(f"{type(self).__name__} cannot reset the card")

    def control(self, code: int, data: bytes = b"") -> bytes:
        """Send a control command to the reader (PC/SC ``SCardControl``), return its answer.

        Used for PIN-pad readers (PC/SC part 10, :mod:`cps.pinpad`). The default
        raises :class:`~cps.errors.NotSupported`: a connection with no reader to
        talk to (the in-process emulator, a recorded trace).

        :param code: the platform's control code (:func:`cps.pinpad.scard_ctl_code`,
            or a code the reader listed in its features).
        """
        from .errors import NotSupported

        raise NotSupported(f"{type(self).__name__} has no reader to send control commands to")

    def pinpad_features(self) -> "PinpadFeatures":
        """The reader's PIN-pad features (PC/SC part 10), asked once and kept.

        The default asks through :meth:`control`, so a connection that has none
        has no PIN pad (:data:`cps.pinpad.NO_PINPAD`).

        :raises PinpadProtocolError: the reader's answer is malformed.
        """
        from . import pinpad

        cached = self._pinpad_features
        if cached is None:
            cached = pinpad.read_features(self.control)
            self._pinpad_features = cached
        return cached

    def check_present(self) -> None:  # noqa: B027 - optional hook: a default no-op
        """Raise :class:`~cps.errors.CardRemoved` (or ``CardReset``) when the card
        left the reader (or was reset by someone else) since this connection
        began; cheap (no APDU). The default does nothing: a connection that
        cannot tell."""

    def close(self) -> None:  # noqa: B027 - optional hook: a default no-op, not abstract
        """Release the card. Idempotent."""

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
