"""``requests`` over TLS authenticated with the card (and so ``zeep``, which
takes a requests session)::

    session = requests.Session()
    session.mount("https://", CardHTTPAdapter(card))
    session.get("https://service.example/", verify="/etc/ssl/igc-sante.pem")

Connections are kept per (host, port, trust anchors) and reused; when a server
closes one, the next is a resumed TLS session: the card signs once for a
series of calls. Every request first checks that the card is still there: a
card pulled out ends its connections and sessions (a typed
:class:`CardSSLError`, reason ``"card-removed"``).
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

from .._extras import require
from ..errors import CardRemoved, CardReset, CpsError, NoCard, ReaderError, TlsError
from .client import SessionCache, TlsConnection, TlsSettings, card_key, connect, normalise_host
from .server_trust import ServerTrust

if TYPE_CHECKING:
    from ..card import Card

require("requests", "tls")
import requests  # noqa: E402 - after the guard that names the extra
from requests.adapters import BaseAdapter  # noqa: E402
from requests.exceptions import ConnectionError as RequestsConnectionError  # noqa: E402
from requests.exceptions import (  # noqa: E402
    ConnectTimeout,
    InvalidURL,
    ProxyError,
    ReadTimeout,
    SSLError,
)
from requests.structures import CaseInsensitiveDict  # noqa: E402
from requests.utils import get_encoding_from_headers, select_proxy  # noqa: E402

__all__ = ["CardHTTPAdapter", "CardSSLError", "ResponseTooLarge"]


class CardSSLError(SSLError):
    """A request failed for a reason of cps.tls (a ``requests`` SSLError).

    :ivar reason: the typed reason (``"server-certificate"``, ``"server-name"``,
        ``"protocol-version"``, ``"no-signature-scheme"``, ``"card-removed"``,
        ``"card"``, ``"handshake"``...).
    :ivar cps_error: the cps error behind it.
    """

    def __init__(self, cps_error: BaseException, *, request: Any = None,
                 reason: Optional[str] = None) -> None:
        super().__init__(str(cps_error), request=request)
        self.cps_error = cps_error
        self.reason: str = reason or str(getattr(cps_error, "reason", "") or "card")


class ResponseTooLarge(requests.exceptions.RequestException):
    """A response body (decoded) larger than the adapter's ``max_body``
    (requests without ``stream=True``). :ivar limit: the limit."""

    def __init__(self, message: str, *, request: Any = None, limit: int = 0) -> None:
        super().__init__(message, request=request)
        self.limit = limit


#: methods a client may repeat (RFC 9110 9.2.2)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class _HTTPConnection(http.client.HTTPConnection):
    """http.client over a card-authenticated TLS connection."""

    def __init__(self, adapter: "CardHTTPAdapter", host: str, port: int, trust: ServerTrust,
                 proxy: Optional[str], timeout: Optional[float]) -> None:
        super().__init__(host, port, timeout=timeout)
        self._adapter, self._trust, self._proxy = adapter, trust, proxy
        self.tls: Optional[TlsConnection] = None

    def connect(self) -> None:
        settings = self._adapter.settings
        if self.timeout is not None and self.timeout != settings.timeout:
            settings = dataclasses.replace(settings, timeout=float(self.timeout))
        raw = _open_socket(self.host, self.port, self._proxy, settings.timeout)
        self.tls = connect(self._adapter.card, self.host, self.port, trust=self._trust,
                           settings=settings, sessions=self._adapter.sessions, sock=raw)
        self._adapter.handshakes.append(self.tls.info)
        self.sock = self.tls  # socket-like: what http.client reads and writes

    def close(self) -> None:
        tls, self.tls = self.tls, None
        super().close()
        if tls is not None:
            tls.close()


class _Pool:
    """Idle connections per key; urllib3's response gives them back here."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._idle: Dict[Tuple[str, ...], List[_HTTPConnection]] = {}
        self.keys: Dict[int, Tuple[str, ...]] = {}

    def take(self, key: Tuple[str, ...]) -> Optional[_HTTPConnection]:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None or conn.tls is None or not conn.tls.dropped():
                return conn
            conn.close()  # the server closed it while idle: never sent a request on

    def _put_conn(self, conn: _HTTPConnection) -> None:  # urllib3's name
        key = getattr(conn, "_cps_key", None)
        last = getattr(conn, "_cps_response", None)
        if key is None or conn.sock is None or (last is not None and not last.isclosed()):
            # a response not read to its end leaves the connection unusable
            conn.close()
            return
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._size:
                idle.append(conn)
                return
        conn.close()

    def clear(self) -> None:
        with self._lock:
            every = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in every:
            conn.close()


