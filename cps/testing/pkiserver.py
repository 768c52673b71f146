"""A real HTTP server for the test PKI: CRLs, CA certificates and OCSP on 127.0.0.1.

.. warning::
   TEST-ONLY. It serves :class:`cps.emulator.pki.TestPKI` objects, answers
   anyone who connects, and has switches that make it misbehave on purpose.

What it serves (the URLs the test PKI writes into its certificates):

* ``GET /ca/<stem>.cer``, ``GET /crl/<stem>.crl``, ``GET /crl/<stem>-delta.crl``
  from :meth:`TestPKI.http_resources`, with ``ETag`` and ``Last-Modified``; a
  conditional request (``If-None-Match``, else ``If-Modified-Since``) that
  matches gets ``304 Not Modified``.
* OCSP at ``/ocsp``: ``POST`` with an ``application/ocsp-request`` body, or
  ``GET /ocsp/<url-encoded base64 of the DER request>`` (RFC 6960 appendix A).

Resources are *published* like a real CA publishes: :meth:`PkiServer.publish`
issues every CRL at a given time (the deltas on a chosen base) and the server
keeps serving those bytes (so ETags stay stable and 304s happen) until the
next publication. It publishes once when it starts; ``per_request=True``
re-issues on every request instead.

:meth:`PkiServer.override` makes the server answer given bytes at a path (a
forged, planted or future-dated CRL, see :mod:`cps.testing.forge`) until the
override is cleared, whatever is published meanwhile; validators are computed
from the served bytes, so conditional requests behave as on a real server.

Misbehaviour for tests lives in :attr:`PkiServer.faults` (:class:`Faults`);
every request is logged in :attr:`PkiServer.requests` (:class:`RequestRecord`).

The port must be known before the PKI is generated (certificates embed the
URLs), hence two ways to bind first::

    port = PkiServer.reserve()               # the socket stays bound...
    pki = TestPKI.generate(d, base_url=f"http://127.0.0.1:{port}")
    with PkiServer(pki, port=port) as server:  # ...and the server takes it over
        ...

    server = PkiServer()                     # binds now, serves once started
    server.pki = TestPKI.generate(d, base_url=server.base_url)
    with server: ...

or simply ``with serve_test_pki(directory) as (pki, server): ...``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import hashlib
import logging
import os
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from cps.testing.serving import BackgroundServer, QuietHttpServer

if TYPE_CHECKING:
    from cps.emulator.pki import TestPKI

__all__ = ["Faults", "PkiServer", "RequestRecord", "serve_test_pki"]

log = logging.getLogger(__name__)

#: Largest request body the server reads (an OCSP request is a few hundred bytes).
MAX_REQUEST_BODY = 64 * 1024

_reserved: dict[tuple[str, int], socket.socket] = {}
_reserved_lock = threading.Lock()


@dataclass
class Faults:
    """Switches that make the server misbehave. Change them at any time.

    :ivar down: close every connection without answering (the client sees a reset
        or an empty reply), as a crashed or firewalled server would.
    :ivar slow: seconds to wait before answering (after reading the request).
    :ivar garbage: answer random bytes (same length as the real body) instead.
    :ivar status: answer this HTTP status with an empty body instead.
    :ivar oversize: answer this many bytes of junk instead of the body (sent in
        chunks, so the server does not hold them in memory).
    :ivar no_length: omit ``Content-Length`` (the body ends when the connection closes).
    :ivar trickle: send the body one small chunk at a time, this many seconds apart
        (defeats per-read timeouts: only an overall deadline stops it).
    :ivar redirect: answer ``302`` with this ``Location``.
    :ivar match: apply the faults only to paths starting with this prefix
        (e.g. ``"/ocsp"``); ``None`` applies them everywhere.
    """

    down: bool = False
    slow: float = 0.0
    garbage: bool = False
    status: int | None = None
    oversize: int = 0
    no_length: bool = False
    trickle: float = 0.0
    redirect: str | None = None
    match: str | None = None

    def reset(self) -> None:
        """Turn every fault off."""
        for name, value in Faults().__dict__.items():
            setattr(self, name, value)

    def applies_to(self, path: str) -> bool:
        """Whether the faults concern a request for ``path``."""
        return self.match is None or path.startswith(self.match)


@dataclass(frozen=True)
class RequestRecord:
    """One request the server received.

    :ivar method: ``"GET"``, ``"POST"``...
    :ivar path: the request path (with its query string, if any).
    :ivar headers: request headers, names lower-cased.
    :ivar body: the request body (POST), empty otherwise.
    :ivar status: the HTTP status answered (0 when the connection was dropped).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    status: int = 0


