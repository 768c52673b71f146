"""pcscd stopped and started again under a running application.

pcscd is one per machine: this test stops it for a few seconds (everybody's
PC/SC sessions notice) and always starts it again, even when it fails. It
needs root, as `make test`'s set-up does.

While pcscd is down: ``list_readers`` and ``open_card`` raise
``PcscServiceUnavailable``, an open session raises a typed ``ReaderError``.
Once it is back and the card served again: a new session works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from reliability_helpers import open_when_ready, vpcd_port, wait_reader_free

import cps
from cps import errors

PIN, PUK = "7391", "58204613"
SOCKET = "/run/pcscd/pcscd.comm"


def _running() -> bool:
    return subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True).returncode == 0


def _systemd_managed() -> bool:
    return shutil.which("systemctl") is not None and subprocess.run(
        ["systemctl", "is-active", "--quiet", "pcscd"], capture_output=True).returncode == 0


def _stop_pcscd() -> None:
    if _systemd_managed():
        subprocess.run(["systemctl", "stop", "pcscd.socket", "pcscd"], check=False)
    else:
        subprocess.run(["pkill", "-x", "pcscd"], check=False)
    deadline = time.monotonic() + 10
    while _running():
        assert time.monotonic() < deadline, "pcscd does not stop"
        time.sleep(0.05)


def _start_pcscd() -> None:
    if _running():
        return
    if shutil.which("systemctl") and subprocess.run(
            ["systemctl", "start", "pcscd.socket", "pcscd"], capture_output=True).returncode == 0:
        pass
    else:
        os.makedirs("/run/pcscd", exist_ok=True)
        for stale in (SOCKET, "/run/pcscd/pcscd.pid"):   # a dead daemon leaves them behind
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        subprocess.run(["pcscd"], check=True)
    deadline = time.monotonic() + 10
    while not os.path.exists(SOCKET):
        assert time.monotonic() < deadline, "pcscd did not come back"
        time.sleep(0.05)


def _sign_ok(card, emu) -> None:
    emu.credentials.sign_cert.public_key().verify(card.sign(b"doc"), b"doc", padding.PKCS1v15(),
                                                  hashes.SHA256())


@pytest.mark.pcsc
def test_pcscd_restarted_under_a_running_application(cps_pcscd, cps_card_factory):
    assert os.geteuid() == 0, "restarting pcscd needs root (make test runs as root)"
    emu = cps_card_factory("cps3-medecin", pin=PIN, puk=PUK)
    wait_reader_free()
    attachment = emu.serve_vpcd(port=vpcd_port())
    reader = attachment.reader_name
    session = open_when_ready(reader, emu)
    session.verify_pin(PIN)
    _sign_ok(session, emu)
    try:
        _stop_pcscd()
        start = time.monotonic()
        with pytest.raises(errors.PcscServiceUnavailable):
            cps.list_readers()
        with pytest.raises(errors.PcscServiceUnavailable):
            cps.open_card(reader=reader)
        with pytest.raises(errors.ReaderError) as info:        # the open session
            _sign_ok(session, emu)
        print(f"open session while pcscd is down: {type(info.value).__name__}: {info.value}")
        assert time.monotonic() - start < 10
    finally:
        _start_pcscd()
        session.close()
        attachment.stop(wait_absent=False)
    with emu.serve_vpcd(port=vpcd_port()) as again:
        with open_when_ready(again.reader_name, emu, timeout=30) as card:
            assert card.pin_status().tries_left == 3
            card.verify_pin(PIN)
            _sign_ok(card, emu)
