"""TLS client authentication by a CPS4 (TLS 1.3, RSA-PSS CertificateVerify) and a
CPS3 (TLS 1.2, PKCS#1 v1.5) on the same server: our Python TLS WSGI server, and
nginx configured as docs/tls.md says, with the middleware behind it.

The clients are peers we did not write -- curl and ``openssl s_client``, with
the test PKI's card authentication key as a software key (what a CPS4 signs
in TLS 1.3: ``rsa_pss_rsae_sha256``) -- and our own cps.tls client with the
emulated CPS3 card (TLS 1.2, PKCS#1 v1.5, INTERNAL AUTHENTICATE). ``-trace``
shows the signature scheme of the client's CertificateVerify; nginx's
``$ssl_protocol`` and the WSGI server's ``SSL_PROTOCOL`` show the version.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding
from tls_helpers import load_tls_app

import cps
from cps.testing.tlspeers import PKCS1_SIGALGS, PSS_SIGALGS
from cps.tls import CardHTTPAdapter, ServerTrust, WsgiMiddleware
from cps.tls.wsgi_server import make_server

pytestmark = pytest.mark.skipif(
    not (shutil.which("openssl") and shutil.which("curl")),
    reason="openssl and curl are installed by scripts/setup.sh")

#: the nginx ClientSignatureAlgorithms docs/tls.md gives for CPS3 and CPS4 together
BOTH_SIGALGS = ("rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:"
                "RSA+SHA256:RSA+SHA384:RSA+SHA512")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "tls.md"
REQUEST = "GET /whoami HTTP/1.0\r\nHost: localhost\r\n\r\n"


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def medecin(cps_pki: Any) -> Any:
    return cps_pki.issue_card("cps3-medecin")


@pytest.fixture(scope="module")
def files(medecin: Any, cps_tls_server: Any, cps_pki: Any,
          tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """The server's files (cps_tls_server), the client CAs, and the card's
    authentication pair as software files (leaf then intermediate, key)."""
    base = tmp_path_factory.mktemp("tls-pss")
    paths = cps_tls_server.write(base)
    paths["client-ca.pem"] = base / "client-ca.pem"
    paths["client-ca.pem"].write_bytes(b"".join(
        c.public_bytes(Encoding.PEM) for c in [*cps_pki.roots.values(),
                                               *cps_pki.intermediates.values()]))
    paths["client.pem"] = base / "client.pem"
    paths["client.pem"].write_bytes(medecin.auth_cert.public_bytes(Encoding.PEM)
                                    + medecin.chain[0].public_bytes(Encoding.PEM))
    paths["client.key"] = base / "client.key"
    paths["client.key"].touch(mode=0o600)
    paths["client.key"].write_bytes(medecin.auth_key.private_bytes(
        Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def whoami(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
    practitioner = environ["cps.practitioner"]
    body = json.dumps({"idnat": practitioner.idnat, "validated": practitioner.validated,
                       "source": environ["cps.client_certificate"].source,
                       "protocol": environ.get("SSL_PROTOCOL")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def python_server(files: Dict[str, Path], cps_pki: Any) -> Iterator[int]:
    """cps.tls.wsgi_server with the middleware: its port."""
    server = make_server(WsgiMiddleware(whoami, cps_pki.validator()), "127.0.0.1", 0,
                         certfile=files["server.pem"], keyfile=files["server.key"],
                         client_ca=files["client-ca.pem"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def app(cps_pki: Any) -> Iterator[Any]:
    """docs/examples/tls_app.py behind nginx (the certificate header from 127.0.0.1)."""
    server = load_tls_app().serve(cps_pki.validator(), trusted_proxies=("127.0.0.1",))
    yield server
    server.shutdown()
    server.server_close()


def s_client(port: int, files: Dict[str, Path], *options: str) -> str:
    """``openssl s_client -trace`` with the card's key as a software key; GET /whoami."""
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
         "-cert", str(files["client.pem"]), "-key", str(files["client.key"]),
         "-CAfile", str(files["root.pem"]), "-verify_return_error", "-trace", "-ign_eof",
         *options],
        input=REQUEST, capture_output=True, text=True, timeout=60)
    # the exit code is 1 when a server closes without close_notify after the answer
    # (wsgiref): what matters is in the transcript
    return done.stdout + done.stderr


