"""A connection that plays a script: for unit tests of code above the transport."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple, Union

from ..connection import Connection, split_response
from ..errors import CpsError

__all__ = ["ScriptedConnection", "ScriptError"]

Step = Tuple[Optional[bytes], Union[bytes, Callable[[bytes], bytes]]]


class ScriptError(CpsError):
    """The code under test sent something the script did not expect."""


class ScriptedConnection(Connection):
    """Answer each command with the next scripted response.

    :param steps: ``(expected command or None, raw response)`` pairs; the
        response may be a callable taking the command. ``None`` accepts any command.
    :param repeat_last: keep answering with the last step once the script is
        exhausted (to model a card stuck in a loop).
    """

    def __init__(self, steps: Sequence[Step], atr: bytes = b"\x3b\x00",
                 protocol: Optional[str] = "T1", repeat_last: bool = False) -> None:
        self._steps = list(steps)
        self._atr = atr
        self.protocol = protocol
        self.repeat_last = repeat_last
        self.sent: List[bytes] = []
        self.closed = False
        #: warm resets asked (:meth:`reset`); a scripted card keeps no state to lose
        self.resets = 0

    @property
    def atr(self) -> bytes:
        return self._atr

    def send_and_receive(self, apdu: bytes) -> Tuple[bytes, int]:
        self.sent.append(bytes(apdu))
        index = len(self.sent) - 1
        if index >= len(self._steps):
            if not (self.repeat_last and self._steps):
                raise ScriptError(f"unexpected command #{index}: {apdu.hex()}")
            index = len(self._steps) - 1
        expected, response = self._steps[index]
        if expected is not None and bytes(expected) != bytes(apdu):
            raise ScriptError(f"command #{index}: expected {expected.hex()}, got {apdu.hex()}")
        raw = response(apdu) if callable(response) else response
        return split_response(raw)

    def reset(self) -> None:
        self.resets += 1

    def close(self) -> None:
        self.closed = True
