"""cps.tls against hostile and broken peers: the attacker review of issue 16
(docs/security.md BUG-45 to BUG-56), each a regression test.

Peers are real sockets on 127.0.0.1: Python TLS servers, ``openssl s_server``
and a relay that alters or trickles the server's records.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding
from tls_helpers import card, signatures, trust  # noqa: F401 - fixtures

import cps
from cps import errors
from cps.tls import CardHTTPAdapter, ServerTrust, TlsSettings, connect
from cps.tls.adapter import ResponseTooLarge
from cps.tls.client import SessionCache, TlsRecordError, normalise_host
from cps.tls.middleware import _Paths
from cps.tls.server_trust import ServerTrust as Trust


class Relay:
    """TCP relay to ``upstream``; ``alter(n, record)`` changes server records,
    ``trickle`` sends them a byte at a time with that pause."""

    def __init__(self, upstream: int, alter: Optional[Callable[[int, bytes], bytes]] = None,
                 trickle: float = 0.0) -> None:
        self.upstream, self.alter, self.trickle = upstream, alter, trickle
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._up, args=(client, server), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client), daemon=True).start()

    @staticmethod
    def _up(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass

    def _down(self, a: socket.socket, b: socket.socket) -> None:
        buf, n = b"", 0
        try:
            while data := a.recv(65536):
                buf += data
                while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[3:5], "big"):
                    size = 5 + int.from_bytes(buf[3:5], "big")
                    record, buf = buf[:size], buf[size:]
                    if self.alter:
                        record = self.alter(n, record)
                    n += 1
                    if self.trickle:
                        for i in range(len(record)):
                            b.sendall(record[i:i + 1])
                            time.sleep(self.trickle)
                    else:
                        b.sendall(record)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


def python_server(credentials: Any, tmp: Path, handler: Callable[[ssl.SSLSocket], None],
                  *, client_cas: Optional[Path] = None) -> int:
    """A Python TLS 1.2 server calling ``handler`` per connection; its port."""
    paths = credentials.write(tmp)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(paths["server.pem"], paths["server.key"])
    if client_cas is not None:
        context.load_verify_locations(cafile=str(client_cas))
        context.verify_mode = ssl.CERT_OPTIONAL
    listener = socket.create_server(("127.0.0.1", 0))

    def loop() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return

            def run(raw: socket.socket = raw) -> None:
                try:
                    with context.wrap_socket(raw, server_side=True) as tls:
                        handler(tls)
                except (OSError, ssl.SSLError):
                    pass

            threading.Thread(target=run, daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return int(listener.getsockname()[1])


def read_head(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


# BUG-45 ----------------------------------------------------------------------------------
def test_no_resumption_for_a_removed_card_or_another_card_session(
        cps_emulated_card: Any, cps_openssl_server: Any, trust: ServerTrust) -> None:
    """A session is the practitioner's presence: not resumed once the card left,
    nor by another Card object (a reopened card signs anew), nor after logout."""
    emu = cps_emulated_card
    server = cps_openssl_server()
    sessions = SessionCache()
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        connect(card, "localhost", server.port, trust=trust, sessions=sessions).close()
        emu.remove()
        with pytest.raises(errors.CardRemoved):
            connect(card, "localhost", server.port, trust=trust, sessions=sessions)
        assert len(sessions) == 0
    emu.insert()
    with cps.open_card(connection=emu.connection()) as other:
        emu.journal = []
        # never verified: a resumption would authenticate it for free
        with pytest.raises(errors.SecurityStatusNotSatisfied):
            connect(other, "localhost", server.port, trust=trust, sessions=sessions)
        other.verify_pin(emu.pin)
        connect(other, "localhost", server.port, trust=trust, sessions=sessions).close()
        again = connect(other, "localhost", server.port, trust=trust, sessions=sessions)
        again.close()
        assert again.info.resumed
        other.logout()                  # forgets the PIN: nothing kept outlives it
        with pytest.raises(errors.SecurityStatusNotSatisfied):
            connect(other, "localhost", server.port, trust=trust, sessions=sessions)


# BUG-46 ----------------------------------------------------------------------------------
def test_a_broken_record_after_the_handshake_is_typed(card: Any, cps_openssl_server: Any,
                                                      trust: ServerTrust) -> None:
    server = cps_openssl_server()

    def flip(n: int, record: bytes) -> bytes:
        return record[:-1] + bytes([record[-1] ^ 1]) if record[0] == 0x17 else record

    relay = Relay(server.port, alter=flip)
    try:
        conn = connect(card, "localhost", relay.port, trust=trust, sessions=SessionCache())
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        with pytest.raises(TlsRecordError) as caught:
            conn.recv(1000)
        assert isinstance(caught.value, errors.TlsError) and isinstance(caught.value, OSError)
        assert caught.value.reason == "record"
        conn.close()
        with requests.Session() as session:
            session.mount("https://", CardHTTPAdapter(card, trust=trust))
            with pytest.raises(requests.exceptions.RequestException):
                session.get(f"https://localhost:{relay.port}/")
    finally:
        relay.close()


# BUG-47 ----------------------------------------------------------------------------------
def test_a_post_is_never_sent_twice(card: Any, cps_tls_server: Any, trust: ServerTrust,
                                    tmp_path: Path) -> None:
    """A kept connection dropped after the server read a POST: requests' own
    rule (no retry), where a GET would be sent once more."""
    seen: list[bytes] = []

    def handler(tls: ssl.SSLSocket) -> None:
        for n in range(2):
            head = read_head(tls)
            if not head:
                return
            body = head.split(b"\r\n\r\n", 1)[1]
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) \
                if b"Content-Length: " in head else 0
            while len(body) < length:
                body += tls.recv(4096)
            seen.append(head.split(b" ", 2)[0] + b" " + body)
            if n == 1:
                return                    # acted on it, then the connection drops
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    port = python_server(cps_tls_server, tmp_path, handler)
    with requests.Session() as session:
        session.mount("https://", CardHTTPAdapter(card, trust=trust))
        url = f"https://localhost:{port}/"
        assert session.post(url, data=b"first").text == "ok"
        with pytest.raises(requests.exceptions.ConnectionError):
            session.post(url, data=b"transfer 100 EUR")
    assert seen == [b"POST first", b"POST transfer 100 EUR"]


def test_a_connection_the_server_closed_while_idle_is_not_reused(
        card: Any, cps_tls_server: Any, trust: ServerTrust, tmp_path: Path) -> None:
    connections: list[int] = []

    def handler(tls: ssl.SSLSocket) -> None:
        connections.append(1)
        read_head(tls)
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(0.1)                   # then closes: the client's pool holds it

    port = python_server(cps_tls_server, tmp_path, handler)
    with requests.Session() as session:
        session.mount("https://", CardHTTPAdapter(card, trust=trust))
        url = f"https://localhost:{port}/"
        assert session.post(url, data=b"a").text == "ok"
        time.sleep(0.5)
        assert session.post(url, data=b"b").text == "ok"   # a new (resumed) connection
    assert len(connections) == 2


# BUG-48 ----------------------------------------------------------------------------------
def test_the_whole_handshake_is_bounded(card: Any, cps_emulated_card: Any,
                                        cps_openssl_server: Any, trust: ServerTrust) -> None:
    server = cps_openssl_server()
    relay = Relay(server.port, trickle=0.05)      # a byte every 50 ms: each read is quick
    try:
        started = time.monotonic()
        with pytest.raises(errors.TlsError) as caught:
            connect(card, "localhost", relay.port, trust=trust, sessions=SessionCache(),
                    settings=TlsSettings(timeout=1))
        assert time.monotonic() - started < 3
        assert caught.value.reason == "timeout"
        assert signatures(cps_emulated_card) == 0
    finally:
        relay.close()


def test_the_requests_timeout_reaches_the_handshake(card: Any, trust: ServerTrust) -> None:
    silent = socket.create_server(("127.0.0.1", 0))      # accepts, never answers
    try:
        with requests.Session() as session:
            session.mount("https://", CardHTTPAdapter(card, trust=trust))
            started = time.monotonic()
            with pytest.raises(requests.exceptions.ConnectTimeout):
                session.get(f"https://localhost:{silent.getsockname()[1]}/", timeout=1)
            assert time.monotonic() - started < 3
    finally:
        silent.close()


def test_a_trickling_proxy_is_cut_off(card: Any, trust: ServerTrust) -> None:
    def trickle(conn: socket.socket) -> None:
        try:
            conn.recv(4096)
            for byte in b"HTTP/1.1 200 Connection established\r\n" * 100:
                conn.sendall(bytes([byte]))
                time.sleep(0.05)
        except OSError:
            pass

    proxy = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                conn, _ = proxy.accept()
            except OSError:
                return
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        with requests.Session() as session:
            session.mount("https://", CardHTTPAdapter(card, trust=trust))
            started = time.monotonic()
            with pytest.raises(requests.exceptions.ProxyError):
                session.get("https://localhost:1/", timeout=1, proxies={
                    "https": f"http://127.0.0.1:{proxy.getsockname()[1]}"})
            assert time.monotonic() - started < 3
    finally:
        proxy.close()


# BUG-49 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["endless", "announced", "gzip-bomb"])
def test_response_memory_is_bounded(card: Any, cps_tls_server: Any, trust: ServerTrust,
                                    tmp_path: Path, shape: str) -> None:
    import gzip

    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))

    def handler(tls: ssl.SSLSocket) -> None:
        read_head(tls)
        if shape == "endless":
            tls.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
            for _ in range(1000):
                tls.sendall(chunk)
        elif shape == "announced":
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\nxx")
        else:
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d"
                        b"\r\n\r\n%s" % (len(bomb), bomb))

    port = python_server(cps_tls_server, tmp_path, handler)
    with requests.Session() as session:
        session.mount("https://", CardHTTPAdapter(card, trust=trust, max_body=1024 * 1024))
        with pytest.raises(ResponseTooLarge) as caught:
            session.get(f"https://localhost:{port}/", timeout=10)
    assert caught.value.limit == 1024 * 1024
    assert isinstance(caught.value, requests.exceptions.RequestException)


# BUG-51 ----------------------------------------------------------------------------------
def test_a_ca_file_replaced_in_place_is_read_again(cps_pki: Any, tmp_path: Path) -> None:
    first, second = cps_pki.ca("FORT").cert, cps_pki.ca("STANDARD").cert
    directory = tmp_path / "cas"
    directory.mkdir()
    bundle = directory / "ca.pem"
    bundle.write_bytes(first.public_bytes(Encoding.PEM))
    stat = bundle.stat()
    assert Trust.from_verify(str(directory)).anchors == (first,)
    assert Trust.from_verify(str(bundle)).anchors == (first,)
    # swapped in place, its modification time set back: the inode and ctime tell
    replacement = tmp_path / "new.pem"
    replacement.write_bytes(second.public_bytes(Encoding.PEM))
    os.replace(replacement, bundle)
    os.utime(bundle, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert Trust.from_verify(str(bundle)).anchors == (second,)
    assert Trust.from_verify(str(directory)).anchors == (second,)


# BUG-52 ----------------------------------------------------------------------------------
def test_paths_cover_raw_prefixes_too() -> None:
    paths = _Paths(["/api"])
    for covered in ("/api", "/api/x", "/api/..", "/api/x/../../public", "/public/../api/x"):
        assert paths.covers(covered), covered
    assert not paths.covers("/public/x")


# BUG-53 ----------------------------------------------------------------------------------
def test_proxy_errors_are_proxy_errors(card: Any, trust: ServerTrust) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with requests.Session() as session:
        session.mount("https://", CardHTTPAdapter(card, trust=trust))
        for proxy in (f"http://127.0.0.1:{port}", "https://127.0.0.1:1"):
            with pytest.raises(requests.exceptions.ProxyError) as caught:
                session.get("https://localhost:1/", proxies={"https": proxy}, timeout=2)
            assert caught.value.request is not None


def test_connect_to_an_ipv6_target_is_bracketed(card: Any, trust: ServerTrust) -> None:
    heads: list[bytes] = []

    def refuse(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(1)
        heads.append(data)
        conn.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
        conn.close()

    proxy = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: refuse(proxy.accept()[0]), daemon=True).start()
    with requests.Session() as session:
        session.mount("https://", CardHTTPAdapter(card, trust=trust))
        with pytest.raises(requests.exceptions.ProxyError):
            session.get("https://[::1]:8443/", timeout=2,
                        proxies={"https": f"http://127.0.0.1:{proxy.getsockname()[1]}"})
    proxy.close()
    assert heads[0].startswith(b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n")


# BUG-54 ----------------------------------------------------------------------------------
def test_host_names_are_normalised_or_refused_typed(card: Any, cps_emulated_card: Any,
                                                    cps_openssl_server: Any,
                                                    trust: ServerTrust) -> None:
    assert normalise_host("LocalHost.") == "localhost"
    assert normalise_host("bücher.example") == "xn--bcher-kva.example"
    assert normalise_host("[::1]") == "::1"
    for bad in ("", "a b", "x/y", "a@b", "exa mple"):
        with pytest.raises(ValueError):
            normalise_host(bad)
    server = cps_openssl_server()
    with connect(card, "localhost.", server.port, trust=trust, sessions=SessionCache()) as c:
        assert c.info.address == f"localhost:{server.port}"
    cps_emulated_card.journal = []
    with pytest.raises(errors.ServerCertificateError) as caught:
        # the name resolves nowhere: the socket goes to 127.0.0.1 (as through a proxy)
        connect(card, "bücher.example", server.port, trust=trust, sessions=SessionCache(),
                sock=socket.create_connection(("127.0.0.1", server.port)))
    assert signatures(cps_emulated_card) == 0
    assert caught.value.reason == "server-name"    # valid, for localhost


# BUG-55 ----------------------------------------------------------------------------------
def test_a_partly_read_response_does_not_poison_the_pool(card: Any, cps_tls_server: Any,
                                                         trust: ServerTrust,
                                                         tmp_path: Path) -> None:
    def handler(tls: ssl.SSLSocket) -> None:
        for _ in range(3):
            if not read_head(tls):
                return
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 100)

    port = python_server(cps_tls_server, tmp_path, handler)
    with requests.Session() as session:
        session.mount("https://", CardHTTPAdapter(card, trust=trust))
        url = f"https://localhost:{port}/"
        first = session.get(url, stream=True)
        assert first.raw.read(10) == b"y" * 10
        first.raw.release_conn()                       # given back half read
        assert session.get(url).content == b"y" * 100


def test_wrong_types_are_caller_mistakes(card: Any, trust: ServerTrust) -> None:
    with pytest.raises(TypeError):
        connect(card, "localhost", 443, trust="/etc/ssl/certs")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        connect(card, "localhost", 0, trust=trust)
    with pytest.raises(ValueError):
        CardHTTPAdapter(card, max_body=-1)
    with pytest.raises(TypeError):
        CardHTTPAdapter(card, trust="/etc/ssl/certs")  # type: ignore[arg-type]


# BUG-56 ----------------------------------------------------------------------------------
def test_the_tls_wsgi_server_bounds_slow_clients(cps_tls_server: Any, cps_pki: Any,
                                                 tmp_path: Path) -> None:
    from cps.tls.wsgi_server import make_server

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    paths = cps_tls_server.write(tmp_path)
    cas = tmp_path / "cas.pem"
    cas.write_bytes(cps_pki.ca("FORT").cert.public_bytes(Encoding.PEM))
    server = make_server(app, "127.0.0.1", 0, certfile=paths["server.pem"],
                         keyfile=paths["server.key"], client_ca=cas, timeout=5, deadline=1,
                         max_connections=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    context = ssl.create_default_context(cafile=str(paths["root.pem"]))
    port = server.server_address[1]
    try:
        slow = context.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                                   server_hostname="localhost")
        started = time.monotonic()
        # a second client while the slow one holds the only slot: closed on arrival
        with socket.create_connection(("127.0.0.1", port), timeout=5) as other:
            assert other.recv(1) == b""
        with pytest.raises((OSError, ssl.SSLError)):
            for byte in b"GET / HTTP/1.0\r\nX-Slow: " + b"y" * 100:
                slow.sendall(bytes([byte]))
                time.sleep(0.05)
                if time.monotonic() - started > 4:
                    break
            data = slow.recv(100)
            if not data:
                raise OSError("closed by the server")
        assert time.monotonic() - started < 4
        slow.close()
    finally:
        server.shutdown()
        server.server_close()
