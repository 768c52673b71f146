"""Fault injection: make the emulated card misbehave the way real cards and readers do.

Set attributes on ``emu.faults`` (or call the helpers on the card); counters
are consumed one response at a time, so a test can break exactly the next
answer and then watch recovery::

    emu.faults.garbage = 1        # the next response is random bytes
    emu.faults.force_61xx = 16    # every answer comes by GET RESPONSE, 16 bytes at a time
    emu.remove(); emu.insert()    # pull the card out, put it back (state lost)
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["Faults", "CardMuted"]


class CardMuted(Exception):
    """Internal: the card does not answer (the attachment turns it into a timeout)."""


@dataclass
class Faults:
    """Fault switches; all off by default.

    :ivar removed: the card is out of the reader.
    :ivar mute: the card takes commands and never answers.
    :ivar delay: seconds to wait before every answer (a slow card).
    :ivar garbage: replace the next N responses with random bytes.
    :ivar truncate: cut the next N responses to their first byte (no status word).
    :ivar force_61xx: when > 0, every response with data is given through
        ``61xx`` + GET RESPONSE in chunks of at most this many bytes.
    :ivar force_6cxx: answer the next N case-2 commands ``6Cxx`` first, as if
        Le were wrong (the command has no effect).
    :ivar endless_61xx: answer ``61 10`` to every command, forever.
    :ivar reset_next: the next command finds the card freshly reset (state lost).
    """

    removed: bool = False
    mute: bool = False
    delay: float = 0.0
    garbage: int = 0
    truncate: int = 0
    force_61xx: int = 0
    force_6cxx: int = 0
    endless_61xx: bool = False
    reset_next: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def clear(self) -> None:
        """Switch every fault off."""
        with self._lock:
            self.removed = self.mute = self.endless_61xx = self.reset_next = False
            self.delay = 0.0
            self.garbage = self.truncate = self.force_61xx = self.force_6cxx = 0

    def take(self, name: str) -> bool:
        """Consume one unit of a counter fault; True when it fires."""
        with self._lock:
            value = getattr(self, name)
            if value > 0:
                setattr(self, name, value - 1)
                return True
            return False

    @staticmethod
    def garbage_bytes(max_len: int = 300) -> bytes:
        n = os.urandom(2)
        return os.urandom(int.from_bytes(n, "big") % max_len + 1)

    def response_hook(self) -> Optional[str]:
        """Which response-level fault fires for this answer, if any."""
        if self.take("garbage"):
            return "garbage"
        if self.take("truncate"):
            return "truncate"
        return None
