"""TLS client authentication, server side: a client certificate becomes a validated practitioner.

::

    from cps.tls import CertificateAuthenticator, WsgiMiddleware

    authenticator = CertificateAuthenticator(validator, trusted_proxies=("127.0.0.1",))
    app = WsgiMiddleware(app, authenticator)          # or AsgiMiddleware(asgi_app, ...)
    # in the application:
    environ["cps.practitioner"]                       # cps.identity.Practitioner, validated
    environ["cps.validation"]                         # cps.trust.ValidationResult

Where the certificate comes from, per request:

* **a trusted reverse proxy** -- when the peer's address (``REMOTE_ADDR``,
  ``scope["client"]``) is one of ``trusted_proxies``, the header (default
  ``X-SSL-Client-Cert``) is the only source: the TLS peer is then the proxy.
  nginx's ``$ssl_client_escaped_cert`` (URL-escaped PEM), Apache's
  ``%{SSL_CLIENT_CERT}s`` (PEM, newlines as spaces), plain PEM or bare base64
  DER (HAProxy's ``ssl_c_der,base64``) are read; the header holds exactly one
  certificate. The header from any other address is refused
  (``untrusted-proxy``, 403): a client must not name its own certificate.
* **the TLS connection of the Python server** -- otherwise: the DER that
  :func:`cps.tls.wsgi_server.make_server` puts in ``environ``
  (:data:`PEER_CERTIFICATE_KEY`), mod_ssl/mod_wsgi's ``SSL_CLIENT_CERT`` (PEM,
  with ``SSL_CLIENT_CERT_CHAIN_n`` as helpers), or the ASGI TLS extension's
  ``scope["extensions"]["tls"]["client_cert_chain"]`` (PEM strings, leaf first).

The certificate is then checked exactly as :class:`cps.auth.Verifier` checks a
token's: the authentication purpose (digitalSignature, clientAuth: a signature
certificate is refused), then the path and revocation through the caller's
:class:`cps.trust.Validator` (CRL/OCSP, soft or hard fail: whatever it does), at
the validator's clock, on every request. What is remembered per certificate
(by its exact DER bytes, bounded) is only what never changes: its parsed form
and the practitioner it names.

Every refusal is a :class:`cps.errors.ClientCertificateRefused` with a stable
``reason`` and the HTTP ``status`` the middlewares answer with, as JSON
``{"error": reason, "detail": message}``:

=========================  ======  =================================================
reason                     status  when
=========================  ======  =================================================
``no-certificate``         401     no certificate (or the proxy sent an empty header)
``malformed-certificate``  401     undecodable, too large, too many, truncated
``untrusted-proxy``        403     the certificate header from an address not trusted
``certificate-untrusted``  403     no path to a trust anchor
``certificate-expired``    403     outside its validity (or a CA of its path)
``certificate-revoked``    403     revoked (or a CA of its path)
``certificate-purpose``    403     not an authentication certificate (a signature one)
``certificate-invalid``    403     any other path failure (policy, signature...)
``not-a-practitioner``     403     a valid certificate that names no practitioner
``revocation-unavailable`` 503     hard-fail and no usable CRL/OCSP answer
=========================  ======  =================================================

503, not 403, for ``revocation-unavailable``: nothing is known against the
certificate, the server cannot tell now (a CRL server down); a client may try
again later, and monitoring sees a server-side outage rather than a wave of
refused cards.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    MutableMapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from ..card import KeyRole
from ..errors import (
    CertificateExpired,
    CertificateInvalid,
    CertificateParseError,
    CertificatePurposeError,
    CertificateRevoked,
    ClientCertificateRefused,
    CpsError,
    RevocationError,
    UntrustedCertificate,
)
from ..identity import Practitioner
from ..pem import blocks
from ..trust.certs import ParsedCert, parse_cert
from ..trust.validate import check_purpose

__all__ = [
    "CertificateAuthenticator", "ClientCertificate", "WsgiMiddleware", "AsgiMiddleware",
    "refusal_body", "PRACTITIONER_KEY", "VALIDATION_KEY", "CLIENT_CERTIFICATE_KEY",
    "REFUSAL_KEY", "PEER_CERTIFICATE_KEY", "MAX_HEADER_BYTES", "MAX_CHAIN",
]

#: where the middlewares put the validated practitioner (None when anonymous)
PRACTITIONER_KEY = "cps.practitioner"
#: the :class:`cps.trust.ValidationResult` beside it
VALIDATION_KEY = "cps.validation"
#: the whole :class:`ClientCertificate` (certificate DER, source)
CLIENT_CERTIFICATE_KEY = "cps.client_certificate"
#: the :class:`~cps.errors.ClientCertificateRefused` let through when ``required=False``
REFUSAL_KEY = "cps.refusal"
#: the environ key :func:`cps.tls.wsgi_server.make_server` sets to the peer's DER
#: certificate; a client cannot set it (HTTP headers become ``HTTP_*`` keys)
PEER_CERTIFICATE_KEY = "cps.tls.peer_certificate"

#: the largest certificate header read (a CPS certificate's PEM is about 2 KiB,
#: escaped about 3 KiB); larger is refused before any decoding
MAX_HEADER_BYTES = 64 * 1024
#: the most certificates read from one request (leaf and helpers)
MAX_CHAIN = 8
#: the longest detail message sent back (the cps error's words, cut)
_MAX_DETAIL = 300

_STATUS_LINES = {401: "401 Unauthorized", 403: "403 Forbidden",
                 503: "503 Service Unavailable"}
_BEGIN, _END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
_Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate that gave a practitioner.

    Unpacks as ``practitioner, validation = authenticator.authenticate_wsgi(environ)``.

    :ivar practitioner: the :class:`~cps.identity.Practitioner` it names, ``validated=True``.
    :ivar validation: the :class:`cps.trust.ValidationResult` (path, revocation).
    :ivar certificate_der: the certificate, DER.
    :ivar source: where it came from: ``"tls"`` (our server's connection),
        ``"ssl-client-cert"`` (mod_ssl's environ), ``"asgi-tls"`` (the ASGI TLS
        extension), ``"proxy-header"`` (a trusted proxy's header).
    """

    practitioner: Practitioner
    validation: Any
    certificate_der: bytes = field(repr=False)
    source: str

    def __iter__(self) -> Iterator[Any]:
        """``(practitioner, validation)``."""
        return iter((self.practitioner, self.validation))


