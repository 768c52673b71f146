"""CPS card middleware: read, identify, sign and authenticate with French health
professional cards (CPS3 / IAS-ECC "CPx"), with certificates validated against
the IGC-Santé PKI.

``import cps`` is light: it imports neither click, nor pyscard, nor
python-pkcs11, nor cryptography. Backends load them when first used.
"""

from __future__ import annotations

from . import errors
from ._version import __version__
from .logs import TRAFFIC, configure_from_env
from .readers import ReaderInfo, list_readers

__all__ = ["__version__", "errors", "TRAFFIC", "ReaderInfo", "list_readers"]

configure_from_env()