def sent_certificate_verify(transcript: str) -> Optional[str]:
    """The signature scheme of the CertificateVerify this client sent (``-trace``)."""
    for record in re.split(r"\n(?=(?:Sent|Received) Record\n)", transcript):
        if record.startswith("Sent Record") and "CertificateVerify" in record:
            found = re.search(r"Signature Algorithm: (\S+)", record)
            return found.group(1) if found else None
    return None


def negotiated(transcript: str) -> Optional[str]:
    found = re.search(r"^New, (TLSv1\.[23]), Cipher", transcript, re.M)
    return found.group(1) if found else None


def body_of(transcript: str) -> Dict[str, Any]:
    found = re.search(r'\{"idnat".*?\}', transcript)
    assert found, transcript[-2000:]
    result: Dict[str, Any] = json.loads(found.group(0))
    return result


def curl(url: str, files: Dict[str, Path], *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", "-sS", "-v", "--cert", str(files["client.pem"]),
         "--key", str(files["client.key"]), "--cacert", str(files["root.pem"]), *options, url],
        capture_output=True, text=True, timeout=60)


def curl_version(done: subprocess.CompletedProcess) -> Optional[str]:
    found = re.search(r"SSL connection using (TLSv1\.[23])", done.stderr)
    return found.group(1) if found else None


@pytest.fixture
def cps3_session(cps_emulated_card: Any, cps_tls_server: Any) -> Iterator[requests.Session]:
    """Our client with the emulated CPS3 card (PKCS#1 v1.5 only), PIN verified."""
    with cps.open_card(connection=cps_emulated_card.connection()) as card:
        assert card.signature_paddings == {"pkcs1v15"}
        card.verify_pin(cps_emulated_card.pin)
        with requests.Session() as session:
            session.mount("https://", CardHTTPAdapter(
                card, trust=ServerTrust([cps_tls_server.root])))
            yield session


# ---------------------------------------------------------------- the Python server
def test_python_server_tls13_pss_client_is_identified(python_server, files, medecin):
    transcript = s_client(python_server, files, "-tls1_3")
    assert negotiated(transcript) == "TLSv1.3"
    assert sent_certificate_verify(transcript) == "rsa_pss_rsae_sha256"
    answer = body_of(transcript)
    assert answer == {"idnat": medecin.profile.holder.idnat, "validated": True,
                      "source": "tls", "protocol": "TLSv1.3"}


def test_python_server_curl_tls13(python_server, files, medecin):
    done = curl(f"https://localhost:{python_server}/whoami", files, "--tlsv1.3")
    assert done.returncode == 0, done.stderr
    assert curl_version(done) == "TLSv1.3"
    answer = json.loads(done.stdout)
    assert answer["idnat"] == medecin.profile.holder.idnat and answer["validated"]
    assert answer["protocol"] == "TLSv1.3"


def test_python_server_still_serves_tls12_pkcs1_clients(python_server, files, medecin,
                                                        cps3_session, cps_emulated_card):
    # an OpenSSL client restricted to what a CPS3 signs
    transcript = s_client(python_server, files, "-tls1_2", "-sigalgs", "RSA+SHA256")
    assert negotiated(transcript) == "TLSv1.2"
    assert sent_certificate_verify(transcript) == "rsa_pkcs1_sha256"
    assert body_of(transcript)["protocol"] == "TLSv1.2"
    # our client, the emulated CPS3 card signing (INTERNAL AUTHENTICATE)
    response = cps3_session.get(f"https://localhost:{python_server}/whoami")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["idnat"] == cps_emulated_card.profile.holder.idnat
    assert answer["protocol"] == "TLSv1.2" and answer["source"] == "tls"


# ---------------------------------------------------------------- nginx, as documented
def test_the_documented_nginx_configuration_is_the_tested_one():
    text = DOCS.read_text()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    assert f"ClientSignatureAlgorithms {BOTH_SIGALGS};" in text
    assert BOTH_SIGALGS == f"{PSS_SIGALGS}:{PKCS1_SIGALGS}"


@pytest.fixture
def nginx_both(cps_nginx: Any, app: Any) -> Any:
    return cps_nginx(upstream=f"127.0.0.1:{app.server_address[1]}",
                     protocols="TLSv1.2 TLSv1.3", client_sigalgs=BOTH_SIGALGS)


