"""What the cps.tls tests share: the emulated card's signature count, a card whose
PIN is verified, the server trust of the test PKI, the example app behind nginx.

Imported by the test modules (``from tls_helpers import ...``): pytest puts
``tests/`` on ``sys.path``; imported fixtures are the module's own.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Iterator

import pytest

import cps
from cps.tls import ServerTrust

INTERNAL_AUTHENTICATE = 0x88
VERIFY = 0x20
EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "tls_app.py"


def signatures(emu: Any) -> int:
    """INTERNAL AUTHENTICATE commands the emulated card answered (one a signature)."""
    return sum(1 for command, _ in (emu.journal or []) if command[1] == INTERNAL_AUTHENTICATE)


def pin_commands(emu: Any) -> int:
    """VERIFY commands carrying a PIN."""
    return sum(1 for command, _ in (emu.journal or []) if command[1] == VERIFY
               and len(command) > 5)


def load_tls_app() -> Any:
    """docs/examples/tls_app.py as a module."""
    spec = importlib.util.spec_from_file_location("tls_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def card(cps_emulated_card: Any) -> Iterator[Any]:
    """The in-process emulated card, opened, its PIN verified, its journal on."""
    with cps.open_card(connection=cps_emulated_card.connection()) as opened:
        opened.verify_pin(cps_emulated_card.pin)
        cps_emulated_card.journal = []
        yield opened


@pytest.fixture
def trust(cps_tls_server: Any) -> ServerTrust:
    """The root the test servers' certificates chain to."""
    return ServerTrust([cps_tls_server.root])


@pytest.fixture(scope="module")
def tls_app() -> Any:
    return load_tls_app()
