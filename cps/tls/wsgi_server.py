"""A small threaded HTTPS WSGI server that asks for a client certificate.

::

    from cps.tls.wsgi_server import make_server
    server = make_server(WsgiMiddleware(app, validator), "0.0.0.0", 8443,
                         certfile="server.pem", keyfile="server.key", client_ca="cas.pem")
    server.serve_forever()

Standard library only (:mod:`wsgiref`, :mod:`ssl`). The peer's certificate,
DER, is put in ``environ["cps.tls.peer_certificate"]``
(:data:`cps.tls.middleware.PEER_CERTIFICATE_KEY`), where
:class:`~cps.tls.middleware.WsgiMiddleware` reads it; the negotiated version
and cipher in ``SSL_PROTOCOL`` (``"TLSv1.3"``...) and ``SSL_CIPHER``, as
mod_ssl names them.

The TLS layer only proves that the client holds the key of a certificate
issued under ``client_ca`` (OpenSSL checks the chain, the dates and, for a
client, that the keyUsage allows digitalSignature: a signature-only card
certificate fails the handshake already). Revocation, the pinned anchors and
the authentication purpose are the middleware's :class:`cps.trust.Validator`'s.
Both client generations are served: TLS 1.3, whose CertificateVerify is
RSA-PSS (``rsa_pss_rsae_sha256``: a CPS4 card, ANS's reason for adding PSS),
and TLS 1.2 with PKCS#1 v1.5 signatures (``rsa_pkcs1_sha256``: a CPS3 card,
which cannot sign PSS, through a client that stays at TLS 1.2 such as
:mod:`cps.tls`). OpenSSL's defaults offer both in the CertificateRequest.

For production, put the application behind nginx or Apache and use their
certificate header (docs/tls.md); this server is for tests, demos and small
internal services.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
from socketserver import ThreadingMixIn
from typing import Any, Callable, Dict, Optional, Tuple, Union
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from .middleware import PEER_CERTIFICATE_KEY

__all__ = ["make_server", "TlsWsgiServer"]

_log = logging.getLogger("cps.tls.server")
_Path = Union[str, "os.PathLike[str]"]


class _Handler(WSGIRequestHandler):
    """wsgiref's handler, with the peer certificate and HTTPS in the environ."""

    def get_environ(self) -> Dict[str, Any]:
        environ = super().get_environ()
        environ["HTTPS"] = "on"  # wsgiref then sets wsgi.url_scheme to https
        connection = self.connection
        if isinstance(connection, ssl.SSLSocket):
            der = connection.getpeercert(binary_form=True)
            if der:
                environ[PEER_CERTIFICATE_KEY] = der
            # as mod_ssl names them: what was negotiated, for the application's logs
            # or policy ("TLSv1.3" for a CPS4 signing RSA-PSS, "TLSv1.2" for a CPS3)
            version = connection.version()
            if version:
                environ["SSL_PROTOCOL"] = version
            cipher = connection.cipher()
            if cipher:
                environ["SSL_CIPHER"] = cipher[0]
        return environ

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        _log.debug("%s - %s", self.address_string(), format % args)


class TlsWsgiServer(ThreadingMixIn, WSGIServer):
    """A thread per connection; the TLS handshake is done in that thread, with
    a time limit, so a slow or silent client never holds the accept loop.

    Bounded: at most ``max_connections`` connections at once (more are closed
    on arrival), each read waits ``timeout_seconds``, and a whole connection --
    handshake, request, answer -- lasts at most ``deadline_seconds``, so a
    client trickling its request a byte at a time is cut off.
    """

    daemon_threads = True
    context: ssl.SSLContext
    timeout_seconds: float = 10.0
    deadline_seconds: float = 60.0
    max_connections: int = 64
    _slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _log.warning("connection from %s refused: %d connections already",
                         client_address, self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def get_request(self) -> Tuple[Any, Any]:
        sock, address = self.socket.accept()
        sock.settimeout(self.timeout_seconds)  # the handshake and every read after it
        wrapped = self.context.wrap_socket(sock, server_side=True,
                                           do_handshake_on_connect=False)
        return wrapped, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        def cut() -> None:
            try:
                request.shutdown(socket.SHUT_RDWR)   # wakes the blocked read: it ends
            except OSError:
                pass

        timer = threading.Timer(self.deadline_seconds, cut)
        timer.daemon = True
        timer.start()
        try:
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                # A client without an acceptable certificate, a scanner, a timeout:
                # no HTTP exchange is possible, the connection is closed.
                _log.info("TLS handshake with %s failed: %s", client_address, exc)
                return
            super().finish_request(request, client_address)
        finally:
            timer.cancel()

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("error on the connection from %s", client_address, exc_info=True)


def server_context(*, certfile: _Path, keyfile: Optional[_Path], client_ca: _Path
                   ) -> ssl.SSLContext:
    """The server's :class:`ssl.SSLContext`: TLS 1.2 and 1.3, a client certificate
    asked for (``CERT_OPTIONAL``: a request without one reaches the middleware,
    which answers 401) and verified against ``client_ca``.

    The CertificateRequest's signature algorithms are OpenSSL's defaults, which
    hold RSA-PSS (TLS 1.3, CPS4) and PKCS#1 v1.5 (TLS 1.2, CPS3): tests/test_tls_pss.py
    logs in both ways on one server."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    context.load_verify_locations(cafile=os.fspath(client_ca))
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def make_server(app: Callable[..., Any], host: str, port: int, *, certfile: _Path,
                keyfile: Optional[_Path] = None, client_ca: _Path,
                timeout: float = 10.0, deadline: float = 60.0,
                max_connections: int = 64) -> TlsWsgiServer:
    """An HTTPS WSGI server on ``(host, port)`` (port 0: any free one, see
    ``server.server_address``); call ``serve_forever()`` (in a thread) and
    ``shutdown()``.

    :param app: the WSGI application, usually a :class:`~cps.tls.WsgiMiddleware`.
    :param certfile: the server's certificate (PEM, then its chain).
    :param keyfile: its private key (PEM), when not in ``certfile``.
    :param client_ca: the CAs client certificates are issued under (PEM file):
        the IGC-Santé roots and intermediates.
    :param timeout: seconds a connection may take for the handshake and for each read.
    :param deadline: seconds a whole connection may last.
    :param max_connections: connections served at once; more are closed on arrival.
    """
    if timeout <= 0 or deadline <= 0 or max_connections < 1:
        raise ValueError("timeout and deadline must be > 0, max_connections >= 1")
    context = server_context(certfile=certfile, keyfile=keyfile, client_ca=client_ca)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class _Server(TlsWsgiServer):
        address_family = family

    server = _Server((host, port), _Handler, bind_and_activate=False)
    server.context = context
    server.timeout_seconds = timeout
    server.deadline_seconds = deadline
    server.max_connections = max_connections
    server._slots = threading.BoundedSemaphore(max_connections)
    try:
        server.server_bind()
        server.server_activate()
    except BaseException:
        server.server_close()
        raise
    server.set_app(app)
    return server
