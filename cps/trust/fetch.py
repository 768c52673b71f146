"""Online revocation sources: CRLs and CA certificates over HTTP(S), with a disk cache.

:class:`Fetcher` downloads what certificates point to (CRL distribution points,
freshest-CRL, AIA caIssuers) and POSTs OCSP requests for :mod:`cps.trust.ocsp`.
It *transports*; whether a CRL counts is the caller's decision, made by the
``verify`` callable given to :meth:`Fetcher.fetch_crl` (a
:class:`~cps.trust.validate.Validator` checks the issuer and the signature
under the issuer's validated key). The cache follows that decision: a CRL is
written to disk, and becomes the reference of the "never roll back" rule, only
once ``verify`` accepted it; bytes that were fetched but refused never reach
the disk and never replace, block or outrank an accepted CRL (an attacker who
answers plain-HTTP requests can serve anything). A refused answer counts as a
failed download: the accepted copy is used while it is current, otherwise the
error is raised. Without ``verify`` the fetcher is a plain transport: it
returns the bytes and caches nothing. It refuses to hand back a cached CRL past
its nextUpdate when the network fails; :meth:`Fetcher.cached_crl` gives the
last accepted one whatever its age (revocations it lists stay revocations).

Bounded in time and size, because CRL servers may be slow, broken or hostile:

* ``timeout`` bounds every blocking socket operation (connect, each read);
  ``deadline`` bounds the whole exchange: a watchdog shuts the socket down when
  it expires, so a server dripping one byte per second cannot hold us forever.
* the body is read in chunks and abandoned beyond ``max_bytes`` (checked
  against ``Content-Length`` first, then while reading).
* only ``http`` and ``https`` are spoken, also after redirects (no
  ``file://``, ``ftp://``); CRLs may also come from ``ldap://`` URLs (an
  anonymous base-object search, :mod:`cps.trust.ldap`: IGC-Santé publishes its
  delta CRLs there only), under the same deadline, size cap and cache.

Cache layout (``cache_dir``), one pair of files per URL, named by the SHA-256 of
the URL::

    <sha256(url)>.bin    the bytes as received (DER), CRLs only once accepted
    <sha256(url)>.json   {"format", "url", "sha256", "size", "etag", "last_modified",
                          "fetched_at", "this_update", "next_update", "kind"}

Cache entries of an earlier format (format 1 cached CRLs before any check) are
discarded and fetched again.

Both are written atomically (temporary file in the same directory, fsync,
:func:`os.replace`), content first. The sidecar records the content's SHA-256:
a truncated or overwritten content file, or a content/sidecar pair from two
different writes (a crash between the two renames), fails the check and the
pair is deleted and fetched again; a torn file is never returned.

Refresh policy for CRLs (IGC-Santé publishes every morning from 07:00, Paris
time): a cached CRL is reused without any request while ``now < nextUpdate``
and it was fetched after the latest publication time; otherwise the fetcher
asks again with a conditional request (``If-None-Match`` / ``If-Modified-Since``)
and keeps the cached bytes on ``304``. If the publication is late (the cached
CRL's thisUpdate predates today's publication time), it asks again at most every
``recheck_interval``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import socket
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone, tzinfo
from datetime import time as dtime
from pathlib import Path
from typing import Any

from .._version import __version__
from ..der import read_length
from ..errors import RevocationUnavailable

__all__ = [
    "DEFAULT_CERT_MAX_BYTES",
    "DEFAULT_MAX_BYTES",
    "FetchResult",
    "Fetcher",
    "crl_update_times",
    "latest_publication",
    "publication_timezone",
]

log = logging.getLogger(__name__)

#: Largest CRL accepted by default (production IGC-Santé CRLs are far smaller).
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
#: Largest CA certificate (AIA caIssuers) accepted by default.
DEFAULT_CERT_MAX_BYTES = 1024 * 1024
#: Largest OCSP answer accepted by default (a signed answer with a responder certificate
#: weighs a few kilobytes).
DEFAULT_POST_MAX_BYTES = 256 * 1024
#: Overall deadline of a download: generous, large CRLs on hospital links take time.
DEFAULT_DEADLINE = 300.0
CHUNK_SIZE = 64 * 1024
MAX_REDIRECTS = 5
#: Temporary files older than this in the cache directory are leftovers of a crash.
_STALE_TEMP_AGE = 3600.0
#: 2: CRLs are cached only once accepted by the caller's check (format 1 cached any bytes)
_CACHE_FORMAT = 2
_SCHEMES = ("http", "https")

Clock = Callable[[], datetime]
#: ``verify(der) -> anything``: accepts a CRL (returns, e.g., its parsed form) or
#: raises a :class:`~cps.errors.CpsError` saying why it does not count.
CrlCheck = Callable[[bytes], Any]
Progress = Callable[[str, int, "int | None"], None]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FetchResult:
    """What :meth:`Fetcher.fetch_crl` / :meth:`Fetcher.fetch_bytes` return.

    :ivar der: the bytes (a DER CRL or certificate, unless the server lied).
    :ivar source: the URL asked for (also the cache key; redirects are not reflected).
    :ivar from_cache: the bytes come from the disk cache (no download this time).
    :ivar fetched_at: when these bytes were last confirmed by the server
        (download or ``304``).
    :ivar etag: the server's ``ETag``, if any.
    :ivar last_modified: the server's ``Last-Modified``, if any (HTTP date string).
    :ivar path: the cache file holding the bytes, ``None`` when not cached.
    :ivar this_update: thisUpdate of the CRL (``None`` if unparsable or not a CRL).
    :ivar next_update: nextUpdate of the CRL (``None`` if absent, unparsable or not a CRL).
    :ivar revalidated: the server answered ``304 Not Modified`` to a conditional request.
    :ivar network_error: set when a refresh failed (or its answer was refused by
        ``verify``) and the (still current) cached copy was returned instead: what
        went wrong, for diagnostics.
    :ivar accepted: what the ``verify`` callable returned for these bytes (``None``
        when no check was given).
    """

    der: bytes
    source: str
    from_cache: bool
    fetched_at: datetime
    etag: str | None = None
    last_modified: str | None = None
    path: Path | None = None
    this_update: datetime | None = None
    next_update: datetime | None = None
    revalidated: bool = False
    network_error: RevocationUnavailable | None = None
    accepted: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    etag: str | None
    last_modified: str | None


# --------------------------------------------------------------------------- CRL header


def crl_update_times(der: bytes) -> tuple[datetime | None, datetime | None]:
    """Read thisUpdate and nextUpdate from a DER CRL without parsing its entries.

    Costs microseconds whatever the CRL size (a 100 MB CRL is not decoded),
    which keeps cache decisions cheap. Anything that is not a complete DER
    ``CertificateList`` (truncated, trailing bytes, garbage) gives ``(None, None)``.

    :param der: the CRL bytes.
    :returns: ``(this_update, next_update)``, aware UTC datetimes or ``None``.
    """
    try:
        tag, start, end = _tlv(der, 0)
        if tag != 0x30 or end != len(der):  # CertificateList, nothing after it
            return None, None
        tag, pos, tbs_end = _tlv(der, start)
        if tag != 0x30:  # tbsCertList
            return None, None
        tag, vstart, vend = _tlv(der, pos)
        if tag == 0x02:  # version (v2), optional
            pos = vend
            tag, vstart, vend = _tlv(der, pos)
        for _ in range(2):  # signature AlgorithmIdentifier, issuer Name
            if tag != 0x30:
                return None, None
            pos = vend
            tag, vstart, vend = _tlv(der, pos)
        this_update = _asn1_time(tag, der[vstart:vend])
        if this_update is None or vend > tbs_end:
            return None, None
        if vend == tbs_end:
            return this_update, None
        tag, vstart, vend = _tlv(der, vend)
        return this_update, _asn1_time(tag, der[vstart:vend]) if vend <= tbs_end else None
    except (IndexError, ValueError):
        return None, None


def _tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the DER element at ``pos``; ValueError if malformed."""
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("high tag numbers do not occur in a CRL header")
    length, pos = read_length(buf, pos + 1, len(buf), 8, ValueError)
    if pos + length > len(buf):
        raise ValueError("truncated element")
    return tag, pos, pos + length


