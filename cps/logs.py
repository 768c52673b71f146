"""Logging: the TRAFFIC level and APDU redaction.

Raw APDUs are logged at ``TRAFFIC`` (5, below DEBUG) on the ``cps.traffic``
logger. The data field of VERIFY (INS 20), CHANGE REFERENCE DATA (24) and RESET
RETRY COUNTER (2C) carries PINs and unblock codes, so it is always replaced by
its length, whatever the level: there is no switch to turn redaction off.

Set ``CPS_DEBUG=traffic`` (or ``debug``, ``info``...) in the environment to get
the library's log on stderr without writing any code.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Mapping, Optional, TextIO

__all__ = ["TRAFFIC", "SECRET_INS", "format_command", "format_response",
           "configure_from_env", "enable"]

TRAFFIC = 5
logging.addLevelName(TRAFFIC, "TRAFFIC")

#: Instructions whose data field is secret (PIN, PUK, new PIN).
SECRET_INS = frozenset({0x20, 0x24, 0x2C})

_LEVELS = {"traffic": TRAFFIC, "debug": logging.DEBUG, "info": logging.INFO,
           "warning": logging.WARNING, "error": logging.ERROR}


def _is_secret(apdu: bytes) -> bool:
    # CLA bit 0x80 marks proprietary classes; the CPS2ter side (CLA A0) uses the
    # same INS codes for its PIN commands, so redact whatever the class.
    return len(apdu) >= 2 and apdu[1] in SECRET_INS


def format_command(apdu: bytes) -> str:
    """Render a command APDU for a log line, redacting secret data fields.

    The header is always shown; for VERIFY / CHANGE REFERENCE DATA / RESET
    RETRY COUNTER everything after it is replaced by ``<N bytes redacted>``.
    """
    if not _is_secret(apdu) or len(apdu) <= 4:
        return apdu.hex(" ").upper()
    header = apdu[:4].hex(" ").upper()
    return f"{header} <{len(apdu) - 4} bytes redacted>"


def format_response(data: bytes, sw: int) -> str:
    """Render a response APDU (data then status word)."""
    body = data.hex(" ").upper()
    return f"{body} {sw:04X}" if body else f"{sw:04X}"


def enable(level: int = TRAFFIC, stream: Optional[TextIO] = None) -> logging.Handler:
    """Send the ``cps`` loggers to ``stream`` (stderr) at ``level``.

    Returns the handler so the caller can remove it.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("cps")
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def configure_from_env(environ: Optional[Mapping[str, str]] = None) -> Optional[logging.Handler]:
    """Honour ``CPS_DEBUG`` (``traffic``, ``debug``, ``info``, ``warning``, ``error``)."""
    value = (environ if environ is not None else os.environ).get("CPS_DEBUG", "").strip().lower()
    if not value:
        return None
    level = _LEVELS.get(value)
    if level is None:
        try:
            level = int(value)
        except ValueError:
            return None
    return enable(level)
