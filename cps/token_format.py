"""The authentication token's wire format: what the card signs and the fields it answers.

Below both of its users: the Card API builds a token
(:meth:`cps.card.Card.auth_token`) and :mod:`cps.auth` parses and verifies
them (docs/auth-token.md). Neither reaches the other through this module:
``cps.card`` does not import ``cps.auth``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Dict

from ._version import __version__

__all__ = ["TOKEN_FORMAT", "text_digest", "signed_data", "token_fields"]

TOKEN_FORMAT = "cps-auth-token/1"  # noqa: S105 - a format name, not a secret


def text_digest(text: str) -> bytes:
    """SHA-256 of a string's UTF-8 bytes: each half of :func:`signed_data`."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def signed_data(origin: str, nonce: str) -> bytes:
    """What the card signs: SHA-256(origin) || SHA-256(nonce)."""
    return text_digest(origin) + text_digest(nonce)


def token_fields(certificate_der: bytes, signature: bytes, nonce: str,
                 origin: str) -> Dict[str, str]:
    """The JSON-serialisable token for a signature of :func:`signed_data` (RS256)."""
    return {"format": TOKEN_FORMAT, "algorithm": "RS256",
            "certificate": base64.b64encode(certificate_der).decode("ascii"),
            "signature": base64.b64encode(signature).decode("ascii"),
            "nonce": nonce, "origin": origin, "library": f"cps/{__version__}"}
