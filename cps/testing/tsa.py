"""A real RFC 3161 Time-Stamping Authority over HTTP on 127.0.0.1, for tests.

.. warning::
   TEST-ONLY. It signs with the test PKI's TSA key (:meth:`TestPKI.issue_tsa`,
   a key derived from a public seed), stamps whatever anyone sends, and has
   switches that make it misbehave on purpose.

``POST /tsa`` with ``Content-Type: application/timestamp-query`` and a DER
TimeStampReq answers ``application/timestamp-reply``: a TimeStampResp made by
:meth:`TestPKI.timestamp_response` (RFC 3161 3.4, "Time-Stamp Protocol via
HTTP"). Other methods get ``405``, other paths ``404``, other content types
``415``, bodies over 64 KiB ``413``.

A server of its own rather than a ``/tsa`` path of
:class:`cps.testing.pkiserver.PkiServer`: a TSA is a service of its own in
production too (not the CA's publication point), its clock (the genTime) is
not the CRL publisher's, and its faults (a wrong nonce, a rejection) make no
sense for CRLs; tests then switch one without disturbing the other.

::

    with TsaServer(pki) as tsa:
        token = request_timestamp(tsa.url, digest)
        tsa.clock = lambda: last_year            # tokens "in the past"
        tsa.faults.wrong_nonce = True            # a validly signed token, another nonce

The pytest fixture ``cps_tsa`` yields a started server for ``cps_pki``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from cps.testing.pkiserver import RequestRecord
from cps.testing.serving import BackgroundServer, QuietHttpServer

if TYPE_CHECKING:
    from cps.emulator.pki import TestPKI

__all__ = ["TsaFaults", "TsaServer"]

log = logging.getLogger(__name__)

#: Largest request body read (a TimeStampReq is about a hundred bytes).
MAX_REQUEST_BODY = 64 * 1024


@dataclass
class TsaFaults:
    """Switches that make the TSA misbehave. Change them at any time.

    :ivar down: close every connection without answering.
    :ivar slow: seconds to wait before answering (after reading the request).
    :ivar trickle: send the answer 16 bytes at a time, this many seconds apart
        (defeats per-read timeouts: only an overall deadline stops it).
    :ivar garbage: answer random bytes (as many as the real answer) instead.
    :ivar http_status: answer this HTTP status with an empty body instead.
    :ivar oversize: answer this many bytes of junk instead (streamed).
    :ivar wrong_nonce: the token echoes another nonce than the request's (and
        one when the request had none); it is otherwise valid and signed.
    :ivar wrong_imprint: the token timestamps another digest (validly signed).
    :ivar reject: answer a rejection with this PKIFailureInfo bit
        (``"system_failure"``, ``"time_not_available"``...; see
        :func:`cps.emulator.pki.timestamp_rejection`).
    """

    down: bool = False
    slow: float = 0.0
    trickle: float = 0.0
    garbage: bool = False
    http_status: int | None = None
    oversize: int = 0
    wrong_nonce: bool = False
    wrong_imprint: bool = False
    reject: str | None = None

    def reset(self) -> None:
        """Turn every fault off."""
        for f in fields(self):
            setattr(self, f.name, f.default)


class _HttpServer(QuietHttpServer):
    owner: TsaServer


class TsaServer(BackgroundServer[RequestRecord]):
    """Threaded HTTP server answering RFC 3161 requests with a :class:`TestPKI`'s TSA.

    :param pki: the PKI whose :meth:`~cps.emulator.pki.TestPKI.issue_tsa`
        certificate signs the tokens.
    :param clock: returns the genTime of the next tokens (aware); default the
        system time. Also settable later (:attr:`clock`), e.g. to make
        timestamps "in the past".
    :param host: address to listen on.
    :param port: port; ``0`` picks a free one.
    :param ca_name: the CA of the TSA certificate.
    """

    def __init__(self, pki: TestPKI, *, clock: Callable[[], datetime] | None = None,
                 host: str = "127.0.0.1", port: int = 0,
                 ca_name: str = "STANDARD ORGANISATIONS") -> None:
        super().__init__()
        self.pki = pki
        self.ca_name = ca_name
        #: genTime of the tokens to come
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(timezone.utc))
        #: misbehaviour switches
        self.faults = TsaFaults()
        #: replaces the PKI's answer: ``hook(request_der) -> response_der`` (e.g. an
        #: ``openssl ts -reply``); ``wrong_nonce``/``wrong_imprint`` alter the request
        #: it gets, ``reject`` and the transport faults still apply
        self.hook: Callable[[bytes], bytes] | None = None
        self._httpd = _HttpServer((host, port), _Handler)
        self._httpd.owner = self

    @property
    def url(self) -> str:
        """The TSA's URL: ``http://host:port/tsa``."""
        return f"http://{self.host}:{self.port}/tsa"

    @property
    def certificate(self) -> Any:
        """The TSA certificate (cryptography) that signs the tokens."""
        return self.pki.issue_tsa(self.ca_name)[0]

    thread_name = "tsa-server"

    def _before_start(self) -> None:
        self.pki.issue_tsa(self.ca_name)  # the key is derived once, before any request

    def answer(self, request_der: bytes) -> bytes:
        """The TimeStampResp the server sends for ``request_der``: :attr:`hook`'s or
        the PKI's, with the faults that change the token applied (transport
        faults are not)."""
        faults = self.faults
        if faults.reject is not None:
            from cps.emulator.pki import timestamp_rejection

            return timestamp_rejection(faults.reject, "test TSA told to refuse")
        if faults.wrong_nonce or faults.wrong_imprint:
            # the TSA stamps another request than the one sent: a valid, signed token
            request_der = _tampered(request_der, nonce=faults.wrong_nonce,
                                    imprint=faults.wrong_imprint)
        if self.hook is not None:
            return self.hook(request_der)
        return self.pki.timestamp_response(request_der, at=self.clock(), ca_name=self.ca_name)

