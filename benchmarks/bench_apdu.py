"""APDU pipeline overhead per command, ours beside yubikit's (yubikey-manager).

Both stacks run over the same in-memory connection that answers at once, so
the figures are the pure cost of encoding, chaining and status-word handling.
"""

from __future__ import annotations

from typing import List, Tuple

from cps.apdu import ApduChannel
from cps.connection import Connection

from .common import Figure, per_call

OK = b"\x90\x00"


class _Instant(Connection):
    """Answers from a fixed cycle of responses, with no I/O."""

    protocol = "T1"

    def __init__(self, responses: List[bytes]) -> None:
        self._responses = responses
        self._i = 0

    @property
    def atr(self) -> bytes:
        return b"\x3b\x00"

    def send_and_receive(self, apdu: bytes) -> Tuple[bytes, int]:
        raw = self._responses[self._i % len(self._responses)]
        self._i += 1
        return raw[:-2], (raw[-2] << 8) | raw[-1]

    # yubikit's SmartCardConnection also wants a transport
    transport = None


def _yubikit(responses: List[bytes]):
    try:
        from yubikit.core.smartcard import SmartCardConnection, SmartCardProtocol
    except ImportError:
        return None

    class Conn(_Instant, SmartCardConnection):  # type: ignore[misc]
        transport = None  # type: ignore[assignment]

    conn = Conn(responses)
    return SmartCardProtocol(conn)


def run() -> List[Figure]:
    figures = []
    cases = [
        ("single APDU (SELECT, 9000)", [OK], dict(cla=0, ins=0xA4, p1=9, p2=0x0C,
                                                  data=b"\x3f\x00\xd0\x03")),
        ("1 KiB through 61xx + 4 GET RESPONSE", [b"\x61\x00"] + [bytes(256) + b"\x61\x00"] * 3
         + [bytes(256) + OK], dict(cla=0, ins=0xB0, p1=0, p2=0, data=b"")),
    ]
    for name, responses, cmd in cases:
        ours = ApduChannel(_Instant(responses))
        # Default arguments bind this iteration's values (per_call runs the lambda at once).
        t_ours = per_call(lambda ours=ours, cmd=cmd: ours.send(
                              cmd["cla"], cmd["ins"], cmd["p1"], cmd["p2"], cmd["data"],
                              ne=256 if not cmd["data"] else None),
                          number=5000)
        anchors = {}
        yk = _yubikit(responses)
        if yk is not None:
            anchors["yubikit SmartCardProtocol"] = per_call(
                lambda yk=yk, cmd=cmd: yk.send_apdu(cmd["cla"], cmd["ins"], cmd["p1"], cmd["p2"],
                                                    cmd["data"]),
                number=5000) * 1e6
        else:
            anchors["yubikit SmartCardProtocol"] = None
        figures.append(Figure(f"APDU pipeline overhead: {name}", "µs/command", t_ours * 1e6,
                              anchors, note="in-memory connection, median of 7 x 5000"))
    return figures