def _refused(message: str, reason: str, status: int,
             cause: Optional[BaseException] = None) -> ClientCertificateRefused:
    return ClientCertificateRefused(message[:_MAX_DETAIL], reason=reason, status=status,
                                    cause=cause)


def _malformed(message: str, cause: Optional[BaseException] = None
               ) -> ClientCertificateRefused:
    return _refused(message, "malformed-certificate", 401, cause)


def _no_certificate(message: str = "no client certificate") -> ClientCertificateRefused:
    return _refused(message, "no-certificate", 401)


def _refusal_for(exc: BaseException) -> ClientCertificateRefused:
    """The refusal for an error of the purpose check, the validator or the identity."""
    # Most specific first: CertificateRevoked and the others derive from CertificateInvalid.
    table: Tuple[Tuple[type, str, int], ...] = (
        (CertificateRevoked, "certificate-revoked", 403),
        (CertificateExpired, "certificate-expired", 403),
        (CertificatePurposeError, "certificate-purpose", 403),
        (UntrustedCertificate, "certificate-untrusted", 403),
        (CertificateInvalid, "certificate-invalid", 403),
        (RevocationError, "revocation-unavailable", 503),
        (CertificateParseError, "malformed-certificate", 401),
    )
    for kind, reason, status in table:
        if isinstance(exc, kind):
            return _refused(str(exc), reason, status, exc)
    return _refused(f"the certificate is refused: {exc}", "certificate-invalid", 403, exc)


