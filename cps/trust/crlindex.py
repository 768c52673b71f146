"""A compact, fast index of a CRL: a million entries loaded in under a second.

:class:`CrlIndex` parses a DER CRL (RFC 5280 5.1) itself. The natural approach
-- ``cryptography.x509.load_der_x509_crl`` then a Python ``set`` of the serials
-- keeps one Python int per entry (about three times the CRL's size in memory
for a million entries) and answers membership only: cryptography's own
``get_revoked_certificate_by_serial_number`` scans every entry, tens of
milliseconds per call. Here, loading is one tight pass over the revoked
entries that stores, per entry, nothing but its offset in the DER, in an
open-addressing hash table held in a flat ``array`` of 32-bit slots:

* the slot is chosen by ``hash()`` of the serial's INTEGER content octets
  (SipHash, keyed per process: a CRL crafted to make serials collide cannot
  degrade the table), with linear probing at a load factor of at most 1/2;
* the slot holds ``offset + 1`` of the entry in the DER (0 = empty); a lookup
  confirms a candidate by comparing the full serial octets in the DER, so a
  false positive is impossible;
* the table is sized from the revoked list's byte length (a revoked entry takes
  at least 20 bytes), never from a length field, so memory is bounded by the
  input's actual size: about 0.4 bytes of index per byte of CRL;
* entry details (date, reason, invalidity date, certificate issuer) are decoded
  only for hits, from the stored offset;
* the DER is kept as the caller's ``bytes`` object (no copy); ``tbs_bytes`` is
  a ``memoryview`` into it.

Every malformed input raises :class:`~cps.errors.CrlError` with
``reason="malformed"``, in time linear in the input: lengths are checked
against the bytes actually present, nesting is fixed by the CRL grammar
(no recursion), and DER rules that matter for lookups are enforced (minimal
serial encodings, so that the octets of ``serial.to_bytes()`` find them).
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import Dict, FrozenSet, Iterator, List, NamedTuple, Optional, Tuple

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes

from ..der import encode_length, read_length
from ..errors import CrlError

__all__ = ["CrlIndex", "RevokedEntry", "IssuingDistributionPoint", "REASON_NAMES"]

#: CRLReason (RFC 5280 5.3.1) names by code; 7 is not used.
REASON_NAMES: Dict[int, str] = {
    0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged",
    4: "superseded", 5: "cessationOfOperation", 6: "certificateHold", 8: "removeFromCRL",
    9: "privilegeWithdrawn", 10: "aACompromise",
}
#: ReasonFlags bit names (RFC 5280 4.2.1.13); bit 0 is "unused" and ignored.
_REASON_FLAG_BITS = ("", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
                     "cessationOfOperation", "certificateHold", "privilegeWithdrawn",
                     "aACompromise")

# OIDs as DER content octets: comparing raw bytes avoids decoding on hot paths.
_OID_REASON = b"\x55\x1d\x15"               # 2.5.29.21 cRLReason
_OID_INVALIDITY = b"\x55\x1d\x18"           # 2.5.29.24 invalidityDate
_OID_CERT_ISSUER = b"\x55\x1d\x1d"          # 2.5.29.29 certificateIssuer
_OID_CRL_NUMBER = b"\x55\x1d\x14"           # 2.5.29.20
_OID_DELTA = b"\x55\x1d\x1b"                # 2.5.29.27 deltaCRLIndicator
_OID_IDP = b"\x55\x1d\x1c"                  # 2.5.29.28 issuingDistributionPoint
_OID_AKI = b"\x55\x1d\x23"                  # 2.5.29.35
_OID_FRESHEST = b"\x55\x1d\x2e"             # 2.5.29.46 freshestCRL
_OID_ISSUER_ALT_NAME = b"\x55\x1d\x12"      # 2.5.29.18 (informational: nothing to enforce)
_OID_AIA = b"\x2b\x06\x01\x05\x05\x07\x01\x01"  # 1.3.6.1.5.5.7.1.1 (informational)
_KNOWN_CRL_EXTENSIONS = frozenset({_OID_CRL_NUMBER, _OID_DELTA, _OID_IDP, _OID_AKI,
                                   _OID_FRESHEST, _OID_ISSUER_ALT_NAME, _OID_AIA})

#: The commonest entry extensions, a lone non-critical reasonCode, minus the
#: code's octet: ``SEQUENCE { SEQUENCE { OID cRLReason, OCTET STRING { ENUMERATED ...``.
#: Recognised by one ``startswith`` in the build loop.
_REASON_ONLY = b"\x30\x0c\x30\x0a\x06\x03\x55\x1d\x15\x04\x03\x0a\x01"
_VALID_REASON_CODES = frozenset(REASON_NAMES)
_REASON_EXT = rb"\x30\x0a\x06\x03\x55\x1d\x15\x04\x03\x0a\x01[\x00-\x06\x08-\x0a]"
_INVALIDITY_EXT = rb"\x30\x18\x06\x03\x55\x1d\x18\x04\x11\x18\x0f[0-9]{14}Z"
#: The other common shapes, non-critical reasonCode and/or invalidityDate in
#: either order, matched in C by one regular expression (a fullmatch of 20-40
#: bytes costs a fraction of a microsecond, decoding them in Python several).
_COMMON_ENTRY_EXTENSIONS = re.compile(
    rb"\x30(?:\x1a" + _INVALIDITY_EXT + rb"|\x26(?:" + _REASON_EXT + _INVALIDITY_EXT
    + rb"|" + _INVALIDITY_EXT + _REASON_EXT + rb"))")

#: Smallest possible revoked entry: 30 12 | 02 01 xx | 17 0d <13 bytes>.
_MIN_ENTRY = 20
#: Copies of one serial tolerated in a CRL (an indirect CRL may list the same
#: serial for several certificate issuers); more is an attack on the table.
_MAX_DUPLICATES = 16
#: An OID longer than this is refused (no real OID comes close).
_MAX_OID = 64

# A typecode of exactly 4 bytes for the table (``I`` on every mainstream platform).
_SLOT = next(code for code in "IL" if array(code).itemsize == 4)
_MAX_DER = 2 ** 32 - 2  # slots hold offset + 1 in 32 bits

_HASHES = {
    "1.3.14.3.2.26": hashes.SHA1, "2.16.840.1.101.3.4.2.4": hashes.SHA224,
    "2.16.840.1.101.3.4.2.1": hashes.SHA256, "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}


class RevokedEntry(NamedTuple):
    """One revoked certificate of a CRL (a NamedTuple: cheap to build on a hit).

    :ivar serial: the certificate's serial number.
    :ivar revocation_date: aware UTC datetime.
    :ivar reason: the RFC 5280 CRLReason name (``"keyCompromise"``...), ``None``
        when the entry has no reasonCode extension.
    :ivar invalidity_date: the invalidityDate extension, if present.
    :ivar certificate_issuer: the issuer of the certificate as raw GeneralNames
        DER when it is not the CRL issuer (indirect CRLs): from the entry's
        certificateIssuer extension or, per RFC 5280 5.3.3, inherited from the
        closest preceding entry that has one. ``None``: the CRL issuer.
    """

    serial: int
    revocation_date: datetime
    reason: Optional[str] = None
    invalidity_date: Optional[datetime] = None
    certificate_issuer: Optional[bytes] = None


@dataclass(frozen=True)
class IssuingDistributionPoint:
    """The issuingDistributionPoint extension (RFC 5280 5.2.5): the CRL's scope.

    :ivar full_name: URIs of the distributionPoint's fullName.
    :ivar full_name_der: raw GeneralNames of fullName (every name kind), if present.
    :ivar relative_name_der: raw nameRelativeToCRLIssuer, if present.
    :ivar only_user: onlyContainsUserCerts.
    :ivar only_ca: onlyContainsCACerts.
    :ivar only_some_reasons: reason names of onlySomeReasons, ``None`` when absent (all reasons).
    :ivar indirect: indirectCRL.
    :ivar only_attribute: onlyContainsAttributeCerts.
    """

    full_name: Tuple[str, ...] = ()
    full_name_der: Optional[bytes] = None
    relative_name_der: Optional[bytes] = None
    only_user: bool = False
    only_ca: bool = False
    only_some_reasons: Optional[FrozenSet[str]] = None
    indirect: bool = False
    only_attribute: bool = False


class _Malformed(Exception):
    """Internal: turned into ``CrlError(reason="malformed")`` with the source attached."""


# --------------------------------------------------------------------------- DER primitives
def _read(d: bytes, pos: int, limit: int) -> Tuple[int, int, int]:
    """Return ``(tag, content_start, content_end)`` of the TLV at ``pos``.

    The TLV must end at or before ``limit``. Only what a CRL can contain is
    accepted: one-byte tags, definite lengths of at most 4 octets.
    """
    if pos + 2 > limit:
        raise _Malformed("truncated TLV")
    tag = d[pos]
    if tag & 0x1F == 0x1F:
        raise _Malformed(f"multi-byte tag at offset {pos}")
    n, pos = read_length(d, pos + 1, limit, 4, _Malformed)
    end = pos + n
    if end > limit:
        raise _Malformed(f"TLV at offset {pos} claims {n} bytes, {limit - pos} present")
    return tag, pos, end


def _expect(d: bytes, pos: int, limit: int, tag: int, what: str) -> Tuple[int, int]:
    t, s, e = _read(d, pos, limit)
    if t != tag:
        raise _Malformed(f"{what}: expected tag 0x{tag:02X}, found 0x{t:02X} at offset {pos}")
    return s, e


def _integer(d: bytes, s: int, e: int, what: str) -> int:
    if s >= e:
        raise _Malformed(f"{what}: empty INTEGER")
    if e - s > 1 and ((d[s] == 0 and d[s + 1] < 0x80) or (d[s] == 0xFF and d[s + 1] >= 0x80)):
        raise _Malformed(f"{what}: INTEGER not minimally encoded")
    return int.from_bytes(d[s:e], "big", signed=True)


def _oid(d: bytes, s: int, e: int) -> str:
    """Dotted string of OID content octets."""
    if s >= e or e - s > _MAX_OID or d[e - 1] & 0x80:
        raise _Malformed("bad OBJECT IDENTIFIER")
    arcs: List[int] = []
    value = 0
    first = True
    for i in range(s, e):
        byte = d[i]
        if value == 0 and byte == 0x80:
            raise _Malformed("OBJECT IDENTIFIER arc with a leading 0x80")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            if first:
                arcs.extend((min(value // 40, 2), value - 40 * min(value // 40, 2)))
                first = False
            else:
                arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def _time(d: bytes, tag: int, s: int, e: int) -> datetime:
    """UTCTime ``YYMMDDHHMMSSZ`` or GeneralizedTime ``YYYYMMDDHHMMSSZ`` (RFC 5280 4.1.2.5).

    Digits are combined from their byte values (``b"7"`` is 55; ``10*a + b - 528``
    is the two-digit number): about twice as fast as ``int()`` on slices, and
    this runs once per lookup hit.
    """
    text = d[s:e]
    n = len(text)
    if text[-1:] != b"Z" or not text[:-1].isdigit():
        raise _Malformed(f"bad time {text!r}: RFC 5280 wants digits and a final Z")
    if tag == 0x17 and n == 13:
        a, b, c, d_, e_, f, g, h, i, j, k, m = text[:12]
        year = a * 10 + b - 528
        year += 1900 if year >= 50 else 2000
    elif tag == 0x18 and n == 15:
        y1, y2, a, b, c, d_, e_, f, g, h, i, j, k, m = text[:14]
        year = (y1 * 10 + y2 - 528) * 100 + a * 10 + b - 528
    else:
        raise _Malformed(f"bad time (tag 0x{tag:02X}, {n} bytes)")
    try:
        return datetime(year, c * 10 + d_ - 528, e_ * 10 + f - 528, g * 10 + h - 528,
                        i * 10 + j - 528, k * 10 + m - 528, tzinfo=timezone.utc)
    except ValueError:
        raise _Malformed(f"impossible date {text!r}") from None


def _boolean(d: bytes, s: int, e: int) -> bool:
    if e - s != 1:
        raise _Malformed("bad BOOLEAN")
    return d[s] != 0


def _extensions(d: bytes, s: int, e: int) -> Iterator[Tuple[bytes, bool, int, int]]:
    """Yield ``(oid_octets, critical, value_start, value_end)`` of an Extensions SEQUENCE body."""
    seen = set()
    pos = s
    while pos < e:
        xs, xe = _expect(d, pos, e, 0x30, "Extension")
        os_, oe = _expect(d, xs, xe, 0x06, "extnID")
        oid = d[os_:oe]
        if oid in seen:  # RFC 5280 4.2: at most one instance of an extension
            raise _Malformed(f"duplicate extension {_oid(d, os_, oe)}")
        seen.add(oid)
        critical = False
        tag, vs, ve = _read(d, oe, xe)
        if tag == 0x01:
            critical = _boolean(d, vs, ve)
            tag, vs, ve = _read(d, ve, xe)
        if tag != 0x04 or ve != xe:
            raise _Malformed(f"extension {_oid(d, os_, oe)}: bad extnValue")
        yield oid, critical, vs, ve
        pos = xe


def _general_names_uris(d: bytes, s: int, e: int) -> List[str]:
    """URIs (``[6] IA5String``) of a GeneralNames body; other kinds are skipped."""
    out = []
    pos = s
    while pos < e:
        tag, vs, ve = _read(d, pos, e)
        if tag == 0x86:
            try:
                out.append(d[vs:ve].decode("ascii"))
            except UnicodeDecodeError:
                raise _Malformed("non-ASCII URI") from None
        pos = ve
    return out


def _distribution_point_name(d: bytes, s: int, e: int
                             ) -> Tuple[List[str], Optional[bytes], Optional[bytes]]:
    """(URIs, fullName DER, nameRelativeToCRLIssuer DER) of a DistributionPointName body."""
    tag, vs, ve = _read(d, s, e)
    if ve != e:
        raise _Malformed("DistributionPointName: trailing data")
    if tag == 0xA0:  # fullName [0] IMPLICIT GeneralNames
        return _general_names_uris(d, vs, ve), _retag(d, s, e, 0x30), None
    if tag == 0xA1:  # nameRelativeToCRLIssuer [1] IMPLICIT RelativeDistinguishedName
        return [], None, _retag(d, s, e, 0x31)
    raise _Malformed(f"DistributionPointName: unexpected tag 0x{tag:02X}")


def _retag(d: bytes, s: int, e: int, tag: int) -> bytes:
    """The TLV at [s, e) with its implicit tag replaced by the universal one."""
    return bytes((tag,)) + d[s + 1:e]


def _reason_flags(d: bytes, s: int, e: int) -> FrozenSet[str]:
    """Names of the bits set in a ReasonFlags BIT STRING body."""
    if s >= e or d[s] > 7 or (e - s == 1 and d[s]):
        raise _Malformed("bad ReasonFlags BIT STRING")
    names = set()
    for i in range(1, min(e - s, 3)):  # 9 named bits fit in two octets
        byte = d[s + i]
        for bit in range(8):
            n = (i - 1) * 8 + bit
            if byte & (0x80 >> bit) and 0 < n < len(_REASON_FLAG_BITS):
                names.add(_REASON_FLAG_BITS[n])
    return frozenset(names)


def _issuing_distribution_point(d: bytes, s: int, e: int) -> IssuingDistributionPoint:
    vs, ve = _expect(d, s, e, 0x30, "issuingDistributionPoint")
    if ve != e:
        raise _Malformed("issuingDistributionPoint: trailing data")
    full_name: Tuple[str, ...] = ()
    full_name_der: Optional[bytes] = None
    relative_name_der: Optional[bytes] = None
    only_user = only_ca = indirect = only_attribute = False
    only_some_reasons: Optional[FrozenSet[str]] = None
    pos = vs
    last = -1
    while pos < ve:
        tag, cs, ce = _read(d, pos, ve)
        if tag & 0x1F <= last:  # fields come in tag-number order, each at most once
            raise _Malformed("issuingDistributionPoint: fields out of order")
        last = tag & 0x1F
        if tag == 0xA0:
            uris, full_name_der, relative_name_der = _distribution_point_name(d, cs, ce)
            full_name = tuple(uris)
        elif tag == 0x81:
            only_user = _boolean(d, cs, ce)
        elif tag == 0x82:
            only_ca = _boolean(d, cs, ce)
        elif tag == 0x83:
            only_some_reasons = _reason_flags(d, cs, ce)
        elif tag == 0x84:
            indirect = _boolean(d, cs, ce)
        elif tag == 0x85:
            only_attribute = _boolean(d, cs, ce)
        else:
            raise _Malformed(f"issuingDistributionPoint: unexpected tag 0x{tag:02X}")
        pos = ce
    return IssuingDistributionPoint(
        full_name=full_name, full_name_der=full_name_der, relative_name_der=relative_name_der,
        only_user=only_user, only_ca=only_ca, only_some_reasons=only_some_reasons,
        indirect=indirect, only_attribute=only_attribute)


def _freshest_crl_urls(d: bytes, s: int, e: int) -> List[str]:
    """URIs of the fullNames of a CRLDistributionPoints-syntax value (freshestCRL)."""
    vs, ve = _expect(d, s, e, 0x30, "freshestCRL")
    if ve != e:
        raise _Malformed("freshestCRL: trailing data")
    urls: List[str] = []
    pos = vs
    while pos < ve:
        ps, pe = _expect(d, pos, ve, 0x30, "DistributionPoint")
        inner = ps
        while inner < pe:
            tag, cs, ce = _read(d, inner, pe)
            if tag == 0xA0:
                urls.extend(_distribution_point_name(d, cs, ce)[0])
            elif tag not in (0x81, 0xA2, 0x82):
                raise _Malformed(f"DistributionPoint: unexpected tag 0x{tag:02X}")
            inner = ce
        pos = pe
    return urls


def _entry_extensions(d: bytes, s: int, e: int
                      ) -> Tuple[Optional[str], Optional[datetime], Optional[bytes], List[str]]:
    """Decode a crlEntryExtensions TLV at [s, e).

    :returns: (reason, invalidity date, certificateIssuer GeneralNames DER,
        OIDs of unknown critical extensions).
    """
    vs, ve = _expect(d, s, e, 0x30, "crlEntryExtensions")
    if ve != e:
        raise _Malformed("crlEntryExtensions: trailing data")
    reason = invalidity = issuer = None
    unknown: List[str] = []
    for oid, critical, xs, xe in _extensions(d, vs, ve):
        if oid == _OID_REASON:
            cs, ce = _expect(d, xs, xe, 0x0A, "reasonCode")
            code = _integer(d, cs, ce, "reasonCode") if ce == xe else -1
            if code not in REASON_NAMES:
                raise _Malformed(f"bad reasonCode {code}")
            reason = REASON_NAMES[code]
        elif oid == _OID_INVALIDITY:
            cs, ce = _expect(d, xs, xe, 0x18, "invalidityDate")
            if ce != xe:
                raise _Malformed("invalidityDate: trailing data")
            invalidity = _time(d, 0x18, cs, ce)
        elif oid == _OID_CERT_ISSUER:
            cs, ce = _expect(d, xs, xe, 0x30, "certificateIssuer")
            if ce != xe:
                raise _Malformed("certificateIssuer: trailing data")
            issuer = d[xs:xe]
        elif critical:
            unknown.append(_oid(oid, 0, len(oid)))
    return reason, invalidity, issuer, unknown


# --------------------------------------------------------------------------- the index
class CrlIndex:
    """A parsed CRL with an O(1) serial-number index. Build it with :meth:`load`.

    The index is immutable once built, hence safe to share between threads.
    """

    def __init__(self) -> None:
        """Use :meth:`load` or :meth:`from_crypto`."""
        self.source = ""
        #: X.509 CRL version: 1 (no version field) or 2.
        self.version = 1
        #: dotted OID of signatureAlgorithm, and the raw DER of its parameters (``None`` if absent).
        self.signature_algorithm_oid = ""
        self.signature_algorithm_parameters: Optional[bytes] = None
        #: the signature (BIT STRING content without the unused-bits octet).
        self.signature = b""
        #: raw DER of the issuer Name.
        self.issuer_der = b""
        self.this_update: datetime = datetime.min.replace(tzinfo=timezone.utc)
        self.next_update: Optional[datetime] = None
        self.crl_number: Optional[int] = None
        #: deltaCRLIndicator: the CRL number of the base CRL, for delta CRLs.
        self.base_crl_number: Optional[int] = None
        #: keyIdentifier of the authorityKeyIdentifier extension.
        self.authority_key_identifier: Optional[bytes] = None
        self.issuing_distribution_point: Optional[IssuingDistributionPoint] = None
        self.freshest_crl_urls: List[str] = []
        #: OIDs of critical extensions (of the CRL or of an entry) this module
        #: cannot process: RFC 5280 5.2/5.3 forbid using such a CRL.
        self.unknown_critical_extensions: List[str] = []
        #: every CRL extension: dotted OID -> (critical, raw extnValue content).
        self.extensions: Dict[str, Tuple[bool, bytes]] = {}
        self.entry_count = 0
        self._der = b""
        self._tbs = (0, 0)
        self._alg_der = b""
        self._this_update_tlv = b""
        self._entries = (0, 0)
        self._table = array(_SLOT, [0])
        self._mask = 0
        #: offsets of entries carrying certificateIssuer, ascending (RFC 5280 5.3.3 inheritance)
        self._issuer_marks: List[int] = []

    # -- construction ------------------------------------------------------------
    @classmethod
    def load(cls, der: bytes | bytearray | memoryview, source: str = "") -> CrlIndex:
        """Parse a DER CRL and index its revoked entries.

        :param der: the CRL, DER. A ``bytes`` object is kept as is (not copied);
            other bytes-like objects are copied once, so that later changes to
            them cannot corrupt the index.
        :param source: where the CRL came from (URL, file), for error messages.
        :raises CrlError: ``reason="malformed"`` for anything that is not a
            well-formed CRL, ``reason="too-large"`` beyond 4 GiB.
        """
        if not isinstance(der, bytes):
            try:
                der = bytes(der)
            except TypeError:
                raise CrlError("a CRL must be bytes", source=source, reason="malformed") from None
        if len(der) > _MAX_DER:
            raise CrlError("CRL larger than 4 GiB", source=source, reason="too-large")
        self = cls()
        self.source = source
        self._der = der
        try:
            self._parse(der)
        except _Malformed as exc:
            raise CrlError(f"malformed CRL: {exc}", source=source, reason="malformed") from None
        except (IndexError, ValueError, OverflowError) as exc:
            # Defence in depth: bounds are checked explicitly, but a read past
            # the end of a truncated input lands here rather than escaping.
            raise CrlError(f"malformed CRL: {exc}", source=source, reason="malformed") from None
        return self

    @classmethod
    def from_crypto(cls, crl: x509.CertificateRevocationList, source: str = "") -> CrlIndex:
        """Index a CRL already loaded by cryptography.

        :param crl: the cryptography CRL.
        :param source: where it came from, for error messages.
        """
        from cryptography.hazmat.primitives.serialization import Encoding

        return cls.load(crl.public_bytes(Encoding.DER), source)

    def _parse(self, d: bytes) -> None:
        total = len(d)
        cs, ce = _expect(d, 0, total, 0x30, "CertificateList")
        if ce != total:
            raise _Malformed(f"{total - ce} bytes after the CertificateList")
        ts, te = _expect(d, cs, ce, 0x30, "tbsCertList")
        self._tbs = (cs, te)
        # signatureAlgorithm and signatureValue, after the TBS
        as_, ae = _expect(d, te, ce, 0x30, "signatureAlgorithm")
        self._alg_der = d[te:ae]
        os_, oe = _expect(d, as_, ae, 0x06, "signatureAlgorithm OID")
        self.signature_algorithm_oid = _oid(d, os_, oe)
        self.signature_algorithm_parameters = d[oe:ae] if oe < ae else None
        ss, se = _expect(d, ae, ce, 0x03, "signatureValue")
        if se != ce:
            raise _Malformed("data after signatureValue")
        if ss >= se or d[ss] != 0:
            raise _Malformed("signatureValue: bad BIT STRING")
        self.signature = d[ss + 1:se]

        # tbsCertList
        pos = ts
        tag, vs, ve = _read(d, pos, te)
        if tag == 0x02:
            if _integer(d, vs, ve, "version") != 1:
                raise _Malformed("unsupported CRL version (only v2 may be encoded)")
            self.version = 2
            pos = ve
        tag, vs, ve = _read(d, pos, te)
        if tag != 0x30 or d[pos:ve] != self._alg_der:
            # RFC 5280 5.1.1.2: the signed copy must equal the outer one, or an
            # attacker could swap the outer algorithm.
            raise _Malformed("tbsCertList signature differs from signatureAlgorithm")
        pos = ve
        tag, _, ne = _read(d, pos, te)
        if tag != 0x30:
            raise _Malformed("issuer is not a Name")
        self.issuer_der = d[pos:ne]
        pos = ne
        tag, vs, ve = _read(d, pos, te)
        self.this_update = _time(d, tag, vs, ve)
        self._this_update_tlv = d[pos:ve]
        pos = ve
        if pos < te and d[pos] in (0x17, 0x18):
            tag, vs, ve = _read(d, pos, te)
            self.next_update = _time(d, tag, vs, ve)
            pos = ve
        if pos < te and d[pos] == 0x30:
            rs, re_ = _expect(d, pos, te, 0x30, "revokedCertificates")
            self._entries = (rs, re_)
            pos = re_
        if pos < te:
            xs, xe = _expect(d, pos, te, 0xA0, "crlExtensions")
            if xe != te:
                raise _Malformed("data after crlExtensions")
            self._parse_extensions(d, xs, xe)
        self._build(d, *self._entries)

    def _parse_extensions(self, d: bytes, s: int, e: int) -> None:
        vs, ve = _expect(d, s, e, 0x30, "Extensions")
        if ve != e:
            raise _Malformed("crlExtensions: trailing data")
        for oid, critical, xs, xe in _extensions(d, vs, ve):
            dotted = _oid(oid, 0, len(oid))
            self.extensions[dotted] = (critical, d[xs:xe])
            if oid == _OID_CRL_NUMBER:
                cs, ce = _expect(d, xs, xe, 0x02, "cRLNumber")
                self.crl_number = _integer(d, cs, ce, "cRLNumber")
            elif oid == _OID_DELTA:
                cs, ce = _expect(d, xs, xe, 0x02, "deltaCRLIndicator")
                self.base_crl_number = _integer(d, cs, ce, "deltaCRLIndicator")
            elif oid == _OID_AKI:
                ks, ke = _expect(d, xs, xe, 0x30, "authorityKeyIdentifier")
                if ks < ke and d[ks] == 0x80:
                    _, is_, ie = _read(d, ks, ke)
                    self.authority_key_identifier = d[is_:ie]
            elif oid == _OID_IDP:
                self.issuing_distribution_point = _issuing_distribution_point(d, xs, xe)
            elif oid == _OID_FRESHEST:
                self.freshest_crl_urls = _freshest_crl_urls(d, xs, xe)
            elif critical and oid not in _KNOWN_CRL_EXTENSIONS:
                self.unknown_critical_extensions.append(dotted)

    def _build(self, d: bytes, start: int, end: int) -> None:
        """Index the entries in [start, end): the hot loop, kept flat on purpose.

        Each entry is checked to be ``SEQUENCE { INTEGER, Time, Extensions? }``
        with consistent lengths; the serial's content octets are hashed and the
        entry's offset stored. Extensions are recognised by shape when they are
        the common non-critical reasonCode / invalidityDate (dates' digits
        are decoded on hits only); any other extensions go through
        :func:`_entry_extensions` (validated, unknown critical ones recorded,
        certificateIssuer positions remembered).
        """
        # Sizing from the byte length bounds the table by the input (a length
        # field can't inflate it) and keeps the load factor <= 1/2.
        bound = (end - start) // _MIN_ENTRY
        size = 1
        while size < 2 * bound:
            size <<= 1
        mask = size - 1
        table = array(_SLOT, [0]) * size
        startswith = d.startswith
        reason_only = _REASON_ONLY
        common = _COMMON_ENTRY_EXTENSIONS.fullmatch
        valid_reasons = _VALID_REASON_CODES
        count = 0
        pos = start
        while pos < end:
            # Entry SEQUENCE header; entries are short: 1- and 2-byte lengths inline.
            if d[pos] != 0x30:
                raise _Malformed(f"revoked entry at offset {pos}: not a SEQUENCE")
            b = d[pos + 1]
            if b < 0x80:
                p = pos + 2
                nxt = p + b
            elif b == 0x81:
                p = pos + 3
                nxt = p + d[pos + 2]
            else:
                _, p, nxt = _read(d, pos, end)
            if nxt > end or d[p] != 0x02:
                raise _Malformed(f"revoked entry at offset {pos}: bad length or serial")
            sl = d[p + 1]
            s = p + 2
            t = s + sl
            if not 0 < sl < 0x80:
                raise _Malformed(f"revoked entry at offset {pos}: bad serial length")
            # DER minimal INTEGER: lookups encode serials minimally, so a padded
            # serial would silently never match.
            c = d[s]
            if (c == 0 or c == 0xFF) and sl > 1 and not (c ^ d[s + 1]) & 0x80:
                raise _Malformed(f"revoked entry at offset {pos}: serial not minimally encoded")
            tt = d[t]
            if tt == 0x17 and d[t + 1] == 13:
                q = t + 15
            elif tt == 0x18 and d[t + 1] == 15:
                q = t + 17
            else:
                raise _Malformed(f"revoked entry at offset {pos}: bad revocationDate")
            # Extensions: a lone reasonCode (startswith), then the other common
            # shapes (regex), then the general decoder.
            if q != nxt and not (q + 14 == nxt and startswith(reason_only, q)
                                 and d[q + 13] in valid_reasons) and common(d, q, nxt) is None:
                if q > nxt:
                    raise _Malformed(f"revoked entry at offset {pos}: overruns its SEQUENCE")
                self._general_entry_extensions(d, q, nxt, pos)
            i = hash(d[s:t]) & mask
            if table[i]:
                i = self._probe(d, table, i, mask, s, t)
            table[i] = pos + 1
            count += 1
            pos = nxt
        self._table = table
        self._mask = mask
        self.entry_count = count

    def _general_entry_extensions(self, d: bytes, s: int, e: int, entry: int) -> None:
        """The build loop's slow path, for entries with uncommon extensions."""
        _, _, issuer, unknown = _entry_extensions(d, s, e)
        if issuer is not None:
            self._issuer_marks.append(entry)
        for oid in unknown:
            if oid not in self.unknown_critical_extensions:
                self.unknown_critical_extensions.append(oid)

    @staticmethod
    def _probe(d: bytes, table: "array[int]", i: int, mask: int, s: int, t: int) -> int:
        """Find a free slot after a collision at ``i`` (linear probing).

        Past a few steps, counts copies of this serial in the cluster: more
        than ``_MAX_DUPLICATES`` is refused, so that a CRL repeating one serial
        cannot make the build quadratic.
        """
        key = d[s:t]
        steps = copies = 0
        while table[i]:
            steps += 1
            if steps > 8 and CrlIndex._serial_octets(d, table[i] - 1) == key:
                copies += 1
                if copies >= _MAX_DUPLICATES:
                    raise _Malformed(f"serial 0x{key.hex()} repeated too many times")
            i = (i + 1) & mask
        return i

    @staticmethod
    def _serial_octets(d: bytes, off: int) -> bytes:
        """Serial content octets of the (already validated) entry at ``off``."""
        b = d[off + 1]
        p = off + 2 + (b & 0x7F if b & 0x80 else 0)
        return d[p + 2:p + 2 + d[p + 1]]

    # -- properties ----------------------------------------------------------------
    @property
    def tbs_bytes(self) -> memoryview:
        """The exact DER of tbsCertList (what the signature covers), without a copy."""
        s, e = self._tbs
        return memoryview(self._der)[s:e]

    @property
    def der(self) -> bytes:
        """The whole CRL, DER."""
        return self._der

    @property
    def is_delta(self) -> bool:
        """True for a delta CRL (deltaCRLIndicator present)."""
        return self.base_crl_number is not None

    @property
    def has_indirect_entries(self) -> bool:
        """True when an entry carries certificateIssuer (an indirect CRL, RFC 5280 5.3.3)."""
        return bool(self._issuer_marks)

    @cached_property
    def issuer(self) -> x509.Name:
        """The issuer as a cryptography :class:`~cryptography.x509.Name` (decoded on first use).

        cryptography has no public Name decoder, so the Name is wrapped in a
        minimal CRL (no entries, empty signature) that it parses in microseconds.
        """
        from cryptography.x509 import load_der_x509_crl

        def seq(body: bytes) -> bytes:
            return b"\x30" + encode_length(len(body)) + body

        tbs = seq(self._alg_der + self.issuer_der + self._this_update_tlv)
        try:
            return load_der_x509_crl(seq(tbs + self._alg_der + b"\x03\x01\x00")).issuer
        except (ValueError, TypeError) as exc:  # cryptography raises both for odd names
            raise CrlError(f"malformed CRL issuer: {exc}", source=self.source,
                           reason="malformed") from None

    def __len__(self) -> int:
        return self.entry_count

    def __reduce__(self) -> Tuple[object, Tuple[bytes, str]]:
        # The table depends on this process's hash() key: pickle the DER, re-index on load.
        return (CrlIndex.load, (self._der, self.source))

    def __repr__(self) -> str:
        kind = "delta " if self.is_delta else ""
        return (f"<CrlIndex {kind}#{self.crl_number} {self.entry_count} entries "
                f"thisUpdate={self.this_update.isoformat()} source={self.source!r}>")

    # -- lookups ---------------------------------------------------------------------
    def _first(self, serial: int) -> int:
        """Offset of the first entry found for ``serial``, or -1 (the lookup hot path).

        The candidate of each occupied slot is confirmed against the serial's
        octets in the DER: a hash collision can cost a probe, never a false hit.
        """
        key = serial.to_bytes(((serial if serial >= 0 else ~serial).bit_length() + 8) // 8,
                              "big", signed=True)
        d = self._der
        table = self._table
        mask = self._mask
        n = len(key)
        i = hash(key) & mask
        slot = table[i]
        while slot:
            b = d[slot]  # slot = offset + 1: the entry's first length octet
            p = slot + 1 + (b & 0x7F if b & 0x80 else 0)
            if d[p + 1] == n and d.startswith(key, p + 2):
                return slot - 1
            i = (i + 1) & mask
            slot = table[i]
        return -1

    def _offsets(self, serial: int) -> List[int]:
        """Offsets of every entry listing ``serial``, in CRL order."""
        key = serial.to_bytes(((serial if serial >= 0 else ~serial).bit_length() + 8) // 8,
                              "big", signed=True)
        d = self._der
        out = []
        i = hash(key) & self._mask
        slot = self._table[i]
        while slot:
            if self._serial_octets(d, slot - 1) == key:
                out.append(slot - 1)
            i = (i + 1) & self._mask
            slot = self._table[i]
        return sorted(out)

    def __contains__(self, serial: object) -> bool:
        return isinstance(serial, int) and self._first(serial) >= 0

    def lookup(self, serial: int) -> Optional[RevokedEntry]:
        """The entry revoking ``serial``, or ``None``.

        In an indirect CRL the same serial may be listed for several issuers:
        use :meth:`lookup_all` and check :attr:`RevokedEntry.certificate_issuer`.

        :param serial: the certificate's serial number.
        :raises CrlError: ``reason="malformed"`` if the matching entry's
            details (date, extensions) cannot be decoded; they are decoded
            only for hits.
        """
        off = self._first(serial)
        return None if off < 0 else self._entry_at(off)

    def lookup_all(self, serial: int) -> List[RevokedEntry]:
        """Every entry listing ``serial``, in CRL order (indirect CRLs).

        :param serial: the certificate's serial number.
        """
        return [self._entry_at(off) for off in self._offsets(serial)]

    def iter_entries(self) -> Iterator[RevokedEntry]:
        """Every revoked entry, in CRL order, decoded one at a time."""
        d = self._der
        pos, end = self._entries
        while pos < end:
            try:
                _, _, nxt = _read(d, pos, end)
            except _Malformed as exc:  # the build validated this; only a bug lands here
                raise CrlError(f"malformed CRL: {exc}", source=self.source,
                               reason="malformed") from None
            yield self._entry_at(pos)
            pos = nxt

    def _entry_at(self, off: int) -> RevokedEntry:
        """Decode the entry at ``off`` (validated by the build: only contents can be bad)."""
        d = self._der
        try:
            _, s, e = _read(d, off, self._entries[1])
            if d[s] != 0x02:
                raise _Malformed("userCertificate is not an INTEGER")
            ss = s + 2
            se = ss + d[s + 1]
            serial = int.from_bytes(d[ss:se], "big", signed=True)
            ts = se + 2
            te = ts + d[se + 1]
            date = _time(d, d[se], ts, te)
            reason = invalidity = issuer = None
            if te < e:
                if te + 14 == e and d.startswith(_REASON_ONLY, te):
                    reason = REASON_NAMES[d[te + 13]]  # the build checked the code
                else:
                    reason, invalidity, issuer, _ = _entry_extensions(d, te, e)
            if issuer is None and self._issuer_marks:
                issuer = self._inherited_issuer(off)
        except _Malformed as exc:
            raise CrlError(f"malformed CRL entry at offset {off}: {exc}", source=self.source,
                           reason="malformed") from None
        return RevokedEntry(serial, date, reason, invalidity, issuer)

    def _inherited_issuer(self, off: int) -> Optional[bytes]:
        """certificateIssuer of the closest entry at or before ``off`` that has one."""
        k = bisect_right(self._issuer_marks, off) - 1
        if k < 0:
            return None
        mark = self._issuer_marks[k]
        d = self._der
        _, s, e = _read(d, mark, self._entries[1])
        _, _, te = _read(d, _read(d, s, e)[2], e)
        return _entry_extensions(d, te, e)[2]

    # -- signature -------------------------------------------------------------------
    def verify_signature(self, issuer_public_key: object) -> bool:
        """Check the CRL's signature with its issuer's public key.

        Supports RSA PKCS#1 v1.5 (SHA-1/224/256/384/512), RSASSA-PSS, ECDSA,
        Ed25519 and Ed448. A key of the wrong type for the algorithm gives
        ``False`` (this key did not sign this CRL).

        :param issuer_public_key: a cryptography public key.
        :raises CrlError: ``reason="unsupported-algorithm"`` for another
            algorithm or unusable PSS parameters.
        """
        from .algorithms import UnknownSignatureAlgorithm, verify_signature

        oid = self.signature_algorithm_oid
        try:
            return verify_signature(issuer_public_key, self.signature, self.tbs_bytes, oid,
                                    self.signature_algorithm_parameters)
        except UnknownSignatureAlgorithm:
            raise CrlError(f"unsupported CRL signature algorithm {oid}",
                           source=self.source, reason="unsupported-algorithm") from None
        except ValueError as exc:
            raise CrlError(f"unusable RSASSA-PSS parameters: {exc}", source=self.source,
                           reason="unsupported-algorithm") from None
        except UnsupportedAlgorithm as exc:
            raise CrlError(f"unsupported CRL signature algorithm {oid}: {exc}",
                           source=self.source, reason="unsupported-algorithm") from None
