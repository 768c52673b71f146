"""`cps emulator list|serve` through the installed console script and the real pcscd."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cps

CPS = str(Path(sys.executable).with_name("cps"))
pytestmark = pytest.mark.pcsc


def _present(name: str) -> bool:
    return any(r.name == name and r.card_present for r in cps.list_readers())


def test_emulator_list_json():
    out = subprocess.run([CPS, "emulator", "list", "--json"], capture_output=True, text=True,
                         check=True)
    data = {d["profile"]: d for d in json.loads(out.stdout)}
    assert {"cps3-medecin", "cps3-contactless", "cps3-revoked"} <= set(data)
    assert data["cps3-contactless"]["interface"] == "contactless"


def test_emulator_serve_until_interrupted(pcscd, tmp_path, cps_pki):
    reader = "Virtual PCD 00 01"
    proc = subprocess.Popen([CPS, "emulator", "serve", "--profile", "cps3-pharmacien",
                             "--port", "35964", "--pki-dir", str(cps_pki.directory)],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not _present(reader):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the served card never appeared"
            time.sleep(0.1)
        (info,) = [r for r in cps.list_readers() if r.name == reader]
        assert info.card_kind.value == "cps3"
    finally:
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=20)[1]
    assert proc.returncode == 0, err
    assert "inserted in 'Virtual PCD 00 01'" in err and "Card removed." in err
    assert "1234" not in err  # the PIN is never printed
    deadline = time.monotonic() + 10
    while _present(reader):
        assert time.monotonic() < deadline
        time.sleep(0.1)
