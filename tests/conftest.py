"""Shared test set-up.

The fixtures of the project's own pytest plugin (cps.testing.plugin, loaded
through its entry point) provide the test PKI, emulated cards and pcscd.
"""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(scope="session")
def pcscd(cps_pcscd) -> None:
    """The system pcscd (started by `make test`'s set-up, or here when missing)."""


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server on a free port of 127.0.0.1, for the session (installed by make test)."""
    import shutil
    import socket
    import subprocess
    import time

    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is missing: `make test` installs it")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)
