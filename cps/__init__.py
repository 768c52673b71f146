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
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    # What a type checker sees: the real names and their types (so that
    # `cps.open_crad` is an error and `cps.open_card(...)` returns a Card). At
    # run time nothing below is imported until first use (the __getattr__ below).
    from . import errors
    from .card import Card, KeyRole, LastTryRefused, PinStatus
    from .identity import Practitioner
    from .logs import TRAFFIC
    from .open import open_card
    from .readers import ReaderInfo, list_readers

__all__ = ["__version__", "errors", "TRAFFIC", "ReaderInfo", "list_readers", "open_card",
           "Card", "KeyRole", "PinStatus", "LastTryRefused", "Practitioner"]

# name -> module that defines it
_LAZY = {
    "errors": None, "TRAFFIC": "logs",
    "ReaderInfo": "readers", "list_readers": "readers",
    "open_card": "open", "Card": "card", "KeyRole": "card", "PinStatus": "card",
    "LastTryRefused": "card", "Practitioner": "identity",
}

if not TYPE_CHECKING:  # hidden from type checkers: a module __getattr__ would make
    # every attribute of `cps` valid (typed Any) in their eyes

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


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if os.environ.get("CPS_DEBUG"):
    from .logs import configure_from_env

    configure_from_env()
