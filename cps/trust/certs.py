"""A fast, defensive reader of X.509 certificates for path validation.

Validating ten thousand leaves a second leaves about 100 µs per certificate,
of which the RSA signature check takes 20. ``cryptography`` parses extensions
into rich objects (25 µs for a card certificate) and re-encodes the TBS on
request; here we walk the DER once, keep raw slices, and decode only what RFC
5280 path processing reads, with OIDs compared as raw DER bytes.

Every malformed input raises :class:`~cps.errors.CertificateParseError`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, FrozenSet, List, Optional, Tuple, Type, cast

from ..der import children, header  # noqa: F401 - the trust layer's DER reader
from ..errors import CertificateParseError

if TYPE_CHECKING:  # pragma: no cover - cryptography is imported on first use
    import datetime

    from cryptography.hazmat.primitives.asymmetric.dsa import DSAPublicKey
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

__all__ = ["ParsedCert", "parse_cert", "OID", "oid_to_str", "oid_from_str", "names_match",
           "header", "children"]


def oid_from_str(dotted: str) -> bytes:
    """DER content bytes of an OID ("2.5.29.15" -> 55 1D 0F)."""
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([parts[0] * 40 + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def oid_to_str(raw: bytes) -> str:
    """Dotted form of OID content bytes.

    :raises CertificateParseError: empty, or the last byte continues (bit 8 set).
    """
    if not raw:
        raise CertificateParseError("empty OID")
    if raw[-1] & 0x80:
        raise CertificateParseError("malformed OID (its last byte continues)")
    values: List[int] = []
    n = 0
    for b in raw:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            values.append(n)
            n = 0
    first = values[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(v) for v in head + values[1:])


class OID:
    """Raw DER contents of the OIDs path validation reads."""

    KEY_USAGE = oid_from_str("2.5.29.15")
    BASIC_CONSTRAINTS = oid_from_str("2.5.29.19")
    CERT_POLICIES = oid_from_str("2.5.29.32")
    POLICY_MAPPINGS = oid_from_str("2.5.29.33")
    POLICY_CONSTRAINTS = oid_from_str("2.5.29.36")
    INHIBIT_ANY_POLICY = oid_from_str("2.5.29.54")
    NAME_CONSTRAINTS = oid_from_str("2.5.29.30")
    SUBJECT_ALT_NAME = oid_from_str("2.5.29.17")
    ISSUER_ALT_NAME = oid_from_str("2.5.29.18")
    EXT_KEY_USAGE = oid_from_str("2.5.29.37")
    CRL_DP = oid_from_str("2.5.29.31")
    FRESHEST_CRL = oid_from_str("2.5.29.46")
    SKI = oid_from_str("2.5.29.14")
    AKI = oid_from_str("2.5.29.35")
    AIA = oid_from_str("1.3.6.1.5.5.7.1.1")
    SIA = oid_from_str("1.3.6.1.5.5.7.1.11")
    SUBJECT_DIR_ATTRS = oid_from_str("2.5.29.9")
    ANY_POLICY = oid_from_str("2.5.29.32.0")
    EKU_CLIENT_AUTH = oid_from_str("1.3.6.1.5.5.7.3.2")
    EKU_OCSP_SIGNING = oid_from_str("1.3.6.1.5.5.7.3.9")
    EKU_ANY = oid_from_str("2.5.29.37.0")
    AD_OCSP = oid_from_str("1.3.6.1.5.5.7.48.1")
    AD_CA_ISSUERS = oid_from_str("1.3.6.1.5.5.7.48.2")
    EMAIL_ADDRESS = oid_from_str("1.2.840.113549.1.9.1")


# Extensions a path validator understands (RFC 5280 4.2): a critical extension
# outside this set makes the certificate unusable (6.1.3 (o), 6.1.5 (f)).
KNOWN_EXTENSIONS = frozenset({
    OID.KEY_USAGE, OID.BASIC_CONSTRAINTS, OID.CERT_POLICIES, OID.POLICY_MAPPINGS,
    OID.POLICY_CONSTRAINTS, OID.INHIBIT_ANY_POLICY, OID.NAME_CONSTRAINTS, OID.SUBJECT_ALT_NAME,
    OID.ISSUER_ALT_NAME, OID.EXT_KEY_USAGE, OID.CRL_DP, OID.FRESHEST_CRL, OID.SKI, OID.AKI,
    OID.AIA, OID.SIA, OID.SUBJECT_DIR_ATTRS,
})

# KeyUsage bits (bit 0 = digitalSignature) as flags 1 << n
KU_DIGITAL_SIGNATURE, KU_NON_REPUDIATION, KU_KEY_CERT_SIGN, KU_CRL_SIGN = 1, 2, 1 << 5, 1 << 6


_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _time(data: bytes, tag: int, vs: int, ve: int) -> bytes:
    """UTCTime / GeneralizedTime ``...Z`` -> 14 ASCII digits ``YYYYMMDDHHMMSS``.

    Kept as bytes: they compare in time order, which is all validation needs,
    at a fraction of the cost of building datetimes.
    """
    s = data[vs:ve]
    if tag == 0x17 and len(s) == 13 and s[12] == 0x5A:
        out = (b"19" if s[:2] >= b"50" else b"20") + s[:12]
    elif tag == 0x18 and len(s) == 15 and s[14] == 0x5A:
        out = s[:14]
    else:
        raise CertificateParseError("unsupported time encoding (must be UTC, 'Z')")
    if not out.isdigit() or not (b"01" <= out[4:6] <= b"12") or not (b"01" <= out[6:8] <= b"31") \
            or out[8:10] > b"23" or out[10:12] > b"59" or out[12:14] > b"59":
        raise CertificateParseError("malformed time")
    # A day past its month's end (31 April, 29 February of a common year):
    # a table lookup rather than calendar.monthrange, this is on every parse.
    month, day = int(out[4:6]), int(out[6:8])
    if day > 28 and (day > _DAYS[month] or (month == 2 and not _leap(int(out[0:4])))):
        raise CertificateParseError("a date that does not exist")
    return out


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


_LAST_TIME_KEY: Tuple[Optional[int], bytes] = (None, b"")


def time_key(moment: datetime.datetime) -> bytes:
    """A datetime as the comparable 14 digits :func:`_time` produces (UTC).

    The digits of the last second asked for are kept: a server validating
    many certificates "now" formats the time once a second, not once each.
    """
    global _LAST_TIME_KEY
    import datetime as _dt
    import math

    if getattr(moment, "tzinfo", None) is None:
        if not isinstance(moment, _dt.datetime):
            raise TypeError(f"a validation time must be a datetime, not {type(moment).__name__}")
        raise TypeError("naive datetime: validation times must be timezone-aware, "
                        "e.g. datetime.now(timezone.utc)")
    second = math.floor(moment.timestamp())
    last = _LAST_TIME_KEY
    if last[0] == second:
        return last[1]
    key = moment.astimezone(_dt.timezone.utc).strftime("%Y%m%d%H%M%S").encode()
    _LAST_TIME_KEY = (second, key)
    return key


def time_from_key(key: bytes) -> datetime.datetime:
    """Back from 14 digits to an aware datetime (for error messages and results)."""
    import datetime as _dt

    return _dt.datetime.strptime(key.decode(), "%Y%m%d%H%M%S").replace(tzinfo=_dt.timezone.utc)


#: ``load_der_public_key`` and the exception it raises for an unknown algorithm.
_KeyLoader = Tuple[Callable[[bytes], "PublicKeyTypes"], Type[Exception]]
_KEY_LOADER: Optional[_KeyLoader] = None


def _key_loader() -> _KeyLoader:
    # cryptography is imported on first use, not with this module (``import cps``
    # stays light); cached because an import statement costs a microsecond.
    global _KEY_LOADER
    if _KEY_LOADER is None:
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        _KEY_LOADER = (load_der_public_key, UnsupportedAlgorithm)
    return _KEY_LOADER


@dataclass
class ParsedCert:
    """The parts of a certificate that path validation reads; raw DER where possible."""

    der: bytes
    tbs: bytes
    sig_alg: bytes          #: AlgorithmIdentifier DER (OID and parameters)
    signature: bytes
    version: int
    serial: int
    issuer: bytes           #: issuer Name, DER (tag included)
    subject: bytes          #: subject Name, DER (tag included)
    not_before: bytes       #: 14 digits YYYYMMDDHHMMSS (UTC), comparable
    not_after: bytes
    spki: bytes             #: SubjectPublicKeyInfo DER
    extensions: Dict[bytes, Tuple[bool, bytes]] = field(default_factory=dict)
    _decoded: Dict[str, object] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------ convenience
    @property
    def fingerprint(self) -> bytes:
        fp = self._decoded.get("fp")
        if not isinstance(fp, bytes):  # None: not computed yet
            fp = self._decoded["fp"] = hashlib.sha256(self.der).digest()
        return fp

    @property
    def self_issued(self) -> bool:
        return names_match(self.issuer, self.subject)

    def critical_unknown(self) -> List[str]:
        return [oid_to_str(o) for o, (crit, _) in self.extensions.items()
                if crit and o not in KNOWN_EXTENSIONS]

    def ext(self, oid: bytes) -> Optional[bytes]:
        item = self.extensions.get(oid)
        return item[1] if item else None

    def subject_str(self) -> str:
        """The subject for humans (error messages); never fails."""
        return name_str(self.subject)

    def public_key(self, inherit_from: Optional[PublicKeyTypes] = None) -> PublicKeyTypes:
        """The subject public key (a cryptography object).

        :param inherit_from: the previous working public key of the path: a DSA
            key without parameters takes its parameters (RFC 5280 6.1.4 (f)).
        """
        cached = self._decoded.get("key")
        if cached is not None:
            # only this method stores "key", and only a loaded public key
            return cast("PublicKeyTypes", cached)
        load_der_public_key, unsupported = _key_loader()
        key: Optional[PublicKeyTypes]
        try:
            key = load_der_public_key(self.spki)
        except (ValueError, TypeError, unsupported) as exc:
            key = self._dsa_inherited(inherit_from)
            if key is None:
                raise CertificateParseError(f"unusable public key: {exc}") from None
        self._decoded["key"] = key
        return key

    def _dsa_inherited(self, previous: Optional[PublicKeyTypes]) -> Optional[DSAPublicKey]:
        from cryptography.hazmat.primitives.asymmetric import dsa

        if not isinstance(previous, dsa.DSAPublicKey):
            return None
        spki = self.spki
        _, vs, ve = header(spki, 0, len(spki))
        parts = children(spki, vs, ve)
        alg = children(spki, parts[0][2], parts[0][3])
        if spki[alg[0][2]:alg[0][3]] != oid_from_str("1.2.840.10040.4.1") or len(alg) != 1:
            return None
        bits = spki[parts[1][2] + 1:parts[1][3]]
        t, s, e = header(bits, 0, len(bits))
        if t != 0x02:
            return None
        y = int.from_bytes(bits[s:e], "big")
        numbers = dsa.DSAPublicNumbers(y, previous.parameters().parameter_numbers())
        return numbers.public_key()

    # ------------------------------------------------------------ extensions
    def key_usage(self) -> Optional[int]:
        raw = self.ext(OID.KEY_USAGE)
        if raw is None:
            return None
        tag, vs, ve = header(raw, 0, len(raw))
        if tag != 0x03 or ve - vs < 1:
            raise CertificateParseError("bad keyUsage")
        return _bits(raw[vs:ve])

    def basic_constraints(self) -> Tuple[bool, Optional[int]]:
        raw = self.ext(OID.BASIC_CONSTRAINTS)
        if raw is None:
            return False, None
        tag, vs, ve = header(raw, 0, len(raw))
        if tag != 0x30:
            raise CertificateParseError("bad basicConstraints")
        ca, pathlen = False, None
        for t, _, s, e in children(raw, vs, ve):
            if t == 0x01:
                ca = e > s and raw[s] != 0
            elif t == 0x02:
                if e == s or e - s > 4 or raw[s] & 0x80:
                    raise CertificateParseError("bad pathLenConstraint")
                pathlen = int.from_bytes(raw[s:e], "big")
        return ca, pathlen

    def ext_key_usage(self) -> Optional[List[bytes]]:
        raw = self.ext(OID.EXT_KEY_USAGE)
        if raw is None:
            return None
        _, vs, ve = header(raw, 0, len(raw))
        return [raw[s:e] for t, _, s, e in children(raw, vs, ve) if t == 0x06]

    def policies(self) -> Optional[List[Tuple[bytes, bytes]]]:
        """[(policy OID, qualifiers DER)] or None without the extension."""
        raw = self.ext(OID.CERT_POLICIES)
        if raw is None:
            return None
        tag, vs, ve = header(raw, 0, len(raw))
        if tag != 0x30:
            raise CertificateParseError("bad certificatePolicies")
        out = []
        for t, _, s, e in children(raw, vs, ve):
            if t != 0x30:
                raise CertificateParseError("bad PolicyInformation")
            parts = children(raw, s, e)
            if not parts or parts[0][0] != 0x06:
                raise CertificateParseError("PolicyInformation without an OID")
            oid = raw[parts[0][2]:parts[0][3]]
            quals = raw[parts[1][1]:parts[1][3]] if len(parts) > 1 else b""
            out.append((oid, quals))
        if len({o for o, _ in out}) != len(out):
            raise CertificateParseError("a policy appears twice in certificatePolicies")
        return out

    def policy_mappings(self) -> Optional[List[Tuple[bytes, bytes]]]:
        raw = self.ext(OID.POLICY_MAPPINGS)
        if raw is None:
            return None
        _, vs, ve = header(raw, 0, len(raw))
        out = []
        for t, _, s, e in children(raw, vs, ve):
            pair = children(raw, s, e)
            if t != 0x30 or len(pair) != 2 or pair[0][0] != 0x06 or pair[1][0] != 0x06:
                raise CertificateParseError("bad PolicyMapping")
            out.append((raw[pair[0][2]:pair[0][3]], raw[pair[1][2]:pair[1][3]]))
        return out

    def policy_constraints(self) -> Tuple[Optional[int], Optional[int]]:
        """(requireExplicitPolicy, inhibitPolicyMapping)."""
        raw = self.ext(OID.POLICY_CONSTRAINTS)
        if raw is None:
            return None, None
        _, vs, ve = header(raw, 0, len(raw))
        req = inh = None
        for t, _, s, e in children(raw, vs, ve):
            if e - s > 4:
                raise CertificateParseError("bad PolicyConstraints")
            if t == 0x80:
                req = int.from_bytes(raw[s:e], "big")
            elif t == 0x81:
                inh = int.from_bytes(raw[s:e], "big")
        return req, inh

    def inhibit_any_policy(self) -> Optional[int]:
        raw = self.ext(OID.INHIBIT_ANY_POLICY)
        if raw is None:
            return None
        tag, vs, ve = header(raw, 0, len(raw))
        if tag != 0x02 or ve - vs > 4:
            raise CertificateParseError("bad inhibitAnyPolicy")
        return int.from_bytes(raw[vs:ve], "big")

    def _ski_aki(self) -> Tuple[Optional[bytes], Optional[bytes]]:
        ski = aki = None
        raw = self.ext(OID.SKI)
        if raw is not None:
            tag, vs, ve = header(raw, 0, len(raw))
            ski = raw[vs:ve]
        raw = self.ext(OID.AKI)
        if raw is not None:
            _, vs, ve = header(raw, 0, len(raw))
            for t, _, s, e in children(raw, vs, ve):
                if t == 0x80:
                    aki = raw[s:e]
        return ski, aki

    @property
    def ski(self) -> Optional[bytes]:
        return self._ski_aki()[0]

    @property
    def aki(self) -> Optional[bytes]:
        return self._ski_aki()[1]

    def distribution_points(self, oid: bytes = OID.CRL_DP) -> List["DistributionPoint"]:
        raw = self.ext(oid)
        if raw is None:
            return []
        _, vs, ve = header(raw, 0, len(raw))
        out = []
        for _t, _, s, e in children(raw, vs, ve):
            full: List[bytes] = []
            relative: Optional[bytes] = None
            reasons: Optional[int] = None
            crl_issuer: List[bytes] = []
            has_name = False
            for ct, _ch, cs, ce in children(raw, s, e):
                if ct == 0xA0:  # distributionPoint
                    has_name = True
                    for nt, nh, ns, ne in children(raw, cs, ce):
                        if nt == 0xA0:  # fullName: GeneralNames
                            full = [raw[gh:ge] for _, gh, _, ge in children(raw, ns, ne)]
                        elif nt == 0xA1:  # nameRelativeToCRLIssuer: an RDN (SET)
                            relative = b"\x31" + raw[nh + 1:ne]
                elif ct == 0x81:
                    reasons = _bits(raw[cs:ce])
                elif ct == 0xA2:  # cRLIssuer: GeneralNames
                    crl_issuer = [raw[gh:ge] for _, gh, _, ge in children(raw, cs, ce)]
            out.append(DistributionPoint(full, reasons, crl_issuer, relative, has_name))
        return out

    def access_urls(self, method: bytes) -> List[str]:
        raw = self.ext(OID.AIA)
        if raw is None:
            return []
        _, vs, ve = header(raw, 0, len(raw))
        out = []
        for _, _, s, e in children(raw, vs, ve):
            parts = children(raw, s, e)
            if len(parts) == 2 and raw[parts[0][2]:parts[0][3]] == method and parts[1][0] == 0x86:
                out.append(raw[parts[1][2]:parts[1][3]].decode("ascii", "replace"))
        return out


@dataclass(frozen=True)
class DistributionPoint:
    """A CRL distribution point: full names (GeneralName DER each), reasons (ReasonFlags
    bits, bit n = 1 << n), cRLIssuer names, nameRelativeToCRLIssuer (an RDN, SET DER)."""

    full_names: List[bytes]
    reasons: Optional[int]
    crl_issuer: List[bytes]
    relative_name: Optional[bytes] = None
    has_name: bool = False

    @property
    def urls(self) -> List[str]:
        return [n[2:].decode("ascii", "replace") for n in self.full_names
                if n[:1] == b"\x86" and len(n) > 2 and n[1] < 0x80]


# A byte with its bits reversed: DER numbers named bits from the most
# significant bit of the first byte (bit 0 = 0x80), flags here from 1 << 0.
_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _bits(value: bytes) -> int:
    """BIT STRING contents (unused-bits byte first) -> flags, bit n = 1 << n (bits 0-15)."""
    if len(value) < 2:
        return 0
    flags = _REVERSED[value[1]]
    if len(value) > 2:
        flags |= _REVERSED[value[2]] << 8
    return flags


def parse_cert(der: bytes) -> ParsedCert:
    """Parse a DER certificate.

    :raises CertificateParseError: anything that is not a well-formed X.509 v1-v3 certificate.
    """
    if not isinstance(der, (bytes, bytearray)):
        raise CertificateParseError("a certificate must be DER bytes")
    der = bytes(der)
    n = len(der)
    tag, vs, ve = header(der, 0, n)
    if tag != 0x30 or ve != n:
        raise CertificateParseError("not a DER certificate")
    top = children(der, vs, ve)
    if len(top) != 3 or top[0][0] != 0x30 or top[1][0] != 0x30 or top[2][0] != 0x03:
        raise CertificateParseError("certificate must be SEQUENCE { tbs, algorithm, signature }")
    _, tbs_h, tbs_s, tbs_e = top[0]
    sig_alg = der[top[1][1]:top[1][3]]
    sig = der[top[2][2]:top[2][3]]
    if not sig or sig[0] != 0:
        raise CertificateParseError("signature BIT STRING with unused bits")
    fields = children(der, tbs_s, tbs_e)
    i = 0
    version = 1
    if fields and fields[0][0] == 0xA0:
        vt, vvs, vve = header(der, fields[0][2], fields[0][3])
        if vt != 0x02 or vve - vvs != 1 or der[vvs] > 2:
            raise CertificateParseError("bad version")
        version = der[vvs] + 1
        i = 1
    if len(fields) < i + 6:
        raise CertificateParseError("TBSCertificate too short")
    st, _, ss, se = fields[i]
    if st != 0x02 or se == ss or se - ss > 21:
        raise CertificateParseError("bad serial number")
    serial = int.from_bytes(der[ss:se], "big", signed=True)
    if der[fields[i + 1][1]:fields[i + 1][3]] != sig_alg:
        raise CertificateParseError("signature algorithms of the TBS and the certificate differ")
    it, ih, _, ie = fields[i + 2]
    validity = children(der, fields[i + 3][2], fields[i + 3][3])
    sbt, sbh, sbs, sbe = fields[i + 4]
    if it != 0x30 or sbt != 0x30 or fields[i + 3][0] != 0x30 or len(validity) != 2:
        raise CertificateParseError("bad issuer, validity or subject")
    nb = _time(der, validity[0][0], validity[0][2], validity[0][3])
    na = _time(der, validity[1][0], validity[1][2], validity[1][3])
    spki_t, spki_h, _, spki_e = fields[i + 5]
    if spki_t != 0x30:
        raise CertificateParseError("bad SubjectPublicKeyInfo")
    extensions: Dict[bytes, Tuple[bool, bytes]] = {}
    for ft, _, fs, fe in fields[i + 6:]:
        if ft == 0xA3:
            et, es, ee = header(der, fs, fe)
            if et != 0x30 or ee != fe:
                raise CertificateParseError("bad extensions")
            pos = es
            while pos < ee:
                # Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE,
                # extnValue OCTET STRING }; the hot path of parsing, so the usual
                # short forms are decoded inline and header() handles the rest.
                if pos + 4 <= ee and der[pos] == 0x30 and der[pos + 1] < 0x80 \
                        and der[pos + 2] == 0x06 and der[pos + 3] < 0x80:
                    xs, xe = pos + 2, pos + 2 + der[pos + 1]
                    os_, oe = pos + 4, pos + 4 + der[pos + 3]
                    if xe > ee or oe > xe:
                        raise CertificateParseError("extension runs past its container")
                    if oe + 2 <= xe and der[oe] == 0x04 and der[oe + 1] < 0x80 \
                            and oe + 2 + der[oe + 1] == xe:
                        # no critical flag, a short value: the whole extension is read
                        oid = der[os_:oe]
                        if oid in extensions:
                            raise CertificateParseError("an extension appears twice")
                        extensions[oid] = (False, der[oe + 2:xe])
                        pos = xe
                        continue
                else:
                    xt, xs, xe = header(der, pos, ee)
                    if xt != 0x30:
                        raise CertificateParseError("bad extension")
                    ot, os_, oe = header(der, xs, xe)
                    if ot != 0x06:
                        raise CertificateParseError("extension without an OID")
                critical = False
                nt, ns, ne = header(der, oe, xe)
                if nt == 0x01:
                    critical = ne > ns and der[ns] != 0
                    nt, ns, ne = header(der, ne, xe)
                if nt != 0x04 or ne != xe:
                    raise CertificateParseError("bad extension value")
                oid = der[os_:oe]
                if oid in extensions:
                    raise CertificateParseError("an extension appears twice")
                extensions[oid] = (critical, der[ns:ne])
                pos = xe
        elif ft not in (0x81, 0x82):  # issuer/subjectUniqueID
            raise CertificateParseError("unexpected field in TBSCertificate")
    return ParsedCert(der=der, tbs=der[tbs_h:tbs_e], sig_alg=sig_alg, signature=sig[1:],
                      version=version, serial=serial, issuer=der[ih:ie], subject=der[sbh:sbe],
                      not_before=nb, not_after=na, spki=der[spki_h:spki_e],
                      extensions=extensions)


# ------------------------------------------------------------------ name comparison
_STRING_TAGS = {0x0C, 0x13, 0x14, 0x16, 0x1C, 0x1E}


def _normalise_value(tag: int, value: bytes) -> Tuple[int, object]:
    # RFC 5280 7.1: DirectoryString attributes compare case-insensitively with
    # insignificant spaces removed (a simplified LDAP StringPrep).
    if tag in (0x0C, 0x13, 0x14, 0x16):
        try:
            text = value.decode("utf-8") if tag == 0x0C else value.decode("latin-1")
        except UnicodeDecodeError:
            return (tag, value)
        return (0, " ".join(text.casefold().split()))
    if tag == 0x1E:
        try:
            return (0, " ".join(value.decode("utf-16-be").casefold().split()))
        except UnicodeDecodeError:
            return (tag, value)
    return (tag, value)


#: A Name as RDNs (sets of OID and normalised value), for comparison.
NameKey = Tuple[FrozenSet[Tuple[bytes, Tuple[int, object]]], ...]


def _name_key(name: bytes) -> NameKey:
    _, vs, ve = header(name, 0, len(name))
    rdns: List[FrozenSet[Tuple[bytes, Tuple[int, object]]]] = []
    for rt, _, rs, re_ in children(name, vs, ve):
        if rt != 0x31:
            raise CertificateParseError("bad RDN")
        atvs = []
        for at, _, as_, ae in children(name, rs, re_):
            parts = children(name, as_, ae)
            if at != 0x30 or len(parts) != 2 or parts[0][0] != 0x06:
                raise CertificateParseError("bad AttributeTypeAndValue")
            oid = name[parts[0][2]:parts[0][3]]
            atvs.append((oid, _normalise_value(parts[1][0], name[parts[1][2]:parts[1][3]])))
        rdns.append(frozenset(atvs))
    return tuple(rdns)


def names_match(a: bytes, b: bytes) -> bool:
    """RFC 5280 7.1 name matching: equal DER first (the fast path), else normalised."""
    if a == b:
        return True
    try:
        return _name_key(a) == _name_key(b)
    except CertificateParseError:
        return False


def name_is_empty(name: bytes) -> bool:
    _, vs, ve = header(name, 0, len(name))
    return vs == ve


def name_append_rdn(name: bytes, rdn: bytes) -> bytes:
    """The Name DER ``name`` with one more RDN (SET DER) at its end."""
    from ..tlv import encode_length

    _, vs, ve = header(name, 0, len(name))
    body = name[vs:ve] + rdn
    return b"\x30" + encode_length(len(body)) + body


def general_names_match(a: bytes, b: bytes) -> bool:
    """Two GeneralName TLVs name the same thing (directoryNames compared per RFC 5280 7.1)."""
    if a == b:
        return True
    if a[:1] == b[:1] == b"\xa4":
        try:
            _, avs, ave = header(a, 0, len(a))
            _, bvs, bve = header(b, 0, len(b))
        except CertificateParseError:
            return False
        return names_match(a[avs:ave], b[bvs:bve])
    if a[:1] == b[:1] and a[:1] in (b"\x82", b"\x86", b"\x81"):
        return a.lower() == b.lower()
    return False


def directory_name(name: bytes) -> bytes:
    """A Name DER as a GeneralName directoryName ([4] EXPLICIT)."""
    from ..tlv import encode_length

    return b"\xa4" + encode_length(len(name)) + name


_NAME_STRINGS: Dict[bytes, str] = {}


def name_str(name: bytes) -> str:
    """A Name DER as a display string, cached (the same issuers come back all the time)."""
    text = _NAME_STRINGS.get(name)
    if text is None:
        try:
            from asn1crypto import x509 as ax

            text = ax.Name.load(name).human_friendly
        except Exception:  # noqa: BLE001 - a display string must never fail
            text = name.hex()
        if len(_NAME_STRINGS) > 4096:
            _NAME_STRINGS.clear()
        _NAME_STRINGS[name] = text
    return text