def _tampered(request_der: bytes, *, nonce: bool, imprint: bool) -> bytes:
    """The request with another nonce and/or imprint (undecodable: unchanged)."""
    from asn1crypto import tsp

    try:
        request = tsp.TimeStampReq.load(request_der)
        if nonce:
            old = request["nonce"].native
            request["nonce"] = (old or 0) + 1
        if imprint:
            digest = bytearray(request["message_imprint"]["hashed_message"].native)
            digest[0] ^= 0xFF
            request["message_imprint"] = {
                "hash_algorithm": request["message_imprint"]["hash_algorithm"],
                "hashed_message": bytes(digest)}
        tampered: bytes = request.dump(force=True)
        return tampered
    except (ValueError, TypeError, KeyError, IndexError):
        return request_der


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "cps-test-tsa/1"
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        owner = self.server.owner
        faults = owner.faults
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BODY:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"", b"")
            return
        body = self.rfile.read(length)
        if faults.down:
            self._record(0, body)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if faults.slow and owner._sleep(faults.slow):
            self._record(0, body)
            return
        if faults.http_status is not None:
            self._reply(faults.http_status, b"", body)
            return
        if self.path.split("?")[0] != "/tsa":
            self._reply(HTTPStatus.NOT_FOUND, b"", body)
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/timestamp-query":
            self._reply(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, b"", body)
            return
        self._reply(HTTPStatus.OK, owner.answer(body), body)

    def do_GET(self) -> None:
        self._reply(HTTPStatus.METHOD_NOT_ALLOWED, b"", b"")

    do_HEAD = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _reply(self, status: int, data: bytes, request_body: bytes) -> None:
        owner = self.server.owner
        faults = owner.faults
        ok = status == HTTPStatus.OK
        size = faults.oversize if ok and faults.oversize else len(data)
        self.send_response(status)
        self.send_header("Content-Type",
                         "application/timestamp-reply" if ok else "text/plain")
        self.send_header("Content-Length", str(size))
        self._record(int(status), request_body)  # before the client can see the answer
        self.end_headers()
        try:
            if ok and faults.oversize:
                owner._write_junk(self.wfile, faults.oversize)
            else:
                owner._write(self.wfile, os.urandom(len(data)) if ok and faults.garbage
                             else data, faults.trickle)
        except OSError:
            pass  # the client gave up (size cap, deadline): expected in fault tests

    def _record(self, status: int, body: bytes) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.owner._log(RequestRecord(self.command, self.path, headers, body, status))
