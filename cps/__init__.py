"""CPS card middleware: read, identify, sign and authenticate with French health
professional cards (CPS3 / IAS-ECC "CPx"), with certificates validated against
the IGC-Santé PKI.

``import cps`` is light: it imports neither click, nor pyscard, nor
python-pkcs11, nor cryptography, and loads its own modules on first use (the
``cps`` command starts as fast as a bare click program).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ._version import __version__

__all__ = ["__version__", "errors", "TRAFFIC", "ReaderInfo", "list_readers", "open_card",
           "Card", "KeyRole", "PinStatus", "LastTryRefused", "Practitioner"]

# name -> module that defines it
_LAZY = {
    "errors": None, "TRAFFIC": "logs",
    "ReaderInfo": "readers", "list_readers": "readers",
    "open_card": "open", "Card": "card", "KeyRole": "card", "PinStatus": "card",
    "LastTryRefused": "card", "Practitioner": "identity",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'cps' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # next access: a plain attribute
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))


if os.environ.get("CPS_DEBUG"):
    from .logs import configure_from_env

    configure_from_env()
