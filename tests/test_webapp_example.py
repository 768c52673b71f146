"""docs/examples/webapp.py, end to end over real HTTP on 127.0.0.1, card through pcscd."""

from __future__ import annotations

import importlib.util
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import cps

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "webapp.py"


@pytest.fixture(scope="module")
def webapp():
    spec = importlib.util.spec_from_file_location("webapp_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server(webapp, cps_pki):
    srv = webapp.serve(cps_pki.validator())
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.mark.pcsc
def test_login_with_the_card_through_pcscd(webapp, server, cps_vpcd_card):
    with cps.open_card(reader=cps_vpcd_card.attachment.reader_name) as card:
        me = webapp.login(server, card, cps_vpcd_card.pin)
    assert me["idnat"] == cps_vpcd_card.profile.holder.idnat and me["validated"] is True


@pytest.mark.cps_profile("cps3-revoked")
def test_revoked_card_is_refused(webapp, server, cps_emulated_card):
    with cps.open_card(connection=cps_emulated_card.connection()) as card:
        with pytest.raises(urllib.error.HTTPError) as info:
            webapp.login(server, card, cps_emulated_card.pin)
    assert info.value.code == 401
    assert json.loads(info.value.read())["error"] == "CertificateRevoked"


def test_me_without_session(server):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{server}/me", timeout=10)
    assert info.value.code == 401
