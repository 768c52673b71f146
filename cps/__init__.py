"""CPS card middleware: read, identify, sign and authenticate with French health
professional cards (CPS3 / IAS-ECC "CPx"), with certificates validated against
the IGC-Santé PKI.

``import cps`` is light: it imports neither click, nor pyscard, nor
python-pkcs11, nor cryptography. Backends load them when first used.
"""

from __future__ import annotations

from typing import Any

from . import errors
from ._version import __version__
from .card import Card, KeyRole, LastTryRefused, PinStatus, open_card
from .logs import TRAFFIC, configure_from_env
from .readers import ReaderInfo, list_readers

__all__ = ["__version__", "errors", "TRAFFIC", "ReaderInfo", "list_readers", "open_card",
           "Card", "KeyRole", "PinStatus", "LastTryRefused", "Practitioner"]

configure_from_env()


def __getattr__(name: str) -> Any:
    # Practitioner needs cryptography: load it on first use, not on `import cps`.
    if name == "Practitioner":
        from .identity import Practitioner

        return Practitioner
    raise AttributeError(f"module 'cps' has no attribute {name!r}")
