"""Shared test set-up: the system pcscd is started by `make test` (scripts/setup.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Integration tests may not skip in CI: make a missing pcscd a hard failure.
    config.addinivalue_line("markers", "pcsc: needs the system pcscd with vpcd")


@pytest.fixture(scope="session")
def pcscd() -> None:
    """Ensure the machine's pcscd is running (start it when we can); fail otherwise."""
    if subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True).returncode == 0:
        return
    if os.geteuid() == 0 and shutil.which("pcscd"):
        subprocess.run(["pcscd"], check=True)
        import time

        for _ in range(50):
            if os.path.exists("/run/pcscd/pcscd.comm"):
                return
            time.sleep(0.1)
    pytest.fail("pcscd is not running and could not be started (run `make test` as root)")


@pytest.fixture
def python() -> str:
    return sys.executable
