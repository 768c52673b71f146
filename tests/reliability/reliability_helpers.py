"""Helpers of the reliability tests (imported by the test modules of this folder)."""

from __future__ import annotations

import os
import time
from typing import Callable, List, Optional

from cps import errors
from cps.emulator.card import EmulatedConnection

#: secrets-bearing instructions: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER
SECRET_INS = (0x20, 0x24, 0x2C)


class TappedConnection(EmulatedConnection):
    """The in-process connection, with a hook before the n-th command from now.

    ``arm(n, action)``: ``action(emu)`` runs just before the n-th command (0-based)
    reaches the card -- pull the card out, reset it, make it mute... When the
    action returns an exception, the command is not sent and that exception is
    raised instead (what PC/SC does after a reset: ``SCARD_W_RESET_CARD``).
    Every command is recorded, to count what was sent (PIN presentations).
    """

    def __init__(self, card) -> None:
        super().__init__(card)
        self.sent: List[bytes] = []
        self._countdown: Optional[int] = None
        self._action: Optional[Callable] = None

    def arm(self, n: int, action: Callable) -> None:
        self._countdown, self._action = n, action

    def disarm(self) -> None:
        self._countdown, self._action = None, None

    def send_and_receive(self, apdu: bytes):
        if self._countdown is not None:
            if self._countdown == 0:
                action, self._action, self._countdown = self._action, None, None
                raised = action(self.card)
                if isinstance(raised, BaseException):
                    raise raised
            else:
                self._countdown -= 1
        self.sent.append(bytes(apdu))
        return super().send_and_receive(apdu)

    def mark(self) -> int:
        return len(self.sent)

    def secrets_since(self, mark: int) -> int:
        """Commands carrying a PIN or unblock code sent since ``mark``."""
        return sum(1 for a in self.sent[mark:] if len(a) > 5 and a[1] in SECRET_INS)


def vpcd_port() -> int:
    """The vpcd slot to use (``CPS_VPCD_PORT``, as the plugin's ``cps_vpcd_card``)."""
    return int(os.environ.get("CPS_VPCD_PORT", "35963"))


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def reader_name(port: Optional[int] = None) -> str:
    from cps.emulator.vpcd import reader_name_for_port

    return reader_name_for_port(port or vpcd_port())


def wait_reader_free(timeout: float = 60.0) -> None:
    """pcscd and its virtual readers are shared by everybody on the machine: wait until
    nobody else serves a card on our vpcd port before serving ours."""
    import cps

    name = reader_name()
    deadline = time.monotonic() + timeout
    while True:
        try:
            busy = any(r.name == name and r.card_present for r in cps.list_readers())
        except errors.CpsError:
            busy = False
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} stays busy: another process serves a card on vpcd "
                                 f"port {vpcd_port()} (set CPS_VPCD_PORT to use the other one)")
        time.sleep(0.2)


def open_when_ready(reader: str, emu=None, timeout: float = 20.0):
    """``cps.open_card(reader=...)`` once pcscd sees the card again and it answers.

    Meanwhile every failure must be a typed :class:`cps.errors.ReaderError`
    (no card, card reset, link not ready...); anything else fails the test.
    With ``emu``, also wait until the card answering is that emulated card:
    pcscd and its virtual readers are shared by everybody on the machine, and
    a PIN presented to somebody else's card would spend *their* tries.
    """
    deadline = time.monotonic() + timeout
    last: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            return open_mine(reader, emu)
        except (errors.ReaderError, errors.CardIdentificationError) as exc:
            # NoCard, CardReset, ReaderNotFound... all typed; or somebody else's card
            last = exc
            time.sleep(0.1)
    raise AssertionError(f"the card in {reader} never came back: {last!r}")


def open_mine(reader: str, emu=None):
    """One attempt: open the card in ``reader`` and check it is ``emu`` (else ReaderError)."""
    import cps

    card = cps.open_card(reader=reader)
    try:
        before = emu.apdu_count if emu is not None else 0
        card._serial = None  # noqa: SLF001 - a real exchange, not the cache
        card.card_number  # noqa: B018 - a first exchange: the link really works
        if emu is not None and emu.apdu_count == before:
            raise errors.ReaderError("another card answers in this reader", reader=reader)
    except BaseException:
        card.close()
        raise
    return card


__all__ = ["TappedConnection", "SECRET_INS", "wait_for", "open_when_ready", "open_mine",
           "vpcd_port", "reader_name", "wait_reader_free"]
