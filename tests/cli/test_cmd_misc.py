"""`cps card wait|watch`, `cps certs`, the hidden `cps apdu`, `cps emulator pki|softhsm`,
the PKCS#11 backend through SoftHSM2, and what `cps --help` imports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import CPS, my_reader

pytestmark = pytest.mark.pcsc


def _wait_for(proc: subprocess.Popen, text: str, timeout: float = 20) -> str:
    """Read the process's stderr until ``text`` appears."""
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, f"never saw {text!r}: {seen!r}"
        line = proc.stderr.readline()
        assert line or proc.poll() is None, f"exited {proc.returncode}: {seen!r}"
        seen += line
    return seen


def test_card_wait_for_an_insertion(cli, serve):
    proc = subprocess.Popen([CPS, "card", "wait", "-r", my_reader(), "--timeout", "30",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli.env)
    try:
        _wait_for(proc, "Waiting for a CPS card")
        with serve("cps3-adeli"):
            out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert data["reader"] == my_reader() and data["card_kind"] == "cps3"
    assert set(data) == {"reader", "atr", "card_kind", "card_name", "waited_seconds"}
    # already there: returns at once, without the waiting message
    with serve("cps3-adeli") as emu:
        now = cli("card", "wait", "-r", emu.reader, "--timeout", "5")
    assert now.returncode == 0 and now.stdout.startswith("CPS3 (IAS-ECC CPx, contact) in")
    assert "Waiting" not in now.stderr


def test_card_watch_reports_insertion_and_removal(cli, serve):
    proc = subprocess.Popen([CPS, "card", "watch", "-r", my_reader(), "--count", "2",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli.env)
    try:
        _wait_for(proc, "Watching 1 reader(s)")
        with serve("cps3-contactless"):
            time.sleep(0.6)  # a few polls with the card in
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["inserted", "removed"]
    assert events[0]["card_kind"] == "cps3-contactless" and events[0]["reader"] == my_reader()
    assert set(events[0]) == {"time", "event", "reader", "atr", "card_kind"}


def test_certs_list_and_export(cli, serve, tmp_path):
    from cryptography import x509

    with serve("cps3-cpe") as emu:
        listed = cli.json("certs", "list", "-r", emu.reader)
        pem = cli("certs", "export", "-r", emu.reader)
        der = tmp_path / "sign.der"
        written = cli("certs", "export", "-r", emu.reader, "--role", "sign", "-F", "DER",
                      "-o", str(der))
        tech = cli("certs", "export", "-r", emu.reader, "--role", "tech")
    assert [c["role"] for c in listed] == ["auth", "sign"]
    assert x509.load_pem_x509_certificate(pem.stdout.encode()).serial_number == \
        int(listed[0]["serial"], 16)
    assert written.returncode == 0
    assert x509.load_der_x509_certificate(der.read_bytes()).serial_number == \
        int(listed[1]["serial"], 16)
    assert tech.returncode == 14  # no technical key on the contact interface


def test_apdu_is_hidden_and_redacts_pins(cli, serve):
    assert "apdu" not in cli("--help").stdout
    with serve() as emu:
        out = cli("apdu", "-r", emu.reader, "--select", "E828BD080F8025000001FF0010",
                  "00 20 00 01", "00:20:00:01:08:31:32:33:34:FF:FF:FF:FF=9000")
        data = cli.json("apdu", "-r", emu.reader, "00A4000C023F00", "00CB3FFF0A4D087006BF810"
                        "102A080", "--raw")
    assert out.returncode == 0, out.stderr
    assert "RECV: (SW=63C3 COUNTER: verification failed, 3 tries left)" in out.stdout
    assert "SEND: 00 20 00 01 <9 bytes redacted>" in out.stdout
    assert "31 32 33 34" not in out.stdout and "1234" not in out.stdout
    assert [e["sw"] for e in data["exchanges"]] == ["9000", "6118"]  # --raw: no GET RESPONSE
    bad = cli("apdu", "-r", my_reader(), "not hex")
    assert bad.returncode == 2


def test_emulator_pki(cli, cps_pki):
    data = cli.json("emulator", "pki")
    assert data["test_only"] is True and data["directory"] == str(cps_pki.directory)
    assert len(data["roots"]) == 3 and len(data["intermediates"]) == 6
    assert all(Path(r["certificate"]).is_file() for r in data["roots"])
    assert data["reference_time"] == cps_pki.reference_time.isoformat()
    text = cli("emulator", "pki").stdout
    assert "TEST PKI: for tests only" in text and "ACR-FO-TEST.cer" in text


def test_emulator_softhsm_and_the_pkcs11_backend(cli, tmp_path):
    data = cli.json("emulator", "softhsm", "--profile", "cps3-pharmacien", "--dir",
                    str(tmp_path / "hsm"))
    assert data["token_label"] == "CPS3v3-2990000102"
    text = cli("emulator", "softhsm", "--profile", "cps3-pharmacien", "--dir",
               str(tmp_path / "hsm"))
    assert text.stdout.strip() == f"export SOFTHSM2_CONF={data['conf']}"
    env = data["env"]
    info = cli.json("card", "info", "--backend", "pkcs11", "--module", data["module"], env=env)
    assert info["backend"] == "pkcs11" and info["card_number"] == "2990000102"
    assert info["token_label"] == "CPS3v3-2990000102"
    assert info["practitioner"]["last_name"] == "GAUTHIER"
    assert [c["role"] for c in info["certificates"]] == ["auth", "sign"]
    from cps.emulator import load_profile

    ok = cli("pin", "verify", "--backend", "pkcs11", "--module", data["module"],
             input=load_profile("cps3-pharmacien").pin + "\n", env=env)
    assert ok.returncode == 0 and "PIN verified" in ok.stdout, ok.stderr


HEAVY = ("cryptography", "smartcard", "pkcs11")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["card", "--help"],
                                  ["pin", "verify", "--help"], ["crl", "--help"],
                                  ["validate", "--help"], ["emulator", "--help"],
                                  ["apdu", "--help"]])
def test_help_imports_no_heavy_library(argv):
    code = (f"import sys; sys.argv = ['cps', *{argv!r}]\n"
            "from cps_cli.__main__ import main\n"
            "rc = main()\n"
            "import json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not set(HEAVY) & set(loaded), set(HEAVY) & set(loaded)
