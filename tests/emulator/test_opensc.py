"""Debian's unmodified OpenSC, through pcscd and vpcd, takes the emulated card for a real CPx.

Where OpenSC 0.23 and the domain notes disagree, OpenSC wins; those points are
listed in docs/emulator.md ("What OpenSC showed us").
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

pytestmark = pytest.mark.pcsc

READER = f"Virtual PCD 00 {int(os.environ.get('CPS_VPCD_PORT', '35963')) - 35963:02d}"
AUTH_ID = "e828bd080f8025000001ff001002"
SIGN_ID = "e828bd080f8025000001ff001001"
SHA256_DI = bytes.fromhex("3031300d060960864801650304020105000420")


def _module() -> str:
    for candidate in ("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
                      "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so", "/usr/lib/opensc-pkcs11.so"):
        if os.path.exists(candidate):
            return candidate
    pytest.fail("opensc-pkcs11.so not found: is Debian's opensc installed?")


def run(*args: str, env_extra=None, check=True) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=60, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def card(cps_vpcd_card):
    assert cps_vpcd_card.attachment.reader_name == READER
    return cps_vpcd_card


def test_opensc_identifies_the_card_as_cpx(card):
    out = run("opensc-tool", "-r", READER, "-n", env_extra={"OPENSC_DEBUG": "3"})
    # OpenSC 0.23 prints its driver's name; the ATR table entry it matched is the CPx one.
    assert out.stdout.strip() == "IAS-ECC"
    assert "'IAS/ECC CPx' card matched" in out.stderr


def test_list_pins(card):
    out = run("pkcs15-tool", "-r", READER, "--list-pins").stdout
    pin, puk = out.split("PIN [Code de déblocage de la carte CPS]")
    assert "PIN [Code porteur de la carte CPX]" in pin
    assert "Reference      : 1 (0x01)" in pin
    assert "min_len:4, max_len:4, stored_len:8" in pin   # the real AODF: exactly 4 digits
    assert "Pad char       : 0xFF" in pin and "Type           : ascii-numeric" in pin
    assert "Reference      : 2 (0x02)" in puk and "soPin" in puk


def _tries_seen_by_opensc() -> int:
    out = run("opensc-tool", "-r", READER, "-s", "00 20 00 01").stdout
    match = re.search(r"SW1=0x63, SW2=0xC([0-9A-F])", out)
    assert match, out
    return int(match.group(1), 16)


def test_wrong_verify_pin_decrements_the_counter(card):
    assert _tries_seen_by_opensc() == 3
    out = run("pkcs15-tool", "-r", READER, "--verify-pin", "--pin", "0000", check=False)
    assert out.returncode != 0 and "PIN code or key incorrect" in out.stderr
    assert _tries_seen_by_opensc() == 2
    assert card.os.chvs[1].tries_left == 2
    tokens = run("pkcs11-tool", "--module", _module(), "-L").stdout
    assert "user PIN count low" in tokens
    ok = run("pkcs15-tool", "-r", READER, "--verify-pin", "--pin", card.pin)
    assert ok.returncode == 0
    assert card.os.chvs[1].tries_left == 3


def test_list_certificates_and_keys(card):
    certs = run("pkcs15-tool", "-r", READER, "--list-certificates").stdout
    assert "X.509 Certificate [Certificat d'Authentification CPS]" in certs
    assert "X.509 Certificate [Certificat de Signature CPS]" in certs
    assert f"ID             : {AUTH_ID}" in certs and f"ID             : {SIGN_ID}" in certs
    keys = run("pkcs15-tool", "-r", READER, "--list-keys").stdout
    sig, aut = keys.split("Private RSA Key [CPS_PRIV_AUT]")
    assert "Private RSA Key [CPS_PRIV_SIG]" in sig
    assert "Usage          : [0x200], nonRepudiation" in sig
    assert "Key ref        : 129 (0x81)" in sig
    assert "Usage          : [0x06], decrypt, sign" in aut and "Key ref        : 130 (0x82)" in aut
    for block in (sig, aut):
        assert "ModLength      : 2048" in block and "Auth ID        : 01" in block
        assert "sensitive, alwaysSensitive, neverExtract" in block
        # algReferences synthesised by OpenSC's CPx fix-up from TokenInfo (PR #2270)
        assert re.search(r"Algo_refs      : \d", block)


@pytest.mark.parametrize("key_id, attr", [(AUTH_ID, "auth_cert"), (SIGN_ID, "sign_cert")])
def test_read_certificate_returns_the_profile_certificate(card, key_id, attr):
    pem = run("pkcs15-tool", "-r", READER, "--read-certificate", key_id).stdout
    assert x509.load_pem_x509_certificate(pem.encode()) == getattr(card.credentials, attr)


@pytest.mark.parametrize("cps_emulated_card", ["cps3-pharmacien", "cps3-cpe", "cps3-adeli"],
                         indirect=True)
def test_other_profiles_read_through_opensc(card):
    pem = run("pkcs15-tool", "-r", READER, "--read-certificate", AUTH_ID).stdout
    assert x509.load_pem_x509_certificate(pem.encode()) == card.credentials.auth_cert


def _sign_with_the_authentication_key(card, tmp_path: Path, check: bool = True):
    digest = hashlib.sha256(b"connexion au DMP").digest()
    (tmp_path / "in").write_bytes(SHA256_DI + digest)
    out = run("pkcs11-tool", "--module", _module(), "--token-label",
              "Code porteur de la carte CPX", "--login", "--pin", card.pin, "--sign", "--id",
              AUTH_ID, "-m", "RSA-PKCS", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "sig"),
              check=check)
    return out, digest


def test_pkcs11_sign_with_the_authentication_key_verifies(card, tmp_path: Path):
    # OpenSC 0.23 fetches the 256-byte answer with one GET RESPONSE of Le 00 (256),
    # which OpenSC's use on real CPx cards suggests they accept but no trace shows;
    # the emulator's strict default refuses more than 0xE7 (docs/emulator.md).
    card.os.behaviour = replace(card.os.behaviour, get_response_max=256)
    _, digest = _sign_with_the_authentication_key(card, tmp_path)
    signature = (tmp_path / "sig").read_bytes()
    card.credentials.auth_cert.public_key().verify(
        signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def test_opensc_asks_a_get_response_larger_than_the_cryptolib_does(card, tmp_path: Path):
    card.journal = []
    out, _ = _sign_with_the_authentication_key(card, tmp_path, check=False)
    assert out.returncode != 0 and "CKR_DATA_LEN_RANGE" in out.stderr
    exchanges = [(c.hex().upper(), r[-2:].hex().upper()) for c, r in card.journal]
    at = next(i for i, (c, _) in enumerate(exchanges) if c.startswith("00880000"))
    assert exchanges[at][1] == "6100" and exchanges[at + 1] == ("00C0000000", "6700")


def test_pkcs11_cannot_sign_with_the_signature_key_on_openssl3(card, tmp_path: Path):
    # Debian's OpenSC disables the PSO HASH path with OpenSSL 3 (cps-domain 1.8 a).
    (tmp_path / "in").write_bytes(b"document")
    out = run("pkcs11-tool", "--module", _module(), "--token-label", "Code porteur de la carte CPX",
              "--login", "--pin", card.pin, "--sign", "--id", SIGN_ID, "-m", "SHA256-RSA-PKCS",
              "-i", str(tmp_path / "in"), "-o", str(tmp_path / "sig"), check=False)
    assert out.returncode != 0 and "CKR_FUNCTION_NOT_SUPPORTED" in out.stderr