def _asn1_time(tag: int, raw: bytes) -> datetime | None:
    """Decode an RFC 5280 UTCTime (``YYMMDDHHMMSSZ``) or GeneralizedTime."""
    try:
        text = raw.decode("ascii")
        if not text.endswith("Z"):
            return None
        if tag == 0x17 and len(text) == 13:
            year = int(text[:2])
            text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
        elif tag != 0x18 or len(text) != 15:
            return None
        if not text[:-1].isdigit():
            return None
        return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=timezone.utc)
    except (UnicodeDecodeError, ValueError):
        return None


# --------------------------------------------------------------------------- publication time


def publication_timezone(name: str = "Europe/Paris") -> tzinfo:
    """The time zone of the CA's publication schedule.

    :param name: an IANA zone name.
    :returns: the zone, or a fixed UTC+1 when the tz database is missing
        (Windows without the ``tzdata`` package): at worst an hour early in summer,
        which only makes us ask the server one hour too soon.
    """
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    except ImportError:  # pragma: no cover - Python >= 3.9 has zoneinfo
        return timezone(timedelta(hours=1), "UTC+01")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        log.warning("time zone %s unavailable (install tzdata); using UTC+1", name)
        return timezone(timedelta(hours=1), "UTC+01")


def latest_publication(now: datetime, hour: int = 7,
                       tz: tzinfo | None = None) -> datetime:
    """The most recent daily publication time at or before ``now``.

    :param now: an aware datetime.
    :param hour: local hour of the daily publication (IGC-Santé: 7).
    :param tz: the publication time zone (default Europe/Paris).
    :returns: an aware UTC datetime.
    """
    zone = tz or _PARIS
    local = now.astimezone(zone)
    day: date = local.date()
    if local.hour < hour:
        day -= timedelta(days=1)
    return datetime.combine(day, dtime(hour), tzinfo=zone).astimezone(timezone.utc)


_PARIS = publication_timezone()


# --------------------------------------------------------------------------- deadline


class _Deadline:
    """Overall time limit of one exchange, enforced by shutting its sockets down.

    Socket timeouts bound each blocking call, not their sum: a server sending a
    byte just before each timeout would never be stopped. A timer thread shuts
    the sockets down at the deadline, which wakes any blocked read (also inside
    TLS); callers then check :attr:`fired` to report a timeout rather than a
    truncated body.
    """

    def __init__(self, seconds: float) -> None:
        self.expires = time.monotonic() + seconds
        self.fired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def clamp(self, timeout: float | None) -> float:
        """A socket timeout no longer than what is left of the deadline."""
        left = max(self.remaining(), 0.001)
        return left if timeout is None else min(timeout, left)

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _connection_factory(base: type[http.client.HTTPConnection],
                        deadline: _Deadline) -> Callable[..., http.client.HTTPConnection]:
    """Wrap an ``http.client`` connection class so that its sockets obey ``deadline``."""

    def make(host: str, timeout: float | None = None, **kwargs: Any
             ) -> http.client.HTTPConnection:
        conn = base(host, timeout=deadline.clamp(timeout), **kwargs)
        # typeshed leaves out HTTPConnection._create_connection, which http.client
        # calls to open every socket: wrapping it is the one hook before any byte.
        create = conn._create_connection  # type: ignore[attr-defined]

        def create_connection(address: Any, timeout: Any = None, source: Any = None
                              ) -> socket.socket:
            # Attach the raw socket before any byte is read (proxy CONNECT included).
            sock: socket.socket = create(address, deadline.clamp(timeout), source)
            deadline.attach(sock)
            return sock

        connect = conn.connect

        def connect_and_attach() -> None:
            connect()
            deadline.attach(conn.sock)  # the TLS socket, for https

        conn._create_connection = create_connection  # type: ignore[attr-defined]  # as above
        # this connection only: the bound method is replaced on the instance
        conn.connect = connect_and_attach  # type: ignore[method-assign]
        return conn

    return make


