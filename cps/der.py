"""DER (X.690) headers: the one reader of definite lengths, and the length encoder.

Every parser of the project that meets a DER or BER-TLV length goes through
:func:`read_length`: certificates and CRLs (:mod:`cps.trust`), LDAP answers,
the RSASSA-PSS parameters, the CRL header peek of the cache, the card's
BER-TLV objects (:mod:`cps.tlv`), a certificate file's size on the card
(:mod:`cps.cps3`) and the practitioner's certificate (:mod:`cps.identity`).
Each caller names the error it raises (``error``), so every layer keeps its
own typed failure (``CertificateParseError`` for certificates,
``CardProtocolError`` for a card's bytes...).

:func:`header` and :func:`children` read single-byte-tag TLVs, what X.509
certificates and CRLs are made of. :func:`children` repeats the header
reading inline: it reads every element of every certificate on the login hot
path (tests/test_fast_paths.py holds it to :func:`header`).

This module imports nothing beyond the error classes: the card session and the
trust layer both use it, neither through the other.
"""

from __future__ import annotations

from typing import Callable, List, Tuple

from .errors import CertificateParseError

__all__ = ["read_length", "header", "children", "encode_length", "ErrorFactory"]

#: what a reader raises: an exception class or any callable taking the message
ErrorFactory = Callable[[str], Exception]


def read_length(data: bytes, pos: int, end: int, max_octets: int = 4,
                error: ErrorFactory = CertificateParseError) -> Tuple[int, int]:
    """The definite length whose first octet is ``data[pos]``.

    :param end: where the available bytes end (the length octets must fit before it).
    :param max_octets: the most length octets accepted after the first (``0x8n``).
    :returns: ``(length, position after the length octets)``; whether the value
        fits is the caller's check.
    :raises error: truncated, indefinite (BER) or longer than ``max_octets``.
    """
    if pos >= end:
        raise error("truncated (expected a length)")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0:
        raise error("indefinite length (BER) where DER is required")
    if count > max_octets:
        raise error(f"unsupported length form 0x{first:02X}")
    if pos + count > end:
        raise error("truncated inside a length")
    return int.from_bytes(data[pos:pos + count], "big"), pos + count


def header(data: bytes, pos: int, end: int,
           error: ErrorFactory = CertificateParseError) -> Tuple[int, int, int]:
    """(tag, start of value, end of value) of the TLV at ``pos``; single-byte tags only."""
    if pos + 2 > end:
        raise error("truncated DER")
    n = data[pos + 1]
    if n < 0x80:  # the common case, without a call
        if pos + 2 + n > end:
            raise error("DER value runs past its container")
        return data[pos], pos + 2, pos + 2 + n
    n, vs = read_length(data, pos + 1, end, 4, error)
    if vs + n > end:
        raise error("DER value runs past its container")
    return data[pos], vs, vs + n


def children(data: bytes, start: int, end: int,
             error: ErrorFactory = CertificateParseError) -> List[Tuple[int, int, int, int]]:
    """(tag, header start, value start, value end) of each TLV in data[start:end]."""
    # header() inlined: this loop reads every element of every certificate.
    out: List[Tuple[int, int, int, int]] = []
    append = out.append
    pos = start
    while pos < end:
        if pos + 2 > end:
            raise error("truncated DER")
        n = data[pos + 1]
        vs = pos + 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 4 or vs + k > end:
                read_length(data, pos + 1, end, 4, error)  # raises, with the reason
            n = int.from_bytes(data[vs:vs + k], "big")
            vs += k
        ve = vs + n
        if ve > end:
            raise error("DER value runs past its container")
        append((data[pos], pos, vs, ve))
        pos = ve
        if len(out) > 4096:
            raise error("too many DER elements")
    return out


def encode_length(n: int) -> bytes:
    """The DER length octets of ``n`` (short form below 128, else ``0x8n`` + big-endian)."""
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")
