"""The authentication token: what the card holder's client sends back for a challenge.

Specified in docs/auth-token.md. A token is a JSON object (format 1)::

    {"format": "cps-auth-token/1", "algorithm": "RS256",
     "certificate": "<base64 DER of the authentication certificate>",
     "signature": "<base64 PKCS#1 v1.5 signature>",
     "nonce": "<the challenge, as issued>", "origin": "https://app.example",
     "library": "cps/0.1.0"}

The signature covers ``SHA-256(origin) || SHA-256(nonce)`` (UTF-8 bytes, 64
bytes in all), signed RSASSA-PKCS1-v1_5 with SHA-256 by the card's
authentication key: binding the answer to this challenge *and* this site, so a
token phished for one site is worthless on another.

Format 2 (``"cps-auth-token/2"``) carries ``"RS256"`` or ``"PS256"``
(RSASSA-PSS, what a CPS4 card signs) and signs its own format and algorithm
first: ``SHA-256("cps-auth-token/2 PS256") || SHA-256(origin) || SHA-256(nonce)``
(:mod:`cps.token_format`).
"""

from __future__ import annotations

import binascii
import json
import re
import sys
from collections import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Union

from ..errors import MalformedToken, TokenTooLarge, UnsupportedAlgorithm, UnsupportedTokenFormat
from ..token_format import ALGORITHMS as _ALGORITHMS
from ..token_format import FORMATS, TOKEN_FORMAT, TOKEN_FORMAT_2, signed_data, text_digest

if TYPE_CHECKING:  # pragma: no cover
    from ..card import Card

__all__ = ["TOKEN_FORMAT", "TOKEN_FORMAT_2", "FORMATS", "ALGORITHMS", "PADDINGS", "Token",
           "signed_data", "text_digest", "make_token", "parse_token", "LIMITS"]

#: algorithm name -> hash used over the signed data
ALGORITHMS = {name: hash for name, (_, hash) in _ALGORITHMS.items()}
#: algorithm name -> its RSA padding (``"pkcs1v15"``, ``"pss"``)
PADDINGS = {name: padding for name, (padding, _) in _ALGORITHMS.items()}
#: size limits, checked before anything is decoded
LIMITS = {"token": 16_384, "certificate": 8_192, "signature": 1_024, "nonce": 128,
          "origin": 2_048, "library": 64, "format": 64, "algorithm": 16}


_REQUIRED = ("format", "algorithm", "certificate", "signature", "nonce", "origin")
_ALL = _REQUIRED + ("library",)
# base64 expands 3 bytes into 4 characters
_LIMITS = tuple(LIMITS[n] * 4 // 3 + 4 if n in ("certificate", "signature") else LIMITS[n]
                for n in _ALL)


def make_token(card: "Card", nonce: str, origin: str, *,
               padding: str = "pkcs1v15") -> Dict[str, str]:
    """Answer a challenge with the card's authentication key (the PIN must be verified).

    The same as ``card.auth_token(nonce, origin, padding=padding)`` (the Card
    API builds the token, from :mod:`cps.token_format`).

    :param nonce: the challenge exactly as the server issued it.
    :param origin: the server's origin (``https://host[:port]``).
    :param padding: ``"pkcs1v15"`` (format 1, RS256: every card, every server)
        or ``"pss"`` (format 2, PS256: a CPS4 card, a server that knows format 2).
    :returns: a JSON-serialisable token.
    """
    if padding == "pkcs1v15":  # the call every Card (and older backends) takes
        return card.auth_token(nonce, origin)
    return card.auth_token(nonce, origin, padding=padding)


@dataclass(frozen=True)
class Token:
    """A decoded token (fields checked for type and size, nothing verified yet)."""

    format: str
    algorithm: str
    certificate: bytes
    signature: bytes
    nonce: str
    origin: str
    library: str = ""

    @property
    def padding(self) -> str:
        """The signature's RSA padding: ``"pkcs1v15"`` (RS256) or ``"pss"`` (PS256)."""
        return PADDINGS[self.algorithm]


if sys.version_info >= (3, 11):
    def _a2b_strict(value: str) -> bytes:
        return binascii.a2b_base64(value, strict_mode=True)
else:
    # Python 3.10's a2b_base64 has no strict_mode: check the same first (whole
    # quanta of the alphabet, padding only to complete the last one)
    _STRICT_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

    def _a2b_strict(value: str) -> bytes:
        if _STRICT_B64.fullmatch(value) is None:
            raise binascii.Error("only base64 data is allowed")
        return binascii.a2b_base64(value)


def _b64(value: str, field: str) -> bytes:
    try:
        # strict: only the base64 alphabet, padding only at the end (what
        # b64decode(validate=True) checks with a regular expression first)
        return _a2b_strict(value)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MalformedToken(f"token field {field!r} is not valid base64") from None


def parse_token(token: Union[str, bytes, Mapping[str, Any]]) -> Token:
    """Decode a token, checking structure, sizes, format and algorithm.

    :raises TokenTooLarge, MalformedToken, UnsupportedTokenFormat, UnsupportedAlgorithm:
    """
    if isinstance(token, (str, bytes, bytearray)):
        if len(token) > LIMITS["token"]:
            raise TokenTooLarge(f"token larger than {LIMITS['token']} bytes")
        try:
            token = json.loads(token)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedToken("token is not valid JSON") from None
    if type(token) is not dict and not isinstance(token, abc.Mapping):
        raise MalformedToken("token must be a JSON object")
    get = token.get
    fields = [get(name) for name in _REQUIRED]
    values: List[str] = []
    for name, value in zip(_REQUIRED, fields, strict=True):
        if not isinstance(value, str) or not value:
            raise MalformedToken(f"token field {name!r} missing or not a string")
        values.append(value)
    library = get("library", "")
    if not isinstance(library, str):
        raise MalformedToken("token field 'library' must be a string")
    values.append(library)
    for name, value, limit in zip(_ALL, values, _LIMITS, strict=True):
        if len(value) > limit:
            raise TokenTooLarge(f"token field {name!r} is too large")
    for name, value in zip(_ALL, values, strict=True):
        # a lone surrogate ("\\ud800" in JSON) has no UTF-8 form: it could be
        # neither hashed nor sent to a store
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise MalformedToken(f"token field {name!r} is not valid Unicode") from None
    fmt, algorithm, certificate, signature, nonce, origin, _ = values
    allowed = FORMATS.get(fmt)
    if allowed is None:
        raise UnsupportedTokenFormat(f"unsupported token format {fmt[:40]!r}")
    if algorithm not in allowed:  # format 1 is RS256 only: PS256 needs a signed algorithm
        raise UnsupportedAlgorithm(f"algorithm {algorithm[:16]!r} is not allowed in "
                                   f"{fmt}")
    return Token(fmt, algorithm, _b64(certificate, "certificate"), _b64(signature, "signature"),
                 nonce, origin, library)
