"""The authentication token's wire format: what the card signs and the fields it answers.

Below both of its users: the Card API builds a token
(:meth:`cps.card.Card.auth_token`) and :mod:`cps.auth` parses and verifies
them (docs/auth-token.md). Neither reaches the other through this module:
``cps.card`` does not import ``cps.auth``.

Two formats:

* ``cps-auth-token/1``: RS256 (RSASSA-PKCS1-v1_5, SHA-256) only; the card
  signs ``SHA-256(origin) || SHA-256(nonce)``. What every CPS card makes,
  and what servers written before format 2 accept.
* ``cps-auth-token/2``: RS256 or PS256 (RSASSA-PSS, SHA-256, MGF1-SHA-256,
  a 32-byte salt: what a CPS4 card signs); the card signs
  ``SHA-256("cps-auth-token/2 " + algorithm) || SHA-256(origin) || SHA-256(nonce)``,
  so the format and the algorithm are under the signature: a token cannot
  be relabelled to another algorithm or format and still verify.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Dict, Tuple

from ._version import __version__

__all__ = ["TOKEN_FORMAT", "TOKEN_FORMAT_2", "FORMATS", "ALGORITHMS", "text_digest",
           "signed_data", "token_fields", "format_for"]

TOKEN_FORMAT = "cps-auth-token/1"  # noqa: S105 - a format name, not a secret
#: the format that signs its own format and algorithm (PS256 needs it)
TOKEN_FORMAT_2 = "cps-auth-token/2"  # noqa: S105 - a format name, not a secret
#: format -> the algorithms it may carry
FORMATS: Dict[str, Tuple[str, ...]] = {TOKEN_FORMAT: ("RS256",),
                                       TOKEN_FORMAT_2: ("RS256", "PS256")}
#: algorithm -> (padding as :meth:`cps.Card.sign` names it, hash); PS256 is
#: RFC 7518 3.5's: MGF1 over SHA-256, a salt of 32 bytes
ALGORITHMS: Dict[str, Tuple[str, str]] = {"RS256": ("pkcs1v15", "sha256"),
                                          "PS256": ("pss", "sha256")}


def text_digest(text: str) -> bytes:
    """SHA-256 of a string's UTF-8 bytes: each part of :func:`signed_data`."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def format_for(padding: str) -> Tuple[str, str]:
    """(format, algorithm) of the token a card signing with ``padding`` makes:
    format 1 RS256 for PKCS#1 v1.5 (what every server accepts), format 2 PS256
    for PSS.

    :raises ValueError: another padding.
    """
    if padding == "pkcs1v15":
        return TOKEN_FORMAT, "RS256"
    if padding == "pss":
        return TOKEN_FORMAT_2, "PS256"
    raise ValueError(f"unknown padding {padding!r}: use 'pkcs1v15' or 'pss'")


def signed_data(origin: str, nonce: str, format: str = TOKEN_FORMAT,  # noqa: A002
                algorithm: str = "RS256") -> bytes:
    """What the card signs.

    Format 1: SHA-256(origin) || SHA-256(nonce) (64 bytes). Format 2:
    SHA-256(format + " " + algorithm) || SHA-256(origin) || SHA-256(nonce)
    (96 bytes): the algorithm is signed.

    :raises ValueError: an unknown format, or an algorithm the format does not carry.
    """
    if algorithm not in FORMATS.get(format, ()):
        raise ValueError(f"algorithm {algorithm!r} in format {format!r}")
    if format == TOKEN_FORMAT:
        return text_digest(origin) + text_digest(nonce)
    return text_digest(f"{format} {algorithm}") + text_digest(origin) + text_digest(nonce)


def token_fields(certificate_der: bytes, signature: bytes, nonce: str,
                 origin: str, format: str = TOKEN_FORMAT,  # noqa: A002
                 algorithm: str = "RS256") -> Dict[str, str]:
    """The JSON-serialisable token for a signature of :func:`signed_data`."""
    return {"format": format, "algorithm": algorithm,
            "certificate": base64.b64encode(certificate_der).decode("ascii"),
            "signature": base64.b64encode(signature).decode("ascii"),
            "nonce": nonce, "origin": origin, "library": f"cps/{__version__}"}
