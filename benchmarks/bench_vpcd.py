"""APDU round trip through pyscard -> pcscd -> vsmartcard-vpcd -> the emulated card.

Anchors, measured in the same run on the same reader: a bare socket responder
that answers ``90 00`` at once (the floor the transport allows), and the same
responder written naively (no TCP_QUICKACK), which pays Nagle + delayed ACK.
Target (issue 3): median round trip <= 0.5 ms.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from typing import List

from cps.emulator.layout import ATR_CONTACT
from cps.emulator.vpcd import VPCD_PORT, reader_name_for_port
from cps.pcsc import PcscConnection

from .common import Figure

APDU = bytes.fromhex("00A4000C023F00")  # SELECT MF, answered 90 00


def _median_round_trip(reader: str, n: int) -> float:
    with PcscConnection(reader) as conn:
        for _ in range(min(n, 20)):
            conn.send_and_receive(APDU)
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            conn.send_and_receive(APDU)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


class _BareCard(threading.Thread):
    """The simplest vpcd client: ATR on request, 90 00 to every APDU."""

    def __init__(self, quickack: bool) -> None:
        super().__init__(daemon=True)
        self.quickack = quickack
        self.stop = threading.Event()
        self.sock = socket.create_connection(("127.0.0.1", VPCD_PORT))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            if self.quickack:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError
            buf += chunk
        return buf

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                size = int.from_bytes(self._recv(2), "big")
                payload = self._recv(size)
                if size == 1:
                    if payload[0] == 4:
                        self.sock.sendall(len(ATR_CONTACT).to_bytes(2, "big") + ATR_CONTACT)
                    continue
                self.sock.sendall(b"\x00\x02\x90\x00")
        except (OSError, ConnectionError):
            pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def _wait(present: bool) -> None:
    from cps.readers import list_readers

    name = reader_name_for_port(VPCD_PORT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(r.name == name and r.card_present == present for r in list_readers()):
            return
        time.sleep(0.05)
    raise RuntimeError("pcscd did not follow the virtual card")


def _bare(quickack: bool, n: int) -> float:
    card = _BareCard(quickack)
    card.start()
    try:
        _wait(True)
        return _median_round_trip(reader_name_for_port(VPCD_PORT), n)
    finally:
        card.close()
        _wait(False)


def run() -> List[Figure]:
    from cps.emulator.card import EmulatedCard, default_pki

    card = EmulatedCard.from_profile("cps3-medecin", pki=default_pki())
    with card.serve_vpcd() as attachment:
        ours = _median_round_trip(attachment.reader_name, 2000)
    bare = _bare(True, 2000)
    naive = _bare(False, 20)
    return [Figure("APDU round trip pyscard->pcscd->vpcd->emulated card", "ms (median)",
                   ours, {"bare socket responder": bare, "naive socket responder": naive},
                   target=0.5, note="SELECT MF, 2000 round trips (naive: 20)")]
