"""Real TLS servers asking for a client certificate: ``openssl s_server`` and nginx.

.. warning::
   TEST-ONLY: throw-away keys, 127.0.0.1 only, no hardening.

A CPS card logs its holder in to web services by TLS client authentication.
These start the servers such a client meets, on a free port of 127.0.0.1,
each in a directory of its own (configuration, keys, logs), as context
managers::

    server = pki.issue_server()                     # localhost, 127.0.0.1
    client_ca = pki.anchors() + list(pki.intermediates.values())
    with OpensslServer(server, client_ca) as peer:
        peer.url          # https://localhost:<port>/
        peer.root_pem     # the root a client trusts (--cacert)
        peer.read_log()   # what s_server printed

    with EchoUpstream() as upstream, \
            Nginx(server, client_ca, upstream=upstream.address) as nginx:
        ...               # / proxied with X-SSL-Client-Cert; /whoami-raw answers itself
        upstream.requests[-1]   # (method, path, headers) nginx sent

The pytest plugin wraps them: ``cps_tls_server``, ``cps_openssl_server``,
``cps_nginx`` (:mod:`cps.testing.plugin`).

``client_ca`` is what the server trusts to verify client certificates: give
the roots *and* the intermediates (a client may send its leaf alone). Its
subjects are also the CA names the server's CertificateRequest lists.

Both keep TLS 1.2 sessions in a server-side cache and issue no session
tickets by default, so a client that offers its saved session ID resumes
without a new CertificateVerify (the card is not asked to sign again).

``client_sigalgs`` is what the CertificateRequest offers (OpenSSL's
``ClientSignatureAlgorithms``): ``"RSA+SHA256:..."`` is PKCS#1 v1.5 only,
which TLS 1.3 forbids for CertificateVerify; ``"rsa_pss_rsae_sha256:..."``
is PSS only, which a CPS3 card cannot do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, TYPE_CHECKING, List, Literal, Optional, Sequence, TypeVar, Union

if TYPE_CHECKING:
    from cryptography import x509

    from cps.emulator.pki import ServerCredentials

__all__ = ["AUTO", "EchoUpstream", "Nginx", "OpensslServer", "PKCS1_SIGALGS", "PSS_SIGALGS",
           "TlsPeer", "TlsPeerError"]

#: ClientSignatureAlgorithms of PKCS#1 v1.5 only (what a CPS3 card signs)
PKCS1_SIGALGS = "RSA+SHA256:RSA+SHA384:RSA+SHA512"
#: ClientSignatureAlgorithms of RSASSA-PSS only (rsaEncryption keys)
PSS_SIGALGS = "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512"
#: the ``client_sigalgs`` default: :data:`PKCS1_SIGALGS` when only TLS 1.2 is on,
#: else :data:`PSS_SIGALGS` then :data:`PKCS1_SIGALGS` (OpenSSL cannot even
#: write a TLS 1.3 CertificateRequest from a PKCS#1-only list: every 1.3
#: handshake would end in an internal_error alert)
AUTO = "auto"

Versions = Literal["1.2", "1.3", "1.2+1.3"]
VerifyClient = Literal["on", "optional", "optional_no_ca"]


class TlsPeerError(RuntimeError):
    """A TLS peer is missing, or did not start."""


class _PortTaken(Exception):
    """The port chosen was taken before the peer could listen on it."""


_Peer = TypeVar("_Peer", bound="TlsPeer")


class TlsPeer:
    """What the peers share: a directory, a port, one process, its log.

    :param directory: a directory of its own (created when missing); ``None``: a
        new temporary directory, removed at :meth:`stop` (logs included).
    :param start_timeout: seconds to wait for the port to accept connections.
    """

    #: the log file's name in the directory
    log_name = "server.log"
    #: how a test names this peer in messages
    kind = "TLS peer"

    def __init__(self, directory: Union[str, Path, None], start_timeout: float = 20.0) -> None:
        self._own_directory = directory is None
        if directory is None:
            directory = tempfile.mkdtemp(prefix=f"cps-{self.kind.replace(' ', '-')}-")
        self.directory = Path(directory)
        self.start_timeout = start_timeout
        self.port = 0
        self._process: Optional[subprocess.Popen[bytes]] = None

    # -- what tests read ---------------------------------------------------------------
    @property
    def url(self) -> str:
        """``https://localhost:<port>/`` (valid once started)."""
        return f"https://localhost:{self.port}/"

    @property
    def address(self) -> tuple[str, int]:
        """``("127.0.0.1", port)``."""
        return ("127.0.0.1", self.port)

    @property
    def log_path(self) -> Path:
        """The peer's log (s_server's output, nginx's error log)."""
        return self.directory / self.log_name

    def read_log(self) -> str:
        """The log so far ("" before it exists)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        """The log once it contains ``text`` (a peer may write a handshake's
        outcome just after the client has seen it).

        :raises TlsPeerError: not there after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            log = self.read_log()
            if text in log:
                return log
            if time.monotonic() >= deadline:
                raise TlsPeerError(f"{text!r} not in the {self.kind} log after {timeout:g} s:"
                                   f"\n{log[-1500:]}")
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- process -------------------------------------------------------------------------
    def _command(self) -> List[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write configuration and keys; ``self.port`` is already chosen."""

    def _output(self) -> Optional[IO[bytes]]:
        """Where the process's stdout and stderr go (None: to /dev/null)."""
        return self.log_path.open("ab")

    def start(self: _Peer) -> _Peer:
        """Start the peer and wait until it accepts connections.

        :raises TlsPeerError: the program is missing, exited, or did not listen in time.
        """
        if self._process is not None:
            raise TlsPeerError(f"{self.kind} already started")
        self.directory.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            try:
                self._launch()
                return self
            except _PortTaken:
                if attempt == 2:
                    raise TlsPeerError(f"{self.kind}: no free port after 3 tries") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self) -> None:
        self.port = _free_port()     # free a moment ago: another process may take it
        self._prepare()
        command = self._command()
        out = self._output()
        try:
            self._process = subprocess.Popen(
                command, cwd=self.directory, stdin=subprocess.DEVNULL,
                stdout=out if out is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT if out is not None else subprocess.DEVNULL,
                start_new_session=True)     # its own process group: stop() ends all of it
        finally:
            if out is not None:
                out.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                log = self.read_log()
                if "Address already in use" in log[-1500:]:
                    raise _PortTaken()
                raise TlsPeerError(f"{self.kind} exited ({code}): {log[-1500:]}")
            if self._ready():
                return
            time.sleep(0.05)
        self.stop()
        raise TlsPeerError(f"{self.kind} did not accept connections within "
                           f"{self.start_timeout:g} s: {self.read_log()[-1500:]}")

    def _ready(self) -> bool:
        try:
            with socket.create_connection(self.address, timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)    # nginx: fast shutdown, workers too
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)   # the group start() created
                process.wait(timeout=10)
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self: _Peer) -> _Peer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- shared file writing ------------------------------------------------------------
    def _write_credentials(self, credentials: ServerCredentials,
                           client_ca: Sequence[x509.Certificate]) -> dict[str, Path]:
        """``server.pem`` (leaf then chain), ``server.key``, ``root.pem`` (what a
        client trusts), ``leaf.pem``, ``chain.pem`` and ``client-ca.pem``."""
        from cryptography.hazmat.primitives.serialization import Encoding

        if not client_ca:
            raise TlsPeerError("client_ca is empty: give the CAs client certificates chain to")
        paths = credentials.write(self.directory)
        paths["leaf.pem"] = self.directory / "leaf.pem"
        paths["leaf.pem"].write_bytes(credentials.certificate.public_bytes(Encoding.PEM))
        paths["chain.pem"] = self.directory / "chain.pem"
        paths["chain.pem"].write_bytes(b"".join(c.public_bytes(Encoding.PEM)
                                                for c in credentials.chain))
        paths["client-ca.pem"] = self.directory / "client-ca.pem"
        paths["client-ca.pem"].write_bytes(b"".join(c.public_bytes(Encoding.PEM)
                                                    for c in client_ca))
        return paths

    @property
    def root_pem(self) -> Path:
        """The PEM file of the root the server certificate chains to (``--cacert``)."""
        return self.directory / "root.pem"


