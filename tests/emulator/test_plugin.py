"""The pytest plugin's fixtures, as a user's test suite would use them."""

from __future__ import annotations

import subprocess

import pytest

from cps.apdu import ApduChannel


@pytest.mark.cps_profile("cps3-pharmacien")
def test_profile_marker_selects_the_card(cps_emulated_card):
    assert cps_emulated_card.profile.name == "cps3-pharmacien"


@pytest.mark.parametrize("cps_emulated_card", ["cps3-cpe", "cps3-adeli"], indirect=True)
def test_indirect_parametrisation(cps_emulated_card):
    assert cps_emulated_card.profile.name in ("cps3-cpe", "cps3-adeli")


h = bytes.fromhex


def test_connection_fixture_talks_to_the_card(cps_connection):
    assert ApduChannel(cps_connection).send(0, 0xB0, 0x9C, 0, ne=2) == h("5A0B")


def test_card_factory_overrides_the_pin(cps_card_factory):
    assert cps_card_factory("cps3-medecin", pin="4242").pin == "4242"


def test_softhsm_fixture_holds_the_card_labels(cps_softhsm_token, cps_emulated_card):
    out = subprocess.run(["pkcs11-tool", "--module", cps_softhsm_token.module, "--list-objects"],
                         capture_output=True, text=True, env=cps_softhsm_token.env(), check=True)
    assert "Certificat d'Authentification CPS" in out.stdout
    assert cps_softhsm_token.token_label == f"CPS3v3-{cps_emulated_card.profile.card_number}"
