"""`cps sign` with the emulated card through pcscd, `cps verify`, and OpenSSL as a peer."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import CPS, no_secret, write_cert

pytestmark = pytest.mark.pcsc

PIN = "7395"


def test_sign_cms_then_verify(cli, serve, tmp_path, crl_dir, cps_pki):
    doc = tmp_path / "ordonnance.txt"
    doc.write_text("Paracétamol 1 g, 3 fois par jour\n", encoding="utf-8")
    with serve(pin=PIN) as emu:
        signed = cli.json("sign", "-r", emu.reader, str(doc), "--pin", "env:P", env={"P": PIN})
    assert signed["signed"] is True and signed["format"] == "cades"
    assert signed["output"] == str(doc) + ".p7s" and Path(signed["output"]).exists()
    assert signed["signer"]["role"] == "sign" and signed["card_number"] == "2990000101"

    data = cli.json("verify", str(doc), signed["output"], "--anchors", "test", "--crl", crl_dir)
    assert data["valid"] is True and data["signing_certificate_bound"] is True
    assert data["practitioner"]["validated"] is True
    assert data["practitioner"]["idnat"] == "810100123453"
    assert data["validation"]["purpose"] == "sign"
    assert [s["status"] for s in data["validation"]["revocation"]] == ["good", "good",
                                                                       "not-checked"]

    text = cli("verify", str(doc), signed["output"], "--anchors", "test", "--crl", crl_dir)
    assert text.returncode == 0 and "Signature OK" in text.stdout

    if shutil.which("openssl"):  # an independent verifier accepts it
        chain = tmp_path / "chain.pem"
        creds = cps_pki.issue_card("cps3-medecin")
        write_cert(chain, creds.chain[1])
        with chain.open("a") as f:
            f.write(Path(write_cert(tmp_path / "ca.pem", creds.chain[0])).read_text())
        out = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER",
                              "-in", signed["output"], "-content", str(doc), "-CAfile",
                              str(chain), "-purpose", "any", "-out", "/dev/null"],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr

    doc.write_text("Paracétamol 4 g\n", encoding="utf-8")
    bad = cli.json("verify", str(doc), signed["output"], "--anchors", "test", "--crl", crl_dir,
                   code=17)
    assert bad["valid"] is False and bad["error"]["type"] == "DigestMismatch"


def test_sign_raw_then_verify_raw(cli, serve, tmp_path, cps_pki):
    doc = tmp_path / "doc.bin"
    doc.write_bytes(bytes(range(256)) * 3)
    cert = write_cert(tmp_path / "sign.pem", cps_pki.issue_card("cps3-medecin").sign_cert)
    with serve(pin=PIN) as emu:
        out = cli("sign", "-r", emu.reader, "--raw", str(doc), input=PIN + "\n")
        to_stdout = subprocess.run([CPS, "sign", "-r", emu.reader, "--raw", "-o", "-",
                                    str(doc)], input=(PIN + "\n").encode(), capture_output=True,
                                   env=cli.env)
    assert out.returncode == 0, out.stderr
    sig = Path(str(doc) + ".sig").read_bytes()
    assert len(sig) == 256 and to_stdout.stdout == sig  # PKCS#1 v1.5 is deterministic
    no_secret([out.stdout + out.stderr, to_stdout.stderr.decode()], PIN)

    ok = cli.json("verify", "--raw", "--cert", cert, str(doc), str(doc) + ".sig",
                  "--anchors", "test", "--revocation", "off")
    assert ok["valid"] is True and ok["format"] == "raw"
    assert ok["validation"]["revocation"][0]["status"] == "not-checked"
    assert ok["practitioner"]["validated"] is True

    usage = cli("verify", "--raw", str(doc), str(doc) + ".sig")
    assert usage.returncode == 2 and "--cert" in usage.stderr
    other = write_cert(tmp_path / "other.pem", cps_pki.issue_card("cps3-adeli").sign_cert)
    wrong = cli("verify", "--raw", "--cert", other, str(doc), str(doc) + ".sig",
                "--anchors", "test", "--revocation", "off")
    assert wrong.returncode == 17 and "does not verify" in wrong.stderr


def test_sign_wrong_pin_reports_tries(cli, serve, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("x")
    with serve(pin=PIN) as emu:
        out = cli("sign", "-r", emu.reader, str(doc), "--json", input="0000\n")
    assert out.returncode == 7
    data = json.loads(out.stdout)
    assert data["signed"] is False and data["error"]["tries_left"] == 2
    assert "Before: PIN: 3 of 3" in out.stderr and "After:  PIN: 2 of 3" in out.stderr
    assert not Path(str(doc) + ".p7s").exists()
