"""Fixtures of the CLI tests: the installed `cps` console script, run in subprocesses
against emulated cards served through the real pcscd (vsmartcard-vpcd).

The vpcd port comes from ``CPS_VPCD_PORT`` (35963: reader ``Virtual PCD 00 00``,
35964: ``Virtual PCD 00 01``), as for the plugin's ``cps_vpcd_card``; tests
name readers through the attachment, never by a hard-coded name.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import pytest
from cli_helpers import Cli, my_reader, vpcd_port


@pytest.fixture(scope="session")
def cli_env(cps_pki) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CPS_DEBUG", "SOFTHSM2"))}
    # `--anchors test` and `cps emulator ...` in the subprocesses use the session's PKI.
    env["CPS_TEST_PKI_DIR"] = str(cps_pki.directory)
    env["PYTHONIOENCODING"] = "utf-8"
    env.pop("CPS_CRL_CACHE_DIR", None)
    return env


@pytest.fixture
def cli(cli_env, tmp_path) -> Cli:
    # Never touch the user's real CRL cache.
    return Cli(dict(cli_env, CPS_CRL_CACHE_DIR=str(tmp_path / "crl-cache")))


@pytest.fixture
def serve(cps_pcscd, cps_card_factory) -> Callable[..., Any]:
    """``with serve("cps3-medecin", mutate=None, pin=None) as emu:`` a card in our reader.

    ``mutate(emu)`` runs before insertion (break a key, change the ATR...);
    ``emu.reader`` names the reader.
    """
    @contextlib.contextmanager
    def run(profile: str = "cps3-medecin", mutate: Optional[Callable[[Any], None]] = None,
            **kwargs: Any) -> Iterator[Any]:
        emu = cps_card_factory(profile, **kwargs)
        if mutate is not None:
            mutate(emu)
        _wait_reader_free()
        with emu.serve_vpcd(port=vpcd_port()) as attachment:
            emu.reader = attachment.reader_name
            yield emu

    return run


def _wait_reader_free(timeout: float = 60) -> None:
    """Another process may be serving a card on our port (a developer's other test
    run): wait for it to leave rather than talk to somebody else's card."""
    import time

    import cps

    deadline = time.monotonic() + timeout
    while any(r.name == my_reader() and r.card_present for r in cps.list_readers()):
        if time.monotonic() > deadline:
            pytest.fail(f"{my_reader()} stays busy: another process serves a card on vpcd "
                        f"port {vpcd_port()} (set CPS_VPCD_PORT to use the other reader)")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def crl_dir(cps_pki, tmp_path_factory) -> str:
    """The test PKI's CRLs, issued once at the start of the session.

    A snapshot, not the PKI directory: every `--anchors test` re-publishes the
    CRLs there at the current time, and a CRL issued after a signature's time
    is not current at that time.
    """
    root = tmp_path_factory.mktemp("crl-snapshot")
    cps_pki.publish(root)
    return str(Path(root) / "crl")
