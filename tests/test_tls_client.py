"""cps.tls, the client: TLS 1.2 authenticated by the card, against real peers.

The card is the in-process emulator (its journal shows every APDU: how many
signatures the card made, and that nothing was signed for a server that
failed its checks); the peers are ``openssl s_server`` started on 127.0.0.1
(cps.testing.tlspeers). The PKCS#11 backend is SoftHSM2 holding the same keys.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding
from tls_helpers import card, pin_commands, signatures, trust  # noqa: F401 - fixtures

import cps
from cps import errors
from cps.tls import CardHTTPAdapter, CardSSLError, ServerTrust, TlsSettings, connect
from cps.tls.client import SessionCache


def read_all(conn: Any) -> bytes:
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk


def get(conn: Any) -> str:
    conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
    return read_all(conn).decode("latin-1")


# -- the handshake ---------------------------------------------------------------------

def test_card_signs_once_and_the_session_resumes(card: Any, cps_emulated_card: Any,
                                                 cps_openssl_server: Any, trust: ServerTrust,
                                                 cps_pki: Any) -> None:
    server = cps_openssl_server()
    sessions = SessionCache()
    with connect(card, "localhost", server.port, trust=trust, sessions=sessions) as first:
        page = get(first)
    assert first.info.version == "TLS 1.2" and not first.info.resumed
    assert first.info.signature_scheme == "rsa_pkcs1_sha256"
    assert first.info.client_certificate_requested
    assert first.info.server.subject.startswith("CN=localhost")
    assert "New, TLSv1.2" in page
    # s_server printed the client certificate it verified: the card's
    serial = card.certificate().serial_number
    assert "Client certificate" in page
    assert f"{serial:032x}"[:8] in page.replace(":", "").lower()
    assert signatures(cps_emulated_card) == 1

    for _ in range(3):
        with connect(card, "localhost", server.port, trust=trust, sessions=sessions) as again:
            page = get(again)
        assert again.info.resumed and again.info.signature_scheme is None
        assert again.info.server.subject == first.info.server.subject
        assert "Reused, TLSv1.2" in page
    assert signatures(cps_emulated_card) == 1, "a resumed session costs no card signature"

    # a session is never resumed under other trust anchors
    other = ServerTrust([cps_tls_server_root(cps_pki), *trust.anchors], name="wider")
    with connect(card, "localhost", server.port, trust=other, sessions=sessions) as third:
        assert not third.info.resumed
    assert signatures(cps_emulated_card) == 2


def cps_tls_server_root(pki: Any) -> Any:
    return pki.ca("FORT").cert


def test_the_signature_is_pkcs1_and_verifies_with_the_card_certificate(
        card: Any, cps_emulated_card: Any, cps_openssl_server: Any, trust: ServerTrust) -> None:
    # s_server -Verify with -verify_return_error refuses a bad CertificateVerify:
    # a page served at all proves the signature verified under the card's key.
    server = cps_openssl_server(client_sigalgs="RSA+SHA512:RSA+SHA384")
    with connect(card, "localhost", server.port, trust=trust, sessions=SessionCache()) as conn:
        page = get(conn)
    assert conn.info.signature_scheme == "rsa_pkcs1_sha384"  # ours first among the offered
    assert "TLSv1.2" in page


def test_server_not_asking_for_a_certificate(card: Any, cps_emulated_card: Any,
                                            cps_tls_server: Any, trust: ServerTrust,
                                            tmp_path: Path) -> None:
    # Python's own TLS server, which asks for no client certificate
    paths = cps_tls_server.write(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths["server.pem"], paths["server.key"])

    class Hello(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with context.wrap_socket(self.request, server_side=True) as tls:
                tls.recv(4096)
                tls.sendall(b"HTTP/1.0 200 OK\r\n\r\nhello")

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Hello) as srv:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        with connect(card, "localhost", srv.server_address[1], trust=trust,
                     sessions=SessionCache()) as conn:
            page = get(conn)
        srv.shutdown()
    assert page.endswith("hello")
    assert not conn.info.client_certificate_requested and conn.info.signature_scheme is None
    assert signatures(cps_emulated_card) == 0


# -- refusals: typed, bounded, nothing signed, no PIN try --------------------------------

def refused(card: Any, emu: Any, port: int, trust: ServerTrust, host: str = "localhost",
            **kwargs: Any) -> errors.TlsError:
    before = card.pin_status().tries_left
    emu.journal = []
    started = time.monotonic()
    with pytest.raises(errors.TlsError) as caught:
        connect(card, host, port, trust=trust, sessions=SessionCache(),
                settings=TlsSettings(timeout=10), **kwargs)
    assert time.monotonic() - started < 10
    assert signatures(emu) == 0, "the card signed for a connection that failed"
    assert pin_commands(emu) == 0
    assert card.pin_status().tries_left == before
    return caught.value


def test_tls13_only_server(card: Any, cps_emulated_card: Any, cps_openssl_server: Any,
                           trust: ServerTrust) -> None:
    server = cps_openssl_server(versions="1.3")
    error = refused(card, cps_emulated_card, server.port, trust)
    assert error.reason == "protocol-version" and "TLS 1.3" in str(error)


def test_pss_only_server(card: Any, cps_emulated_card: Any, cps_openssl_server: Any,
                         trust: ServerTrust) -> None:
    server = cps_openssl_server(client_sigalgs="rsa_pss_rsae_sha256:rsa_pss_rsae_sha384")
    error = refused(card, cps_emulated_card, server.port, trust)
    assert error.reason == "no-signature-scheme"


def test_untrusted_server(card: Any, cps_emulated_card: Any, cps_openssl_server: Any,
                          cps_pki: Any) -> None:
    server = cps_openssl_server()
    # the server's chain ends at TEST STANDARD; trust only TEST FORT
    error = refused(card, cps_emulated_card, server.port, ServerTrust([cps_pki.ca("FORT").cert]))
    assert isinstance(error, errors.ServerCertificateError)
    assert error.reason == "server-certificate" and error.host == "localhost"


def test_misnamed_server(card: Any, cps_emulated_card: Any, cps_openssl_server: Any,
                         cps_pki: Any) -> None:
    other = cps_pki.issue_server(("service.example",))
    server = cps_openssl_server(credentials=other)
    error = refused(card, cps_emulated_card, server.port, ServerTrust([other.root]))
    assert isinstance(error, errors.ServerCertificateError)
    assert error.reason == "server-name" and "service.example" not in error.host


def test_expired_server(card: Any, cps_emulated_card: Any, cps_openssl_server: Any,
                        cps_pki: Any) -> None:
    old = cps_pki.issue_server(("localhost",), expired=True)
    server = cps_openssl_server(credentials=old)
    error = refused(card, cps_emulated_card, server.port, ServerTrust([old.root]))
    assert error.reason == "server-certificate"


def test_not_a_tls_server_and_a_silent_one(card: Any, cps_emulated_card: Any,
                                           trust: ServerTrust) -> None:
    class Junk(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(4096)
            if self.server.mode == "junk":  # type: ignore[attr-defined]
                self.request.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + b"x" * 5000)
            else:
                time.sleep(3)

    for mode in ("junk", "silent"):
        with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Junk) as srv:
            srv.mode = mode  # type: ignore[attr-defined]
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            before = card.pin_status().tries_left
            cps_emulated_card.journal = []
            started = time.monotonic()
            with pytest.raises(errors.TlsError) as caught:
                connect(card, "localhost", srv.server_address[1], trust=trust,
                        sessions=SessionCache(), settings=TlsSettings(timeout=1))
            assert time.monotonic() - started < 5
            assert signatures(cps_emulated_card) == 0
            assert card.pin_status().tries_left == before
            assert caught.value.reason == ("timeout" if mode == "silent" else "handshake")
            srv.shutdown()


def test_pin_not_verified_is_the_cards_typed_refusal(cps_emulated_card: Any,
                                                     cps_openssl_server: Any,
                                                     trust: ServerTrust) -> None:
    server = cps_openssl_server()
    with cps.open_card(connection=cps_emulated_card.connection()) as card:
        before = card.pin_status().tries_left
        with pytest.raises(errors.SecurityStatusNotSatisfied):
            connect(card, "localhost", server.port, trust=trust, sessions=SessionCache())
        assert card.pin_status().tries_left == before


def test_settings_refuse_what_the_card_cannot_do() -> None:
    with pytest.raises(ValueError):
        TlsSettings(hashes=("sha1",)).check()
    with pytest.raises(ValueError):
        TlsSettings(ciphers=("aes128",)).check()
    with pytest.raises(ValueError):
        TlsSettings(timeout=0).check()


# -- the PKCS#11 backend -----------------------------------------------------------------

def test_pkcs11_backend(cps_softhsm_token: Any, cps_emulated_card: Any,
                        cps_openssl_server: Any, trust: ServerTrust) -> None:
    server = cps_openssl_server()
    cps_softhsm_token.get_token()  # points this process's SoftHSM at the token
    with cps.open_card(backend="pkcs11", module=cps_softhsm_token.module) as card:
        card.verify_pin(cps_emulated_card.pin)
        with connect(card, "localhost", server.port, trust=trust,
                     sessions=SessionCache()) as conn:
            page = get(conn)
    assert conn.info.signature_scheme == "rsa_pkcs1_sha256"
    assert "New, TLSv1.2" in page


# -- requests ----------------------------------------------------------------------------

@pytest.fixture
def session(card: Any) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.mount("https://", CardHTTPAdapter(card))
        yield s


def test_requests_series_costs_one_signature(session: requests.Session, cps_emulated_card: Any,
                                             cps_openssl_server: Any, tmp_path: Path,
                                             cps_tls_server: Any) -> None:
    server = cps_openssl_server()
    bundle = tmp_path / "root.pem"
    bundle.write_bytes(cps_tls_server.root.public_bytes(Encoding.PEM))
    for _ in range(5):
        # s_server -www closes after each answer: every request is a new
        # connection, all but the first a resumed session
        response = session.get(f"https://localhost:{server.port}/", verify=str(bundle))
        assert response.status_code == 200 and "TLSv1.2" in response.text
    assert signatures(cps_emulated_card) == 1
    assert response.cps_tls.resumed  # type: ignore[attr-defined]


def test_requests_verify_directory_and_refusals(session: requests.Session,
                                                cps_emulated_card: Any, cps_openssl_server: Any,
                                                tmp_path: Path, cps_tls_server: Any,
                                                cps_pki: Any) -> None:
    server = cps_openssl_server()
    url = f"https://localhost:{server.port}/"
    ca_dir = tmp_path / "cas"
    ca_dir.mkdir()
    (ca_dir / "README").write_text("not a certificate")
    (ca_dir / "root.der").write_bytes(cps_tls_server.root.public_bytes(Encoding.DER))
    assert session.get(url, verify=str(ca_dir)).status_code == 200

    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(cps_pki.ca("FORT").cert.public_bytes(Encoding.PEM))
    cps_emulated_card.journal = []
    with pytest.raises(requests.exceptions.SSLError) as caught:
        session.get(url, verify=str(wrong))
    assert isinstance(caught.value, CardSSLError)
    assert caught.value.reason == "server-certificate"
    assert isinstance(caught.value.cps_error, errors.ServerCertificateError)
    assert signatures(cps_emulated_card) == 0

    with pytest.raises(ValueError, match="verify=False"):
        session.get(url, verify=False)
    with pytest.raises(ValueError, match="cert="):
        session.get(url, verify=str(ca_dir), cert="/tmp/x.pem")
    with pytest.raises(CardSSLError) as caught:
        session.get(url, verify=str(tmp_path / "missing.pem"))
    assert caught.value.reason == "trust-store"


def test_requests_card_removed_mid_session(session: requests.Session, cps_emulated_card: Any,
                                          cps_openssl_server: Any, cps_tls_server: Any,
                                          tmp_path: Path) -> None:
    server = cps_openssl_server()
    bundle = tmp_path / "root.pem"
    bundle.write_bytes(cps_tls_server.root.public_bytes(Encoding.PEM))
    url = f"https://localhost:{server.port}/"
    assert session.get(url, verify=str(bundle)).status_code == 200
    adapter = session.get_adapter(url)
    assert isinstance(adapter, CardHTTPAdapter) and len(adapter.sessions) == 1
    cps_emulated_card.remove()
    with pytest.raises(CardSSLError) as caught:
        session.get(url, verify=str(bundle))
    assert caught.value.reason == "card-removed"
    assert isinstance(caught.value.cps_error, errors.CardRemoved)
    assert len(adapter.sessions) == 0, "a removed card's sessions are forgotten"


def test_requests_through_a_connect_proxy(session: requests.Session, cps_emulated_card: Any,
                                          cps_openssl_server: Any, cps_tls_server: Any,
                                          tmp_path: Path) -> None:
    server = cps_openssl_server()
    seen: list[bytes] = []

    class Tunnel(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += self.request.recv(1)
            seen.append(head.split(b"\r\n")[0])
            host, port = head.split()[1].decode().rsplit(":", 1)
            upstream = socket.create_connection(("127.0.0.1", int(port)))
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

            def pump(a: socket.socket, b: socket.socket) -> None:
                try:
                    while data := a.recv(65536):
                        b.sendall(data)
                except OSError:
                    pass
                finally:
                    b.close()

            threading.Thread(target=pump, args=(upstream, self.request), daemon=True).start()
            pump(self.request, upstream)

    bundle = tmp_path / "root.pem"
    bundle.write_bytes(cps_tls_server.root.public_bytes(Encoding.PEM))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tunnel) as proxy:
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
        response = session.get(f"https://localhost:{server.port}/", verify=str(bundle),
                               proxies={"https": proxy_url})
        proxy.shutdown()
    assert response.status_code == 200
    assert seen == [f"CONNECT localhost:{server.port} HTTP/1.1".encode()]