class OpensslServer(TlsPeer):
    """``openssl s_server -www``: answers each request with an HTML status page
    (protocol, cipher, ``Reused session-id`` on resumption, the client's certificate).

    :param credentials: the server's certificate, key and chain
        (:meth:`cps.emulator.pki.TestPKI.issue_server`).
    :param client_ca: CAs that verify client certificates (roots and intermediates).
    :param versions: ``"1.2"``, ``"1.3"`` or ``"1.2+1.3"``.
    :param client_sigalgs: the CertificateRequest's signature algorithms
        (``-client_sigalgs``); :data:`AUTO`: PKCS#1 v1.5 for TLS 1.2 only,
        PSS first when TLS 1.3 is on; ``None``: OpenSSL's default list.
    :param require_client_cert: ``-Verify`` (a client without a certificate
        fails) rather than ``-verify`` (asked, optional).
    :param session_tickets: issue session tickets (off by default: session IDs
        and s_server's internal cache).
    :param extra_args: more s_server options.
    :param directory: see :class:`TlsPeer`.
    """

    log_name = "s_server.log"
    kind = "s_server"

    def __init__(self, credentials: ServerCredentials, client_ca: Sequence[x509.Certificate],
                 *, versions: Versions = "1.2",
                 client_sigalgs: Optional[str] = AUTO,
                 require_client_cert: bool = True, session_tickets: bool = False,
                 extra_args: Sequence[str] = (),
                 directory: Union[str, Path, None] = None, start_timeout: float = 20.0) -> None:
        if versions not in ("1.2", "1.3", "1.2+1.3"):
            raise ValueError(f"versions: 1.2, 1.3 or 1.2+1.3, not {versions!r}")
        super().__init__(directory, start_timeout)
        self.credentials = credentials
        self.client_ca = list(client_ca)
        self.versions = versions
        self.client_sigalgs = _sigalgs(client_sigalgs, tls13=versions != "1.2")
        self.require_client_cert = require_client_cert
        self.session_tickets = session_tickets
        self.extra_args = list(extra_args)

    def _prepare(self) -> None:
        self._paths = self._write_credentials(self.credentials, self.client_ca)

    def _ready(self) -> bool:
        # s_server prints (and flushes) ACCEPT once listening; a probe connection
        # would leave a failed handshake in the log.
        return "\nACCEPT\n" in "\n" + self.read_log()

    def _command(self) -> List[str]:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise TlsPeerError("openssl is missing (Debian package openssl)")
        paths = self._paths
        command = [
            openssl, "s_server", "-accept", f"127.0.0.1:{self.port}",
            "-cert", str(paths["leaf.pem"]), "-key", str(paths["server.key"]),
            "-CAfile", str(paths["client-ca.pem"]),
            "-Verify" if self.require_client_cert else "-verify", "2",
            "-verify_return_error", "-www",
        ]
        if self.credentials.chain:
            command += ["-cert_chain", str(paths["chain.pem"])]
        command += {"1.2": ["-tls1_2"], "1.3": ["-tls1_3"],
                    "1.2+1.3": ["-min_protocol", "TLSv1.2",
                                "-max_protocol", "TLSv1.3"]}[self.versions]
        if self.client_sigalgs is not None:
            command += ["-client_sigalgs", self.client_sigalgs]
        if not self.session_tickets:
            command.append("-no_ticket")
        return command + self.extra_args


