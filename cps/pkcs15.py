"""PKCS#15 (ISO/IEC 7816-15) structures as CPS3 cards carry them, parsed leniently.

Real CPS3 cards are not strictly DER (OpenSC #2224): BIT STRINGs with a wrong
unused-bits count or trailing zero bytes, a PrKDF without algReferences. We
read what is there and never reject a structure for its encoding style; we do
reject what cannot be a PKCS#15 object (truncated TLVs, missing mandatory
fields), always with :class:`~cps.errors.CardProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from . import tlv
from .errors import CardProtocolError
from .tlv import Tlv

__all__ = ["PinObject", "PrivateKeyObject", "CertificateObject", "parse_odf", "parse_aodf",
           "parse_prkdf", "parse_cdf", "bits", "ODF_PRKDF", "ODF_CDF", "ODF_AODF",
           "PIN_FLAG_LOCAL", "PIN_FLAG_NEEDS_PADDING", "USAGE_NON_REPUDIATION", "USAGE_SIGN",
           "USAGE_DECRYPT"]

# ODF choice tags (context-specific, constructed)
ODF_PRKDF, ODF_PUKDF, ODF_CDF, ODF_AODF = 0xA0, 0xA1, 0xA4, 0xA8

PIN_FLAG_LOCAL = 1 << 1
PIN_FLAG_NEEDS_PADDING = 1 << 5
PIN_FLAG_UNBLOCKING = 1 << 6
PIN_FLAG_SO = 1 << 7
USAGE_DECRYPT, USAGE_SIGN, USAGE_NON_REPUDIATION = 1 << 1, 1 << 2, 1 << 9

_MAX_OBJECTS = 64  # a CPS3 holds a handful; a bigger list is a broken or hostile card
MAX_PIN_STORED = 64  # ISO 7816-15 allows any length; no real PIN object comes near


def bits(value: bytes) -> int:
    """A BIT STRING as flags, bit n (n = 0 the first, most significant bit) -> ``1 << n``.

    The unused-bits byte is not trusted (real cards get it wrong): every bit
    present is read.
    """
    if not value:
        raise CardProtocolError("empty BIT STRING")
    out = 0
    for i, byte in enumerate(value[1:8]):  # 7 bytes = 56 flags: far more than PKCS#15 defines
        for j in range(8):
            if byte & (0x80 >> j):
                out |= 1 << (i * 8 + j)
    return out


def _int(value: bytes) -> int:
    if not value or len(value) > 8:
        raise CardProtocolError("bad INTEGER in a PKCS#15 object")
    return int.from_bytes(value, "big", signed=True)


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _children(t: Tlv) -> List[Tlv]:
    items = tlv.parse(t.value)
    if len(items) > _MAX_OBJECTS:
        raise CardProtocolError("too many elements in a PKCS#15 object")
    return items


def _first(items: List[Tlv], tag: int) -> Optional[Tlv]:
    return next((i for i in items if i.tag == tag), None)


def _objects(data: bytes) -> List[Tlv]:
    objects = tlv.parse(data)
    if len(objects) > _MAX_OBJECTS:
        raise CardProtocolError("too many PKCS#15 objects")
    return objects


def _path(seq: Optional[Tlv]) -> bytes:
    """Path ::= SEQUENCE { path OCTET STRING, index, length } -> the path bytes."""
    if seq is None:
        return b""
    inner = _first(_children(seq), 0x04)
    return inner.value if inner else b""


@dataclass(frozen=True)
class _Common:
    label: str = ""
    flags: int = 0
    auth_id: bytes = b""


def _common(t: Tlv) -> _Common:
    items = _children(t)
    label = _first(items, 0x0C)
    flags = _first(items, 0x03)
    auth = _first(items, 0x04)
    return _Common(_text(label.value) if label else "", bits(flags.value) if flags else 0,
                   auth.value if auth else b"")


def parse_odf(data: bytes) -> Dict[int, List[bytes]]:
    """EF.ODF -> ``{ODF_PRKDF: [path, ...], ODF_CDF: [...], ODF_AODF: [...]}``."""
    out: Dict[int, List[bytes]] = {}
    for item in _objects(data):
        if item.tag & 0xE0 != 0xA0:
            continue  # unknown choice: ignore, as ISO 7816-15 asks
        seq = _first(_children(item), 0x30)
        path = _path(seq) if seq is not None else b""
        if path:
            out.setdefault(item.tag, []).append(path)
    return out


@dataclass(frozen=True)
class PinObject:
    """An authentication object (PIN or unblock code) of the AODF."""

    label: str
    auth_id: bytes          #: this object's ID (CommonAuthenticationObjectAttributes.authId)
    parent_auth_id: bytes   #: CommonObjectAttributes.authId: the object that unblocks it
    flags: int
    pin_type: int
    min_length: int
    stored_length: int
    max_length: Optional[int]
    reference: int
    pad_char: Optional[int]
    path: bytes = b""

    @property
    def needs_padding(self) -> bool:
        return bool(self.flags & PIN_FLAG_NEEDS_PADDING)

    @property
    def is_unblocking(self) -> bool:
        return bool(self.flags & (PIN_FLAG_UNBLOCKING | PIN_FLAG_SO))

    def encode(self, code: str) -> bytes:
        """The VERIFY data for ``code``: ASCII, padded to the stored length when asked."""
        data = code.encode("ascii")
        if not 0 <= self.stored_length <= MAX_PIN_STORED:
            # The card says how long to pad; a PIN never needs more than this.
            raise CardProtocolError(f"impossible PIN stored length {self.stored_length}")
        if self.needs_padding and len(data) < self.stored_length:
            data += bytes((0xFF if self.pad_char is None else self.pad_char,)) * (
                self.stored_length - len(data))
        return data


def parse_aodf(data: bytes) -> List[PinObject]:
    """The PIN objects of an AODF (other authentication types are skipped)."""
    out = []
    for obj in _objects(data):
        if obj.tag != 0x30:
            continue
        items = _children(obj)
        if len(items) < 3:
            raise CardProtocolError("AODF entry with too few parts")
        common = _common(items[0])
        auth_attrs = _children(items[1])
        auth_id = _first(auth_attrs, 0x04)
        type_attrs = _first(items, 0xA1)
        if type_attrs is None:
            continue
        pin_seq = _first(_children(type_attrs), 0x30)
        if pin_seq is None:
            raise CardProtocolError("AODF entry without PinAttributes")
        p = _children(pin_seq)
        ints = [i for i in p if i.tag == 0x02]
        if len(p) < 4 or p[0].tag != 0x03 or p[1].tag != 0x0A or len(ints) < 2:
            raise CardProtocolError("malformed PinAttributes")
        ref = _first(p, 0x80)
        pad = _first(p, 0x04)
        out.append(PinObject(
            label=common.label, auth_id=auth_id.value if auth_id else b"",
            parent_auth_id=common.auth_id, flags=bits(p[0].value), pin_type=_int(p[1].value),
            min_length=_int(ints[0].value), stored_length=_int(ints[1].value),
            max_length=_int(ints[2].value) if len(ints) > 2 else None,
            reference=_int(ref.value) & 0xFF if ref else 0,
            pad_char=pad.value[0] if pad and pad.value else None,
            path=_path(_first(p, 0x30))))
    return out


@dataclass(frozen=True)
class PrivateKeyObject:
    """A private RSA key of the PrKDF."""

    label: str
    key_id: bytes
    auth_id: bytes
    usage: int
    key_reference: Optional[int]
    modulus_length: int
    path: bytes = b""
    access_flags: int = 0


def parse_prkdf(data: bytes) -> List[PrivateKeyObject]:
    """The RSA private keys of a PrKDF (other key types are skipped)."""
    out = []
    for obj in _objects(data):
        if obj.tag != 0x30:  # privateRSAKey; EC keys ([0]) etc. do not exist on a CPS3
            continue
        items = _children(obj)
        if len(items) < 3:
            raise CardProtocolError("PrKDF entry with too few parts")
        common = _common(items[0])
        key = _children(items[1])
        key_id = _first(key, 0x04)
        usage = _first(key, 0x03)
        if key_id is None or usage is None:
            raise CardProtocolError("PrKDF entry without iD or usage")
        bit_strings = [i for i in key if i.tag == 0x03]
        ref = _first(key, 0x02)
        type_attrs = _first(items, 0xA1)
        rsa_seq = _first(_children(type_attrs), 0x30) if type_attrs else None
        if rsa_seq is None:
            raise CardProtocolError("PrKDF entry without its RSA key attributes")
        rsa = _children(rsa_seq)
        modulus = _first(rsa, 0x02)
        out.append(PrivateKeyObject(
            label=common.label, key_id=key_id.value, auth_id=common.auth_id,
            usage=bits(usage.value), key_reference=_int(ref.value) & 0xFF if ref else None,
            modulus_length=_int(modulus.value) if modulus else 0,
            path=_path(_first(rsa, 0x30)),
            access_flags=bits(bit_strings[1].value) if len(bit_strings) > 1 else 0))
    return out


@dataclass(frozen=True)
class CertificateObject:
    """An X.509 certificate entry of the CDF."""

    label: str
    cert_id: bytes
    path: bytes = field(default=b"")


def parse_cdf(data: bytes) -> List[CertificateObject]:
    """The X.509 certificate entries of a CDF."""
    out = []
    for obj in _objects(data):
        if obj.tag != 0x30:
            continue
        items = _children(obj)
        if len(items) < 3:
            raise CardProtocolError("CDF entry with too few parts")
        common = _common(items[0])
        cid = _first(_children(items[1]), 0x04)
        type_attrs = _first(items, 0xA1)
        cert_seq = _first(_children(type_attrs), 0x30) if type_attrs else None
        value = _children(cert_seq) if cert_seq else []
        path = _path(_first(value, 0x30))
        if cid is None or not path:
            raise CardProtocolError("CDF entry without iD or path")
        out.append(CertificateObject(common.label, cid.value, path))
    return out
