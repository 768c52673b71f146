"""The revocation sources the card's certificates name are reachable (``revocation-sources``).

The chain check downloads CRLs with ``--online`` and says *that* revocation
could not be checked; this check says *why*, in a few seconds, without
downloading any CRL: for every source the card's certificates (and their
issuing CAs, when the trust store knows them) name — CRL distribution points,
freshestCRL (delta CRLs: LDAP port 389 for IGC-Santé), AIA OCSP and caIssuers —
it resolves the host, connects, and asks one small question:

* HTTP(S) CRLs and CA certificates: a ``GET`` with ``Range: bytes=0-2047``, of
  which at most :data:`PEEK_BYTES` are read. A DER object (or PEM) means the CRL is
  served; an HTML page means a proxy or captive portal answered in its place.
* OCSP: a ``POST`` of a real OCSPRequest for the certificate (a minimal one when
  the issuer is unknown); an ``application/ocsp-response`` answers.
* LDAP: an anonymous simple bind (the wire code of :mod:`cps.trust.ldap`), then
  an unbind: no search, no CRL.

Proxies are those the fetcher uses (``http_proxy``/``https_proxy``/``no_proxy``,
else the system's: macOS System Settings, Windows Internet Options); LDAP never
goes through an HTTP proxy.

Bounded in time: every source runs in its own daemon thread under a per-source
bound (:data:`SOURCE_TIMEOUT`; a watchdog shuts the socket down, so a firewall
that drops packets or a server that drips bytes cannot hold it), and the check
waits for all of them at most :data:`TOTAL_DEADLINE` (a name resolution that
never returns is reported as a timeout and left behind). Bounded in size: at
most :data:`MAX_SOURCES` sources, :data:`PEEK_BYTES` read from each.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..errors import CertificateParseError, RevocationUnavailable
from .report import Check, _cn, _fail, _ok, _State, _warn

__all__ = ["Source", "Probe", "revocation_sources", "probe_sources", "judge_sources",
           "network_advice", "SOURCE_TIMEOUT", "TOTAL_DEADLINE", "PEEK_BYTES", "MAX_SOURCES"]

#: Seconds one source may take: resolve, connect, ask, read the first bytes.
SOURCE_TIMEOUT = 4.0
#: Seconds the whole check may take (the sources are probed in parallel).
TOTAL_DEADLINE = 6.0
#: Bytes read from an HTTP answer: enough to tell DER from an HTML page.
PEEK_BYTES = 2048
#: Sources probed at most (URLs come from the card: untrusted, so bounded).
MAX_SOURCES = 24
MAX_REDIRECTS = 3

KINDS = ("crl", "delta", "ocsp", "ca-issuers")
#: Kinds that can decide a certificate's revocation status on their own.
_DECISIVE = ("crl", "ocsp")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ldap": 389}
_HTML_TYPES = ("text/html", "application/xhtml")
_NEUTRAL = ("unsupported", "skipped")


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Source:
    """One revocation source a certificate names.

    :ivar url: as written in the certificate.
    :ivar kind: ``"crl"``, ``"delta"`` (freshestCRL), ``"ocsp"`` or ``"ca-issuers"``.
    :ivar protocol: the URL scheme (``http``, ``https``, ``ldap``, or another one,
        which is not probed).
    :ivar host: the host named (empty when the URL has none).
    :ivar port: the TCP port (the scheme's default when the URL gives none).
    :ivar certificates: labels of the certificates naming it.
    """

    url: str
    kind: str
    protocol: str
    host: str
    port: int
    certificates: Tuple[str, ...] = ()

    @property
    def endpoint(self) -> str:
        """``host:port`` (IPv6 hosts in brackets): what a firewall rule names."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Probe:
    """What probing one :class:`Source` found.

    :ivar source: the source.
    :ivar result: ``"reachable"``; or why not: ``"dns"`` (the name does not
        resolve), ``"refused"``, ``"timeout"``, ``"unreachable"`` (no route,
        reset), ``"tls"``, ``"proxy"`` (the proxy refused the request),
        ``"http-status"`` (an HTTP error status), ``"html"`` (an HTML page instead
        of the object: a proxy or captive portal), ``"not-crl"`` / ``"not-ocsp"``
        (something else than expected), ``"not-http"``, ``"not-ldap"``,
        ``"ldap-error"`` (the bind was refused), ``"redirect-refused"`` (a redirect
        to a loopback, link-local or private address from a source that is not on
        one: not followed), ``"unsupported"`` (a scheme not
        probed), ``"bad-url"``, ``"skipped"`` (beyond :data:`MAX_SOURCES`).
    :ivar elapsed: seconds the probe took.
    :ivar detail: one line: what answered, or the error.
    :ivar via: the proxy used (``host:port``, no credentials), ``None`` when direct.
    :ivar http_status: the HTTP status of the last answer, when there was one.
    :ivar content_type: its ``Content-Type``.
    """

    source: Source
    result: str
    elapsed: float
    detail: str = ""
    via: Optional[str] = None
    http_status: Optional[int] = None
    content_type: Optional[str] = None

    @property
    def reachable(self) -> bool:
        return self.result == "reachable"

    def as_dict(self) -> Dict[str, Any]:
        s = self.source
        return {"url": s.url, "kind": s.kind, "protocol": s.protocol, "host": s.host,
                "port": s.port, "result": self.result, "elapsed": round(self.elapsed, 3),
                "detail": self.detail, "via": self.via, "http_status": self.http_status,
                "content_type": self.content_type, "certificates": list(s.certificates)}


class _Outcome(Exception):
    """Ends a probe early with its result (internal)."""

    def __init__(self, result: str, detail: str, status: Optional[int] = None,
                 content_type: Optional[str] = None) -> None:
        super().__init__(detail)
        self.result, self.detail = result, detail
        self.status, self.content_type = status, content_type
        self.via: Optional[str] = None


# --------------------------------------------------------------------------- sources
def revocation_sources(certificates: Iterable[Tuple[str, Any]]
                       ) -> Tuple[List[Source], Dict[str, List[Tuple[str, str]]]]:
    """The sources ``certificates`` name, and which serve which certificate.

    :param certificates: ``(label, cryptography certificate)`` pairs (the card's
        certificates, their issuing CAs).
    :returns: the sources, one per URL, in certificate order; and, by label,
        the ``(url, kind)`` pairs of that certificate. An extension that does not
        decode counts as absent (the certificates check judges the certificate).
    """
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID as AIA

    found: Dict[str, Tuple[str, List[str]]] = {}
    by_cert: Dict[str, List[Tuple[str, str]]] = {}
    for label, cert in certificates:
        pairs = by_cert.setdefault(label, [])

        def add(url: str, kind: str, label: str = label,
                pairs: List[Tuple[str, str]] = pairs) -> None:
            if (url, kind) not in pairs:
                pairs.append((url, kind))
            labels = found.setdefault(url, (kind, []))[1]
            if label not in labels:
                labels.append(label)

        for kind, ext in (("crl", x509.CRLDistributionPoints), ("delta", x509.FreshestCRL)):
            try:
                points = cert.extensions.get_extension_for_class(ext).value
            except (x509.ExtensionNotFound, ValueError):
                continue
            for point in points:
                for name in point.full_name or ():
                    if isinstance(name, x509.UniformResourceIdentifier):
                        add(name.value, kind)
        try:
            aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        except (x509.ExtensionNotFound, ValueError):
            aia = []
        for description in aia:
            location = description.access_location
            if not isinstance(location, x509.UniformResourceIdentifier):
                continue
            if description.access_method == AIA.OCSP:
                add(location.value, "ocsp")
            elif description.access_method == AIA.CA_ISSUERS:
                add(location.value, "ca-issuers")
    sources = [_source(url, kind, tuple(labels)) for url, (kind, labels) in found.items()]
    return sources, by_cert


def _source(url: str, kind: str, labels: Tuple[str, ...]) -> Source:
    try:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:  # a port out of range, a bracket left open...
        return Source(url, kind, url.partition(":")[0].lower(), "", 0, labels)
    return Source(url, kind, scheme, host, port, labels)


# --------------------------------------------------------------------------- probing
def probe_sources(sources: Sequence[Source], *, timeout: float = SOURCE_TIMEOUT,
                  deadline: float = TOTAL_DEADLINE, proxies: Optional[Mapping[str, str]] = None,
                  ocsp_requests: Optional[Mapping[str, bytes]] = None) -> List[Probe]:
    """Probe every source in parallel; one :class:`Probe` per source, in order.

    Never raises for what the network does. Returns within about ``deadline``
    seconds whatever the network does (a probe still running then is reported
    as ``"timeout"``).

    :param sources: what to probe (beyond :data:`MAX_SOURCES`: ``"skipped"``).
    :param timeout: bound of one source (resolve, connect, exchange).
    :param deadline: bound of the whole call.
    :param proxies: ``{"http": url, "https": url, "no": hosts}``; ``None`` takes the
        environment and the system settings, as :class:`cps.trust.fetch.Fetcher`
        does; ``{}`` goes direct.
    :param ocsp_requests: DER OCSPRequest to POST, by OCSP URL (default a minimal
        request, which a responder answers ``malformedRequest``: still an OCSP
        answer).
    :raises ValueError: a bound that is not positive.
    """
    if timeout <= 0 or deadline <= 0:
        raise ValueError("timeout and deadline must be positive")
    proxy_map = dict(urllib.request.getproxies() if proxies is None else proxies)
    results: List[Optional[Probe]] = [None] * len(sources)
    threads: List[Tuple[int, threading.Thread]] = []
    for i, source in enumerate(sources):
        if i >= MAX_SOURCES:
            results[i] = Probe(source, "skipped", 0.0,
                               f"not probed: more than {MAX_SOURCES} sources")
            continue
        request = (ocsp_requests or {}).get(source.url, _MINIMAL_OCSP_REQUEST)

        def run(i: int = i, source: Source = source, request: bytes = request) -> None:
            results[i] = _probe(source, timeout, proxy_map, request)

        thread = threading.Thread(target=run, name=f"cps-reach-{i}", daemon=True)
        threads.append((i, thread))
    begin = time.monotonic()
    for _, thread in threads:
        thread.start()
    end = begin + deadline
    for _, thread in threads:
        thread.join(max(end - time.monotonic(), 0.0))
    out: List[Probe] = []
    for source, probe in zip(sources, list(results), strict=True):  # a snapshot: late
        # threads (a resolver that never returns: it has no timeout) may still write
        out.append(probe if probe is not None else Probe(
            source, "timeout", time.monotonic() - begin,
            f"no answer within the check's {deadline:g} s"))
    return out


def _probe(source: Source, timeout: float, proxies: Mapping[str, str],
           ocsp_request: bytes) -> Probe:
    from ..trust.fetch import _Deadline  # the fetcher's watchdog: one helper for one job

    begin = time.monotonic()
    limit = _Deadline(timeout)
    via: Optional[str] = None
    try:
        if source.protocol == "ldap":
            _probe_ldap(source, timeout, limit)
            return Probe(source, "reachable", time.monotonic() - begin,
                         "anonymous LDAP bind accepted")
        if source.protocol not in ("http", "https"):
            raise _Outcome("unsupported", f"{source.protocol or 'no'} scheme: not probed (cps "
                           "fetches http, https and ldap)")
        if not source.host:
            raise _Outcome("bad-url", "no host in the URL")
        url = source.url
        inside: Optional[bool] = None      # whether the source itself is on this network
        for _ in range(MAX_REDIRECTS + 1):
            via, status, ctype, head, location = _http_exchange(url, source.kind, timeout,
                                                                limit, proxies, ocsp_request)
            if status in (301, 302, 303, 307, 308) and location:
                url = urllib.parse.urljoin(url, location)
                if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
                    raise _Outcome("http-status", f"redirected to {url[:120]}", status, ctype)
                # A source may not steer the probe inside this network (SSRF): only a
                # source that is itself there may redirect there (test servers, LANs).
                target = urllib.parse.urlsplit(url).hostname or ""
                if _internal(target):
                    if inside is None:
                        inside = _internal(source.host)
                    if not inside:
                        raise _Outcome("redirect-refused", f"redirected to {target}, an "
                                       "internal address, by a source that is not: not "
                                       "followed", status, ctype)
                continue
            detail = _judge(source.kind, status, ctype, head, via)
            return Probe(source, "reachable", time.monotonic() - begin, detail, via, status,
                         ctype)
        raise _Outcome("http-status", f"more than {MAX_REDIRECTS} redirects")
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not kill its thread
        out = exc if isinstance(exc, _Outcome) else _Outcome(
            "unreachable", f"{type(exc).__name__}: {exc}"[:200])
        # The watchdog cut the exchange: whatever was read so far, the source timed out.
        if limit.fired:
            out = _Outcome("timeout", f"no complete answer within {timeout:g} s")
        return Probe(source, out.result, time.monotonic() - begin, out.detail, out.via or via,
                     out.status, out.content_type)
    finally:
        limit.cancel()


def _internal(host: str) -> bool:
    """Whether ``host`` is, or resolves to, a loopback, link-local, private or otherwise
    non-public address. A name that does not resolve here is not (a proxy may reach it)."""
    try:
        addresses = [ipaddress.ip_address(host.strip("[]").split("%", 1)[0])]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return False
        addresses = []
        for info in infos[:16]:
            try:
                addresses.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
            except ValueError:
                continue
    return any(not a.is_global or a.is_multicast for a in addresses)


def _connect(host: str, port: int, timeout: float, limit: Any) -> socket.socket:
    """Resolve and connect; failures become an :class:`_Outcome` saying which step."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise _Outcome("dns", f"{host} does not resolve ({exc})") from None
    except OSError as exc:
        raise _Outcome("dns", f"{host}: {exc}") from None
    last: _Outcome = _Outcome("unreachable", f"{host}: no address")
    for family, kind, proto, _, address in infos:
        if limit.fired or limit.remaining() <= 0:
            raise _Outcome("timeout", f"{host}:{port}: no connection within {timeout:g} s")
        sock = socket.socket(family, kind, proto)
        try:
            limit.attach(sock)
            sock.settimeout(limit.clamp(timeout))
            sock.connect(address)
            return sock
        except ConnectionRefusedError:
            last = _Outcome("refused", f"{address[0]} port {port} refused the connection")
        except (TimeoutError, socket.timeout):
            last = _Outcome("timeout", f"{address[0]} port {port}: no answer within "
                            f"{timeout:g} s (packets dropped?)")
        except OSError as exc:
            last = (_Outcome("timeout", f"{address[0]} port {port}: no answer within "
                             f"{timeout:g} s") if limit.fired else
                    _Outcome("unreachable", f"{address[0]} port {port}: {exc.strerror or exc}"))
        sock.close()
    raise last


def _proxy_for(scheme: str, host: str, proxies: Mapping[str, str]) -> Optional[Tuple[str, int]]:
    url = proxies.get(scheme)
    if not url or _bypassed(host, proxies):
        return None
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    try:
        port = parts.port or 8080
    except ValueError:
        raise _Outcome("proxy", "the proxy setting has a bad port") from None
    if not parts.hostname:
        raise _Outcome("proxy", "the proxy setting names no host")
    return parts.hostname, port


def _bypassed(host: str, proxies: Mapping[str, str]) -> bool:
    if "no" in proxies:  # as urllib's ProxyHandler: an explicit no-proxy list wins
        # typeshed leaves out proxy_bypass_environment, which ProxyHandler's callers use
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        return bool(bypass(host, {"no": proxies["no"]}))
    try:
        return bool(urllib.request.proxy_bypass(host))
    except (OSError, ValueError):  # the system's settings could not be read
        return False


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _http_exchange(url: str, kind: str, timeout: float, limit: Any,
                   proxies: Mapping[str, str], ocsp_request: bytes
                   ) -> Tuple[Optional[str], int, Optional[str], bytes, Optional[str]]:
    """One request; ``(via, status, content type, first bytes, Location)``."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise _Outcome("bad-url", f"bad port in {url[:120]}") from None
    proxy = _proxy_for(scheme, host, proxies)
    via = _endpoint(*proxy) if proxy else None
    try:
        return _http_request(url, kind, timeout, limit, proxy, ocsp_request)
    except _Outcome as out:
        out.via = via
        raise


def _http_request(url: str, kind: str, timeout: float, limit: Any,
                  proxy: Optional[Tuple[str, int]], ocsp_request: bytes
                  ) -> Tuple[Optional[str], int, Optional[str], bytes, Optional[str]]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    host, port = parts.hostname or "", parts.port or _DEFAULT_PORTS[scheme]
    via = _endpoint(*proxy) if proxy else None
    sock = _connect(*(proxy or (host, port)), timeout=timeout, limit=limit)
    conn: http.client.HTTPConnection
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    if scheme == "https":
        conn = http.client.HTTPSConnection(*(proxy or (host, port)), timeout=limit.clamp(timeout),
                                           context=ssl.create_default_context())
        if proxy:
            conn.set_tunnel(host, port)
    else:
        conn = http.client.HTTPConnection(*(proxy or (host, port)), timeout=limit.clamp(timeout))
        if proxy:
            path = urllib.parse.urlunsplit(("http", parts.netloc, parts.path or "/",
                                            parts.query, ""))
    # http.client opens its socket through this hook (as in cps.trust.fetch): hand it
    # the one connected above, whose resolve/connect failures were told apart.
    conn._create_connection = lambda *args, **kwargs: sock  # type: ignore[attr-defined]
    headers = {"User-Agent": _user_agent(), "Connection": "close"}
    if kind == "ocsp":
        method, body = "POST", ocsp_request
        headers.update({"Content-Type": "application/ocsp-request",
                        "Accept": "application/ocsp-response"})
    else:
        method, body = "GET", None
        headers["Range"] = f"bytes=0-{PEEK_BYTES - 1}"
    try:
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            head = _peek(response) if response.status not in (204, 304) else b""
        except ssl.SSLError as exc:
            raise _Outcome("tls", f"TLS with {host}:{port} failed ({exc.reason or exc})") \
                from None
        except (TimeoutError, socket.timeout):
            raise _Outcome("timeout", f"no answer within {timeout:g} s after connecting "
                           "(a firewall or a proxy holding the request?)") from None
        except http.client.HTTPException as exc:
            raise _Outcome("not-http", f"the answer is not HTTP ({type(exc).__name__})") \
                from None
        except OSError as exc:
            text = str(exc)
            if proxy and text.startswith("Tunnel connection failed"):
                raise _Outcome("proxy", f"the proxy {via} refused to connect to {host}:{port} "
                               f"({text.partition(': ')[2] or text})") from None
            raise _Outcome("unreachable", f"the connection broke ({exc.strerror or exc})") \
                from None
    finally:
        conn.close()
        sock.close()
    ctype = response.getheader("Content-Type")
    if response.status in (200, 206, 301, 302, 303, 307, 308):
        return via, response.status, ctype, head, response.getheader("Location")
    result = "proxy" if proxy and response.status in (407, 502, 503, 504) else "http-status"
    who = f"the proxy {via}" if result == "proxy" else host
    raise _Outcome(result, f"{who} answered HTTP {response.status} {response.reason}"[:200],
                   response.status, ctype)


def _peek(response: http.client.HTTPResponse) -> bytes:
    """The first bytes of the body: enough to judge it, never more than PEEK_BYTES
    (``read1`` returns what has arrived instead of waiting for all PEEK_BYTES)."""
    head = b""
    while len(head) < 64:
        chunk = response.read1(PEEK_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    return head


def _judge(kind: str, status: int, ctype: Optional[str], head: bytes,
           via: Optional[str]) -> str:
    """The detail of a 2xx answer, or an :class:`_Outcome` when it is not the object."""
    media = (ctype or "").split(";")[0].strip().lower()
    text = head.lstrip()[:64].lower()
    if media.startswith(_HTML_TYPES) or text.startswith((b"<!doctype", b"<html", b"<head",
                                                        b"<body", b"<?xml")):
        who = f"the proxy {via}" if via else "something between here and the server"
        raise _Outcome("html", f"an HTML page answered instead ({who}: a proxy or captive "
                       "portal?)", status, ctype)
    if kind == "ocsp":
        if media == "application/ocsp-response" or head[:1] == b"\x30":
            return f"an OCSP responder answers (HTTP {status})"
        raise _Outcome("not-ocsp", f"the answer is not OCSP ({media or 'no content type'})",
                       status, ctype)
    what = "CA certificate" if kind == "ca-issuers" else "CRL"
    if head[:1] == b"\x30" or head.startswith(b"-----BEGIN"):
        return f"the {what} is served (HTTP {status}, {media or 'no content type'})"
    raise _Outcome("not-crl", f"the answer is not a {what} ({media or 'no content type'}, "
                   f"{len(head)} bytes read)", status, ctype)


def _probe_ldap(source: Source, timeout: float, limit: Any) -> None:
    # The bind of cps.trust.ldap's search, alone: no CRL is asked for.
    from ..trust import ldap

    try:
        query = ldap.parse_ldap_url(source.url)
    except RevocationUnavailable as exc:
        raise _Outcome("bad-url", str(exc)) from None
    sock = _connect(query.host, query.port, timeout, limit)
    try:
        def recv_exact(n: int) -> bytes:
            data = b""
            while len(data) < n:
                sock.settimeout(limit.clamp(timeout))
                chunk = sock.recv(n - len(data))
                if not chunk:
                    raise _Outcome("not-ldap", "the server closed the connection without an "
                                   "LDAP answer")
                data += chunk
            return data

        try:
            sock.sendall(ldap._message(1, ldap._tlv(0x60, ldap._integer(3) + ldap._octets(b"")
                                                    + b"\x80\x00")))
            message_id, tag, op = ldap._read_message(recv_exact, source.url, 4096)
            if message_id != 1 or tag != ldap._BIND_RESPONSE:
                raise _Outcome("not-ldap", "the server did not answer the bind")
            code, text = ldap._result(op, source.url)
        except RevocationUnavailable as exc:
            raise _Outcome("not-ldap", f"not an LDAP server ({exc.reason})") from None
        except (TimeoutError, socket.timeout):
            raise _Outcome("timeout", f"no LDAP answer within {timeout:g} s") from None
        except OSError as exc:
            raise _Outcome("unreachable", f"the connection broke ({exc.strerror or exc})") \
                from None
        if code != 0:
            raise _Outcome("ldap-error", f"anonymous bind refused: result {code}"
                           + (f" ({text})" if text else ""))
        try:
            sock.sendall(ldap.UNBIND)
        except OSError:
            pass  # a courtesy: the answer is in
    finally:
        sock.close()


def _user_agent() -> str:
    from .._version import __version__

    return f"cps/{__version__} (doctor)"


#: An OCSPRequest for serial 1 of an issuer whose name and key hash to zeros (SHA-1):
#: well formed, so any responder answers it (``unauthorized``: not its CA). Sent when
#: the issuer is unknown; the answer is not judged, only that OCSP answered.
_MINIMAL_OCSP_REQUEST = bytes.fromhex(
    "3042" "3040" "303e" "303c" "303a" "3009" "06052b0e03021a" "0500"
    + "0414" + "00" * 20 + "0414" + "00" * 20 + "020101")


# --------------------------------------------------------------------------- the check
def _check_revocation_sources(st: _State) -> Check:
    if not st.online:
        return Check("revocation-sources", "skipped",
                     "not checked: no network connection without --online",
                     data={"online": False})
    labelled, requests = _certificates(st)
    sources, by_cert = revocation_sources(labelled)
    probes = probe_sources(sources, ocsp_requests=requests)
    return judge_sources(probes, by_cert, crls_given=bool(st.crls))


def _certificates(st: _State) -> Tuple[List[Tuple[str, Any]], Dict[str, bytes]]:
    """The card's certificates and their issuing CAs from the trust store (anchors are
    not checked for revocation), labelled; OCSP requests for those whose issuer is known."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from ..trust.certs import parse_cert
    from ..trust.ocsp import build_request, ocsp_urls
    from .trust import _trust_store

    try:
        store = _trust_store(st.anchors)
    except (CertificateParseError, ValueError, OSError):
        store = None  # the chain check reports bad anchors; probe the card's own URLs
    out: List[Tuple[str, Any]] = []
    requests: Dict[str, bytes] = {}
    seen: set[bytes] = set()
    for role, cert in st.certs.items():
        der = cert.public_bytes(Encoding.DER)
        if der in seen:
            continue
        seen.add(der)
        out.append((f"the {role.value} certificate", cert))
        issuers: List[Any] = []
        anchors: List[Any] = []
        if store is not None:
            try:
                parsed_leaf = parse_cert(der)
                issuers = store.issuers_of(parsed_leaf)
                anchors = store.anchor_for(parsed_leaf)
            except CertificateParseError:
                pass
        for parsed in (issuers + anchors)[:1]:  # the issuer's hashes name the cert in OCSP
            issuer = x509.load_der_x509_certificate(parsed.der)
            for url in ocsp_urls(cert):
                try:
                    requests.setdefault(url, build_request(cert, issuer))
                except ValueError:
                    pass
        for parsed in issuers[:2]:  # anchors are trusted as they are: no revocation
            issuer = x509.load_der_x509_certificate(parsed.der)
            if parsed.der not in seen:
                seen.add(parsed.der)
                out.append((_cn(issuer), issuer))
    return out, requests


def judge_sources(probes: Sequence[Probe], by_cert: Mapping[str, Sequence[Tuple[str, str]]],
                  *, crls_given: bool = False, platform: Optional[str] = None) -> Check:
    """The ``revocation-sources`` finding for probed sources.

    ``ok`` when every source answers; ``warn`` when some do not but every
    certificate keeps a working CRL or OCSP source (or CRL files were given);
    ``fail`` when a certificate has none left.

    :param probes: from :func:`probe_sources`.
    :param by_cert: from :func:`revocation_sources`.
    :param crls_given: CRL files were given (``--crl``): they may stand in for the
        network, so a certificate with no working source is only a warning.
    :param platform: ``sys.platform`` value the advice is for (default this one).
    """
    by_url = {p.source.url: p for p in probes}
    covered: List[Dict[str, Any]] = []
    stranded: List[str] = []
    for label, pairs in by_cert.items():
        decisive = [url for url, kind in pairs if kind in _DECISIVE]
        working = [url for url in decisive if url in by_url and by_url[url].reachable]
        if decisive and not working:
            stranded.append(label)
        covered.append({"certificate": label, "sources": [u for u, _ in pairs],
                        "working": working, "covered": bool(working) or not decisive})
    # a scheme cps does not speak, or a source over the bound, is no network failure
    blocked = [p for p in probes if not p.reachable and p.result not in _NEUTRAL]
    data: Dict[str, Any] = {
        "timeout": SOURCE_TIMEOUT, "deadline": TOTAL_DEADLINE,
        "sources": [p.as_dict() for p in probes], "certificates": covered,
        "blocked": sorted({p.source.endpoint for p in blocked if p.source.host})}
    if not probes:
        return _warn("revocation-sources", "the certificates name no revocation source",
                     "Only CRL files given with --crl can check these certificates' "
                     "revocation.", **data)
    if not blocked:
        hosts = sorted({p.source.endpoint for p in probes})
        return _ok("revocation-sources", f"{len(probes)} sources reachable "
                   f"({', '.join(hosts)})", **data)
    advice = network_advice(blocked, platform=platform)
    # endpoints, not URLs: one line, and what a firewall rule names
    named = list(dict.fromkeys(f"{p.source.protocol}://{p.source.endpoint} {p.result}"
                               for p in blocked))
    lost = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
    if stranded:
        summary = (f"revocation cannot be checked online for {', '.join(stranded)}: no CRL or "
                   f"OCSP source answers ({lost})")
        if crls_given:
            return _warn("revocation-sources", summary + "; the --crl files must cover it",
                         advice, **data)
        return _fail("revocation-sources", summary, advice, **data)
    still = sorted({by_url[u].source.endpoint for c in covered for u in c["working"]})
    return _warn("revocation-sources", f"{len(blocked)} of {len(probes)} sources unreachable "
                 f"({lost}); revocation still checked through {', '.join(still) or 'the rest'}",
                 advice, **data)


def network_advice(blocked: Sequence[Probe], *, platform: Optional[str] = None) -> str:
    """What to do about unreachable sources, for ``platform`` (a ``sys.platform`` value).

    Names the ``host:port`` to open, the proxy setting of the platform (``http_proxy``
    on Linux and macOS, the system proxy on Windows), and that LDAP port 389 only
    serves the delta CRLs.
    """
    platform = platform or sys.platform
    windows, mac = platform.startswith("win"), platform == "darwin"
    parts: List[str] = []
    dns = sorted({p.source.host for p in blocked if p.result == "dns"})
    if dns:
        how = ("`Resolve-DnsName " if windows else "`dscacheutil -q host -a name " if mac
               else "`getent hosts ")
        parts.append(f"{', '.join(dns)} does not resolve: check the DNS settings ({how}"
                     f"{dns[0]}`)")
    html = [p for p in blocked if p.result == "html"]
    if html:
        parts.append("a proxy or captive portal answers HTML in place of "
                     f"{html[0].source.host}: sign in to the portal, or have the proxy let "
                     f"{', '.join(sorted({p.source.host for p in html}))} through")
    proxied = [p for p in blocked if p.result == "proxy"]
    if proxied:
        parts.append(f"the proxy {proxied[0].via} refuses these requests: allow "
                     f"{', '.join(sorted({p.source.endpoint for p in proxied}))} on it")
    ldap = sorted({p.source.endpoint for p in blocked if p.source.protocol == "ldap"
                   and p.result in ("refused", "timeout", "unreachable")})
    http = sorted({p.source.endpoint for p in blocked if p.source.protocol != "ldap"
                   and p.result in ("refused", "timeout", "unreachable")})
    firewall = ("Windows Defender Firewall or the practice's firewall" if windows
                else "the macOS firewall or the practice's firewall" if mac
                else "the practice's firewall (and this machine's: nftables, firewalld, ufw)")
    if http:
        if windows:
            proxy = ("if the network needs a proxy, set it in Windows' Internet Options "
                     "(`netsh winhttp show proxy` shows the system proxy services use; "
                     "`netsh winhttp import proxy source=ie` copies it)")
        elif mac:
            proxy = ("if the network needs a proxy, set it in System Settings → Network → "
                     "Proxies, or http_proxy / https_proxy for the account running cps")
        else:
            proxy = ("if the network needs a proxy, set http_proxy / https_proxy (and "
                     "no_proxy) for the account running cps")
        parts.append(f"allow outgoing TCP to {', '.join(http)} in {firewall}; {proxy}")
    if ldap:
        parts.append(f"LDAP {', '.join(ldap)} is blocked, as practice firewalls often do: it "
                     "serves only the delta CRLs (revocations of the last hours), the complete "
                     "CRLs over HTTP decide without them; open outgoing TCP 389 to that host "
                     "to get them (an HTTP proxy does not carry LDAP)")
    other = [p for p in blocked if p.result in ("http-status", "not-crl", "not-ocsp", "not-http",
                                                "not-ldap", "ldap-error", "tls",
                                                "redirect-refused")]
    if other:
        p = other[0]
        parts.append(f"{p.source.endpoint} answers but not as expected ({p.detail}): if a "
                     "security appliance inspects this traffic, let it pass unchanged")
    if not parts:
        parts.append("run `cps -l debug doctor --online` to see each source's answer")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."