class _HttpHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_connection_factory(http.client.HTTPConnection, self._deadline), req)


class _HttpsHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline, context: ssl.SSLContext | None) -> None:
        super().__init__(context=context)
        self._deadline = deadline
        self._ssl_context = context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_connection_factory(http.client.HTTPSConnection, self._deadline),
                            req, context=self._ssl_context)


class _UnsupportedScheme(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class _ForbiddenHost(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow at most :data:`MAX_REDIRECTS` redirects, to http(s) only, and only to
    ``hosts`` when the request is restricted to some."""

    max_redirections = MAX_REDIRECTS

    def __init__(self, hosts: frozenset[str] | None = None) -> None:
        super().__init__()
        self.hosts = hosts

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        parts = urllib.parse.urlsplit(newurl)
        if parts.scheme.lower() not in _SCHEMES:
            fp.close()
            raise _UnsupportedScheme(newurl)
        if self.hosts is not None and not _host_in(newurl, self.hosts):
            fp.close()
            raise _ForbiddenHost(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)

    def http_error_302(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                       headers: Any) -> Any:
        target = headers.get("location") or headers.get("uri")
        if target:
            absolute = urllib.parse.urljoin(req.full_url, target)
            scheme = urllib.parse.urlsplit(absolute).scheme
            if scheme.lower() not in _SCHEMES:
                fp.close()  # urllib closes it only when it follows the redirect
                raise _UnsupportedScheme(target)
            if self.hosts is not None and not _host_in(absolute, self.hosts):
                fp.close()
                raise _ForbiddenHost(absolute)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


# --------------------------------------------------------------------------- cache


@dataclass(frozen=True)
class _Entry:
    url: str
    data: bytes
    path: Path
    sha256: str
    fetched_at: datetime
    etag: str | None
    last_modified: str | None
    this_update: datetime | None
    next_update: datetime | None
    kind: str

    def result(self, *, from_cache: bool = True, revalidated: bool = False,
               network_error: RevocationUnavailable | None = None,
               accepted: Any = None) -> FetchResult:
        return FetchResult(der=self.data, source=self.url, from_cache=from_cache,
                           fetched_at=self.fetched_at, etag=self.etag,
                           last_modified=self.last_modified, path=self.path,
                           this_update=self.this_update, next_update=self.next_update,
                           revalidated=revalidated, network_error=network_error,
                           accepted=accepted)


class _DiskCache:
    """One verified content file + JSON sidecar per URL (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # Files already hashed in this process, by (size, mtime, inode): a 100 MB CRL
        # is not re-hashed on every validation, but any rewrite is.
        self._verified: dict[Path, tuple[int, int, int, str]] = {}
        self._lock = threading.Lock()
        self._swept = False

    def paths(self, url: str) -> tuple[Path, Path]:
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()
        return self.directory / f"{key}.bin", self.directory / f"{key}.json"

    def load(self, url: str) -> _Entry | None:
        """The cached entry for ``url``, or ``None`` (absent or corrupt: then deleted)."""
        data_path, meta_path = self.paths(url)
        try:
            meta_raw = meta_path.read_bytes()
        except FileNotFoundError:
            if data_path.exists():
                self._discard(url, "content without sidecar")
            return None
        except OSError as exc:
            log.warning("cannot read cache sidecar %s: %s", meta_path, exc)
            return None
        try:
            meta = json.loads(meta_raw)
            if meta.get("format") != _CACHE_FORMAT or meta.get("url") != url:
                raise ValueError("sidecar of another format or URL")
            expected = str(meta["sha256"])
            fetched_at = _parse_time(meta["fetched_at"])
            if fetched_at is None:
                raise ValueError("no fetched_at")
            this_update = _parse_time(meta.get("this_update"))
            next_update = _parse_time(meta.get("next_update"))
            etag, modified = meta.get("etag"), meta.get("last_modified")
            kind = str(meta.get("kind", "bytes"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._discard(url, f"bad sidecar ({exc})")
            return None
        try:
            data = self._read_verified(data_path, expected)
        except FileNotFoundError:
            self._discard(url, "sidecar without content")
            return None
        except OSError as exc:
            log.warning("cannot read cache file %s: %s", data_path, exc)
            return None
        if data is None:
            self._discard(url, "content does not match its recorded SHA-256")
            return None
        return _Entry(url, data, data_path, expected, fetched_at,
                      etag if isinstance(etag, str) else None,
                      modified if isinstance(modified, str) else None,
                      this_update, next_update, kind)

    def store(self, entry: _Entry, *, content: bool = True) -> Path | None:
        """Write an entry (content then sidecar); ``None`` if the disk refused."""
        data_path, meta_path = self.paths(entry.url)
        meta = {
            "format": _CACHE_FORMAT,
            "url": entry.url,
            "kind": entry.kind,
            "sha256": entry.sha256,
            "size": len(entry.data),
            "etag": entry.etag,
            "last_modified": entry.last_modified,
            "fetched_at": entry.fetched_at.isoformat(),
            "this_update": entry.this_update.isoformat() if entry.this_update else None,
            "next_update": entry.next_update.isoformat() if entry.next_update else None,
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._sweep()
            if content:
                _write_atomic(data_path, entry.data)
                self._remember(data_path, entry.sha256)
            _write_atomic(meta_path, json.dumps(meta, indent=1).encode("utf-8"))
        except OSError as exc:
            # A full or read-only disk must not fail revocation checking: the
            # bytes are still returned, only not cached.
            log.warning("cannot write cache entry for %s: %s", entry.url, exc)
            return None
        return data_path

    def _read_verified(self, path: Path, expected: str) -> bytes | None:
        stat = path.stat()
        data = path.read_bytes()
        with self._lock:
            memo = self._verified.get(path)
        signature = (len(data), stat.st_mtime_ns, stat.st_ino, expected)
        if memo == signature and stat.st_size == len(data):
            return data
        if hashlib.sha256(data).hexdigest() != expected:
            return None
        with self._lock:
            self._verified[path] = signature
        return data

    def _remember(self, path: Path, sha: str) -> None:
        with contextlib.suppress(OSError):
            stat = path.stat()
            with self._lock:
                self._verified[path] = (stat.st_size, stat.st_mtime_ns, stat.st_ino, sha)

    def _discard(self, url: str, why: str) -> None:
        log.warning("discarding cache entry for %s: %s", url, why)
        for path in self.paths(url):
            with contextlib.suppress(OSError):
                path.unlink()
            with self._lock:
                self._verified.pop(path, None)

    def _sweep(self) -> None:
        """Delete temporary files a crashed writer left behind (once per process)."""
        if self._swept:
            return
        self._swept = True
        limit = time.time() - _STALE_TEMP_AGE
        for leftover in self.directory.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < limit:
                    leftover.unlink()


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    The temporary file lives in the same directory (``os.replace`` is atomic only
    within a file system) and is fsynced before the rename, so that after a power
    loss the new name never points at unwritten blocks.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; not possible (nor needed) on Windows.
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _parse_time(value: object) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError("naive time in sidecar")
    return moment


# --------------------------------------------------------------------------- fetcher


class Fetcher:
    """Downloads CRLs and CA certificates, caches them on disk, POSTs OCSP requests.

    Thread-safe: concurrent calls for the same URL wait for one download.

    :param cache_dir: directory of the disk cache; ``None`` disables caching
        (every call downloads).
    :param timeout: seconds allowed to each socket operation (connect, each read).
    :param max_bytes: largest CRL accepted; larger answers are abandoned.
    :param user_agent: ``User-Agent`` header.
    :param progress: ``progress(url, received_bytes, total_bytes_or_None)``, called
        after each chunk of a CRL or certificate download (not for OCSP). An
        exception it raises aborts the download and propagates unchanged.
    :param clock: returns the current aware datetime (tests inject a fake one).
    :param deadline: seconds allowed to a whole download, whatever the server does.
    :param publication_hour: local hour of the CA's daily CRL publication.
    :param publication_tz: IANA time zone of that hour.
    :param recheck_interval: when a publication is late, how often to ask again.
    :param bytes_max_age: how long :meth:`fetch_bytes` reuses a cached
        certificate without asking the server.
    :param next_update_of: ``f(der) -> datetime | None`` reading a CRL's nextUpdate;
        default :func:`crl_update_times` (reads the header only).
    :param proxies: ``{"http": url, "https": url}``; ``None`` takes the environment
        (``http_proxy``, ``no_proxy``...), ``{}`` disables proxies.
    :param ssl_context: TLS settings for https URLs (default: system trust store).
    :param chunk_size: read size (bytes) of the download loop.
    :param verify_crl: the default ``verify`` of :meth:`fetch_crl`: only CRLs it
        accepts are cached (e.g. :meth:`cps.trust.Validator.verify_crl`).
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        user_agent: str = f"cps/{__version__}",
        progress: Progress | None = None,
        clock: Clock | None = None,
        *,
        deadline: float = DEFAULT_DEADLINE,
        publication_hour: int = 7,
        publication_tz: str = "Europe/Paris",
        recheck_interval: timedelta = timedelta(minutes=30),
        bytes_max_age: timedelta = timedelta(days=1),
        next_update_of: Callable[[bytes], datetime | None] | None = None,
        proxies: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        chunk_size: int = CHUNK_SIZE,
        verify_crl: CrlCheck | None = None,
    ) -> None:
        if timeout <= 0 or deadline <= 0:
            raise ValueError("timeout and deadline must be positive")
        if not 0 <= publication_hour <= 23:
            raise ValueError("publication_hour must be 0..23")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.timeout = float(timeout)
        self.deadline = float(deadline)
        self.max_bytes = int(max_bytes)
        self.user_agent = user_agent
        self.progress = progress
        self.clock: Clock = clock or (lambda: datetime.now(timezone.utc))
        self.publication_hour = publication_hour
        self.publication_tz = publication_timezone(publication_tz)
        self.recheck_interval = recheck_interval
        self.bytes_max_age = bytes_max_age
        self.next_update_of = next_update_of
        self.proxies = None if proxies is None else dict(proxies)
        self.ssl_context = ssl_context
        self.chunk_size = max(int(chunk_size), 1)
        self.verify_crl = verify_crl
        self._cache = _DiskCache(self.cache_dir) if self.cache_dir is not None else None
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- public API -------------------------------------------------------------------

    def fetch_crl(self, url: str, *, force: bool = False,
                  verify: CrlCheck | None = None) -> FetchResult:
        """A CRL (complete or delta) from an ``http(s)`` or ``ldap`` distribution point.

        Served from the cache while it is current (see the module docstring),
        otherwise downloaded, conditionally when a cached copy exists. If the
        network fails, a cached copy is returned only while ``now < nextUpdate``.

        ``verify`` decides whether the bytes count (default :attr:`verify_crl`):
        it is called on whatever is returned, cached or downloaded, and what it
        returns is :attr:`FetchResult.accepted`. Only accepted bytes are cached
        and compared by the "never roll back" rule; an answer it refuses is
        logged and handled like a failed download. Without any check the bytes
        are returned as they came and nothing is cached.

        :param url: the distribution point URL.
        :param force: ignore the cached copy and download unconditionally (also
            asks proxies not to answer from their cache); a failure then raises
            even if a cached copy exists.
        :param verify: ``verify(der)`` accepts the CRL (returns anything) or raises
            a :class:`~cps.errors.CpsError`.
        :raises RevocationUnavailable: ``reason`` is ``"unsupported-scheme"``,
            ``"bad-url"``, ``"unreachable"``, ``"timeout"``, ``"too-large"``,
            ``"http-error:<status>"``, ``"rejected"`` (the answer was refused by
            ``verify`` and no current accepted copy is cached), or ``"expired"``
            (network failed and the cached copy is past its nextUpdate;
            ``next_update`` is set and ``failures`` holds the network error).
        """
        return self._fetch(url, kind="crl", force=force, max_bytes=self.max_bytes,
                           accept="application/pkix-crl, application/octet-stream;q=0.8, "
                                  "*/*;q=0.5", verify=verify or self.verify_crl)

    def cached_crl(self, url: str, *, verify: CrlCheck | None = None) -> FetchResult | None:
        """The last accepted CRL of ``url`` in the cache, whatever its age; no network.

        A CRL past its nextUpdate says nothing about certificates it does not
        list, but a certificate it lists as revoked stays revoked: a validator
        uses this to remember revocations across restarts while the CA is
        unreachable.

        :param url: the distribution point URL.
        :param verify: as in :meth:`fetch_crl`; ``None`` if it refuses the bytes.
        :returns: the cached CRL, or ``None`` (no cache, nothing cached).
        """
        if self._cache is None:
            return None
        entry = self._cache.load(url)
        if entry is None or entry.kind != "crl":
            return None
        entry = self._trusted_dates(entry, self._now())
        check = verify or self.verify_crl
        if check is None:
            return entry.result()
        accepted = self._accept(entry.data, url, check)
        return None if isinstance(accepted, Exception) else entry.result(accepted=accepted)

    #: file of the cache directory holding revocations kept by validators
    REVOCATIONS_FILE = "revocations.kept"  # JSON; not "*.json": those are sidecars

    def save_revocations(self, entries: Mapping[tuple[bytes, int], Any]) -> None:
        """Keep revocations across restarts, in the cache directory (no cache: nothing).

        A validator remembers revocations that a verified CRL listed and no CRL
        it holds lists any more (a delta replaced by one based on a complete CRL
        it never got); they must outlive the process like the CRLs themselves.

        :param entries: ``(issuer Name DER, serial) -> entry`` with
            ``revocation_date`` and ``reason``.
        """
        if self.cache_dir is None:
            return
        data = [{"issuer": issuer.hex(), "serial": serial,
                 "date": entry.revocation_date.isoformat(), "reason": entry.reason}
                for (issuer, serial), entry in entries.items()]
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.cache_dir / self.REVOCATIONS_FILE,
                          json.dumps({"format": 1, "revocations": data}).encode("utf-8"))
        except OSError as exc:
            log.warning("cannot keep revocations in %s: %s", self.cache_dir, exc)

    def load_revocations(self) -> dict[tuple[bytes, int], Any]:
        """What :meth:`save_revocations` kept (empty without a cache or on damage)."""
        from .crlindex import RevokedEntry

        if self.cache_dir is None:
            return {}
        path = self.cache_dir / self.REVOCATIONS_FILE
        try:
            raw = json.loads(path.read_bytes())
            out = {}
            for item in raw["revocations"][:1_000_000]:
                when = _parse_time(item["date"])
                reason = item["reason"]
                if when is None or not isinstance(item["serial"], int) or \
                        not (reason is None or isinstance(reason, str)):
                    raise ValueError("bad entry")
                out[(bytes.fromhex(item["issuer"]), item["serial"])] = RevokedEntry(
                    item["serial"], when, reason)
            return out
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the kept revocations in %s: %s", path, exc)
            return {}

    def refresh_at(self, result: FetchResult) -> datetime:
        """When :meth:`fetch_crl` would next ask the server for this CRL (refresh policy).

        The earliest of: its nextUpdate; the first daily publication after it was
        fetched; when its publication is late, ``fetched_at + recheck_interval``.
        A CRL without nextUpdate is due at once.

        :param result: what :meth:`fetch_crl` returned.
        """
        if result.next_update is None:
            return result.fetched_at
        due = result.next_update
        published = latest_publication(result.fetched_at, self.publication_hour,
                                       self.publication_tz)
        local = published.astimezone(self.publication_tz)
        following = datetime.combine(local.date() + timedelta(days=1),
                                     dtime(self.publication_hour),
                                     tzinfo=self.publication_tz).astimezone(timezone.utc)
        due = min(due, following)
        if result.this_update is not None and result.this_update < published:
            due = min(due, result.fetched_at + self.recheck_interval)
        return due

    def fetch_bytes(self, url: str, *, force: bool = False,
                    max_bytes: int = DEFAULT_CERT_MAX_BYTES,
                    hosts: frozenset[str] | None = None) -> FetchResult:
        """A small object over HTTP(S), typically an AIA caIssuers certificate.

        Cached like CRLs but reused for :attr:`bytes_max_age`, then revalidated
        conditionally. When the network fails, the cached copy is returned
        whatever its age: a CA certificate stays usable until path validation
        (which checks it) says otherwise.

        :param url: the URL.
        :param force: ignore the cached copy (and do not fall back to it).
        :param max_bytes: size cap.
        :param hosts: when given, the only hosts this request may reach, on every
            hop: a redirect elsewhere fails with reason ``"forbidden-host"``.
        :raises RevocationUnavailable: as :meth:`fetch_crl` (never ``"expired"``).
        """
        if hosts is not None and not _host_in(url, hosts):
            raise RevocationUnavailable(f"{url}: host not allowed", source=url,
                                        reason="forbidden-host")
        return self._fetch(url, kind="bytes", force=force, max_bytes=max_bytes, hosts=hosts,
                           accept="application/pkix-cert, application/pkcs7-mime;q=0.8, "
                                  "*/*;q=0.5")

    def post(self, url: str, body: bytes, content_type: str, *, accept: str | None = None,
             max_bytes: int = DEFAULT_POST_MAX_BYTES, deadline: float | None = None) -> bytes:
        """POST ``body`` and return the answer's body (never cached).

        :param url: ``http(s)`` URL.
        :param body: request body.
        :param content_type: its media type (``application/ocsp-request``).
        :param accept: ``Accept`` header.
        :param max_bytes: size cap of the answer.
        :param deadline: overall time limit; default the fetcher's :attr:`timeout`
            (an OCSP exchange is small: it gets no more than one timeout in all).
        :raises RevocationUnavailable: as :meth:`fetch_crl`.
        """
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        response = self._request(url, method="POST", body=body, headers=headers,
                                 max_bytes=max_bytes,
                                 deadline=deadline if deadline is not None else self.timeout)
        return self._expect_body(url, response)

    def get(self, url: str, *, accept: str | None = None,
            max_bytes: int = DEFAULT_POST_MAX_BYTES, deadline: float | None = None) -> bytes:
        """GET ``url`` and return the body (never cached; used for OCSP GET).

        :param url: ``http(s)`` URL.
        :param accept: ``Accept`` header.
        :param max_bytes: size cap.
        :param deadline: overall time limit; default :attr:`timeout`.
        :raises RevocationUnavailable: as :meth:`fetch_crl`.
        """
        response = self._request(url, method="GET", body=None,
                                 headers={"Accept": accept} if accept else {},
                                 max_bytes=max_bytes,
                                 deadline=deadline if deadline is not None else self.timeout)
        return self._expect_body(url, response)

    def cache_paths(self, url: str) -> tuple[Path, Path] | None:
        """``(content file, sidecar)`` of ``url`` in the cache (``None`` without a cache)."""
        return self._cache.paths(url) if self._cache is not None else None

    def needs_refresh(self, result: FetchResult, now: datetime | None = None) -> bool:
        """Whether a CRL fetched earlier should be asked for again now (refresh policy).

        :param result: what :meth:`fetch_crl` returned.
        :param now: the time to decide for (default :attr:`clock`).
        """
        return self._crl_needs_refresh(result.fetched_at, result.this_update,
                                       result.next_update, now or self._now())

    # -- fetch with cache --------------------------------------------------------------

    def _fetch(self, url: str, *, kind: str, force: bool, max_bytes: int,
               accept: str, verify: CrlCheck | None = None,
               hosts: frozenset[str] | None = None) -> FetchResult:
        ldap = kind == "crl" and _is_ldap(url)
        if not ldap:
            _check_url(url)
        # A fetch restricted to some hosts neither reads nor writes the cache: what
        # is cached under this URL may have come through a redirect elsewhere.
        cache = self._cache if hosts is None else None
        with self._lock_for(url):
            now = self._now()
            entry = cache.load(url) if cache is not None else None
            if entry is not None and entry.kind == "crl":
                entry = self._trusted_dates(entry, now)
            accepted: Any = None
            if entry is not None and verify is not None:
                # What the cache holds was accepted once, maybe under another trust
                # configuration: it counts only if this check accepts it too.
                accepted = self._accept(entry.data, url, verify)
                if isinstance(accepted, Exception):
                    entry, accepted = None, None
            if entry is not None and not force and not self._entry_needs_refresh(entry, now):
                log.debug("%s: cached copy is current", url)
                return entry.result(accepted=accepted)
            headers = {"Accept": accept}
            if force:
                headers["Cache-Control"] = "no-cache"
                headers["Pragma"] = "no-cache"
            elif entry is not None:
                if entry.etag:
                    headers["If-None-Match"] = entry.etag
                if entry.last_modified:
                    headers["If-Modified-Since"] = entry.last_modified
            try:
                if ldap:
                    response = self._ldap_search(url, max_bytes)
                else:
                    response = self._request(url, method="GET", body=None, headers=headers,
                                             max_bytes=max_bytes, deadline=self.deadline,
                                             report=True, hosts=hosts)
            except RevocationUnavailable as exc:
                if entry is None or force or exc.reason in ("unsupported-scheme", "bad-url",
                                                            "forbidden-host"):
                    raise
                return self._fallback(entry, exc, now, accepted)
            if response.status == 304:
                if entry is None or force:
                    raise RevocationUnavailable(
                        f"{url}: 304 Not Modified to an unconditional request",
                        source=url, reason="http-error:304")
                return self._revalidated(entry, response, now, accepted)
            return self._downloaded(url, kind, response, entry, now, verify, accepted,
                                    store=cache is not None)

    def _trusted_dates(self, entry: _Entry, now: datetime) -> _Entry:
        """The cached entry with the dates its bytes say, not the sidecar's.

        Whoever can write the cache directory can write a sidecar: its dates
        must not keep an old CRL "current" nor stop the next download. The CRL's
        own thisUpdate and nextUpdate (read from the verified bytes) count, and a
        fetch time in the future counts as "long ago".
        """
        this_update, next_update = self._crl_dates(entry.url, entry.data)
        fetched_at = entry.fetched_at
        if (this_update, next_update) != (entry.this_update, entry.next_update) \
                or fetched_at > now:
            # A sidecar that lies about its content: none of it counts, the next
            # request is unconditional (its ETag could make the server say 304).
            log.warning("%s: cache sidecar does not match its CRL; ignoring it", entry.url)
            return replace(entry, this_update=this_update, next_update=next_update,
                           fetched_at=datetime.min.replace(tzinfo=timezone.utc),
                           etag=None, last_modified=None)
        return entry

    def _crl_dates(self, url: str, data: bytes) -> tuple[datetime | None, datetime | None]:
        """(thisUpdate, nextUpdate) of CRL bytes; nextUpdate by :attr:`next_update_of`
        when one is set."""
        this_update, next_update = crl_update_times(data)
        if self.next_update_of is not None:
            try:
                next_update = self.next_update_of(data)
            except Exception:  # a user parser failing means "unknown"
                log.debug("next_update_of failed for %s", url, exc_info=True)
                next_update = None
        return this_update, next_update

    @staticmethod
    def _accept(data: bytes, url: str, verify: CrlCheck) -> Any:
        """What ``verify`` returns for ``data``, or the error it raised (logged)."""
        from ..errors import CpsError

        try:
            return verify(data)
        except CpsError as exc:
            # Neither the log record nor the error keeps the traceback: its frames
            # hold the refused CRL, which must not outlive this call.
            exc.__traceback__ = None
            text = str(exc)
            log.warning("%s: CRL refused (%s); not cached", url,
                        text[len(url) + 2:] if text.startswith(f"{url}: ") else text)
            return RevocationUnavailable(f"{url}: the CRL served was refused: {text}",
                                         source=url, reason="rejected", failures=[exc])

    def _entry_needs_refresh(self, entry: _Entry, now: datetime) -> bool:
        if entry.kind == "crl":
            return self._crl_needs_refresh(entry.fetched_at, entry.this_update,
                                           entry.next_update, now)
        return now - entry.fetched_at >= self.bytes_max_age

    def _crl_needs_refresh(self, fetched_at: datetime, this_update: datetime | None,
                           next_update: datetime | None, now: datetime) -> bool:
        if next_update is None or now >= next_update:
            return True
        published = latest_publication(now, self.publication_hour, self.publication_tz)
        if fetched_at < published:
            # The CA has published since we last asked, even if our copy's
            # nextUpdate is later: revocations of the night must not wait a day.
            return True
        if this_update is not None and this_update < published:
            # We asked after the publication time but got yesterday's CRL (late
            # publication): ask again, without hammering the server.
            return now - fetched_at >= self.recheck_interval
        return False

    def _fallback(self, entry: _Entry, error: RevocationUnavailable, now: datetime,
                  accepted: Any = None) -> FetchResult:
        """The network failed (or its answer was refused): the cached copy, if still usable."""
        if entry.kind != "crl":
            log.warning("%s; using the cached copy from %s", error, entry.fetched_at.isoformat())
            return entry.result(network_error=error)
        if entry.next_update is not None and now < entry.next_update:
            log.warning("%s; using the cached CRL (valid until %s)", error,
                        entry.next_update.isoformat())
            return entry.result(network_error=error, accepted=accepted)
        when = entry.next_update.isoformat() if entry.next_update else "an unknown time"
        raise RevocationUnavailable(
            f"{error}; the cached CRL expired at {when}",
            source=entry.url, reason="expired", next_update=entry.next_update,
            failures=[error])

    def _revalidated(self, entry: _Entry, response: _Response, now: datetime,
                     accepted: Any = None) -> FetchResult:
        updated = replace(entry, fetched_at=now, etag=response.etag or entry.etag,
                          last_modified=response.last_modified or entry.last_modified)
        if self._cache is not None:
            self._cache.store(updated, content=False)
        log.debug("%s: not modified", entry.url)
        return updated.result(revalidated=True, accepted=accepted)

    def _downloaded(self, url: str, kind: str, response: _Response, entry: _Entry | None,
                    now: datetime, verify: CrlCheck | None = None,
                    previous: Any = None, store: bool = True) -> FetchResult:
        data = response.body
        this_update = next_update = None
        accepted: Any = None
        if kind == "crl":
            this_update, next_update = self._crl_dates(url, data)
            if (entry is not None and entry.this_update is not None and this_update is not None
                    and this_update < entry.this_update and entry.next_update is not None
                    and now < entry.next_update):
                # A stale mirror or proxy must not roll us back to an older CRL. The
                # cached copy was accepted (only accepted CRLs are cached), so an
                # unchecked answer dated in the future can never get here to block
                # the genuine ones.
                log.warning("%s: server sent a CRL older than the cached one; keeping the "
                            "cached CRL", url)
                return entry.result(accepted=previous)
            if verify is not None:
                accepted = self._accept(data, url, verify)
                if isinstance(accepted, RevocationUnavailable):
                    if entry is None:
                        raise accepted
                    return self._fallback(entry, accepted, now, previous)
        path = None
        cacheable = kind != "crl" or (next_update is not None and verify is not None)
        if self._cache is not None and cacheable and store:
            new = _Entry(url, data, self._cache.paths(url)[0], hashlib.sha256(data).hexdigest(),
                         now, response.etag, response.last_modified, this_update, next_update,
                         kind)
            path = self._cache.store(new)
        elif kind == "crl" and next_update is None:
            log.warning("%s: the answer is not a well-formed CRL; not caching it", url)
        return FetchResult(der=data, source=url, from_cache=False, fetched_at=now,
                           etag=response.etag, last_modified=response.last_modified,
                           path=path, this_update=this_update, next_update=next_update,
                           accepted=accepted)

    # -- HTTP ------------------------------------------------------------------------------

    def _ldap_search(self, url: str, max_bytes: int) -> _Response:
        """The attribute an ``ldap://`` URL names (cps.trust.ldap), within the deadline.

        LDAP has no conditional requests: the answer is always a full one.
        """
        from .ldap import fetch_attribute

        limit = _Deadline(self.deadline)
        try:
            data = fetch_attribute(url, timeout=self.timeout, limit=limit, max_bytes=max_bytes,
                                   progress=self.progress)
        finally:
            limit.cancel()
        return _Response(200, data, None, None)

    def _request(self, url: str, *, method: str, body: bytes | None,
                 headers: Mapping[str, str], max_bytes: int, deadline: float,
                 report: bool = False, hosts: frozenset[str] | None = None) -> _Response:
        """One HTTP exchange, bounded in time and size; errors become RevocationUnavailable."""
        _check_url(url)
        limit = _Deadline(deadline)
        try:
            return self._exchange(url, method, body, headers, max_bytes, limit, report, hosts)
        finally:
            limit.cancel()

    def _exchange(self, url: str, method: str, body: bytes | None,
                  headers: Mapping[str, str], max_bytes: int, limit: _Deadline,
                  report: bool, hosts: frozenset[str] | None = None) -> _Response:
        # The scheme was checked (_check_url) and only http(s) handlers are
        # installed (_opener), so redirects cannot reach file:// either.
        request = urllib.request.Request(  # noqa: S310
            url, data=body, method=method, headers={"User-Agent": self.user_agent, **headers})
        opener = self._opener(limit, hosts)
        try:
            response = opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            with contextlib.closing(exc):
                if exc.code == 304:
                    return _Response(304, b"", exc.headers.get("ETag"),
                                     exc.headers.get("Last-Modified"))
                raise RevocationUnavailable(f"{url}: HTTP {exc.code} {exc.reason}",
                                            source=url,
                                            reason=f"http-error:{exc.code}") from None
        except _UnsupportedScheme as exc:
            raise RevocationUnavailable(f"{url}: redirected to an unsupported URL {exc.url!r}",
                                        source=url, reason="unsupported-scheme") from None
        except _ForbiddenHost as exc:
            raise RevocationUnavailable(f"{url}: redirected to a host not allowed "
                                        f"({exc.url!r})", source=url,
                                        reason="forbidden-host") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise _network_error(url, exc, limit) from exc
        with contextlib.closing(response):
            status = response.status
            length = _content_length(response.headers.get("Content-Length"))
            if length is not None and length > max_bytes:
                raise RevocationUnavailable(
                    f"{url}: answer of {length} bytes exceeds the {max_bytes}-byte limit",
                    source=url, reason="too-large")
            data = bytearray()
            while True:
                if limit.fired or limit.remaining() <= 0:
                    raise _timeout(url)
                try:
                    chunk = response.read1(self.chunk_size)
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    raise _network_error(url, exc, limit) from exc
                if not chunk:
                    break
                if len(data) + len(chunk) > max_bytes:
                    raise RevocationUnavailable(
                        f"{url}: answer exceeds the {max_bytes}-byte limit",
                        source=url, reason="too-large")
                data += chunk
                if report and self.progress is not None:
                    self.progress(url, len(data), length)
            if limit.fired:  # the watchdog's shutdown looks like an end of file
                raise _timeout(url)
            if length is not None and len(data) != length:
                raise RevocationUnavailable(
                    f"{url}: unreachable (connection closed after {len(data)} of {length} "
                    "bytes)", source=url, reason="unreachable")
            return _Response(status, bytes(data), response.headers.get("ETag"),
                             response.headers.get("Last-Modified"))

    def _opener(self, limit: _Deadline, hosts: frozenset[str] | None = None
                ) -> urllib.request.OpenerDirector:
        # Built by hand rather than with build_opener(): no file://, ftp:// or
        # data: handlers, and every connection bound to this exchange's deadline.
        opener = urllib.request.OpenerDirector()
        for handler in (
            urllib.request.ProxyHandler(self.proxies),
            urllib.request.UnknownHandler(),
            _HttpHandler(limit),
            _HttpsHandler(limit, self.ssl_context),
            urllib.request.HTTPDefaultErrorHandler(),
            _RedirectHandler(hosts),
            urllib.request.HTTPErrorProcessor(),
        ):
            opener.add_handler(handler)
        return opener

    @staticmethod
    def _expect_body(url: str, response: _Response) -> bytes:
        if response.status == 304:
            raise RevocationUnavailable(f"{url}: unexpected 304 Not Modified", source=url,
                                        reason="http-error:304")
        return response.body

    # -- helpers ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise TypeError("the clock returned a naive datetime; give an aware (UTC) one")
        return now.astimezone(timezone.utc)

    def _lock_for(self, url: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(url, threading.Lock())


def _is_ldap(url: str) -> bool:
    return isinstance(url, str) and url[:7].lower() == "ldap://"


def _host_in(url: str, hosts: frozenset[str]) -> bool:
    """Whether ``url``'s host is one of ``hosts`` (lower case, no trailing dot)."""
    try:
        host = (urllib.parse.urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return False
    return host in hosts


def _check_url(url: str) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except (ValueError, TypeError, AttributeError):
        raise RevocationUnavailable(f"{url!r}: malformed URL", source=str(url),
                                    reason="bad-url") from None
    if parts.scheme.lower() not in _SCHEMES:
        raise RevocationUnavailable(
            f"{url}: only http and https are supported (not {parts.scheme or 'no scheme'}:)",
            source=url, reason="unsupported-scheme")
    if not host:
        raise RevocationUnavailable(f"{url}: no host in URL", source=url, reason="bad-url")


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        length = int(value.strip())
    except ValueError:
        return None
    return length if length >= 0 else None


def _timeout(url: str) -> RevocationUnavailable:
    return RevocationUnavailable(f"{url}: no complete answer within the deadline",
                                 source=url, reason="timeout")


def _network_error(url: str, exc: BaseException, limit: _Deadline) -> RevocationUnavailable:
    reason_obj = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if limit.fired or isinstance(reason_obj, (TimeoutError, socket.timeout)):
        return RevocationUnavailable(f"{url}: timed out ({reason_obj})", source=url,
                                     reason="timeout")
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, str) \
            and exc.reason.startswith("unknown url type"):
        return RevocationUnavailable(f"{url}: {exc.reason}", source=url,
                                     reason="unsupported-scheme")
    return RevocationUnavailable(f"{url}: unreachable ({type(reason_obj).__name__}: "
                                 f"{reason_obj})", source=url, reason="unreachable")