class CardHTTPAdapter(BaseAdapter):
    """A ``requests`` transport adapter authenticating with the card.

    Mount it on ``https://`` (or a narrower prefix). The request's ``verify=``
    chooses the server's trust anchors as requests' own adapter does: ``True``
    for requests' default bundle (``REQUESTS_CA_BUNDLE`` included), a path for a
    PEM bundle or a directory; ``verify=False`` is refused (the card never
    authenticates to a server nobody checked). Give ``trust=`` to fix the
    anchors whatever the request says (e.g. :meth:`ServerTrust.igc_sante`).
    ``cert=`` is refused: the card is the client certificate. An ``https``
    proxy from ``proxies=`` (or the environment) is reached with CONNECT.

    :param card: an open card whose PIN was verified.
    :param trust: fixed server trust anchors (default: from each request's ``verify``).
    :param settings: TLS settings (:class:`~cps.tls.client.TlsSettings`).
    :param sessions: the TLS session cache (default: one for this adapter).
    :param pool_size: idle connections kept per server.
    :param check_card: check that the card is present before each request
        (one PC/SC status call); a removed card then fails fast and forgets
        its sessions, instead of resuming them.
    :param max_body: the largest response body (decoded) read for a request
        without ``stream=True``; more is :class:`ResponseTooLarge`. ``None``:
        no limit (requests' own behaviour).
    """

    def __init__(self, card: "Card", *, trust: Optional[ServerTrust] = None,
                 settings: Optional[TlsSettings] = None,
                 sessions: Optional[SessionCache] = None, pool_size: int = 4,
                 check_card: bool = True, max_body: Optional[int] = 64 * 1024 * 1024
                 ) -> None:
        super().__init__()
        if trust is not None and not isinstance(trust, ServerTrust):
            raise TypeError("trust must be a cps.tls.ServerTrust")
        self.card = card
        self.trust = trust
        self.settings = settings or TlsSettings()
        self.settings.check()
        self.sessions = sessions if sessions is not None else SessionCache()
        self.check_card = check_card
        if max_body is not None and (isinstance(max_body, bool) or not isinstance(max_body, int)
                                     or max_body < 0):
            raise ValueError("max_body must be a non-negative int or None")
        self.max_body = max_body
        self._pool = _Pool(pool_size)
        #: the handshakes made (full and resumed), oldest first, at most 1000
        self.handshakes: _Bounded = _Bounded(1000)
        self._card_key = card_key(card)[1]

    # -- requests' adapter interface -------------------------------------------------

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Union[None, float, Tuple[Optional[float], Optional[float]]] = None,
             verify: Union[bool, str] = True, cert: Any = None,
             proxies: Optional[Mapping[str, str]] = None) -> requests.Response:
        if cert is not None:
            raise ValueError("cert= is not for CardHTTPAdapter: the card is the client "
                             "certificate")
        url = urlsplit(request.url or "")
        if url.scheme != "https":
            raise InvalidURL(f"CardHTTPAdapter speaks https only, not {url.scheme!r}",
                             request=request)
        if not url.hostname:
            raise InvalidURL("no host in the URL", request=request)
        try:
            host, port = normalise_host(url.hostname), url.port or 443
        except ValueError as exc:
            raise InvalidURL(str(exc), request=request) from None
        connect_timeout, read_timeout = _timeouts(timeout, self.settings.timeout)
        try:
            trust = self.trust or ServerTrust.from_verify(verify)
        except (OSError, CpsError) as exc:
            raise CardSSLError(exc, request=request, reason="trust-store") from None
        proxy = select_proxy(request.url or "", dict(proxies or {}))
        if self.check_card:
            self._check_card(request)
        key = (host.lower(), str(port), trust.key, proxy or "")
        conn = self._pool.take(key)
        if conn is None:
            conn = _HTTPConnection(self, host, port, trust, proxy, connect_timeout)
            conn._cps_key = key  # type: ignore[attr-defined]
        try:
            return self._exchange(conn, request, stream, read_timeout)
        except (CardSSLError, ResponseTooLarge):
            conn.close()
            raise
        except ProxyError as exc:
            conn.close()
            raise ProxyError(str(exc), request=request) from None
        except (CardRemoved, CardReset, NoCard) as exc:
            conn.close()
            self._forget()
            raise CardSSLError(exc, request=request, reason="card-removed") from None
        except TlsError as exc:
            conn.close()
            if exc.reason == "timeout":
                raise ConnectTimeout(str(exc), request=request) from None
            if exc.reason == "connect":
                raise RequestsConnectionError(str(exc), request=request) from None
            raise CardSSLError(exc, request=request) from None
        except CpsError as exc:
            conn.close()
            raise CardSSLError(exc, request=request) from None
        except socket.timeout as exc:
            conn.close()
            raise ReadTimeout(str(exc) or "read timed out", request=request) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise RequestsConnectionError(f"{type(exc).__name__}: {exc}",
                                          request=request) from None

    def close(self) -> None:
        """Close every idle connection (sessions stay, for the next ones)."""
        self._pool.clear()

    # -- internals ---------------------------------------------------------------------

    def _check_card(self, request: requests.PreparedRequest) -> None:
        try:
            self.card.check_present()
        except (CardRemoved, CardReset, NoCard, ReaderError) as exc:
            self._forget()
            raise CardSSLError(exc, request=request, reason="card-removed") from None

    def _forget(self) -> None:
        self._pool.clear()
        self.sessions.forget(self._card_key)

    def _exchange(self, conn: _HTTPConnection, request: requests.PreparedRequest,
                  stream: bool, read_timeout: Optional[float]) -> requests.Response:
        from urllib3 import HTTPResponse
        from urllib3._collections import HTTPHeaderDict

        url = urlsplit(request.url or "")
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        body: Any = request.body
        headers = dict(request.headers)
        chunked = body is not None and "Content-Length" not in headers \
            and not isinstance(body, (bytes, str))
        reused = conn.sock is not None
        method = (request.method or "GET").upper()
        for attempt in (0, 1):
            try:
                if conn.sock is not None:
                    conn.sock.settimeout(read_timeout)
                conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
                info = conn.tls.info if conn.tls is not None else None
                if conn.tls is not None:
                    conn.tls.settimeout(read_timeout)
                raw = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept connection the server closed as the request went: once more
                # on a new one (resumed: no card signature), only for a method
                # that may be repeated (RFC 9110 9.2.2) and a body we can resend.
                # A POST the server may have acted on is never sent twice.
                conn.close()
                if attempt or not reused or method not in _IDEMPOTENT \
                        or not _replayable(body):
                    raise
        conn._cps_response = raw  # type: ignore[attr-defined]
        response = HTTPResponse(
            body=raw, headers=HTTPHeaderDict(raw.getheaders()), status=raw.status,
            reason=raw.reason, preload_content=False, decode_content=False,
            original_response=raw, pool=self._pool,  # type: ignore[arg-type]  # duck-typed
            connection=conn,  # type: ignore[arg-type]
            request_method=request.method, request_url=request.url)
        out = requests.Response()
        out.status_code = response.status
        out.headers = CaseInsensitiveDict(response.headers)
        out.encoding = get_encoding_from_headers(out.headers)
        out.raw = response
        out.reason = response.reason or ""
        out.url = request.url or ""
        out.request = request
        out.connection = self  # type: ignore[assignment]  # requests reads .send/.close
        requests.cookies.extract_cookies_to_jar(out.cookies, request, response)
        #: what the TLS handshake of this response's connection negotiated
        out.cps_tls = info  # type: ignore[attr-defined]
        if not stream:
            out._content = self._read_body(response, request)  # gives the connection back
        return out

    def _read_body(self, response: Any, request: requests.PreparedRequest) -> bytes:
        limit = self.max_body
        if limit is None:
            return bytes(response.read(decode_content=True) or b"")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(f"the answer announces {declared} bytes, more than "
                                   f"max_body={limit}", request=request, limit=limit)
        parts, size = [], 0
        for part in response.stream(65536, decode_content=True):
            size += len(part)
            if size > limit:  # counted decoded: a small gzip bomb is caught too
                raise ResponseTooLarge(f"the answer is larger than max_body={limit} bytes",
                                       request=request, limit=limit)
            parts.append(part)
        return b"".join(parts)

    def __repr__(self) -> str:
        return f"CardHTTPAdapter({self.card!r})"


