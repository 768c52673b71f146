"""zeep (SOAP, as DMP and INSi clients use it) over requests + CardHTTPAdapter.

The service (cps.testing.soapservice) runs on Python's TLS server
(cps.tls.wsgi_server) asking for a client certificate, with the WSGI
middleware validating it: the SOAP answer carries the practitioner the server
learnt from the card's certificate.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import zeep
from cryptography.hazmat.primitives.serialization import Encoding

import cps
from cps.testing.soapservice import soap_app
from cps.tls import CardHTTPAdapter
from cps.tls.wsgi_server import make_server

INTERNAL_AUTHENTICATE = 0x88


@pytest.fixture
def service(cps_pki: Any, cps_tls_server: Any, tmp_path: Path) -> Iterator[str]:
    paths = cps_tls_server.write(tmp_path)
    cas = tmp_path / "client-ca.pem"
    cas.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in
                             [*cps_pki.roots.values(), *cps_pki.intermediates.values()]))
    server = make_server(soap_app(cps_pki.validator()), "127.0.0.1", 0,
                         certfile=paths["server.pem"], keyfile=paths["server.key"],
                         client_ca=cas)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://localhost:{server.server_address[1]}/identite"
    server.shutdown()
    server.server_close()


def test_zeep_calls_a_soap_service_with_the_card(service: str, cps_emulated_card: Any,
                                                 cps_tls_server: Any, tmp_path: Path) -> None:
    emu = cps_emulated_card
    bundle = tmp_path / "root.pem"
    bundle.write_bytes(cps_tls_server.root.public_bytes(Encoding.PEM))
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        emu.journal = []
        session = requests.Session()
        # requests lets REQUESTS_CA_BUNDLE from the environment override a session's
        # verify (its rule, which the adapter honours): not here
        session.trust_env = False
        session.verify = str(bundle)
        session.mount("https://", CardHTTPAdapter(card))
        client = zeep.Client(f"{service}?wsdl",
                             transport=zeep.Transport(session=session, timeout=10))
        answers = [client.service.lireIdentite(contexte=f"appel {i}") for i in range(4)]
    holder = emu.profile.holder
    assert {a.idnat for a in answers} == {holder.idnat}
    assert [a.contexte for a in answers] == [f"appel {i}" for i in range(4)]
    assert answers[0].profession
    # WSDL + four calls over kept-alive or resumed connections: one card signature
    assert sum(1 for c, _ in emu.journal if c[1] == INTERNAL_AUTHENTICATE) == 1


def test_a_revoked_card_gets_the_typed_refusal_not_a_fault(service: str, cps_card_factory: Any,
                                                           cps_tls_server: Any,
                                                           tmp_path: Path) -> None:
    emu = cps_card_factory("cps3-revoked")
    bundle = tmp_path / "root.pem"
    bundle.write_bytes(cps_tls_server.root.public_bytes(Encoding.PEM))
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        session = requests.Session()
        session.mount("https://", CardHTTPAdapter(card))
        response = session.get(f"{service}?wsdl", verify=str(bundle))
    assert response.status_code == 403
    assert response.json()["error"] == "certificate-revoked"
