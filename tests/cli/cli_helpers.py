"""Helpers of the CLI tests (imported by their conftest and test modules)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

CPS = str(Path(sys.executable).with_name("cps"))


def vpcd_port() -> int:
    return int(os.environ.get("CPS_VPCD_PORT", "35963"))


def my_reader() -> str:
    """The virtual reader these tests own (the one of CPS_VPCD_PORT)."""
    from cps.emulator.vpcd import reader_name_for_port

    return reader_name_for_port(vpcd_port())


class Cli:
    """Run the real `cps` script; ``env`` is the subprocess environment."""

    def __init__(self, env: Dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, input: Optional[str] = None,
                 env: Optional[Dict[str, str]] = None, timeout: float = 60
                 ) -> subprocess.CompletedProcess:
        full_env = dict(self.env, **(env or {}))
        return subprocess.run([CPS, *args], input=input if input is not None else "",
                              capture_output=True, text=True, env=full_env, timeout=timeout)

    def json(self, *args: str, code: int = 0, **kwargs: Any) -> Any:
        """Run with ``--json`` appended; check the exit code; parse stdout."""
        out = self(*args, "--json", **kwargs)
        assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
        return json.loads(out.stdout)


def write_cert(path: Path, cert: Any) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return str(path)


def no_secret(texts: Sequence[str], *secrets: str) -> None:
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"a secret appears in the output: {text!r}"
