"""A browser logs in with the card: Firefox ESR headless, the card's key through
PKCS#11, nginx in front (TLS 1.2, PKCS#1-only client signature algorithms) and
the example app behind it (docs/examples/tls_app.py), which answers the
practitioner as JSON.

Two tokens: SoftHSM2 holding the card's keys (no pcscd), and OpenSC's module
driving the emulated card through pcscd and vpcd (``pcsc``). Firefox's PIN
prompt is answered once by :class:`cps.testing.firefox.HeadlessFirefox`: a wrong
PIN costs the card exactly one try, and the browser does not ask again.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest
from tls_helpers import INTERNAL_AUTHENTICATE, VERIFY, tls_app  # noqa: F401 - fixtures

from cps.testing.firefox import FirefoxError, HeadlessFirefox
from cps.testing.tlspeers import PKCS1_SIGALGS, PSS_SIGALGS

OPENSC_MODULES = ("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
                  "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so", "/usr/lib/opensc-pkcs11.so")
# OpenSC's token for a CPx: labelled after the card holder's PIN
OPENSC_TOKEN = "Code porteur de la carte CPX"
# Firefox connects again after a failed handshake (the page, the favicon): each
# asks NSS for the key, each prompt after the first is cancelled
MAX_PROMPTS = 6


@pytest.fixture
def nginx(tls_app: Any, cps_pki: Any, cps_nginx: Any) -> Iterator[Any]:
    app = tls_app.serve(cps_pki.validator(), trusted_proxies=("127.0.0.1",))
    try:
        yield cps_nginx(upstream=f"127.0.0.1:{app.server_address[1]}",
                        client_sigalgs=PKCS1_SIGALGS, protocols="TLSv1.2")
    finally:
        app.shutdown()
        app.server_close()


def wrong(pin: str) -> str:
    """A PIN of the same length that is not ``pin``."""
    return pin[:-1] + str((int(pin[-1]) + 1) % 10)


def holder_idnat(card: Any) -> str:
    return str(card.profile.holder.idnat)


def assert_pin_kept_secret(firefox: HeadlessFirefox, pin: str) -> None:
    assert pin not in repr(firefox)
    assert pin not in firefox.output_path.read_text(errors="replace")


# -- SoftHSM2: the card's keys in a software token ---------------------------------------

def test_firefox_logs_in_with_the_softhsm_token(cps_softhsm_token: Any, cps_emulated_card: Any,
                                                cps_tls_server: Any, nginx: Any,
                                                tmp_path: Path) -> None:
    token = cps_softhsm_token
    with HeadlessFirefox(token.module, trust=[cps_tls_server.root], pin=token.pin,
                         token_label=token.token_label, env=token.env(),
                         directory=tmp_path / "firefox") as firefox:
        assert token.token_label in firefox.tokens
        page = firefox.get(nginx.url + "dossier", timeout=30)
        assert firefox.last_error is None, page
        answer = json.loads(page)
        assert answer["idnat"] == holder_idnat(cps_emulated_card)
        assert answer["validated"] and answer["source"] == "proxy-header"
        prompts = firefox.pin_prompts
        assert [p.answered for p in prompts] == [True]
        assert f"({token.token_label})" in prompts[0].text
        assert firefox.logged_in()[token.token_label]
        # the same browser, logged in: no new prompt
        assert json.loads(firefox.get(nginx.url + "encore", timeout=30))["idnat"] == \
            holder_idnat(cps_emulated_card)
        assert len(firefox.pin_prompts) == 1
        assert_pin_kept_secret(firefox, token.pin)
    raw = nginx.read_access_log()
    assert '"GET /dossier HTTP/1.1" 200' in raw


def test_a_wrong_pin_is_given_once_to_softhsm(cps_softhsm_token: Any, cps_tls_server: Any,
                                              nginx: Any, tmp_path: Path) -> None:
    token = cps_softhsm_token
    bad = wrong(token.pin)
    with HeadlessFirefox(token.module, trust=[cps_tls_server.root], pin=bad,
                         token_label=token.token_label, env=token.env(),
                         directory=tmp_path / "firefox") as firefox:
        page = firefox.get(nginx.url + "dossier", timeout=30)
        # NSS asked again after the failed C_Login: cancelled, so Firefox sent no
        # certificate and nginx refused the request
        assert "No required SSL certificate was sent" in page
        prompts = firefox.pin_prompts
        assert sum(p.answered for p in prompts) == 1 and prompts[0].answered
        assert len(prompts) <= MAX_PROMPTS, prompts
        assert firefox.logged_in() == {token.token_label: False}
        assert_pin_kept_secret(firefox, bad)


def test_another_tokens_prompt_is_not_answered(cps_softhsm_token: Any, cps_tls_server: Any,
                                               nginx: Any, tmp_path: Path) -> None:
    token = cps_softhsm_token
    with HeadlessFirefox(token.module, trust=[cps_tls_server.root], pin=token.pin,
                         token_label="CPS3v3-0000000000", env=token.env(),
                         directory=tmp_path / "firefox") as firefox:
        page = firefox.get(nginx.url, timeout=30)
        assert "No required SSL certificate was sent" in page
        assert firefox.pin_prompts and not firefox.pin_answered
        assert firefox.logged_in() == {token.token_label: False}


# -- OpenSC: the emulated card through pcscd and vpcd ------------------------------------

def _opensc_module() -> str:
    for candidate in OPENSC_MODULES:
        if os.path.exists(candidate):
            return candidate
    pytest.fail(f"none of {OPENSC_MODULES} exists: is opensc-pkcs11 installed?")


@pytest.fixture
def card(cps_vpcd_card: Any) -> Any:
    # OpenSC 0.23 fetches the 256-byte signature with one GET RESPONSE of Le 00
    # (tests/emulator/test_opensc.py, docs/emulator.md): the card must allow it.
    cps_vpcd_card.os.behaviour = replace(cps_vpcd_card.os.behaviour, get_response_max=256)
    cps_vpcd_card.journal = []
    return cps_vpcd_card


def _instructions(card: Any) -> list[int]:
    return [command[1] for command, _ in card.journal]


@pytest.mark.pcsc
def test_firefox_logs_in_with_the_card_through_opensc(card: Any, cps_tls_server: Any,
                                                      nginx: Any, tmp_path: Path) -> None:
    with HeadlessFirefox(_opensc_module(), trust=[cps_tls_server.root], pin=card.pin,
                         token_label=OPENSC_TOKEN, directory=tmp_path / "firefox") as firefox:
        assert OPENSC_TOKEN in firefox.tokens, firefox.tokens
        page = firefox.get(nginx.url + "dossier", timeout=60)
        assert firefox.last_error is None, page
        assert json.loads(page)["idnat"] == holder_idnat(card)
        assert [p.answered for p in firefox.pin_prompts] == [True]
        assert_pin_kept_secret(firefox, card.pin)
    # the CertificateVerify was the card's (INTERNAL AUTHENTICATE), after one VERIFY
    assert INTERNAL_AUTHENTICATE in _instructions(card)
    assert card.os.chvs[1].tries_left == 3


@pytest.mark.pcsc
def test_a_wrong_pin_costs_the_card_one_try(card: Any, cps_tls_server: Any, nginx: Any,
                                            tmp_path: Path) -> None:
    before = card.os.chvs[1].tries_left
    bad = wrong(card.pin)
    with HeadlessFirefox(_opensc_module(), trust=[cps_tls_server.root], pin=bad,
                         token_label=OPENSC_TOKEN, directory=tmp_path / "firefox") as firefox:
        page = firefox.get(nginx.url + "dossier", timeout=60)
        assert "No required SSL certificate was sent" in page, page
        prompts = firefox.pin_prompts
        assert sum(p.answered for p in prompts) == 1 and prompts[0].answered
        assert len(prompts) <= MAX_PROMPTS, prompts
        # more pages: the prompter stays spent, the card is not asked again
        firefox.get(nginx.url + "encore", timeout=60)
        assert sum(p.answered for p in firefox.pin_prompts) == 1
        assert_pin_kept_secret(firefox, bad)
    assert card.os.chvs[1].tries_left == before - 1
    assert INTERNAL_AUTHENTICATE not in _instructions(card)


def test_a_module_firefox_cannot_load_is_a_clear_error(cps_tls_server: Any,
                                                       tmp_path: Path) -> None:
    secret = "4711"
    with pytest.raises(FirefoxError, match="setting up the profile failed") as caught:
        HeadlessFirefox(str(tmp_path / "missing-pkcs11.so"), trust=[cps_tls_server.root],
                        pin=secret, directory=tmp_path / "firefox").start()
    assert "Firefox output" in str(caught.value) and secret not in str(caught.value)


@pytest.mark.pcsc
@pytest.mark.parametrize("options", [
    {"client_sigalgs": PSS_SIGALGS, "protocols": "TLSv1.2"},
    {"protocols": "TLSv1.2 TLSv1.3"},      # TLS 1.3 forbids PKCS#1 v1.5 CertificateVerify
], ids=["pss-only", "tls1.3"])
def test_a_server_the_card_cannot_satisfy_gets_no_certificate(
        card: Any, cps_tls_server: Any, tls_app: Any, cps_pki: Any, cps_nginx: Any,
        options: Any, tmp_path: Path) -> None:
    # NSS knows OpenSC's CPx token signs RSA-PKCS only: after the login it sends
    # no certificate rather than a signature the card cannot make
    app = tls_app.serve(cps_pki.validator(), trusted_proxies=("127.0.0.1",))
    try:
        nginx = cps_nginx(upstream=f"127.0.0.1:{app.server_address[1]}", **options)
        with HeadlessFirefox(_opensc_module(), trust=[cps_tls_server.root], pin=card.pin,
                             token_label=OPENSC_TOKEN,
                             directory=tmp_path / "firefox") as firefox:
            page = firefox.get(nginx.url, timeout=60)
            assert "No required SSL certificate was sent" in page, page
    finally:
        app.shutdown()
        app.server_close()
    assert INTERNAL_AUTHENTICATE not in _instructions(card)
    assert card.os.chvs[1].tries_left == 3
