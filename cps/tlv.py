"""BER-TLV: the card's data objects (FCP, SDO/DOCP, PKCS#15), parsed defensively.

Card responses are untrusted: every length is checked against the bytes that
are really there, nesting depth is bounded, and every failure is a
:class:`~cps.errors.CardProtocolError` -- never an IndexError, never an
allocation driven by a length field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from . import der
from .der import read_length
from .errors import CardProtocolError

__all__ = ["Tlv", "parse", "parse_one", "encode", "encode_length", "find", "MAX_DEPTH"]

MAX_DEPTH = 16


@dataclass(frozen=True)
class Tlv:
    """One data object: ``tag`` as an int (``0xBF8101``), ``value`` bytes."""

    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        first = self.tag
        while first > 0xFF:
            first >>= 8
        return bool(first & 0x20)

    def children(self, depth: int = 0) -> List["Tlv"]:
        """Parse the value as a sequence of TLVs (for constructed objects)."""
        if depth > MAX_DEPTH:
            raise CardProtocolError("TLV nested too deeply")
        return parse(self.value)

    def to_dict(self) -> Dict[int, "Tlv"]:
        """Children by tag (the first occurrence of each)."""
        out: Dict[int, Tlv] = {}
        for child in self.children():
            out.setdefault(child.tag, child)
        return out

    def encode(self) -> bytes:
        return encode(self.tag, self.value)


def _read_tag(data: bytes, pos: int) -> Tuple[int, int]:
    if pos >= len(data):
        raise CardProtocolError("TLV truncated: no tag")
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:  # multi-byte tag
        for _ in range(3):
            if pos >= len(data):
                raise CardProtocolError("TLV truncated inside a tag")
            b = data[pos]
            tag = (tag << 8) | b
            pos += 1
            if not b & 0x80:
                break
        else:
            raise CardProtocolError("TLV tag longer than 4 bytes")
    return tag, pos


def _read_length(data: bytes, pos: int) -> Tuple[int, int]:
    # indefinite lengths and >16 MiB objects do not exist on a card: 3 octets at most
    return read_length(data, pos, len(data), 3, _tlv_error)


def _tlv_error(message: str) -> CardProtocolError:
    return CardProtocolError(f"TLV: {message}")


def parse_one(data: bytes, pos: int = 0) -> Tuple[Tlv, int]:
    """Parse the TLV at ``pos``; return it and the position after it."""
    tag, pos = _read_tag(data, pos)
    length, pos = _read_length(data, pos)
    end = pos + length
    if end > len(data):
        raise CardProtocolError(f"TLV 0x{tag:X} claims {length} bytes, {len(data) - pos} present")
    return Tlv(tag, bytes(data[pos:end])), end


def iterate(data: bytes, skip_padding: bool = True) -> Iterator[Tlv]:
    """Yield the TLVs of ``data`` in order (``00``/``FF`` padding skipped between them)."""
    pos = 0
    n = len(data)
    while pos < n:
        if skip_padding and data[pos] in (0x00, 0xFF):
            pos += 1
            continue
        tlv, pos = parse_one(data, pos)
        yield tlv


def parse(data: bytes) -> List[Tlv]:
    """All TLVs of ``data``."""
    return list(iterate(data))


def find(data: bytes, *path: int) -> Optional[Tlv]:
    """Follow a path of tags through nested objects: ``find(fcp, 0x62, 0x83)``."""
    current: Optional[Tlv] = None
    items = parse(data)
    for depth, tag in enumerate(path):
        if depth > MAX_DEPTH:
            raise CardProtocolError("TLV path too deep")
        current = next((t for t in items if t.tag == tag), None)
        if current is None:
            return None
        if depth + 1 < len(path):
            items = current.children()
    return current


encode_length = der.encode_length


def encode(tag: int, value: bytes) -> bytes:
    """Encode one TLV (tag up to 4 bytes, DER length)."""
    size = max(1, (tag.bit_length() + 7) // 8)
    return tag.to_bytes(size, "big") + encode_length(len(value)) + value
