"""A TLS client we did not write logs in with the emulated card: curl, OpenSSL's
pkcs11 engine (libp11) and OpenSC's PKCS#11 module, through pcscd and vpcd,
against nginx asking for a client certificate.

    curl --engine pkcs11 --key-type ENG --key 'pkcs11:token=...;id=...;type=private'
         --cert auth.pem --cacert root.pem https://localhost:PORT/

with ``OPENSSL_CONF`` loading the engine (``MODULE_PATH`` = opensc-pkcs11.so)
and giving it the PIN, so that the PIN is on no command line.
"""

from __future__ import annotations

import os
import subprocess
import urllib.parse
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from cps.testing.tlspeers import PKCS1_SIGALGS, PSS_SIGALGS, EchoUpstream

pytestmark = pytest.mark.pcsc

READER = f"Virtual PCD 00 {int(os.environ.get('CPS_VPCD_PORT', '35963')) - 35963:02d}"
# OpenSC's token for a CPx: labelled after the card holder's PIN
TOKEN = "Code porteur de la carte CPX"
AUTH_ID = "e828bd080f8025000001ff001002"
KEY_URI = ("pkcs11:token=" + urllib.parse.quote(TOKEN) + ";id="
           + "".join(f"%{AUTH_ID[i:i + 2]}" for i in range(0, len(AUTH_ID), 2))
           + ";type=private")
INTERNAL_AUTHENTICATE = 0x88
PSO = 0x2A


def _path(*candidates: str) -> str:
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    pytest.fail(f"none of {candidates} exists: are opensc-pkcs11 and "
                "libengine-pkcs11-openssl installed?")


def _opensc_module() -> str:
    return _path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
                 "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so", "/usr/lib/opensc-pkcs11.so")


def _engine() -> str:
    return _path(*(f"/usr/lib/{arch}/engines-3/{name}"
                   for arch in ("x86_64-linux-gnu", "aarch64-linux-gnu")
                   for name in ("pkcs11.so", "libpkcs11.so")))


@pytest.fixture
def card(cps_vpcd_card):
    assert cps_vpcd_card.attachment.reader_name == READER
    # OpenSC 0.23 fetches the 256-byte signature with one GET RESPONSE of Le 00
    # (tests/emulator/test_opensc.py, docs/emulator.md): the card must allow it.
    cps_vpcd_card.os.behaviour = replace(cps_vpcd_card.os.behaviour, get_response_max=256)
    cps_vpcd_card.journal = []
    return cps_vpcd_card


@pytest.fixture
def client(card, tmp_path: Path):
    """``curl(url, cacert) -> CompletedProcess`` with the card's authentication key."""
    conf = tmp_path / "openssl-pkcs11.cnf"
    conf.touch(mode=0o600)
    conf.write_text(
        "openssl_conf = openssl_init\n"
        "[openssl_init]\n"
        "engines = engine_section\n"
        "[engine_section]\n"
        "pkcs11 = pkcs11_section\n"
        "[pkcs11_section]\n"
        "engine_id = pkcs11\n"
        f"dynamic_path = {_engine()}\n"
        f"MODULE_PATH = {_opensc_module()}\n"
        f"PIN = {card.pin}\n"
        "init = 0\n")
    cert = tmp_path / "auth.pem"   # the leaf alone, as the card holds it
    cert.write_bytes(card.credentials.auth_cert.public_bytes(Encoding.PEM))

    def curl(url: str, cacert: Path, *more: str) -> subprocess.CompletedProcess[str]:
        # The PIN reaches the engine through the 0600 configuration file only: not
        # on curl's command line, the key URI (no pin-value) nor any message here.
        return subprocess.run(
            ["curl", "-sS", "-v", "--engine", "pkcs11", "--key-type", "ENG",
             "--key", KEY_URI, "--cert", str(cert), "--cacert", str(cacert), *more, url],
            capture_output=True, text=True, timeout=120,
            env=dict(os.environ, OPENSSL_CONF=str(conf)))

    return curl


def _instructions(card) -> list[int]:
    return [command[1] for command, _ in card.journal]


def test_curl_logs_in_with_the_card_through_opensc(card, client, cps_nginx):
    with EchoUpstream() as upstream:
        nginx = cps_nginx(upstream=upstream.address, client_sigalgs=PKCS1_SIGALGS,
                          protocols="TLSv1.2")
        out = client(nginx.url + "dossier", nginx.root_pem)
        assert out.returncode == 0, f"curl failed:\n{out.stderr}\n{nginx.read_log()}"
        assert "TLSv1.2 (OUT), TLS handshake, CERT verify" in out.stderr
    method, path, headers = upstream.requests[-1]
    assert (method, path) == ("GET", "/dossier")
    assert headers["X-SSL-Client-Verify"] == "SUCCESS"
    sent = x509.load_pem_x509_certificate(
        urllib.parse.unquote(headers["X-SSL-Client-Cert"]).encode())
    assert sent.public_bytes(Encoding.DER) == \
        card.credentials.auth_cert.public_bytes(Encoding.DER)
    # the CertificateVerify was the card's: OpenSC signs with the authentication
    # key by INTERNAL AUTHENTICATE
    assert INTERNAL_AUTHENTICATE in _instructions(card)


def test_whoami_raw_sees_the_card_holder(card, client, cps_nginx):
    nginx = cps_nginx()
    out = client(nginx.url + "whoami-raw", nginx.root_pem)
    assert out.returncode == 0, f"curl failed:\n{out.stderr}\n{nginx.read_log()}"
    dn, protocol, reused = out.stdout.splitlines()
    assert "CN=810100123453" in dn and protocol == "TLSv1.2" and reused == "."


def test_a_resumed_session_does_not_ask_the_card_again(card, client, cps_nginx):
    # two URLs, one curl: the second goes over a new connection ("Connection:
    # close") that offers the first one's session ID; nginx's shared cache resumes it
    nginx = cps_nginx()
    out = client(nginx.url + "whoami-raw", nginx.root_pem,
                 "-H", "Connection: close", nginx.url + "whoami-raw")
    assert out.returncode == 0, f"curl failed:\n{out.stderr}\n{nginx.read_log()}"
    first, second = out.stdout.splitlines()[0:3], out.stdout.splitlines()[3:6]
    assert first[2] == "." and second == [first[0], "TLSv1.2", "r"]
    assert out.stderr.count("CERT verify") == 1
    assert _instructions(card).count(INTERNAL_AUTHENTICATE) == 1


def test_a_pss_only_server_refuses_the_card(card, client, cps_nginx):
    # The server offers RSASSA-PSS only. OpenSSL picks rsa_pss_rsae_sha256 for
    # the RSA key and asks libp11 for it; OpenSC's CPx token lists RSA-PKCS
    # and RSA-9796, no PSS (and no raw RSA to pad with): C_SignInit says
    # CKR_MECHANISM_INVALID, curl sends an internal_error alert. The PIN has
    # been verified by then; the card is never asked to sign.
    nginx = cps_nginx(client_sigalgs=PSS_SIGALGS, protocols="TLSv1.2")
    out = client(nginx.url + "whoami-raw", nginx.root_pem)
    assert out.returncode == 35, out.stderr          # CURLE_SSL_CONNECT_ERROR
    assert "Mechanism invalid" in out.stderr
    assert "TLS alert, internal error" in out.stderr
    assert "CERT verify" not in out.stderr
    nginx.wait_for_log("tlsv1 alert internal error")
    assert INTERNAL_AUTHENTICATE not in _instructions(card)
    assert PSO not in _instructions(card)
