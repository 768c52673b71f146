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
