"""The deployment docs/tls.md describes: nginx in front (TLS 1.2, PKCS#1-only client
signature algorithms, client certificates), the example app behind it with the
WSGI middleware (docs/examples/tls_app.py), and our client with the card.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding
from tls_helpers import signatures, tls_app  # noqa: F401 - fixtures

import cps
from cps import errors
from cps.testing.tlspeers import PSS_SIGALGS
from cps.tls import CardHTTPAdapter, CardSSLError, ServerTrust


@pytest.fixture
def app(tls_app: Any, cps_pki: Any) -> Iterator[Any]:
    server = tls_app.serve(cps_pki.validator(), trusted_proxies=("127.0.0.1",))
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def card_session(cps_emulated_card: Any, cps_tls_server: Any) -> Iterator[requests.Session]:
    emu = cps_emulated_card
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        emu.journal = []
        with requests.Session() as session:
            session.mount("https://", CardHTTPAdapter(
                card, trust=ServerTrust([cps_tls_server.root])))
            yield session


def test_card_to_nginx_to_the_app(card_session: requests.Session, cps_emulated_card: Any,
                                  cps_nginx: Any, app: Any) -> None:
    nginx = cps_nginx(upstream=f"127.0.0.1:{app.server_address[1]}")
    answers = [card_session.get(f"{nginx.url}whoami?n={i}").json() for i in range(5)]
    holder = cps_emulated_card.profile.holder
    assert {a["idnat"] for a in answers} == {holder.idnat}
    assert all(a["validated"] and a["source"] == "proxy-header" for a in answers)
    assert signatures(cps_emulated_card) == 1, "nginx keeps the connection: one signature"
    raw = card_session.get(f"{nginx.url}whoami-raw").text.splitlines()
    assert raw[1] == "TLSv1.2"


def test_a_revoked_card_is_403_through_nginx(cps_card_factory: Any, cps_tls_server: Any,
                                             cps_nginx: Any, app: Any) -> None:
    emu = cps_card_factory("cps3-revoked")
    nginx = cps_nginx(upstream=f"127.0.0.1:{app.server_address[1]}")
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        with requests.Session() as session:
            session.mount("https://", CardHTTPAdapter(
                card, trust=ServerTrust([cps_tls_server.root])))
            response = session.get(nginx.url)
    assert response.status_code == 403
    assert response.json()["error"] == "certificate-revoked"


def test_no_client_certificate_is_401(cps_nginx: Any, app: Any, cps_tls_server: Any,
                                      tmp_path: Path) -> None:
    # a client we did not write (requests' own adapter, no certificate) through
    # nginx asking for one optionally: the middleware says who is missing
    nginx = cps_nginx(upstream=f"127.0.0.1:{app.server_address[1]}", verify_client="optional")
    bundle = tmp_path / "root.pem"
    bundle.write_bytes(cps_tls_server.root.public_bytes(Encoding.PEM))
    response = requests.get(nginx.url, verify=str(bundle), timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "no-certificate"


def test_a_forged_header_from_elsewhere_is_403(tls_app: Any, cps_pki: Any) -> None:
    # the app believes only its proxy (here 192.0.2.10): a client reaching it
    # directly with a certificate header of its own is refused, not believed
    leaf = cps_pki.issue_card("cps3-medecin").auth_cert
    server = tls_app.serve(cps_pki.validator(), trusted_proxies=("192.0.2.10",))
    try:
        pem = leaf.public_bytes(Encoding.PEM).decode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.server_address[1]}/",
            headers={"X-SSL-Client-Cert": urllib.parse.quote(pem)})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310 - our own test server
        assert caught.value.code == 403
        assert json.loads(caught.value.read())["error"] == "untrusted-proxy"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("options, reason", [
    ({"protocols": "TLSv1.3"}, "protocol-version"),
    ({"client_sigalgs": PSS_SIGALGS}, "no-signature-scheme"),
])
def test_nginx_the_card_cannot_satisfy(card_session: requests.Session, cps_emulated_card: Any,
                                       cps_nginx: Any, options: Any, reason: str) -> None:
    nginx = cps_nginx(**options)
    with pytest.raises(CardSSLError) as caught:
        card_session.get(nginx.url)
    assert caught.value.reason == reason
    assert isinstance(caught.value.cps_error, errors.TlsError)
    assert signatures(cps_emulated_card) == 0
