"""CPS_DEBUG switches the TRAFFIC log on; redaction holds there too."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
from cps.apdu import ApduChannel, CommandApdu
from cps.testing.scripted import ScriptedConnection
conn = ScriptedConnection([(None, bytes.fromhex('9000')), (None, bytes.fromhex('63C2'))])
ch = ApduChannel(conn)
ch.send(0, 0xA4, 0x09, 0x0C, bytes.fromhex('3F00'))
ch.transmit(CommandApdu(0, 0x20, 0, 1, b'4321' + b'\\xff' * 4))
"""


def _run(env_value):
    env = {"PATH": "/usr/bin:/bin"}
    if env_value is not None:
        env["CPS_DEBUG"] = env_value
    return subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, check=True)


def test_cps_debug_traffic_logs_apdus_to_stderr_redacted():
    err = _run("traffic").stderr
    assert "TRAFFIC" in err and "00 A4 09 0C 02 3F 00" in err
    assert "00 20 00 01 <9 bytes redacted>" in err
    assert "34 33 32 31" not in err and "4321" not in err


def test_no_log_without_cps_debug():
    assert _run(None).stderr == ""


def test_cps_debug_info_hides_traffic():
    assert "TRAFFIC" not in _run("info").stderr