class _Bounded(list):  # type: ignore[type-arg]
    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._lock = threading.Lock()

    def append(self, item: Any) -> None:
        with self._lock:
            super().append(item)
            if len(self) > self._limit:
                del self[0]


def _replayable(body: Any) -> bool:
    return body is None or isinstance(body, (bytes, str))


def _timeouts(timeout: Any, default: float) -> Tuple[Optional[float], Optional[float]]:
    if timeout is None:
        return default, default
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ValueError("timeout must be a number or a (connect, read) pair")
        return timeout[0], timeout[1]
    return float(timeout), float(timeout)


def _open_socket(host: str, port: int, proxy: Optional[str],
                 timeout: Optional[float]) -> socket.socket:
    """A TCP socket to the server, directly or through an HTTP proxy's CONNECT."""
    if not proxy:
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except socket.timeout:
            raise TlsError(f"{host}:{port}: connection timed out", reason="timeout",
                           host=f"{host}:{port}") from None
        except OSError as exc:
            raise TlsError(f"{host}:{port}: cannot connect ({exc.strerror or exc})",
                           reason="connect", host=f"{host}:{port}") from None
    p = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    if p.scheme != "http" or not p.hostname:
        raise ProxyError(f"cps.tls reaches https servers through http:// proxies only "
                         f"(CONNECT), not {p.scheme!r}")
    try:
        sock = socket.create_connection((p.hostname, p.port or 8080), timeout=timeout)
    except OSError as exc:
        raise ProxyError(f"cannot reach the proxy {p.hostname}:{p.port or 8080} "
                         f"({exc})") from None
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if p.username:
        token = base64.b64encode(f"{unquote(p.username)}:{unquote(p.password or '')}"
                                 .encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = _read_head(sock, deadline=time.monotonic() + (timeout or 30.0))
    except OSError as exc:
        sock.close()
        raise ProxyError(f"the proxy dropped the CONNECT ({exc})") from None
    status = answer.split(b" ", 2)[1:2]
    if status != [b"200"]:
        sock.close()
        raise ProxyError(f"the proxy refused CONNECT {host}:{port}: "
                         f"{answer.splitlines()[0][:120]!r}")
    return sock


def _read_head(sock: socket.socket, limit: int = 16384, *, deadline: float) -> bytes:
    # byte by byte: nothing of the TLS stream that follows may be consumed here;
    # the whole answer within the deadline (a proxy trickling bytes is cut off)
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("the proxy's answer took too long")
        sock.settimeout(left)
        byte = sock.recv(1)
        if not byte:
            raise OSError("connection closed")
        data += byte
        if len(data) > limit:
            raise OSError("proxy answer too long")
    return data
