"""Attach an emulated card to pcscd through the vsmartcard-vpcd reader driver.

vpcd (loaded by pcscd from /etc/reader.conf.d/vpcd) listens on TCP 35963 for
reader 0 ("Virtual PCD 00 00") and 35964 for reader 1. The card connects as a
client. Every message is a 2-byte big-endian length then the payload; a
1-byte payload is a control code (0 power off, 1 power on, 2 reset, 4 get
ATR), anything longer is a command APDU answered with the response APDU.

TCP_NODELAY matters: without it Nagle's algorithm and delayed ACKs put about
40 ms on every APDU (see docs/performance.md).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Optional, Protocol

from ..errors import CardRemoved, CpsError, ReaderTimeout
from .faults import CardMuted, Faults

__all__ = ["VpcdAttachment", "VirtualCard", "VPCD_PORT", "reader_name_for_port"]

_log = logging.getLogger("cps.emulator.vpcd")

VPCD_PORT = 35963
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4
MAX_MESSAGE = 0x10000 + 16
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def reader_name_for_port(port: int) -> str:
    """The PC/SC name pcscd gives the vpcd slot listening on ``port``."""
    return f"Virtual PCD 00 {port - VPCD_PORT:02d}"


class VirtualCard(Protocol):
    """What a vpcd attachment serves: :class:`~cps.emulator.EmulatedCard` is one.

    The attachment knows the card by this shape only, so this module does not
    depend on the card's (``EmulatedCard.serve_vpcd`` builds the attachment).
    """

    faults: Faults
    mute_timeout: float

    @property
    def atr(self) -> bytes: ...

    def power_up(self) -> object: ...

    def power_down(self) -> None: ...

    def reset(self) -> object: ...

    def transmit(self, raw: bytes) -> bytes: ...


class VpcdAttachment:
    """The card plugged into a vpcd slot, served from a background thread.

    Use as a context manager (``with emu.serve_vpcd() as att:``) or call
    :meth:`start` / :meth:`stop`. Leaving the context removes the card.
    """

    def __init__(self, card: VirtualCard, port: int = VPCD_PORT,
                 host: str = "127.0.0.1") -> None:
        self.card = card
        self.host = host
        self.port = port
        self.reader_name = reader_name_for_port(port)
        self._sock: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._connected = threading.Event()

    # ------------------------------------------------------------------ control
    def start(self, timeout: float = 10.0, wait_present: bool = True) -> "VpcdAttachment":
        """Connect to vpcd and serve; with ``wait_present``, return once pcscd sees the card."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"vpcd-{self.port}", daemon=True)
        self._thread.start()
        if not self._connected.wait(timeout):
            self.stop()
            raise ReaderTimeout(f"could not reach vpcd on {self.host}:{self.port}: is pcscd "
                                "running with the vsmartcard-vpcd driver?", reader=self.reader_name)
        if wait_present:
            self.wait_present(timeout)
        return self

    def wait_present(self, timeout: float = 10.0, present: bool = True) -> None:
        """Wait until pcscd reports the card present (or absent)."""
        from ..readers import list_readers

        deadline = time.monotonic() + timeout
        while True:
            try:
                state = {r.name: r.card_present for r in list_readers()}
            except CpsError:
                state = {}
            if state.get(self.reader_name, False) == present:
                return
            if time.monotonic() > deadline:
                raise ReaderTimeout(f"pcscd did not see the card {'arrive' if present else 'leave'}"
                                    f" in {self.reader_name}", reader=self.reader_name)
            time.sleep(0.05)

    def stop(self, wait_absent: bool = True, timeout: float = 10.0) -> None:
        """Remove the card and stop serving.

        With ``wait_absent``, return only once pcscd has seen the card leave,
        so that a card plugged in next is not mistaken for this one.
        """
        self._stop.set()
        self._close_socket()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if wait_absent and self._connected.is_set():
            self.wait_present(timeout, present=False)

    def __enter__(self) -> "VpcdAttachment":
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the loop
    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.card.faults.removed:
                time.sleep(0.02)
                continue
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2)
            except OSError:
                time.sleep(0.1)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(None)
            self._sock = sock
            self._connected.set()
            try:
                self._serve(sock)
            except (OSError, ConnectionError):
                pass
            finally:
                if self._sock is sock:
                    self._close_socket()
                self.card.power_down()

    def _recv_exact(self, sock: socket.socket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            # vpcd writes the length and the payload in two send() calls with
            # Nagle on: the payload waits for our ACK of the length, which the
            # kernel delays by 40 ms unless told to ACK at once (re-armed per recv).
            if _QUICKACK is not None:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("vpcd closed the connection")
            buf += chunk
        return bytes(buf)

    def _send(self, sock: socket.socket, payload: bytes) -> None:
        sock.sendall(len(payload).to_bytes(2, "big") + payload)

    def _serve(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            size = int.from_bytes(self._recv_exact(sock, 2), "big")
            if size > MAX_MESSAGE:
                raise ConnectionError("oversized message from vpcd")
            payload = self._recv_exact(sock, size)
            if self.card.faults.removed:
                return  # pulled out: drop the link, pcscd sees the removal
            if size == 1:
                code = payload[0]
                if code == CTRL_ATR:
                    self._send(sock, self.card.atr)
                elif code == CTRL_ON:
                    self.card.power_up()
                elif code == CTRL_OFF:
                    self.card.power_down()
                elif code == CTRL_RESET:
                    self.card.reset()
                continue
            try:
                response = self.card.transmit(payload)
            except CardRemoved:
                return  # pulled out during the command: drop the link, keep the thread
            except CardMuted:
                # A mute card: say nothing, then fall off the bus so pcscd
                # (which waits for ever on vpcd) reports an error instead of hanging.
                time.sleep(self.card.mute_timeout)
                return
            self._send(sock, response)
