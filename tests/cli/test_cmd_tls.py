"""`cps tls get URL` through the installed `cps`, pcscd and a real TLS server."""

from __future__ import annotations

import re
from typing import Any, Iterator

import pytest
from cli_helpers import no_secret, write_cert

from cps.testing.tlspeers import OpensslServer

pytestmark = pytest.mark.pcsc


@pytest.fixture
def server(cps_pki: Any, tmp_path: Any) -> Iterator[OpensslServer]:
    cas = [*cps_pki.roots.values(), *cps_pki.intermediates.values()]
    with OpensslServer(cps_pki.issue_server(("localhost", "127.0.0.1")), cas,
                       directory=tmp_path / "s_server") as peer:
        yield peer


def test_tls_get_json(cli: Any, serve: Any, server: OpensslServer, cps_pki: Any,
                      tmp_path: Any) -> None:
    root = write_cert(tmp_path / "root.pem", cps_pki.issue_server().root)
    with serve("cps3-medecin") as emu:
        data = cli.json("tls", "get", f"https://localhost:{server.port}/", "-r", emu.reader,
                        "--ca", root, input=emu.pin + "\n")
    assert data["connected"] is True
    assert data["tls"] == {"version": "TLS 1.2", "cipher": data["tls"]["cipher"],
                           "signature_scheme": "rsa_pkcs1_sha256", "resumed": False,
                           "client_certificate_requested": True}
    assert data["server"]["subject"].startswith("CN=localhost")
    assert data["server"]["anchor"] == cps_pki.issue_server().root.subject.rfc4514_string()
    assert data["http"]["status"] == 200 and data["http"]["bytes"] > 0
    assert "TEST AC IGC-SANTE STANDARD ORGANISATIONS" in " ".join(data["server"]["chain"])


def test_tls_get_text_and_no_pin_anywhere(cli: Any, serve: Any, server: OpensslServer,
                                          cps_pki: Any, tmp_path: Any) -> None:
    root = write_cert(tmp_path / "root.pem", cps_pki.issue_server().root)
    with serve("cps3-medecin", pin="7391") as emu:
        out = cli("tls", "get", f"https://localhost:{server.port}/", "-r", emu.reader,
                  "--ca", root, input="7391\n")
    assert out.returncode == 0, out.stderr
    assert "TLS 1.2" in out.stdout and "rsa_pkcs1_sha256" in out.stdout
    assert "HTTP 200" in out.stdout
    # Numbers the run chose are not the PIN leaking: the server's port, the temporary
    # directory, the body's size and the time (the port was once 37391).
    texts = [re.sub(r"localhost:\d+|\(\d+ bytes, [\d.]+ ms\)", "",
                    t.replace(str(tmp_path), "")) for t in (out.stdout, out.stderr)]
    no_secret(texts, "7391")


def test_tls_get_refuses_a_plain_http_url_and_bad_options(cli: Any, serve: Any,
                                                          tmp_path: Any) -> None:
    with serve("cps3-medecin") as emu:
        out = cli("tls", "get", "http://localhost:1/", "-r", emu.reader, "--igc-sante",
                  input=emu.pin + "\n")
        assert out.returncode == 2 and "https" in out.stderr
        both = cli("tls", "get", "https://localhost:1/", "-r", emu.reader, "--igc-sante",
                   "--ca", str(tmp_path), input=emu.pin + "\n")
        assert both.returncode == 2


def test_server_controlled_text_cannot_drive_the_terminal(cli: Any, serve: Any, cps_pki: Any,
                                                          tmp_path: Any) -> None:
    """BUG-50: a certificate subject with ESC, BEL, CR, LF reaches stderr escaped."""
    import datetime as dt
    import socket
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(
        NameOID.COMMON_NAME, "localhost\x1b]0;pwned\x07\r\nConnected to bank OK")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "evil.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "evil.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "evil.pem", tmp_path / "evil.key")
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        try:
            raw, _ = listener.accept()
            with context.wrap_socket(raw, server_side=True):
                pass
        except (OSError, ssl.SSLError):
            pass

    threading.Thread(target=accept, daemon=True).start()
    other = write_cert(tmp_path / "other.pem", cps_pki.ca("FORT").cert)
    with serve("cps3-medecin") as emu:
        out = cli("tls", "get", f"https://localhost:{listener.getsockname()[1]}/",
                  "-r", emu.reader, "--ca", other, input=emu.pin + "\n")
    listener.close()
    assert out.returncode == 19, out.stderr
    for raw in ("\x1b", "\x07", "\r"):
        assert raw not in out.stderr
    assert "localhost\\x1b]0" in out.stderr      # escaped, visible
    assert len(out.stderr.strip().splitlines()[-1]) > 40  # one error line, the whole of it