@dataclass
class _Published:
    resources: dict[str, bytes]
    at: datetime
    etags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Override:
    data: bytes
    etag: str
    last_modified: datetime


def _etag(data: bytes) -> str:
    """Strong ETag of a body: the same bytes always get the same tag."""
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _whole_seconds(moment: datetime) -> datetime:
    """UTC, whole seconds (HTTP dates and CRL times carry no fraction)."""
    return moment.astimezone(timezone.utc).replace(microsecond=0)


class _HttpServer(QuietHttpServer):
    owner: PkiServer


class _HttpServer6(_HttpServer):
    address_family = socket.AF_INET6


class PkiServer(BackgroundServer["RequestRecord"]):
    """Threaded HTTP server publishing a :class:`~cps.emulator.pki.TestPKI`.

    :param pki: the PKI to serve; may be set later through :attr:`pki`
        (requests before that get ``503``).
    :param host: address to listen on.
    :param port: port to listen on; ``0`` picks a free one. A port obtained from
        :meth:`reserve` is taken over without rebinding.
    :param per_request: re-issue CRLs on every request instead of on :meth:`publish`.
    :param clock: current time for publications and OCSP answers (tests shift it).
    :param ssl_context: a server-side TLS context to serve ``https`` instead of ``http``.
    """

    def __init__(self, pki: TestPKI | None = None, host: str = "127.0.0.1", port: int = 0,
                 *, per_request: bool = False,
                 clock: Callable[[], datetime] | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.pki = pki
        self.ssl_context = ssl_context
        self.per_request = per_request
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(timezone.utc))
        #: misbehaviour switches
        self.faults = Faults()
        #: send ``ETag`` / ``Last-Modified`` validators (turn off to test fallbacks)
        self.send_etag = True
        self.send_last_modified = True
        #: HTTP methods accepted at ``/ocsp`` (others get ``405``)
        self.ocsp_methods: set[str] = {"GET", "POST"}
        #: replaces the OCSP answer: ``hook(request_der) -> response_der``
        self.ocsp_hook: Callable[[bytes], bytes] | None = None
        #: ``at`` given to :meth:`TestPKI.ocsp_response`; ``None`` = :attr:`clock`
        self.ocsp_time: datetime | None = None
        self._published: _Published | None = None
        self._overrides: dict[str, _Override] = {}
        self._httpd = self._bind(host, port)
        self._httpd.owner = self
        if ssl_context is not None:
            # The handshake happens in the handler thread (see _Handler.setup), so a
            # client that never speaks TLS cannot block the accept loop.
            self._httpd.socket = ssl_context.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False)

    # -- binding -------------------------------------------------------------------------

    @staticmethod
    def reserve(host: str = "127.0.0.1") -> int:
        """Bind a listening socket on a free port and keep it for a later :class:`PkiServer`.

        Nothing else can take the port in between (unlike "find a free port,
        close it, hope"). Release an unused reservation with :meth:`release`.

        :param host: address to bind.
        :returns: the port number.
        """
        sock = socket.socket(_family(host), socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, 0))
            sock.listen(64)
        except BaseException:
            sock.close()
            raise
        port: int = sock.getsockname()[1]     # (host, port) for an AF_INET socket
        with _reserved_lock:
            _reserved[(host, port)] = sock
        return port

    @staticmethod
    def release(port: int, host: str = "127.0.0.1") -> None:
        """Close a reservation made by :meth:`reserve` that no server took over."""
        with _reserved_lock:
            sock = _reserved.pop((host, port), None)
        if sock is not None:
            sock.close()

    def _bind(self, host: str, port: int) -> _HttpServer:
        with _reserved_lock:
            reserved = _reserved.pop((host, port), None) if port else None
        cls = _HttpServer6 if _family(host) == socket.AF_INET6 else _HttpServer
        if reserved is None:
            return cls((host, port), _Handler)
        httpd = cls((host, port), _Handler, bind_and_activate=False)
        httpd.socket.close()
        httpd.socket = reserved
        httpd.server_address = reserved.getsockname()[:2]
        httpd.server_name, httpd.server_port = host, port
        return httpd

    @property
    def base_url(self) -> str:
        """``http://host:port`` (what to give :meth:`TestPKI.generate`); ``https`` with TLS."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def ocsp_url(self) -> str:
        """URL of the OCSP responder."""
        return f"{self.base_url}/ocsp"

    # -- life cycle ---------------------------------------------------------------------------

    thread_name = "pki-server"

    def _before_start(self) -> None:
        """Publish, unless already done."""
        if self._published is None and self.pki is not None:
            self.publish()

    # -- content --------------------------------------------------------------------------------

    def publish(self, at: datetime | None = None, *,
                delta_base: datetime | None = None) -> datetime:
        """Issue every CRL at ``at`` (default :attr:`clock`) and serve them from now on.

        Paths under an :meth:`override` keep serving the override.

        :param at: thisUpdate of the CRLs (aware datetime).
        :param delta_base: issue time of the complete CRLs the delta CRLs are
            based on (their deltaCRLIndicator; they list the changes since);
            default the PKI's ``min(delta_base_time, at)``
            (see :meth:`TestPKI.crl <cps.emulator.pki.TestPKI.crl>`).
        :returns: the publication time (whole seconds, as in the CRLs).
        """
        if self.pki is None:
            raise RuntimeError("no PKI to publish: set server.pki first")
        moment = _whole_seconds(at or self.clock())
        resources = self.pki.http_resources(at=moment, delta_base=delta_base)
        etags = {path: _etag(data) for path, data in resources.items()}
        with self._lock:
            self._published = _Published(resources, moment, etags)
        return moment

    @property
    def published_at(self) -> datetime | None:
        """Time of the current publication (``Last-Modified``), if any."""
        return self._published.at if self._published else None

    def resource(self, path: str) -> bytes | None:
        """The bytes currently served at ``path`` (``None`` if nothing is).

        An :meth:`override` wins over the published resource.
        """
        with self._lock:
            override = self._overrides.get(path)
        if override is not None:
            return override.data
        published = self._current()
        return published.resources.get(path) if published else None

    def published_resource(self, path: str) -> bytes | None:
        """The bytes the current publication has at ``path``, overrides aside."""
        published = self._current()
        return published.resources.get(path) if published else None

    def override(self, path: str, data: bytes | None, *,
                 last_modified: datetime | None = None) -> None:
        """Serve exactly ``data`` at ``path`` from now on; ``None`` clears the override.

        The override survives :meth:`publish` (and ``per_request``) until it is
        cleared, here or by :meth:`clear_overrides`; any path may be overridden,
        published or not (not ``/ocsp``: see :attr:`ocsp_hook`). Faults still
        apply. The ``ETag`` is computed from ``data`` (same bytes, same tag, as
        for published resources), so a client revalidating what it fetched
        before gets ``200`` with the new bytes, and ``304`` once it holds them.

        :param path: URL path, e.g. ``"/crl/ACI-FO-PP-TEST.crl"``.
        :param data: the body to serve, or ``None`` to serve the publication again.
        :param last_modified: the ``Last-Modified`` to send; default the
            :attr:`clock`, moved to one second after whatever ``Last-Modified``
            the path had so far if the clock is not past it (so that clients
            that only send ``If-Modified-Since`` see the change too).
        :raises ValueError: a path not starting with ``/``, or ``/ocsp``.
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        if path == "/ocsp" or path.startswith("/ocsp/"):
            raise ValueError("OCSP answers are dynamic: use ocsp_hook")
        if data is None:
            with self._lock:
                self._overrides.pop(path, None)
            return
        data = bytes(data)
        with self._lock:
            previous = self._overrides.get(path)
            published = self._published
        if last_modified is not None:
            moment = _whole_seconds(last_modified)
        else:
            moment = _whole_seconds(self.clock())
            before = previous.last_modified if previous is not None else \
                published.at if published is not None and path in published.resources else None
            if before is not None and moment <= before:
                moment = before + timedelta(seconds=1)
        with self._lock:
            self._overrides[path] = _Override(data, _etag(data), moment)

    def clear_overrides(self) -> None:
        """Clear every :meth:`override`: the published resources are served again."""
        with self._lock:
            self._overrides.clear()

    @property
    def overrides(self) -> dict[str, bytes]:
        """The current overrides, by path (a copy)."""
        with self._lock:
            return {path: o.data for path, o in self._overrides.items()}

    def requests_for(self, path: str, method: str | None = None) -> list[RequestRecord]:
        """Logged requests whose path starts with ``path`` (and of ``method``, if given)."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path)
                    and (method is None or r.method == method)]

    def _served(self, path: str) -> tuple[bytes, str, datetime] | None:
        """(body, ETag, Last-Modified) served at ``path``, or ``None`` (404)."""
        with self._lock:
            override = self._overrides.get(path)
        if override is not None:
            return override.data, override.etag, override.last_modified
        published = self._current()
        if published is None or path not in published.resources:
            return None
        return published.resources[path], published.etags[path], published.at

    def _current(self) -> _Published | None:
        if self.pki is None:
            return None
        if self.per_request:
            self.publish()
        with self._lock:
            return self._published

def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "cps-test-pki/1"
    # HTTP/1.0: one request per connection, like most CRL fetchers expect; it also
    # lets a body without Content-Length end at connection close.
    protocol_version = "HTTP/1.0"

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
        super().setup()

    # -- dispatch -------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle(body=b"")

    def do_HEAD(self) -> None:
        self._handle(body=b"", head=True)

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BODY:
            self._finish(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"", "text/plain", b"")
            return
        self._handle(body=self.rfile.read(length))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- core -----------------------------------------------------------------------------

    @property
    def owner(self) -> PkiServer:
        return self.server.owner

    def _handle(self, body: bytes, head: bool = False) -> None:
        owner = self.owner
        path = urllib.parse.urlsplit(self.path).path
        faults = owner.faults
        faulty = faults.applies_to(path)
        self._request_body = body
        if faulty and faults.down:
            self._record(0)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if faulty and faults.slow and owner._sleep(faults.slow):
            self._record(0)
            return
        if faulty and faults.status is not None:
            self._finish(faults.status, b"", "text/plain", body)
            return
        if faulty and faults.redirect is not None:
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", faults.redirect)
            self.send_header("Content-Length", "0")
            self._record(HTTPStatus.FOUND)  # before the client can see the answer
            self.end_headers()
            return
        if path == "/ocsp" or path.startswith("/ocsp/"):
            self._ocsp(path, body)
            return
        if self.command not in ("GET", "HEAD"):
            self._finish(HTTPStatus.METHOD_NOT_ALLOWED, b"", "text/plain", body)
            return
        served = owner._served(path)
        if served is None:
            unavailable = owner.pki is None or owner._published is None
            self._finish(HTTPStatus.SERVICE_UNAVAILABLE if unavailable else HTTPStatus.NOT_FOUND,
                         b"", "text/plain", body)
            return
        data, etag, last_modified = served
        modified = email.utils.format_datetime(last_modified, usegmt=True)
        validators = {}
        if owner.send_etag:
            validators["ETag"] = etag
        if owner.send_last_modified:
            validators["Last-Modified"] = modified
        if self._not_modified(etag, last_modified):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            for name, value in validators.items():
                self.send_header(name, value)
            self._record(HTTPStatus.NOT_MODIFIED)  # before the client can see the answer
            self.end_headers()
            return
        ctype = "application/pkix-crl" if path.endswith(".crl") else "application/pkix-cert"
        self._finish(HTTPStatus.OK, data, ctype, body, validators, head=head)

    def _not_modified(self, etag: str, published: datetime) -> bool:
        owner = self.owner
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            # RFC 9110 13.1.2: If-None-Match wins over If-Modified-Since; weak comparison.
            if not owner.send_etag:
                return False
            tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
            return "*" in tags or etag in tags
        ims = self.headers.get("If-Modified-Since")
        if ims is None or not owner.send_last_modified:
            return False
        try:
            since = email.utils.parsedate_to_datetime(ims)
        except (TypeError, ValueError, IndexError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)
        return published <= since

    def _ocsp(self, path: str, body: bytes) -> None:
        owner = self.owner
        if self.command not in owner.ocsp_methods:
            self._finish(HTTPStatus.METHOD_NOT_ALLOWED, b"", "text/plain", body)
            return
        if self.command == "POST":
            request = body
        else:
            encoded = urllib.parse.unquote(path[len("/ocsp/"):]) if path.startswith("/ocsp/") \
                else ""
            try:
                request = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                request = b""
        if owner.ocsp_hook is not None:
            answer = owner.ocsp_hook(request)
        elif owner.pki is None:
            self._finish(HTTPStatus.SERVICE_UNAVAILABLE, b"", "text/plain", body)
            return
        else:
            answer = owner.pki.ocsp_response(request, at=owner.ocsp_time or owner.clock())
        self._finish(HTTPStatus.OK, answer, "application/ocsp-response", body)

    def _finish(self, status: int, data: bytes, ctype: str, request_body: bytes,
                headers: dict[str, str] | None = None, head: bool = False) -> None:
        faults = self.owner.faults
        faulty = faults.applies_to(urllib.parse.urlsplit(self.path).path)
        size = len(data)
        if faulty and faults.oversize:
            size = faults.oversize
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if not (faulty and faults.no_length):
            self.send_header("Content-Length", str(size))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        # Recorded before end_headers() sends the answer: a client that has its
        # answer finds its request in `requests` (a test reading them right after).
        self._record(status)
        self.end_headers()
        if head:
            return
        try:
            if faulty and faults.oversize:
                self._send_junk(faults.oversize)
            elif faulty and faults.garbage:
                self._send(os.urandom(len(data)))
            else:
                self._send(data)
        except OSError:
            pass  # the client gave up (size cap, deadline): expected in fault tests

    def _send(self, data: bytes) -> None:
        path = urllib.parse.urlsplit(self.path).path
        faults = self.owner.faults
        self.owner._write(self.wfile, data, faults.trickle if faults.applies_to(path) else 0.0)

    def _send_junk(self, size: int) -> None:
        self.owner._write_junk(self.wfile, size, self.owner.faults.trickle)

    def _record(self, status: int) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.owner._log(RequestRecord(self.command, self.path, headers,
                                      getattr(self, "_request_body", b""), int(status)))


@contextlib.contextmanager
def serve_test_pki(directory: str | os.PathLike[str], *, seed: int | bytes = 1,
                   host: str = "127.0.0.1", **generate_options: Any
                   ) -> Iterator[tuple[TestPKI, PkiServer]]:
    """Generate a test PKI whose URLs point at a fresh server, and serve it.

    :param directory: where :meth:`TestPKI.generate` keeps its files (keys are
        cached there: reuse the directory to make the next run fast).
    :param seed: the PKI seed.
    :param host: address to listen on.
    :param generate_options: more keyword arguments for :meth:`TestPKI.generate`
        (``reference_time``, ``ca_key_bits``, ``profiles``).
    :returns: a context manager yielding ``(pki, server)``; the server stops on exit.
    """
    from cps.emulator.pki import TestPKI

    port = PkiServer.reserve(host)
    try:
        url_host = f"[{host}]" if ":" in host else host
        pki = TestPKI.generate(directory, seed=seed, base_url=f"http://{url_host}:{port}",
                               **generate_options)
        server = PkiServer(pki, host=host, port=port)
    except BaseException:
        PkiServer.release(port, host)
        raise
    with server:
        yield pki, server