class Nginx(TlsPeer):
    """Debian's nginx in the foreground: an HTTPS server asking for client certificates.

    ``/`` is proxied to ``upstream`` with ``X-SSL-Client-Cert``
    (``$ssl_client_escaped_cert``: the client's PEM, URL-escaped, empty
    without one), ``X-SSL-Client-Verify`` (``SUCCESS``, ``NONE``,
    ``FAILED:<reason>``) and ``X-SSL-Client-S-DN``; ``/whoami-raw``
    answers itself, three lines: ``$ssl_client_s_dn``, ``$ssl_protocol``,
    ``$ssl_session_reused`` (``r`` on a resumed session, ``.`` otherwise).

    :param credentials: the server's certificate, key and chain.
    :param client_ca: ``ssl_client_certificate`` (roots and intermediates).
    :param upstream: ``host:port`` (or an ``http://`` URL) behind ``/``;
        ``None``: ``/`` answers like ``/whoami-raw``.
    :param protocols: ``ssl_protocols``, e.g. ``"TLSv1.2"`` or ``"TLSv1.2 TLSv1.3"``.
    :param client_sigalgs: ``ssl_conf_command ClientSignatureAlgorithms``;
        :data:`AUTO` as for :class:`OpensslServer`; ``None`` leaves OpenSSL's default.
    :param verify_client: ``ssl_verify_client``.
    :param extra_server: more directives for the ``server`` block.
    :param directory: see :class:`TlsPeer`.
    """

    log_name = "error.log"
    kind = "nginx"

    def __init__(self, credentials: ServerCredentials, client_ca: Sequence[x509.Certificate],
                 *, upstream: Optional[str] = None, protocols: str = "TLSv1.2",
                 client_sigalgs: Optional[str] = AUTO,
                 verify_client: VerifyClient = "on", extra_server: str = "",
                 directory: Union[str, Path, None] = None, start_timeout: float = 20.0) -> None:
        if verify_client not in ("on", "optional", "optional_no_ca"):
            raise ValueError(f"verify_client: on, optional or optional_no_ca, "
                             f"not {verify_client!r}")
        super().__init__(directory, start_timeout)
        self.credentials = credentials
        self.client_ca = list(client_ca)
        self.upstream = upstream
        self.protocols = protocols
        self.client_sigalgs = _sigalgs(client_sigalgs, tls13="TLSv1.3" in protocols)
        self.verify_client = verify_client
        self.extra_server = extra_server

    @property
    def config_path(self) -> Path:
        return self.directory / "nginx.conf"

    @property
    def access_log_path(self) -> Path:
        return self.directory / "access.log"

    def _prepare(self) -> None:
        paths = self._write_credentials(self.credentials, self.client_ca)
        temp = self.directory / "temp"
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (temp / name).mkdir(parents=True, exist_ok=True)
        d = self.directory
        whoami = ('default_type text/plain; '
                  'return 200 "$ssl_client_s_dn\\n$ssl_protocol\\n$ssl_session_reused\\n";')
        if self.upstream is None:
            root = whoami
        else:
            target = self.upstream if "://" in self.upstream else f"http://{self.upstream}"
            root = (f"proxy_pass {target};\n"
                    "            proxy_set_header Host $host;\n"
                    "            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;\n"
                    "            proxy_set_header X-SSL-Client-Verify $ssl_client_verify;\n"
                    "            proxy_set_header X-SSL-Client-S-DN $ssl_client_s_dn;")
        sigalgs = ("" if self.client_sigalgs is None else
                   f"        ssl_conf_command ClientSignatureAlgorithms {self.client_sigalgs};\n")
        # As root, nginx's workers would run as nobody and could not read a 0700
        # temporary directory; as anyone else, "user" is ignored with a warning.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.config_path.write_text(
            f"{user}"
            "worker_processes 1;\n"
            f"pid {d / 'nginx.pid'};\n"
            f"error_log {self.log_path} info;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"    access_log {self.access_log_path};\n"
            f"    client_body_temp_path {temp / 'body'};\n"
            f"    proxy_temp_path {temp / 'proxy'};\n"
            f"    fastcgi_temp_path {temp / 'fastcgi'};\n"
            f"    uwsgi_temp_path {temp / 'uwsgi'};\n"
            f"    scgi_temp_path {temp / 'scgi'};\n"
            "    server {\n"
            f"        listen 127.0.0.1:{self.port} ssl;\n"
            "        server_name localhost;\n"
            f"        ssl_certificate {paths['server.pem']};\n"
            f"        ssl_certificate_key {paths['server.key']};\n"
            f"        ssl_protocols {self.protocols};\n"
            f"{sigalgs}"
            f"        ssl_client_certificate {paths['client-ca.pem']};\n"
            f"        ssl_verify_client {self.verify_client};\n"
            "        ssl_verify_depth 2;\n"
            "        ssl_session_cache shared:SSL:1m;\n"
            "        ssl_session_tickets off;\n"
            f"{self.extra_server}\n"
            f"        location = /whoami-raw {{ {whoami} }}\n"
            "        location / {\n"
            f"            {root}\n"
            "        }\n"
            "    }\n"
            "}\n")

    def _ready(self) -> bool:
        # the master listens before it starts its workers; a probe connection
        # would leave "client closed connection while SSL handshaking" in the log
        return "start worker process " in self.read_log()

    def _command(self) -> List[str]:
        nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
        if nginx is None:
            raise TlsPeerError("nginx is missing (Debian package nginx)")
        # -e: the error log before the configuration is read (Debian's default is stderr)
        return [nginx, "-p", f"{self.directory}/", "-c", str(self.config_path),
                "-e", str(self.log_path), "-g", "daemon off;"]

    def _output(self) -> Optional[IO[bytes]]:
        return (self.directory / "nginx.out").open("ab")

    def read_log(self) -> str:
        """The error log, then anything nginx printed on its standard streams."""
        out = self.directory / "nginx.out"
        extra = out.read_text(errors="replace") if out.exists() else ""
        return super().read_log() + extra

    def read_access_log(self) -> str:
        try:
            return self.access_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class EchoUpstream:
    """A plain-HTTP upstream on 127.0.0.1 (standard library, one thread) that answers
    every GET and POST with the request's headers as a JSON object, and keeps them
    (``requests``: ``(method, path, headers)``), for what a proxy such as
    :class:`Nginx` passes on::

        with EchoUpstream() as upstream, Nginx(server, cas, upstream=upstream.address):
            ...
            method, path, headers = upstream.requests[-1]
    """

    def __init__(self) -> None:
        self.requests: List[tuple[str, str, dict[str, str]]] = []
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise TlsPeerError("EchoUpstream not started")
        port: int = self._server.server_address[1]
        return port

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, what :class:`Nginx` takes as ``upstream``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> EchoUpstream:
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _echo(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                headers = {k: v for k, v in self.headers.items()}
                requests.append((self.command, self.path, headers))
                body = json.dumps(headers).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _echo

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="echo-upstream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> EchoUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _sigalgs(value: Optional[str], tls13: bool) -> Optional[str]:
    if value != AUTO:
        return value
    return f"{PSS_SIGALGS}:{PKCS1_SIGALGS}" if tls13 else PKCS1_SIGALGS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]     # (host, port) for an AF_INET socket
        return port
