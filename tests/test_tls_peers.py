"""The TLS peers of cps.testing.tlspeers are real servers, configured as they claim.

Python's ssl module is the client, with the test PKI's card authentication
key as a software key (no card here); ``openssl s_client`` where Python cannot
say what it needs (the CertificateRequest's signature algorithms, a client
restricted to PKCS#1 v1.5).
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cps.testing.tlspeers import (
    PKCS1_SIGALGS,
    PSS_SIGALGS,
    EchoUpstream,
    Nginx,
    OpensslServer,
    TlsPeer,
)

PEM = serialization.Encoding.PEM


@pytest.fixture(scope="module")
def medecin(cps_pki):
    return cps_pki.issue_card("cps3-medecin")


@pytest.fixture(scope="module")
def client_files(medecin, tmp_path_factory) -> tuple[Path, Path]:
    """(certificate file: leaf then intermediate, key file) of the card's authentication pair."""
    base = tmp_path_factory.mktemp("client")
    cert, key = base / "auth.pem", base / "auth.key"
    cert.write_bytes(medecin.auth_cert.public_bytes(PEM) + medecin.chain[0].public_bytes(PEM))
    key.write_bytes(medecin.auth_key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key.chmod(0o600)
    return cert, key


def context(peer: TlsPeer, client_files=None, *,
            maximum_version: Optional[ssl.TLSVersion] = None,
            minimum_version: Optional[ssl.TLSVersion] = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(peer.root_pem))
    if client_files is not None:
        ctx.load_cert_chain(*client_files)
    if maximum_version is not None:
        ctx.maximum_version = maximum_version
    if minimum_version is not None:
        ctx.minimum_version = minimum_version
    return ctx


@dataclass
class Connection:
    version: Optional[str]
    session: Optional[ssl.SSLSession]
    session_reused: bool


def get(peer: TlsPeer, ctx: ssl.SSLContext, path: str = "/",
        session: Optional[ssl.SSLSession] = None) -> tuple[str, Connection]:
    """One HTTP/1.0 GET over a fresh connection; (the whole answer, what TLS said)."""
    with socket.create_connection(peer.address, timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            tls.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            return data.decode("utf-8", "replace"), Connection(
                tls.version(), tls.session, tls.session_reused)


def body(answer: str) -> str:
    return answer.split("\r\n\r\n", 1)[1]


def requested_sigalgs(peer: TlsPeer, client_files, *, client_sigalgs: Optional[str] = None
                      ) -> subprocess.CompletedProcess[str]:
    """openssl s_client over TLS 1.2, optionally restricted to ``client_sigalgs``."""
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{peer.port}",
               "-servername", "localhost", "-CAfile", str(peer.root_pem), "-tls1_2", "-ign_eof",
               "-cert", str(client_files[0]), "-key", str(client_files[1])]
    if client_sigalgs:
        command += ["-sigalgs", client_sigalgs]
    return subprocess.run(command, input="GET /whoami-raw HTTP/1.0\r\n\r\n",
                          capture_output=True, text=True, timeout=30)


# -- openssl s_server ---------------------------------------------------------------------

def test_s_server_handshake_with_the_card_certificate_on_tls12(cps_openssl_server, medecin,
                                                               client_files):
    server = cps_openssl_server()
    assert server.url == f"https://localhost:{server.port}/"
    page, tls = get(server, context(server, client_files))
    assert tls.version == "TLSv1.2"
    assert "Protocol  : TLSv1.2" in page
    # s_server -www prints the client certificate it verified
    assert "Client certificate" in page
    assert medecin.auth_cert.public_bytes(PEM).decode() in page.replace("\r\n", "\n")
    log = server.read_log()
    assert "verify return:1" in log and "CN = 810100123453" in log


def test_s_server_requires_a_client_certificate(cps_openssl_server, client_files):
    server = cps_openssl_server()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(server, context(server))
    optional = cps_openssl_server(require_client_cert=False)
    page, _ = get(optional, context(optional))
    assert "Protocol  : TLSv1.2" in page and "Client certificate" not in page


def test_s_server_refuses_a_card_of_a_ca_it_does_not_trust(cps_openssl_server, cps_pki,
                                                           client_files):
    server = cps_openssl_server([cps_pki.ca("ELEMENTAIRE").cert,
                                 cps_pki.ca("ELEMENTAIRE PERSONNES").cert])
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(server, context(server, client_files))
    server.wait_for_log("unable to get local issuer certificate")


def test_s_server_resumes_a_session_id_without_a_new_certificate_verify(cps_openssl_server,
                                                                        client_files):
    server = cps_openssl_server()
    ctx = context(server, client_files)
    page, first = get(server, ctx)
    assert not first.session_reused and "Reused" not in page
    session = first.session
    assert session is not None and not session.has_ticket     # -no_ticket: a session ID
    page, second = get(server, ctx, session=session)
    assert second.session_reused
    assert "Reused, TLSv1.2" in page
    # the client certificate was verified once: the resumed handshake had no
    # Certificate / CertificateVerify (the card would not be asked again)
    assert server.read_log().count("depth=0 ") == 1
    assert "Client certificate" in page          # the session remembers who it was


def test_tls13_only_s_server_refuses_a_tls12_client(cps_openssl_server, client_files):
    server = cps_openssl_server(versions="1.3")
    with pytest.raises(ssl.SSLError, match="(?i)protocol version|unsupported protocol"):
        get(server, context(server, client_files, maximum_version=ssl.TLSVersion.TLSv1_2))
    # a TLS 1.3 client is welcome: the default client_sigalgs offer PSS there
    page, tls = get(server, context(server, client_files))
    assert tls.version == "TLSv1.3" and "Protocol  : TLSv1.3" in page


def test_tls12_only_s_server_refuses_a_tls13_client(cps_openssl_server, client_files):
    server = cps_openssl_server(versions="1.2")
    with pytest.raises(ssl.SSLError):
        get(server, context(server, client_files, minimum_version=ssl.TLSVersion.TLSv1_3))


def test_a_pkcs1_only_list_leaves_tls13_unusable(cps_openssl_server, client_files):
    # What AUTO avoids: OpenSSL cannot write a TLS 1.3 CertificateRequest from it.
    server = cps_openssl_server(versions="1.3", client_sigalgs=PKCS1_SIGALGS)
    with pytest.raises(ssl.SSLError, match="(?i)internal error"):
        get(server, context(server, client_files))
    server.wait_for_log("no suitable signature algorithm")


# -- both servers: what the CertificateRequest offers ----------------------------------------

@pytest.fixture(params=["s_server", "nginx"])
def start_peer(request, cps_openssl_server, cps_nginx):
    return cps_openssl_server if request.param == "s_server" else cps_nginx


@pytest.mark.parametrize("sigalgs, shown", [
    (PKCS1_SIGALGS, "RSA+SHA256:RSA+SHA384:RSA+SHA512"),
    (PSS_SIGALGS, "RSA-PSS+SHA256:RSA-PSS+SHA384:RSA-PSS+SHA512"),
])
def test_the_certificate_request_offers_the_configured_sigalgs(start_peer, client_files,
                                                               sigalgs, shown):
    # for nginx 1.22, this is ssl_conf_command ClientSignatureAlgorithms at work
    peer = start_peer(client_sigalgs=sigalgs)
    out = requested_sigalgs(peer, client_files)
    assert f"Requested Signature Algorithms: {shown}\n" in out.stdout


def test_a_pss_only_server_refuses_a_client_that_cannot_sign_pss(start_peer, client_files):
    # s_client -sigalgs RSA+SHA256 stands for a client that signs PKCS#1 v1.5 only
    # (a CPS3 card). With nothing in common it sends no certificate at all:
    # s_server (-Verify) ends the handshake, nginx answers 400.
    accepting = start_peer(client_sigalgs=PKCS1_SIGALGS)
    ok = requested_sigalgs(accepting, client_files, client_sigalgs="RSA+SHA256")
    assert ok.returncode == 0 and "810100123453" in ok.stdout
    refusing = start_peer(client_sigalgs=PSS_SIGALGS)
    out = requested_sigalgs(refusing, client_files, client_sigalgs="RSA+SHA256")
    assert "Shared Requested Signature Algorithms" not in out.stdout
    if isinstance(refusing, OpensslServer):
        assert out.returncode != 0 and "alert handshake failure" in out.stderr
        refusing.wait_for_log("peer did not return a certificate")
    else:
        assert "400 No required SSL certificate was sent" in out.stdout


# -- nginx ----------------------------------------------------------------------------------

def test_nginx_passes_the_escaped_certificate_to_the_upstream(cps_nginx, medecin,
                                                              client_files):
    with EchoUpstream() as upstream:
        server: Nginx = cps_nginx(upstream=upstream.address)
        answer, tls = get(server, context(server, client_files), "/dossier?x=1")
        assert answer.startswith("HTTP/1.1 200")
        echoed = json.loads(body(answer))
    method, path, headers = upstream.requests[-1]
    assert (method, path) == ("GET", "/dossier?x=1") and headers == echoed
    pem = urllib.parse.unquote(headers["X-SSL-Client-Cert"]).encode()
    assert x509.load_pem_x509_certificate(pem) == medecin.auth_cert
    assert headers["X-SSL-Client-Verify"] == "SUCCESS"
    assert "CN=810100123453" in headers["X-SSL-Client-S-DN"]


def test_nginx_whoami_raw_reports_the_protocol_and_resumption(cps_nginx, client_files):
    server = cps_nginx()
    ctx = context(server, client_files)
    answer, first = get(server, ctx, "/whoami-raw")
    dn, protocol, reused = body(answer).splitlines()
    assert re.search(r"(^|[+,])CN=810100123453([+,]|$)", dn)
    assert (protocol, reused) == ("TLSv1.2", ".")
    assert first.session is not None and not first.session.has_ticket
    answer, second = get(server, ctx, "/whoami-raw", session=first.session)
    assert second.session_reused
    assert body(answer).splitlines() == [dn, "TLSv1.2", "r"]


def test_nginx_verify_client(cps_nginx, client_files):
    required = cps_nginx()
    answer, _ = get(required, context(required), "/whoami-raw")
    assert answer.startswith("HTTP/1.1 400") and "No required SSL certificate" in answer
    optional = cps_nginx(verify_client="optional")
    answer, _ = get(optional, context(optional), "/whoami-raw")
    assert answer.startswith("HTTP/1.1 200") and body(answer).splitlines() == ["", "TLSv1.2", "."]


def test_nginx_refuses_a_card_of_a_ca_it_does_not_trust(cps_nginx, cps_pki, client_files):
    server = cps_nginx([cps_pki.ca("ELEMENTAIRE").cert, cps_pki.ca("ELEMENTAIRE PERSONNES").cert])
    answer, _ = get(server, context(server, client_files), "/whoami-raw")
    assert answer.startswith("HTTP/1.1 400") and "The SSL certificate error" in answer
    server.wait_for_log("client SSL certificate verify error")


def test_nginx_protocols(cps_nginx, client_files):
    server = cps_nginx(protocols="TLSv1.3")
    with pytest.raises(ssl.SSLError):
        get(server, context(server, client_files, maximum_version=ssl.TLSVersion.TLSv1_2))
    answer, tls = get(server, context(server, client_files), "/whoami-raw")
    assert tls.version == "TLSv1.3" and body(answer).splitlines()[1] == "TLSv1.3"


def test_peers_stop_and_their_temporary_directory_goes(cps_tls_server, cps_pki):
    with OpensslServer(cps_tls_server, cps_pki.anchors()) as server:
        directory, port = server.directory, server.port
        assert server.running and (directory / "s_server.log").exists()
    assert not server.running and not directory.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