def _network(spec: Any) -> _Network:
    if isinstance(spec, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return spec
    if isinstance(spec, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ipaddress.ip_network(spec)
    if not isinstance(spec, str):
        raise TypeError(f"a trusted proxy is an address or network string, not "
                        f"{type(spec).__name__}")
    return ipaddress.ip_network(spec.strip(), strict=False)  # ValueError: caller's mistake


def _address(text: Any) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    """The peer's address, or None when there is none or it does not parse."""
    if not isinstance(text, str) or not text or len(text) > 64:
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # a dual-stack socket reports an IPv4 proxy as ::ffff:a.b.c.d
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _latin1(value: str) -> bytes:
    """A WSGI environ string back to its bytes (PEP 3333: latin-1 decoded)."""
    return value.encode("latin-1", "replace")


class CertificateAuthenticator:
    """Turns a request's client certificate into a validated practitioner.

    :param validator: a :class:`cps.trust.Validator` (anchors, revocation policy,
        clock); every certificate is validated by it for ``KeyRole.AUTH``.
    :param trusted_proxies: the addresses and networks (``"127.0.0.1"``,
        ``"10.0.0.0/8"``, ``"::1"``) of reverse proxies whose certificate header
        is believed; empty (the default): no header is.
    :param header: the proxy's header name (``X-SSL-Client-Cert``).
    :param max_header_bytes: the largest header (or ASGI chain, or
        ``SSL_CLIENT_CERT``) read; larger is ``malformed-certificate``.
    :param max_chain: the most certificates read from a request (leaf included).
    :param known_certificates: how many certificates to remember by their exact
        DER (0: none): their parsed form and practitioner, what never changes.
        The purpose, the dates, the path and revocation are checked on every
        request, as :class:`cps.auth.Verifier` does. Oldest out first.
    """

    def __init__(self, validator: Any, *, trusted_proxies: Iterable[Any] = (),
                 header: str = "X-SSL-Client-Cert", max_header_bytes: int = MAX_HEADER_BYTES,
                 max_chain: int = MAX_CHAIN, known_certificates: int = 4096) -> None:
        if isinstance(trusted_proxies, str):  # one address given bare: not its characters
            trusted_proxies = (trusted_proxies,)
        if not header or not all(c.isalnum() or c in "-_" for c in header):
            raise ValueError(f"not an HTTP header name: {header!r}")
        self.validator = validator
        self.trusted_proxies: Tuple[_Network, ...] = tuple(_network(p) for p in trusted_proxies)
        self.header = header
        self.max_header_bytes = max(1, int(max_header_bytes))
        self.max_chain = max(1, int(max_chain))
        self.known_certificates = max(0, int(known_certificates))
        # a header reaches WSGI as HTTP_X_SSL_CLIENT_CERT, ASGI as b"x-ssl-client-cert"
        self._environ_key = "HTTP_" + header.upper().replace("-", "_")
        self._asgi_name = header.lower().encode("ascii")
        self._known: Dict[bytes, Tuple[ParsedCert, Practitioner]] = {}
        self._known_lock = threading.Lock()

    # ------------------------------------------------------------------ trust in the peer
    def is_trusted_proxy(self, address: Any) -> bool:
        """Whether ``address`` (the immediate peer's, a string) is a trusted proxy."""
        peer = _address(address)
        return peer is not None and any(peer in net for net in self.trusted_proxies
                                        if net.version == peer.version)

    # ------------------------------------------------------------------ WSGI
    def authenticate_wsgi(self, environ: MutableMapping[str, Any]) -> ClientCertificate:
        """The practitioner of a WSGI request.

        :raises ClientCertificateRefused: with ``reason`` and ``status`` (module docstring).
        """
        header = environ.get(self._environ_key)
        if self.is_trusted_proxy(environ.get("REMOTE_ADDR")):
            if header is None:
                raise _no_certificate("the proxy sent no client certificate header")
            if not isinstance(header, str):
                raise _malformed("the certificate header is not text")
            if len(header) > self.max_header_bytes:  # before any copy or decoding
                raise self._too_large()
            return self._from_header(_latin1(header))
        if header is not None:
            raise self._untrusted(environ.get("REMOTE_ADDR"))
        der = environ.get(PEER_CERTIFICATE_KEY)
        if der:
            if not isinstance(der, (bytes, bytearray)):
                raise _malformed("the peer certificate is not DER bytes")
            return self.authenticate_der(bytes(der), source="tls")
        pem = environ.get("SSL_CLIENT_CERT")
        if isinstance(pem, str) and pem.strip() and pem.strip() != "(null)":
            chain = [pem] + [environ[k] for k in (f"SSL_CLIENT_CERT_CHAIN_{i}"
                                                  for i in range(self.max_chain))
                             if isinstance(environ.get(k), str) and environ[k].strip()]
            return self._from_pem_chain([_latin1(c) for c in chain], "ssl-client-cert")
        raise _no_certificate()

    # ------------------------------------------------------------------ ASGI
    def authenticate_asgi(self, scope: MutableMapping[str, Any]) -> ClientCertificate:
        """The practitioner of an ASGI ``http`` or ``websocket`` connection.

        :raises ClientCertificateRefused: with ``reason`` and ``status`` (module docstring).
        """
        values = [v for n, v in scope.get("headers") or () if _header_name(n) == self._asgi_name]
        client = scope.get("client")
        host = client[0] if isinstance(client, (list, tuple)) and client else None
        if self.is_trusted_proxy(host):
            if not values:
                raise _no_certificate("the proxy sent no client certificate header")
            if len(values) > 1:
                # two headers: one may be the client's own, smuggled past the proxy
                raise _malformed(f"{len(values)} {self.header} headers; a proxy sends one")
            value = values[0]
            if not isinstance(value, (bytes, bytearray)):
                raise _malformed("the certificate header is not bytes")
            return self._from_header(bytes(value))
        if values:
            raise self._untrusted(host)
        tls = (scope.get("extensions") or {}).get("tls")
        if not isinstance(tls, dict):
            raise _no_certificate()
        if tls.get("client_cert_error"):
            raise _refused(f"the TLS layer refused the client certificate: "
                           f"{tls['client_cert_error']}", "certificate-invalid", 403)
        chain = tls.get("client_cert_chain")
        if not chain:
            raise _no_certificate()
        try:  # an iterable (ASGI TLS extension); one more than allowed tells "too many"
            items = list(itertools.islice(iter(chain), self.max_chain + 1))
        except Exception as exc:  # noqa: BLE001 - a server's odd object: still typed
            raise _malformed(f"unreadable client_cert_chain: {exc}", exc) from None
        if not all(isinstance(c, (str, bytes)) for c in items):
            raise _malformed("client_cert_chain is not a list of PEM strings")
        encoded = [c.encode("latin-1", "replace") if isinstance(c, str) else c for c in items]
        return self._from_pem_chain(encoded, "asgi-tls")

    # ------------------------------------------------------------------ common
    def authenticate_der(self, der: bytes, intermediates: Sequence[bytes] = (), *,
                         source: str = "tls") -> ClientCertificate:
        """Validate a certificate (DER) whatever it came from, with helper
        intermediates (DER, untrusted: the path must still end at an anchor).

        :raises ClientCertificateRefused: with ``reason`` and ``status``.
        """
        if len(der) > self.max_header_bytes:
            raise _malformed(f"the certificate is larger than {self.max_header_bytes} bytes")
        if len(intermediates) > self.max_chain - 1:
            raise _malformed(f"more than {self.max_chain} certificates")
        known = self._known.get(der)
        try:
            leaf = known[0] if known is not None else parse_cert(der)
            helpers = [parse_cert(bytes(d)) for d in intermediates]
        except Exception as exc:  # noqa: BLE001 - untrusted bytes: any failure is a refusal
            raise _malformed(f"undecodable certificate: {exc}", exc) from None
        try:
            # The purpose first, as the Verifier does: a signature certificate is
            # refused before any path or revocation work is spent on it.
            check_purpose(leaf, KeyRole.AUTH)
            validation = self.validator.validate(leaf, helpers, purpose=KeyRole.AUTH)
        except CpsError as exc:
            raise _refusal_for(exc) from None
        except (ValueError, LookupError, ArithmeticError, UnicodeError) as exc:
            # Data errors on hostile bytes the parser let through: a refusal, never
            # a 500. (A TypeError -- a naive clock -- is the operator's and propagates.)
            raise _refused(f"the certificate could not be validated: {exc!r}",
                           "certificate-invalid", 403, exc) from None
        if known is not None:
            practitioner = known[1]
        else:
            try:
                # validated: the chain was (only code that validated may say so)
                practitioner = Practitioner.from_parsed_certificate(leaf, validated=True)
            except Exception as exc:  # noqa: BLE001 - a CA-signed certificate that names no one
                raise _refused(f"the certificate names no practitioner: {exc}",
                               "not-a-practitioner", 403, exc) from None
            if self.known_certificates:
                self._remember(der, leaf, practitioner)
        return ClientCertificate(practitioner, validation, der, source)

    def _remember(self, der: bytes, leaf: ParsedCert, practitioner: Practitioner) -> None:
        # Keyed by the certificate's bytes (never id()): a different certificate
        # with the same subject is a different entry.
        with self._known_lock:
            if der not in self._known:
                while len(self._known) >= self.known_certificates:
                    del self._known[next(iter(self._known))]  # the oldest
                self._known[der] = (leaf, practitioner)

    def _untrusted(self, address: Any) -> ClientCertificateRefused:
        shown = address if isinstance(address, str) and len(address) <= 64 else "?"
        return _refused(f"a {self.header} header from {shown}, which is not a trusted proxy",
                        "untrusted-proxy", 403)

    def _too_large(self) -> ClientCertificateRefused:
        return _malformed(f"the {self.header} header is larger than {self.max_header_bytes} bytes")

    def _from_header(self, raw: bytes) -> ClientCertificate:
        """One certificate from a proxy's header: escaped, spaced or plain PEM, or base64 DER."""
        # The size first, before any decoding: the work below is linear in it.
        if len(raw) > self.max_header_bytes:
            raise self._too_large()
        text = raw.strip()
        if not text or text == b"(null)":  # nginx sends "" and Apache "(null)" without one
            raise _no_certificate("the proxy forwarded no client certificate")
        try:
            if b"%" in text:  # nginx's $ssl_client_escaped_cert; '+' stays '+' (not a form)
                text = urllib.parse.unquote_to_bytes(text).strip()
            if text.startswith(b"-----"):
                # The whole value is one armoured certificate: anything around it
                # (a second header joined with ',') makes it malformed.
                if not (text.startswith(_BEGIN) and text.endswith(_END)):
                    raise _malformed("the header is not one PEM certificate")
                found = blocks(text, (b"CERTIFICATE",), limit=2)
                if len(found) != 1:
                    raise _malformed(f"the header holds {len(found)} certificates; "
                                     "a proxy sends one")
                der = found[0]
            else:  # HAProxy's ssl_c_der,base64: no armour
                der = base64.b64decode(b"".join(text.split()), validate=True)
        except ClientCertificateRefused:
            raise
        except (ValueError, binascii.Error) as exc:
            raise _malformed(f"the {self.header} header is not a certificate: {exc}",
                             exc) from None
        except Exception as exc:  # noqa: BLE001 - untrusted input: a typed refusal, always
            raise _malformed(f"the {self.header} header is unreadable: {exc!r}", exc) from None
        if not der:
            raise _malformed("empty certificate")
        return self.authenticate_der(der, source="proxy-header")

    def _from_pem_chain(self, chain: Sequence[bytes], source: str) -> ClientCertificate:
        """Leaf and helpers from PEM (one certificate each), as a TLS server exports them."""
        if len(chain) > self.max_chain:
            raise _malformed(f"more than {self.max_chain} certificates")
        if sum(len(c) for c in chain) > self.max_header_bytes:
            raise _malformed(f"the certificates are larger than {self.max_header_bytes} bytes")
        ders: List[bytes] = []
        try:
            for pem in chain:
                found = blocks(pem, (b"CERTIFICATE",), limit=2)
                if len(found) != 1:
                    raise _malformed(f"a chain element holds {len(found)} certificates")
                ders.append(found[0])
        except ClientCertificateRefused:
            raise
        except Exception as exc:  # noqa: BLE001 - untrusted input: a typed refusal, always
            raise _malformed(f"undecodable PEM certificate: {exc}", exc) from None
        return self.authenticate_der(ders[0], ders[1:], source=source)


def _header_name(name: Any) -> bytes:
    return bytes(name).lower() if isinstance(name, (bytes, bytearray)) else b""


def refusal_body(refusal: ClientCertificateRefused) -> bytes:
    """The JSON body of a refusal: ``{"error": reason, "detail": message}``."""
    return json.dumps({"error": refusal.reason, "detail": str(refusal)[:_MAX_DETAIL]},
                      ensure_ascii=True).encode("ascii")


def _normal_path(path: str) -> str:
    """``path`` with ``.``, ``..`` and empty segments resolved, so that
    ``/public/../private`` is matched as ``/private`` by the prefix filter."""
    out: List[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return "/" + "/".join(out)


class _Paths:
    """The ``paths=`` prefix filter: ``None`` authenticates every path."""

    def __init__(self, prefixes: Optional[Iterable[str]]) -> None:
        if isinstance(prefixes, str):
            prefixes = (prefixes,)
        self.prefixes = None if prefixes is None else tuple(
            _normal_path(p) for p in prefixes)

    def covers(self, path: Any) -> bool:
        if self.prefixes is None:
            return True
        raw = path if isinstance(path, str) else "/"
        # Covered when the resolved path is, and also when the raw one is: a
        # router matching raw prefixes (Starlette's Mount...) sends "/api/.."
        # to the API, which must then not go unauthenticated.
        return any(self._under(candidate, p) for candidate in (_normal_path(raw), raw)
                   for p in self.prefixes)

    @staticmethod
    def _under(path: str, prefix: str) -> bool:
        return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _authenticator(authenticator: Any, options: Dict[str, Any]) -> CertificateAuthenticator:
    if isinstance(authenticator, CertificateAuthenticator):
        if options:
            raise TypeError("options go to CertificateAuthenticator, not with one given: "
                            + ", ".join(sorted(options)))
        return authenticator
    return CertificateAuthenticator(authenticator, **options)  # a Validator


_StartResponse = Callable[..., Any]
_WsgiApp = Callable[[Dict[str, Any], _StartResponse], Iterable[bytes]]


class WsgiMiddleware:
    """WSGI middleware: ``environ["cps.practitioner"]`` and ``environ["cps.validation"]``.

    :param app: the WSGI application.
    :param authenticator: a :class:`CertificateAuthenticator`, or a validator
        (then ``options`` are the authenticator's: ``trusted_proxies``, ``header``...).
    :param required: refuse requests without a certificate (401). ``False``:
        a request without one reaches the application with the practitioner
        ``None`` (and ``environ["cps.refusal"]``); a certificate that is offered
        and refused, or a header from an untrusted address, is still refused.
    :param paths: authenticate only under these path prefixes of ``PATH_INFO``
        (ASGI: ``path``): ``"/api"`` covers ``/api`` and ``/api/...``, after
        resolving ``.``, ``..`` and ``//``; other paths
        reach the application with the practitioner ``None``. ``None``: all.
    """

    def __init__(self, app: _WsgiApp, authenticator: Any, *, required: bool = True,
                 paths: Optional[Iterable[str]] = None, **options: Any) -> None:
        self.app = app
        self.authenticator = _authenticator(authenticator, options)
        self.required = required
        self.paths = _Paths(paths)

    def __call__(self, environ: Dict[str, Any], start_response: _StartResponse
                 ) -> Iterable[bytes]:
        """Authenticate, then call the application or answer the refusal."""
        result: Optional[ClientCertificate] = None
        refusal: Optional[ClientCertificateRefused] = None
        if self.paths.covers(environ.get("PATH_INFO", "/")):
            try:
                result = self.authenticator.authenticate_wsgi(environ)
            except ClientCertificateRefused as exc:
                if self.required or exc.reason != "no-certificate":
                    return _wsgi_refusal(exc, start_response)
                refusal = exc
        environ[PRACTITIONER_KEY] = result.practitioner if result else None
        environ[VALIDATION_KEY] = result.validation if result else None
        environ[CLIENT_CERTIFICATE_KEY] = result
        environ[REFUSAL_KEY] = refusal
        return self.app(environ, start_response)


def _headers(body: bytes) -> List[Tuple[str, str]]:
    return [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store")]


def _wsgi_refusal(refusal: ClientCertificateRefused, start_response: _StartResponse
                  ) -> List[bytes]:
    body = refusal_body(refusal)
    start_response(_STATUS_LINES.get(refusal.status, f"{refusal.status} Refused"),
                   _headers(body))
    return [body]


_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_AsgiApp = Callable[[MutableMapping[str, Any], _Receive, _Send], Awaitable[None]]


class AsgiMiddleware:
    """ASGI middleware: ``scope["cps.practitioner"]`` and ``scope["cps.validation"]``.

    ``http`` and ``websocket`` connections are authenticated (the scope is
    copied, not changed); ``lifespan`` passes through. A refused websocket is
    closed before it is accepted (code 1008; the server answers 403), or
    answered with the JSON body where the server offers the
    ``websocket.http.response`` extension.

    :param offload: validate in the event loop's default executor (asyncio),
        as an online validator may wait on a CRL server; under another loop
        (trio) validation runs inline.
    :param app, authenticator, required, paths, options: as :class:`WsgiMiddleware`.
    """

    def __init__(self, app: _AsgiApp, authenticator: Any, *, required: bool = True,
                 paths: Optional[Iterable[str]] = None, offload: bool = True,
                 **options: Any) -> None:
        self.app = app
        self.authenticator = _authenticator(authenticator, options)
        self.required = required
        self.paths = _Paths(paths)
        self.offload = offload

    async def _authenticate(self, scope: MutableMapping[str, Any]) -> ClientCertificate:
        if self.offload:
            import asyncio  # here: a WSGI application never loads the event loop machinery

            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not asyncio
                loop = None
            if loop is not None:
                return await loop.run_in_executor(None, self.authenticator.authenticate_asgi,
                                                  scope)
        return self.authenticator.authenticate_asgi(scope)

    async def __call__(self, scope: MutableMapping[str, Any], receive: _Receive,
                       send: _Send) -> None:
        """Authenticate, then call the application or answer the refusal."""
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        result: Optional[ClientCertificate] = None
        refusal: Optional[ClientCertificateRefused] = None
        if self.paths.covers(scope.get("path", "/")):
            try:
                result = await self._authenticate(scope)
            except ClientCertificateRefused as exc:
                if self.required or exc.reason != "no-certificate":
                    await _asgi_refusal(scope, exc, send)
                    return
                refusal = exc
        scope = dict(scope)
        scope[PRACTITIONER_KEY] = result.practitioner if result else None
        scope[VALIDATION_KEY] = result.validation if result else None
        scope[CLIENT_CERTIFICATE_KEY] = result
        scope[REFUSAL_KEY] = refusal
        await self.app(scope, receive, send)


async def _asgi_refusal(scope: MutableMapping[str, Any], refusal: ClientCertificateRefused,
                        send: _Send) -> None:
    body = refusal_body(refusal)
    headers = [(k.lower().encode("ascii"), v.encode("ascii")) for k, v in _headers(body)]
    if scope.get("type") == "http":
        await send({"type": "http.response.start", "status": refusal.status,
                    "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": refusal.status,
                    "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008,
                    "reason": refusal.reason})
