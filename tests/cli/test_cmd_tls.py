"""`cps tls get URL` through the installed `cps`, pcscd and a real TLS server."""

from __future__ import annotations

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
    no_secret([out.stdout, out.stderr], "7391")


def test_tls_get_refuses_a_plain_http_url_and_bad_options(cli: Any, serve: Any,
                                                          tmp_path: Any) -> None:
    with serve("cps3-medecin") as emu:
        out = cli("tls", "get", "http://localhost:1/", "-r", emu.reader, "--igc-sante",
                  input=emu.pin + "\n")
        assert out.returncode == 2 and "https" in out.stderr
        both = cli("tls", "get", "https://localhost:1/", "-r", emu.reader, "--igc-sante",
                   "--ca", str(tmp_path), input=emu.pin + "\n")
        assert both.returncode == 2
