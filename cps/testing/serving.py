"""What the test kit's HTTP servers share (:class:`~cps.testing.pkiserver.PkiServer`,
:class:`~cps.testing.tsa.TsaServer`): a standard-library threaded HTTP server
run in a background thread, its life cycle, its request log, and the event
that wakes handlers sleeping on a fault when it stops."""

from __future__ import annotations

import io
import logging
import os
import threading
from http.server import ThreadingHTTPServer
from typing import Any, Generic, List, Optional, TypeVar

log = logging.getLogger("cps.testing")

_Record = TypeVar("_Record")
_Self = TypeVar("_Self", bound="BackgroundServer[Any]")


class QuietHttpServer(ThreadingHTTPServer):
    """A threaded HTTP server whose failed requests are logged, not printed."""

    daemon_threads = True
    # Tests start and stop servers quickly on fixed ports.
    allow_reuse_address = True
    owner: Any

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients of fault tests hang up mid-answer on purpose: no tracebacks on stderr.
        log.debug("request from %s failed", client_address,
                  exc_info=True)  # noqa: LOG014 - called from an except block


class BackgroundServer(Generic[_Record]):
    """Serve ``self._httpd`` in a thread: :meth:`start`, :meth:`stop`, ``with``.

    Subclasses set ``_httpd`` (a :class:`QuietHttpServer`) and may override
    :meth:`_before_start`.
    """

    #: the thread's name prefix
    thread_name = "test-server"
    _httpd: QuietHttpServer

    def __init__(self) -> None:
        #: every request received, oldest first (thread-safe to read)
        self.requests: List[_Record] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._httpd.server_address[1])

    def _before_start(self) -> None:
        """Done once before the first request (default: nothing)."""

    def start(self: _Self) -> _Self:
        """Serve in a background thread."""
        if self._thread is None:
            self._before_start()
            self._stopping.clear()
            self._thread = threading.Thread(target=self._httpd.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name=f"{self.thread_name}:{self.port}",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (clients then get refused)."""
        self._stopping.set()  # wakes handlers sleeping on a fault
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self: _Self) -> _Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self.requests.clear()

    def _log(self, record: _Record) -> None:
        with self._lock:
            self.requests.append(record)

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops; return whether it is stopping."""
        return self._stopping.wait(seconds)

    def _write(self, wfile: io.BufferedIOBase, data: bytes, trickle: float = 0.0) -> None:
        """Send an answer's body: at once, or 16 bytes every ``trickle`` seconds (a
        slow server fault) until done or the server stops."""
        if not trickle:
            wfile.write(data)
            return
        for offset in range(0, len(data), 16):
            wfile.write(data[offset:offset + 16])
            wfile.flush()
            if self._sleep(trickle):
                return

    def _write_junk(self, wfile: io.BufferedIOBase, size: int, trickle: float = 0.0) -> None:
        """Send ``size`` random bytes (an oversized answer fault), 64 KiB at a time,
        pausing ``trickle`` seconds between pieces, until done or the server stops."""
        chunk = os.urandom(64 * 1024)
        sent = 0
        while sent < size and not self._stopping.is_set():
            piece = chunk[:min(len(chunk), size - sent)]
            wfile.write(piece)
            sent += len(piece)
            if trickle and self._sleep(trickle):
                return