def test_nginx_tls13_pss_client_is_identified_by_the_middleware(nginx_both, files, medecin):
    done = curl(f"{nginx_both.url}whoami", files, "--tlsv1.3")
    assert done.returncode == 0, f"{done.stderr}\n{nginx_both.read_log()[-1500:]}"
    assert curl_version(done) == "TLSv1.3"
    answer = json.loads(done.stdout)
    assert answer["idnat"] == medecin.profile.holder.idnat
    assert answer["validated"] is True and answer["source"] == "proxy-header"
    raw = curl(f"{nginx_both.url}whoami-raw", files, "--tlsv1.3")
    assert raw.stdout.splitlines()[1] == "TLSv1.3"          # nginx's $ssl_protocol
    transcript = s_client(nginx_both.port, files, "-tls1_3")
    assert negotiated(transcript) == "TLSv1.3"
    assert sent_certificate_verify(transcript) == "rsa_pss_rsae_sha256"
    assert body_of(transcript)["idnat"] == medecin.profile.holder.idnat


def test_nginx_still_serves_cps3_clients(nginx_both, files, medecin, cps3_session,
                                         cps_emulated_card):
    response = cps3_session.get(f"{nginx_both.url}whoami")
    assert response.status_code == 200, response.text
    assert response.json()["idnat"] == cps_emulated_card.profile.holder.idnat
    raw = cps3_session.get(f"{nginx_both.url}whoami-raw").text.splitlines()
    assert raw[1] == "TLSv1.2"
    transcript = s_client(nginx_both.port, files, "-tls1_2", "-sigalgs", "RSA+SHA256")
    assert sent_certificate_verify(transcript) == "rsa_pkcs1_sha256"
    assert body_of(transcript)["idnat"] == medecin.profile.holder.idnat


def test_the_cps3_only_configuration_turns_a_tls13_client_away(cps_nginx, app, files):
    # why docs/tls.md changed: TLS 1.2 with PKCS#1 only, as before, has no room for
    # a client that speaks TLS 1.3 only
    old = cps_nginx(upstream=f"127.0.0.1:{app.server_address[1]}", protocols="TLSv1.2",
                    client_sigalgs=PKCS1_SIGALGS)
    done = curl(f"{old.url}whoami", files, "--tlsv1.3")
    assert done.returncode != 0
    assert curl_version(done) is None
    # and a TLS 1.2 client that signs RSA-PSS only is refused by its handshake too
    transcript = s_client(old.port, files, "-tls1_2", "-sigalgs", "rsa_pss_rsae_sha256")
    assert sent_certificate_verify(transcript) is None
    assert '"idnat"' not in transcript


# ---------------------------------------------------------------- end to end: the CPS4 token
def _engine() -> str:
    for arch in ("x86_64-linux-gnu", "aarch64-linux-gnu"):
        for name in ("pkcs11.so", "libpkcs11.so"):
            path = Path(f"/usr/lib/{arch}/engines-3/{name}")
            if path.exists():
                return str(path)
    pytest.fail("OpenSSL's pkcs11 engine is missing (Debian libengine-pkcs11-openssl)")


@pytest.fixture
def cps4_client(cps_softhsm_cps4: Any, cps_cps4_card: Any, tmp_path: Path) -> Dict[str, Any]:
    """OpenSSL's pkcs11 engine on the SoftHSM2 CPS4 token (RSA-PSS offered): a
    configuration file (0600, the PIN in it, on no command line), the key's URI,
    the certificate, the environment."""
    conf = tmp_path / "openssl-pkcs11.cnf"
    conf.touch(mode=0o600)
    conf.write_text(
        "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n"
        "[engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\n"
        f"engine_id = pkcs11\ndynamic_path = {_engine()}\n"
        f"MODULE_PATH = {cps_softhsm_cps4.module}\nPIN = {cps_cps4_card.pin}\ninit = 0\n")
    cert = tmp_path / "cps4-auth.pem"
    cert.write_bytes(cps_cps4_card.credentials.auth_cert.public_bytes(Encoding.PEM))
    label = cps_softhsm_cps4.token_label.replace(" ", "%20")
    return {"key": f"pkcs11:token={label};object=CPS_PRIV_AUT;type=private",
            "cert": cert,
            "env": cps_softhsm_cps4.env({**os.environ, "OPENSSL_CONF": str(conf)})}


@pytest.mark.parametrize("server", ["nginx", "python"])
def test_cps4_token_logs_in_over_tls13_with_pss(server, request, cps4_client, cps_cps4_card,
                                               files):
    """The CPS4's own key (SoftHSM2, CKM_RSA_PKCS_PSS) signs the TLS 1.3
    CertificateVerify for curl and s_client, through OpenSSL's pkcs11 engine,
    against nginx (the middleware behind it) and our Python server."""
    if server == "nginx":
        peer = request.getfixturevalue("nginx_both")
        url, port, log = peer.url, peer.port, peer.read_log
    else:
        port = request.getfixturevalue("python_server")
        url, log = f"https://localhost:{port}/", (lambda: "")
    holder = cps_cps4_card.profile.holder
    common = ["--engine", "pkcs11", "--key-type", "ENG", "--key", cps4_client["key"],
              "--cert", str(cps4_client["cert"]), "--cacert", str(files["root.pem"])]
    done = subprocess.run(["curl", "-sS", "-v", "--tlsv1.3", *common, f"{url}whoami"],
                          capture_output=True, text=True, timeout=120, env=cps4_client["env"])
    assert done.returncode == 0, f"{done.stderr[-2000:]}\n{log()[-1500:]}"
    assert curl_version(done) == "TLSv1.3"
    answer = json.loads(done.stdout)
    assert answer["idnat"] == holder.idnat and answer["validated"] is True
    transcript = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
         "-servername", "localhost", "-tls1_3", "-engine", "pkcs11", "-keyform", "engine",
         "-key", cps4_client["key"], "-cert", str(cps4_client["cert"]),
         "-CAfile", str(files["root.pem"]), "-trace", "-ign_eof"],
        input=REQUEST, capture_output=True, text=True, timeout=120, env=cps4_client["env"])
    out = transcript.stdout + transcript.stderr
    assert negotiated(out) == "TLSv1.3"
    assert sent_certificate_verify(out) == "rsa_pss_rsae_sha256"
    assert body_of(out)["idnat"] == holder.idnat


def test_our_client_with_a_cps4_signs_pkcs1_over_tls12(nginx_both, cps_softhsm_cps4,
                                                       cps_cps4_card, cps_tls_server):
    """cps.tls speaks TLS 1.2 only (docs/tls.md, "Limits"): a CPS4 logs in there as a
    CPS3 does, PKCS#1 v1.5, on the server that also takes TLS 1.3."""
    from cps.pkcs11 import Pkcs11Card

    cps_softhsm_cps4.get_token()
    card = Pkcs11Card.open(module=cps_softhsm_cps4.module,
                           token_label=cps_softhsm_cps4.token_label)
    try:
        assert "pss" in card.signature_paddings
        card.verify_pin(cps_cps4_card.pin)
        with requests.Session() as session:
            adapter = CardHTTPAdapter(card, trust=ServerTrust([cps_tls_server.root]))
            session.mount("https://", adapter)
            response = session.get(f"{nginx_both.url}whoami")
            assert response.status_code == 200, response.text
            assert response.json()["idnat"] == cps_cps4_card.profile.holder.idnat
            assert session.get(f"{nginx_both.url}whoami-raw").text.splitlines()[1] == "TLSv1.2"
    finally:
        card.close()


def test_our_client_with_a_cps4_and_a_pss_only_tls12_server(cps_openssl_server, cps_softhsm_cps4,
                                                            cps_cps4_card, cps_tls_server):
    """The limit docs/tls.md states: tlslite-ng ends a TLS 1.2 handshake whose
    CertificateRequest lists no PKCS#1 scheme before choosing one, so even a
    card that can sign RSA-PSS is refused there, typed, and signs nothing."""
    from cps import errors
    from cps.pkcs11 import Pkcs11Card
    from cps.tls import connect

    server = cps_openssl_server(versions="1.2", client_sigalgs=PSS_SIGALGS)
    cps_softhsm_cps4.get_token()
    card = Pkcs11Card.open(module=cps_softhsm_cps4.module,
                           token_label=cps_softhsm_cps4.token_label)
    try:
        card.verify_pin(cps_cps4_card.pin)
        calls: list = []
        original = card.authenticate
        card.authenticate = lambda *a, **k: calls.append(a) or original(*a, **k)  # type: ignore[method-assign]
        with pytest.raises(errors.TlsError) as info:
            connect(card, "localhost", server.port, trust=ServerTrust([cps_tls_server.root]))
        assert info.value.reason == "no-signature-scheme"
        assert calls == [], "the card signed for a handshake that could not succeed"
    finally:
        card.close()
