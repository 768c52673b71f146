"""Who a CPS card certificate names: :class:`Practitioner`, from a certificate alone.

::

    from cps.identity import Practitioner

    who = Practitioner.from_certificate(card.certificate(cps.KeyRole.AUTH))
    who.idnat            # "810002813839"  (idNat_PS, the subject CN)
    who.id_type          # IdType.RPPS
    who.national_id      # "10002813839"   (the bare RPPS number)
    who.profession_code  # "10"            (TRE_G15, from title=Médecin)

.. warning::
   A :class:`Practitioner` built from a certificate is only what the
   certificate **claims**. Anybody can make a certificate that says
   ``CN=810002813839, title=Médecin``. Trust these fields only after the
   certificate has been validated against the IGC-Santé PKI
   (:mod:`cps.trust`: chain, validity dates, revocation) **and** the card has
   proven that it holds the certificate's private key (:mod:`cps.auth`:
   challenge-response). :meth:`Practitioner.from_certificate` always returns
   ``validated=False``; only those layers call :meth:`Practitioner.as_validated`.

Where the fields come from (subject DN and extensions of CPS3 card
certificates; see ``docs/cps-domain.md`` sections 3.3 and 4):

=====================  ================================================================
field                  source
=====================  ================================================================
``idnat``              subject ``CN`` (never the UPN, which is only cross-checked)
``id_type``            first character of the idnat (:class:`IdType`)
``national_id``        the idnat without its type prefix (and without ``/<internal id>``)
``last_name``          ``SN`` (fallback: ``pseudonym``, as on employee cards)
``first_name``         ``GN``
``profession_label``   ``title`` (fallback: an ``OU`` holding a profession, legacy DNs)
``profession_code``    private extension 1.2.250.1.71.1.2.7 (INTEGER, TRE_G15 code),
                       else the code of the label (:func:`cps.professions.code_for`)
``structure_id``       ``OU`` holding an idNat_Struct (``10B0057881`` = 1 + FINESS)
``structure_name``     ``O``
``locality``           ``ST`` (fallback: ``L``)
``card_type``          private extension 1.2.250.1.71.1.2.2 (INTEGER), else inferred
``card_number``        private extension 1.2.250.1.71.1.2.3 (``8025000001/<card number>``)
``upn``                SAN otherName UPN: ``<idnat>@carte-cps.fr``, or on CPA cards
                       ``5.<SIRET>.<internal id>@carte-cps.fr``; authentication
                       certificates only (signature certificates have no SAN)
=====================  ================================================================

The certificate is decoded by a small, defensive DER reader of this module,
not by :mod:`cryptography`'s name parser: real certificates use UTF8String,
PrintableString, TeletexString or BMPString, put CN, SN and GN in one
multi-valued RDN, and occasionally contain bytes that are not valid in their
declared string type (Latin-1 in a UTF8String...), which :mod:`cryptography`
refuses when the subject is accessed. Such attributes are decoded leniently
and reported in :attr:`Practitioner.warnings`. Input that is not a
certificate at all raises :class:`~cps.errors.CertificateParseError`, and
nothing else.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

from . import luhn, pem
from .der import read_length
from .errors import CertificateParseError
from .professions import PROFESSIONS, code_for

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509

__all__ = [
    "IdType",
    "CardType",
    "Practitioner",
    "IdNat",
    "parse_idnat",
    "luhn_valid",
    "CARD_TYPE_CODES",
    "CARD_ISSUER_ID",
    "OID_CARD_TYPE",
    "OID_CARD_ISSUER_ID",
    "OID_PROFESSION",
    "OID_MS_UPN",
    "UPN_DOMAIN",
]

#: Private GIP-CPS extension: card type, DER INTEGER (see :data:`CARD_TYPE_CODES`).
OID_CARD_TYPE = "1.2.250.1.71.1.2.2"
#: Private GIP-CPS extension: ``"<card issuer>/<card number>"``, DER PrintableString.
OID_CARD_ISSUER_ID = "1.2.250.1.71.1.2.3"
#: Private GIP-CPS extension: TRE_G15 profession code, DER INTEGER (``60`` = Infirmier).
OID_PROFESSION = "1.2.250.1.71.1.2.7"
#: Microsoft User Principal Name, the SAN otherName of CPS authentication certificates.
OID_MS_UPN = "1.3.6.1.4.1.311.20.2.3"
#: Domain of the UPN of CPS authentication certificates: ``<idnat>@carte-cps.fr``
#: (``5.<SIRET>.<internal id>@carte-cps.fr`` on CPA cards).
UPN_DOMAIN = "carte-cps.fr"
#: IAS issuer number of the ANS, before the ``/`` of extension 1.2.250.1.71.1.2.3.
CARD_ISSUER_ID = "8025000001"


class IdType(str, enum.Enum):
    """Type of an idNat_PS, given by its first character (TRE_G08-TypeIdentifiantPersonne).

    The value of each member is the prefix itself (``IdType.RPPS.value == "8"``),
    except :attr:`UNKNOWN`.
    """

    #: ``0`` + N° ADELI: a practitioner registered in ADELI and not (yet) in
    #: RPPS. ADELI numbers have 9 characters and may contain letters (Corsica
    #: ``2A``/``2B``, test data ``0B``): ``00B7010446`` -> ``0B7010446``.
    ADELI = "0"
    #: ``1`` + identifier of an ADELI practice ("cabinet") ``/`` internal identifier.
    ADELI_CABINET = "1"
    #: ``3`` + FINESS of an establishment ``/`` internal identifier: establishment
    #: staff (CPE cards), e.g. ``30B0057881/CPET0002``.
    FINESS = "3"
    #: ``4`` + SIREN of an organisation ``/`` internal identifier.
    SIREN = "4"
    #: ``5`` + SIRET of an establishment ``/`` internal identifier, e.g. the
    #: CPA-style ``500000000029751/CPAT0001``.
    SIRET = "5"
    #: ``6`` + identifier of an RPPS practice ("cabinet RPPS") ``/`` internal identifier.
    RPPS_CABINET = "6"
    #: ``8`` + N° RPPS (11 digits): a practitioner of the RPPS directory,
    #: e.g. ``810002813839`` -> RPPS ``10002813839``.
    RPPS = "8"
    #: Not an idNat_PS this library understands (unknown prefix or bad syntax);
    #: :attr:`Practitioner.national_id` then holds the whole identifier.
    UNKNOWN = "unknown"

    @property
    def structure_based(self) -> bool:
        """True for identifiers of the form ``<prefix><structure id>/<internal id>``."""
        return self in _STRUCTURE_TYPES


_STRUCTURE_TYPES = frozenset({IdType.ADELI_CABINET, IdType.FINESS, IdType.SIREN,
                              IdType.SIRET, IdType.RPPS_CABINET})


class CardType(str, enum.Enum):
    """Kind of CPx card (TRE_R87-TypeCarte)."""

    #: Carte de Professionnel de Santé: a practitioner (RPPS / ADELI).
    CPS = "CPS"
    #: Carte de Professionnel de santé en Formation: a student.
    CPF = "CPF"
    #: Carte de Personnel d'Établissement: staff of a health establishment.
    CPE = "CPE"
    #: Carte de Personnel Autorisé: staff authorised by a structure (e.g. a director).
    CPA = "CPA"
    #: Not stated by the certificate, and not safely inferable.
    UNKNOWN = "unknown"


#: Value of extension 1.2.250.1.71.1.2.2 -> card type. **Inferred**, not
#: documented by the ANS: the one public TEST CPE certificate carries 2, which
#: matches the order CPS, CPF, CPE, CPA of TRE_R87 (the emulator uses the same table).
CARD_TYPE_CODES: Mapping[int, CardType] = {0: CardType.CPS, 1: CardType.CPF,
                                           2: CardType.CPE, 3: CardType.CPA}

# ------------------------------------------------------------------------- idNat_PS

_ID_PREFIXES = {t.value: t for t in IdType if t is not IdType.UNKNOWN}
_ID_CHARS = re.compile(r"[0-9A-Za-z]+")
_INTERNAL_CHARS = re.compile(r"[0-9A-Za-z][0-9A-Za-z._/-]*")
_EXPECTED_SHAPE = {
    # type: (regex of the national part, human description); a mismatch is a warning
    IdType.ADELI: (re.compile(r"[0-9A-Za-z]{9}"), "9 characters"),
    IdType.FINESS: (re.compile(r"[0-9A-Za-z]{9}"), "9 characters"),
    IdType.SIREN: (re.compile(r"[0-9]{9}"), "9 digits"),
    IdType.SIRET: (re.compile(r"[0-9]{14}"), "14 digits"),
}


#: the one Luhn check (:func:`cps.luhn.is_valid`), under the name this module exports
luhn_valid = luhn.is_valid


@dataclass(frozen=True)
class IdNat:
    """An idNat_PS split into its parts (see :func:`parse_idnat`).

    :ivar value: the identifier as given.
    :ivar id_type: its type; :attr:`IdType.UNKNOWN` when it is not a valid idNat_PS.
    :ivar national_id: the identifier without its prefix and without the
        ``/<internal id>`` part (the bare RPPS, ADELI, FINESS, SIREN, SIRET...);
        the whole value for :attr:`IdType.UNKNOWN`.
    :ivar internal_id: the part after ``/`` of structure-based identifiers.
    :ivar rpps_luhn_ok: for RPPS, whether the Luhn check digit verifies; ``None``
        otherwise. The Luhn rule is not confirmed by the ANS: a ``False`` here
        is a warning, never a reason to reject.
    :ivar problems: human-readable remarks (bad shape, Luhn mismatch...).
    """

    value: str
    id_type: IdType
    national_id: str
    internal_id: Optional[str] = None
    rpps_luhn_ok: Optional[bool] = None
    problems: Tuple[str, ...] = ()


def parse_idnat(value: str) -> IdNat:
    """Split an idNat_PS (``8`` + RPPS, ``0`` + ADELI, ``3`` + FINESS/internal id...).

    Never raises for a string: what does not follow the idNat_PS syntax
    (``^(0|1|3|4|5|6|8)[0-9A-Za-z]+(/<internal id>)?$``; RPPS = exactly 11
    digits; ADELI and RPPS without ``/``) gets :attr:`IdType.UNKNOWN` and a
    remark in :attr:`IdNat.problems`. Length rules that are only inferred
    (ADELI/FINESS 9 characters, SIREN 9 digits, SIRET 14 digits) and the Luhn
    digit of RPPS numbers give remarks, not :attr:`IdType.UNKNOWN`.

    :param value: the identifier, e.g. ``"810002813839"`` or ``"30B0057881/CPET0002"``.
    :returns: the parts of the identifier.
    :raises TypeError: ``value`` is not a string.
    """
    if not isinstance(value, str):
        raise TypeError(f"an idNat_PS is a str, not {type(value).__name__}")
    if len(value) == 12 and value[0] == "8" and value.isascii() and value.isdigit():
        # "8" + 11 digits, what nearly every practitioner's CN holds: the checks
        # below would all pass, Luhn aside
        head = value[1:]
        luhn = luhn_valid(head)
        return IdNat(value, IdType.RPPS, head, None, luhn, () if luhn else (_luhn_remark(head),))
    return _parse_any_idnat(value)


def _parse_any_idnat(value: str) -> IdNat:
    if not value:
        return _unknown_idnat(value, "empty identifier")
    id_type = _ID_PREFIXES.get(value[0])
    if id_type is None:
        return _unknown_idnat(
            value, f"prefix {value[0]!r} is not an idNat_PS type (0, 1, 3, 4, 5, 6 or 8)")
    head, slash, internal = value[1:].partition("/")
    if not _ID_CHARS.fullmatch(head):
        return _unknown_idnat(value,
                              "the identifier after the prefix must be letters and digits")
    if slash and not id_type.structure_based:
        return _unknown_idnat(value, f"an {id_type.name} identifier has no '/<internal id>' part")
    if slash and not _INTERNAL_CHARS.fullmatch(internal):
        return _unknown_idnat(value, "bad internal identifier after '/'")
    problems: List[str] = []
    luhn: Optional[bool] = None
    if id_type is IdType.RPPS:
        if not (len(head) == 11 and head.isascii() and head.isdigit()):
            return _unknown_idnat(value, f"an RPPS number has 11 digits, not {head!r}")
        luhn = luhn_valid(head)
        if not luhn:
            problems.append(_luhn_remark(head))
    shape = _EXPECTED_SHAPE.get(id_type)
    if shape is not None and not shape[0].fullmatch(head):
        problems.append(f"{id_type.name} {head!r}: expected {shape[1]}")
    return IdNat(value, id_type, head, internal if slash else None, luhn, tuple(problems))


def _luhn_remark(rpps: str) -> str:
    return (f"RPPS {rpps}: the Luhn check digit does not verify "
            "(not a confirmed rule: informational only)")


def _unknown_idnat(value: str, why: str) -> IdNat:
    return IdNat(value, IdType.UNKNOWN, value, problems=(f"idnat {value!r}: {why}",))


# ------------------------------------------------------------------------- DER reader

_CN, _SN, _GN = "2.5.4.3", "2.5.4.4", "2.5.4.42"
_TITLE, _O, _OU = "2.5.4.12", "2.5.4.10", "2.5.4.11"
_ST, _L, _PSEUDONYM = "2.5.4.8", "2.5.4.7", "2.5.4.65"
_SAN = "2.5.29.17"
_ATTRIBUTE_NAMES = {_CN: "CN", _SN: "SN", _GN: "GN", _TITLE: "title", _O: "O", _OU: "OU",
                    _ST: "ST", _L: "L", _PSEUDONYM: "pseudonym", "2.5.4.6": "C"}

_SEQUENCE, _SET, _INTEGER, _OID, _OCTET_STRING, _BIT_STRING, _BOOLEAN = (
    0x30, 0x31, 0x02, 0x06, 0x04, 0x03, 0x01)
_UTF8, _NUMERIC, _PRINTABLE, _TELETEX, _IA5, _VISIBLE, _UNIVERSAL, _BMP = (
    0x0C, 0x12, 0x13, 0x14, 0x16, 0x1A, 0x1C, 0x1E)


class _Tlv(NamedTuple):
    tag: int
    start: int  # first byte of the value
    end: int  # one past its last byte


class _Malformed(Exception):
    """Internal: bad DER. Fatal in the certificate's structure or subject (turned into
    :class:`~cps.errors.CertificateParseError`), a warning inside an extension."""


def _parse_error(reason: object) -> CertificateParseError:
    return CertificateParseError(f"not a decodable X.509 certificate: {reason}")


def _read(data: bytes, pos: int, end: int) -> _Tlv:
    """One DER TLV at ``pos``; every length is checked against ``end``."""
    if pos >= end:
        raise _Malformed("truncated (expected a tag)")
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:  # high tag number form
        for _ in range(4):
            if pos >= end:
                raise _Malformed("truncated inside a tag")
            tag = (tag << 8) | data[pos]
            pos += 1
            if not tag & 0x80:
                break
        else:
            raise _Malformed("tag number too large")
    length, pos = read_length(data, pos, end, 4, _Malformed)
    if length > end - pos:
        raise _Malformed("a length runs past the end of the data")
    return _Tlv(tag, pos, pos + length)


def _children(data: bytes, parent: _Tlv) -> List[_Tlv]:
    out = []
    pos = parent.start
    while pos < parent.end:
        child = _read(data, pos, parent.end)
        out.append(child)
        pos = child.end
    return out


#: the dotted form of the OIDs already met (a plain dict is the fastest look-up)
_OID_TEXT: Dict[bytes, str] = {}


def _decode_oid(raw: bytes) -> str:
    # Cached: the same dozen OIDs come back in every certificate a server sees.
    text = _OID_TEXT.get(raw)
    if text is None:
        text = _decode_new_oid(raw)
        if len(_OID_TEXT) >= 1024:
            _OID_TEXT.clear()
        _OID_TEXT[raw] = text
    return text


def _decode_new_oid(raw: bytes) -> str:
    if not raw or len(raw) > 64 or raw[-1] & 0x80:
        raise _Malformed("malformed object identifier")
    arcs: List[int] = []
    value = 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def _decode_text(tag: int, raw: bytes) -> Tuple[Optional[str], Optional[str]]:
    """``(text, remark)`` of a character string; ``(None, remark)`` when not a string type.

    Decoding never fails: bytes invalid for the declared type are decoded as
    Latin-1 (or with replacement characters) and a remark says so.
    """
    if tag == _UTF8 or tag == _PRINTABLE:  # what card certificates use: straight to it
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1"), "bytes invalid for its string type, decoded as Latin-1"
        if tag == _UTF8 or text.isascii():
            return text, None
        return text, "non-ASCII characters in an ASCII string type, decoded as UTF-8"
    if tag == _BMP:
        if len(raw) % 2 == 0:
            try:
                return raw.decode("utf-16-be"), None
            except UnicodeDecodeError:
                pass
        return raw.decode("utf-16-be", "replace"), "invalid BMPString, decoded with replacements"
    if tag == _UNIVERSAL:
        if len(raw) % 4 == 0:
            try:
                return raw.decode("utf-32-be"), None
            except UnicodeDecodeError:
                pass
        return (raw.decode("utf-32-be", "replace"),
                "invalid UniversalString, decoded with replacements")
    if tag in (_UTF8, _TELETEX, _PRINTABLE, _IA5, _VISIBLE, _NUMERIC):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Latin-1 is what mis-encoded French names nearly always are, and
            # what TeletexString holds in practice.
            if tag == _TELETEX:
                return raw.decode("latin-1"), None
            return raw.decode("latin-1"), "bytes invalid for its string type, decoded as Latin-1"
        if tag in (_UTF8, _TELETEX) or text.isascii():
            return text, None
        return text, "non-ASCII characters in an ASCII string type, decoded as UTF-8"
    return None, f"not a character string (ASN.1 tag 0x{tag:02X}), ignored"


def _decode_integer(raw: bytes) -> Optional[int]:
    if not raw or len(raw) > 16:
        return None
    return int.from_bytes(raw, "big", signed=True)


class _Subject(NamedTuple):
    #: (oid, text) in DER order, RDN by RDN, undecodable values left out
    attributes: List[Tuple[str, str]]
    remarks: List[str]


class _Parsed(NamedTuple):
    subject: _Subject
    #: extension OID -> extnValue contents (first occurrence)
    extensions: Dict[str, bytes]
    remarks: List[str]


def _parse_name(der: bytes, name: _Tlv) -> _Subject:
    fast = _parse_short_name(der, name.start, name.end)
    return fast if fast is not None else _parse_any_name(der, name)


def _parse_short_name(der: bytes, pos: int, end: int) -> Optional[_Subject]:
    """The subject of a card certificate, the hot path of a login server.

    Every RDN, attribute and value of a card's subject is shorter than 128
    bytes: one-byte lengths, read inline. ``None`` as soon as anything else
    shows up, errors included: :func:`_parse_any_name` then reads it (and
    words the error exactly as it always does).
    """
    attributes: List[Tuple[str, str]] = []
    remarks: List[str] = []
    while pos < end:
        if pos + 2 > end or der[pos] != _SET or der[pos + 1] & 0x80:
            return None
        rdn_end = pos + 2 + der[pos + 1]
        if rdn_end > end:
            return None
        pos += 2
        while pos < rdn_end:
            # SEQUENCE { OID, value }, both complete and nothing after them
            if pos + 4 > rdn_end or der[pos] != _SEQUENCE or der[pos + 1] & 0x80 \
                    or der[pos + 2] != _OID or der[pos + 3] & 0x80:
                return None
            atv_end = pos + 2 + der[pos + 1]
            oid_end = pos + 4 + der[pos + 3]
            if atv_end > rdn_end or oid_end + 2 > atv_end or der[oid_end + 1] & 0x80 \
                    or oid_end + 2 + der[oid_end + 1] != atv_end:
                return None
            try:
                oid = _decode_oid(der[pos + 4:oid_end])
            except _Malformed:
                return None  # the general reader words the error
            text, remark = _decode_text(der[oid_end], der[oid_end + 2:atv_end])
            if remark:
                remarks.append(f"subject {_ATTRIBUTE_NAMES.get(oid, oid)}: {remark}")
            if text is not None:
                attributes.append((oid, text))
            pos = atv_end
    return _Subject(attributes, remarks)


def _parse_any_name(der: bytes, name: _Tlv) -> _Subject:
    # Any DER lengths, with an error message for what is malformed: plain
    # tuples from the project's DER reader (cps.der) rather than a _Tlv per element.
    from .der import children as _kids
    from .errors import CertificateParseError as _Bad

    attributes: List[Tuple[str, str]] = []
    remarks: List[str] = []
    try:
        rdns = _kids(der, name.start, name.end)
    except _Bad as exc:
        raise _Malformed(f"subject: {exc}") from None
    for rtag, _, rs, re_ in rdns:
        if rtag != _SET:
            raise _Malformed("subject: a relative distinguished name is not a SET")
        try:
            atvs = _kids(der, rs, re_)
        except _Bad as exc:
            raise _Malformed(f"subject: {exc}") from None
        for atag, _, as_, ae in atvs:
            try:
                parts = _kids(der, as_, ae) if atag == _SEQUENCE else []
            except _Bad as exc:
                raise _Malformed(f"subject: {exc}") from None
            if len(parts) != 2 or parts[0][0] != _OID:
                raise _Malformed("subject: malformed attribute")
            oid = _decode_oid(der[parts[0][2]:parts[0][3]])
            text, remark = _decode_text(parts[1][0], der[parts[1][2]:parts[1][3]])
            if remark:
                remarks.append(f"subject {_ATTRIBUTE_NAMES.get(oid, oid)}: {remark}")
            if text is not None:
                attributes.append((oid, text))
    return _Subject(attributes, remarks)


def _parse_extensions(der: bytes, wrapper: Optional[_Tlv]) -> Tuple[Dict[str, bytes], List[str]]:
    """Extensions by OID; a malformed list is reported and ignored, not fatal."""
    out: Dict[str, bytes] = {}
    if wrapper is None:
        return out, []
    try:
        inner = _children(der, wrapper)
        if len(inner) != 1 or inner[0].tag != _SEQUENCE:
            raise _Malformed("extensions are not a SEQUENCE")
        for ext in _children(der, inner[0]):
            parts = _children(der, ext) if ext.tag == _SEQUENCE else []
            if not 2 <= len(parts) <= 3 or parts[0].tag != _OID \
                    or parts[-1].tag != _OCTET_STRING:
                raise _Malformed("malformed extension")
            oid = _decode_oid(der[parts[0].start:parts[0].end])
            out.setdefault(oid, der[parts[-1].start:parts[-1].end])
    except _Malformed as exc:
        return out, [f"extensions ignored: {exc}"]
    return out, []


def _parse_certificate(der: bytes) -> _Parsed:
    if not der:
        raise _Malformed("no data")
    top = _read(der, 0, len(der))
    if top.tag != _SEQUENCE:
        raise _Malformed("does not start with a SEQUENCE")
    if top.end != len(der):
        raise _Malformed(f"{len(der) - top.end} trailing byte(s) after the certificate")
    parts = _children(der, top)
    if [p.tag for p in parts] != [_SEQUENCE, _SEQUENCE, _BIT_STRING]:
        raise _Malformed("not the shape of a Certificate (tbsCertificate, algorithm, signature)")
    tbs = _children(der, parts[0])
    first = 1 if tbs and tbs[0].tag == 0xA0 else 0
    expected = [_INTEGER, _SEQUENCE, _SEQUENCE, _SEQUENCE, _SEQUENCE, _SEQUENCE]
    if [t.tag for t in tbs[first:first + 6]] != expected:
        raise _Malformed("malformed tbsCertificate")
    subject = _parse_name(der, tbs[first + 4])
    wrapper = next((t for t in tbs[first + 6:] if t.tag == 0xA3), None)
    extensions, remarks = _parse_extensions(der, wrapper)
    return _Parsed(subject, extensions, remarks)


def _single_text(data: bytes) -> Tuple[Optional[str], Optional[str]]:
    """Decode a DER character string that makes up all of ``data``."""
    if len(data) >= 2 and data[1] < 0x80 and len(data) == 2 + data[1] \
            and data[0] & 0x1F != 0x1F:
        return _decode_text(data[0], data[2:])  # the short form every card uses
    return _single_text_any(data)


def _single_text_any(data: bytes) -> Tuple[Optional[str], Optional[str]]:
    tlv = _read(data, 0, len(data))
    if tlv.end != len(data):
        raise _Malformed("trailing bytes")
    return _decode_text(tlv.tag, data[tlv.start:tlv.end])


def _upns(value: bytes) -> Tuple[List[str], List[str]]:
    """The UPN otherNames of a subjectAltName extension value."""
    size = len(value)
    head = len(_UPN_OTHER_NAME)
    if head + 8 < size < 0x82 and value[1] == size - 2 and value[3] == size - 4 \
            and value[head + 5] == size - head - 6 and value[0] == _SEQUENCE \
            and value[2] == 0xA0 and value[head + 4] == 0xA0 \
            and value.startswith(_UPN_OTHER_NAME, 4):
        # The card's SAN: one UPN otherName, short lengths (checked above to
        # end exactly where the extension ends). Anything else: the loop below.
        try:
            text, _ = _single_text(value[head + 6:])
        except _Malformed as exc:
            return [], [f"subjectAltName ignored: {exc}"]
        return ([text] if text is not None else []), []
    return _upns_any(value)


def _upns_any(value: bytes) -> Tuple[List[str], List[str]]:
    upns: List[str] = []
    try:
        names = _read(value, 0, len(value))
        if names.tag != _SEQUENCE:
            raise _Malformed("not a SEQUENCE")
        for general_name in _children(value, names):
            if general_name.tag != 0xA0:  # otherName [0]
                continue
            parts = _children(value, general_name)
            if len(parts) != 2 or parts[0].tag != _OID or parts[1].tag != 0xA0:
                raise _Malformed("malformed otherName")
            if _decode_oid(value[parts[0].start:parts[0].end]) != OID_MS_UPN:
                continue
            text, _ = _single_text(value[parts[1].start:parts[1].end])
            if text is not None:
                upns.append(text)
    except _Malformed as exc:
        return upns, [f"subjectAltName ignored: {exc}"]
    return upns, []


def _to_der(cert: Any) -> bytes:
    if isinstance(cert, (bytes, bytearray, memoryview)):
        data = bytes(cert)
        # PEM only when it is not a whole DER SEQUENCE: a DER certificate may
        # contain the bytes "-----BEGIN" (in a name or an extension).
        return _pem_to_der(data) if pem.MARKER in data and not _is_der(data) else data
    if isinstance(cert, str):
        return _pem_to_der(cert.encode("utf-8", "replace"))
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding
    except ImportError:  # pragma: no cover - cryptography is a dependency
        raise TypeError("give DER or PEM bytes (cryptography is not installed)") from None
    if isinstance(cert, x509.Certificate):
        try:
            return cert.public_bytes(Encoding.DER)
        except Exception as exc:  # noqa: BLE001 - a foreign object's failure, wrapped
            raise CertificateParseError(f"cannot get the certificate's DER: {exc}") from exc
    raise TypeError("from_certificate takes a cryptography x509.Certificate or DER/PEM "
                    f"bytes, not {type(cert).__name__}")


def _is_der(data: bytes) -> bool:
    """Whether ``data`` is exactly one DER SEQUENCE (the shape of a certificate)."""
    try:
        top = _read(data, 0, len(data))
    except (_Malformed, IndexError, ValueError):
        return False
    return top.tag == _SEQUENCE and top.end == len(data)


def _pem_to_der(data: bytes) -> bytes:
    try:
        found = pem.blocks(data, (b"CERTIFICATE", b"X509 CERTIFICATE"), limit=1)
    except ValueError as exc:
        raise CertificateParseError(f"invalid PEM certificate: {exc}") from None
    if not found:
        raise CertificateParseError("no PEM 'BEGIN CERTIFICATE' block found")
    return found[0]


def _upn_problem(upn: str, idnat: IdNat) -> Optional[str]:
    """Why ``upn`` does not fit the idnat read from the CN; ``None`` when it does.

    Accepted: ``<idnat>@carte-cps.fr`` (every card), and
    ``5.<SIRET>.<internal id>@carte-cps.fr`` for an idnat ``5<SIRET>/<internal id>``
    (the form of CPA cards). The domain is compared case-insensitively.
    """
    local, at, domain = upn.rpartition("@")
    if not at or domain.lower() != UPN_DOMAIN:
        return f"the UPN {upn!r} is not in the {UPN_DOMAIN} domain"
    accepted = [idnat.value]
    if idnat.id_type is IdType.SIRET and idnat.internal_id:
        accepted.append(f"5.{idnat.national_id}.{idnat.internal_id}")
    if local in accepted:
        return None
    return f"the UPN {upn!r} does not match the idnat {idnat.value!r}"


def _profession_extension(raw: bytes) -> Tuple[Optional[str], Optional[str]]:
    """(TRE_G15 code, problem) from the extnValue of 1.2.250.1.71.1.2.7 (DER INTEGER).

    A code outside the shipped TRE_G15 table is kept (the table may be older
    than the card) and reported; anything that is not a small non-negative
    INTEGER is reported and ignored.
    """
    number: Optional[int] = None
    try:
        tlv = _read(raw, 0, len(raw))
        if tlv.tag == _INTEGER and tlv.end == len(raw) and 0 < tlv.end - tlv.start <= 2:
            number = _decode_integer(raw[tlv.start:tlv.end])
    except _Malformed:
        pass
    if number is None or not 0 <= number <= 999:
        return None, (f"profession extension {OID_PROFESSION}: not a TRE_G15 code "
                      f"(DER {raw[:16].hex()}), ignored")
    code = f"{number:02d}"
    if code not in PROFESSIONS:
        return code, (f"profession extension {OID_PROFESSION}: code {code!r} is not in "
                      f"the TRE_G15 table shipped with this version")
    return code, None


# ------------------------------------------------------------------------- Practitioner

_STRUCTURE_ID = re.compile(r"[0-9][0-9A-Za-z]+")


@dataclass(frozen=True)
class Practitioner:
    """The holder of a CPS card, as named by one of its certificates.

    **These are claims**: a practitioner from :meth:`from_certificate` is what
    the certificate says, nothing more. Trust it only after the certificate
    is validated against IGC-Santé (:mod:`cps.trust`) and the card has proven
    possession of its key (:mod:`cps.auth`); those layers mark the result
    with :meth:`as_validated`.

    The first eleven fields are the public contract (positional order kept);
    the others are keyword-only.

    :ivar idnat: the national identifier idNat_PS (the subject CN), e.g.
        ``"810002813839"``, ``"00B7010446"``, ``"30B0057881/CPET0002"``.
    :ivar id_type: the identifier's type, from its first character.
    :ivar national_id: the identifier without its type prefix: the bare RPPS
        (11 digits), the bare ADELI; for structure-based identifiers the
        FINESS / SIREN / SIRET / practice id before ``/`` (the part after
        ``/`` is :attr:`internal_id`); the whole idnat for :attr:`IdType.UNKNOWN`.
    :ivar last_name: surname (SN); the ``pseudonym`` when there is no SN
        (employee cards); ``None`` when the certificate has neither.
    :ivar first_name: given name (GN), ``None`` when absent.
    :ivar profession_code: TRE_G15 code (``"10"``): the value of the private
        extension 1.2.250.1.71.1.2.7 when the certificate has a well-formed
        one, else the code of the profession label; ``None`` for staff titles
        such as "Personnel santé ou social". See :attr:`profession_code_source`
        and :attr:`profession_mismatch`.
    :ivar profession_label: the profession as written in the certificate
        (``title``, or an ``OU`` in legacy DNs), e.g. ``"Médecin"``.
    :ivar structure_id: idNat_Struct of the structure (an ``OU`` such as
        ``"10B0057881"`` = 1 + FINESS), ``None`` when absent.
    :ivar structure_name: name of the structure (``O``), ``None`` when absent.
    :ivar card_type: CPS, CPF, CPE, CPA or UNKNOWN; see :attr:`card_type_inferred`.
    :ivar card_number: the card number from extension 1.2.250.1.71.1.2.3
        (``8025000001/2600301752`` -> ``"2600301752"``), ``None`` when absent.
    :ivar internal_id: for structure-based identifiers, the part after ``/``.
    :ivar locality: ``ST`` (or ``L``) of the subject, e.g. ``"Paris (75)"``.
    :ivar pseudonym: the subject ``pseudonym`` attribute, when present.
    :ivar upn: the SAN User Principal Name, when present: ``<idnat>@carte-cps.fr``,
        or ``5.<SIRET>.<internal id>@carte-cps.fr`` for a CPA idnat
        ``5<SIRET>/<internal id>``; both forms are accepted silently, any other
        value gives a warning. Only authentication certificates carry one. The
        idnat is **never** taken from the UPN.
    :ivar profession_code_source: where :attr:`profession_code` comes from:
        ``"extension"`` (1.2.250.1.71.1.2.7), ``"title"`` (the profession
        label: ``title``, or an ``OU`` in legacy DNs), ``None`` (no code).
    :ivar profession_mismatch: ``True`` when the extension's code and the code
        of the profession label disagree (both known). The extension wins: it
        is a machine-readable code signed by the CA, while the label is free
        text for humans; a warning names both. A demanding application (access
        control by profession) should refuse such a certificate or ask a
        human, rather than pick either value.
    :ivar rpps_luhn_ok: for RPPS identifiers, whether the Luhn digit verifies
        (``None`` otherwise). Informational: never a reason to reject.
    :ivar card_type_inferred: ``True`` when :attr:`card_type` was guessed from
        the identifier because the certificate has no card-type extension
        (``3…/…`` -> CPE, internal id ``CPA…`` -> CPA). Without the extension
        RPPS / ADELI holders stay UNKNOWN (CPS or CPF cannot be told apart).
    :ivar warnings: anomalies met while reading the certificate (mis-encoded
        attribute, UPN that matches neither accepted form, malformed private
        extension, profession extension disagreeing with the title, Luhn
        mismatch...). A malformed extension is never fatal: it is reported
        here and ignored (the profession code then comes from the title).
    :ivar validated: set ``True`` only by code that validated the chain (and
        checked the card's possession of the key). :meth:`from_certificate`
        always gives ``False``. This flag is a convention between layers of
        this library, not a proof: anyone can construct a Practitioner.
    """

    idnat: str
    id_type: IdType
    national_id: str
    last_name: Optional[str]
    first_name: Optional[str]
    profession_code: Optional[str]
    profession_label: Optional[str]
    structure_id: Optional[str]
    structure_name: Optional[str]
    card_type: CardType
    card_number: Optional[str]
    _: KW_ONLY
    internal_id: Optional[str] = None
    locality: Optional[str] = None
    pseudonym: Optional[str] = None
    upn: Optional[str] = None
    rpps_luhn_ok: Optional[bool] = None
    card_type_inferred: bool = False
    profession_code_source: Optional[str] = None
    profession_mismatch: bool = False
    warnings: Tuple[str, ...] = ()
    validated: bool = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_certificate(cls, cert: Union["x509.Certificate", bytes, bytearray, memoryview, str]
                         ) -> "Practitioner":
        """Read the practitioner named by a CPS card certificate.

        Only what the certificate **claims**: nothing is verified here (no
        signature, no chain, no dates, no revocation). See the class docstring.

        :param cert: a :class:`cryptography.x509.Certificate`, or the
            certificate as DER bytes, or PEM (bytes or str).
        :returns: a :class:`Practitioner` with ``validated=False``.
        :raises CertificateParseError: the input is not a decodable X.509
            certificate, or its subject has no CN (the UPN is never used
            instead).
        :raises TypeError: ``cert`` is of an unsupported type.
        """
        der = _to_der(cert)
        try:
            parsed = _parse_certificate(der)
        except _Malformed as exc:
            raise _parse_error(exc) from None
        except (IndexError, ValueError, OverflowError) as exc:  # defensive: never leak these
            raise _parse_error(exc) from exc
        return cls._from_parsed(parsed)

    @classmethod
    def from_parsed_certificate(cls, parsed: Any, *, validated: bool = False) -> "Practitioner":
        """The same as :meth:`from_certificate`, from a certificate that
        :mod:`cps.trust` has already parsed (a ``ParsedCert``): a server that
        just validated the certificate does not read it a second time."""
        try:
            subject_tlv = _read(parsed.subject, 0, len(parsed.subject))
            subject = _parse_name(parsed.subject, subject_tlv)
        except _Malformed as exc:
            raise _parse_error(exc) from None
        extensions = {oid: parsed.extensions[raw][1] for raw, oid in _WANTED_RAW.items()
                      if raw in parsed.extensions}
        return cls._from_parsed(_Parsed(subject, extensions, []), validated=validated)

    @classmethod
    def _from_parsed(cls, parsed: _Parsed, validated: bool = False) -> "Practitioner":
        warnings: List[str] = list(parsed.subject.remarks) + list(parsed.remarks)
        values: Dict[str, List[str]] = {}
        firsts: Dict[str, str] = {}  # the first non-blank value of each attribute
        for oid, text in parsed.subject.attributes:
            values.setdefault(oid, []).append(text)
            if oid not in firsts and text.strip():
                firsts[oid] = text
        first = firsts.get

        # --- the identifier: the CN, never the UPN (which is only cross-checked)
        cns = [cn for cn in values.get(_CN, ()) if cn.strip()]
        if not cns:
            raise CertificateParseError(
                "the certificate subject has no (non-empty) CN (commonName): it names no "
                "practitioner (not a CPS card certificate?)")
        chosen: Optional[IdNat] = None
        for cn in cns:  # the first CN that is an idNat_PS; else the first CN
            candidate = parse_idnat(cn)
            if candidate.id_type is not IdType.UNKNOWN:
                chosen = candidate
                break
        if chosen is None:
            chosen = parse_idnat(cns[0])
        warnings.extend(chosen.problems)
        if len(cns) > 1:
            warnings.append(f"the subject has {len(cns)} CNs; used {chosen.value!r}")
        upn: Optional[str] = None
        san = parsed.extensions.get(_SAN)
        if san is not None:
            upns, remarks = _upns(san)
            warnings.extend(remarks)
            if upns:
                upn = upns[0]
                problem = _upn_problem(upn, chosen)
                if problem:
                    warnings.append(problem)

        # --- names
        pseudonym = first(_PSEUDONYM)
        last_name = first(_SN) or pseudonym
        first_name = first(_GN)

        # --- profession and structure
        title = first(_TITLE)
        profession_label = title
        profession_code = code_for(title) if title else None
        structure_id: Optional[str] = None
        for ou in values.get(_OU, ()):
            ou_code = code_for(ou)
            if ou_code is not None:  # legacy DNs: OU=Masseur-Kinésithérapeute
                if profession_label is None:
                    profession_label = ou
                if profession_code is None and (title is None or title == ou):
                    profession_code = ou_code
            elif structure_id is None and _STRUCTURE_ID.fullmatch(ou):
                structure_id = ou
        code_source = "title" if profession_code is not None else None
        mismatch = False
        raw_profession = parsed.extensions.get(OID_PROFESSION)
        if raw_profession is not None:
            ext_code, problem = _profession_extension(raw_profession)
            if problem:
                warnings.append(problem)
            if ext_code is not None:
                if profession_code is not None and profession_code != ext_code:
                    mismatch = True
                    warnings.append(
                        f"profession extension {OID_PROFESSION} says {ext_code!r} but the "
                        f"profession label {profession_label!r} means {profession_code!r}: "
                        f"kept the extension's code")
                profession_code, code_source = ext_code, "extension"

        # --- card
        card_type = CardType.UNKNOWN
        inferred = False
        raw_type = parsed.extensions.get(OID_CARD_TYPE)
        if raw_type is not None:
            number = None
            if len(raw_type) == 3 and raw_type[0] == _INTEGER and raw_type[1] == 1:
                number = raw_type[2] - 256 if raw_type[2] & 0x80 else raw_type[2]  # 02 01 nn
            else:
                try:
                    tlv = _read(raw_type, 0, len(raw_type))
                    if tlv.tag == _INTEGER and tlv.end == len(raw_type):
                        number = _decode_integer(raw_type[tlv.start:tlv.end])
                except _Malformed:
                    pass
            if number is not None and number in CARD_TYPE_CODES:
                card_type = CARD_TYPE_CODES[number]
            else:
                warnings.append(f"card type extension {OID_CARD_TYPE}: unexpected value "
                                f"{number if number is not None else raw_type[:16].hex()}")
        elif chosen.id_type.structure_based and chosen.internal_id:
            inferred = True
            card_type = (CardType.CPA if chosen.internal_id.upper().startswith("CPA")
                         else CardType.CPE)
        card_number: Optional[str] = None
        raw_number = parsed.extensions.get(OID_CARD_ISSUER_ID)
        if raw_number is not None:
            issuer_text: Optional[str] = None
            try:
                issuer_text, _ = _single_text(raw_number)
            except _Malformed:
                pass
            value = (issuer_text or "").strip()
            issuer, slash, number_text = value.partition("/")
            if slash and number_text:
                card_number = number_text
                if issuer != CARD_ISSUER_ID:
                    warnings.append(f"card issuer {issuer!r} is not the ANS ({CARD_ISSUER_ID})")
            elif value and not slash:
                card_number = value
                warnings.append(f"card number extension {OID_CARD_ISSUER_ID}: {value!r} has "
                                "no '<issuer>/' prefix")
            else:
                warnings.append(f"card number extension {OID_CARD_ISSUER_ID}: unexpected "
                                f"value {text!r}")

        return cls(
            chosen.value, chosen.id_type, chosen.national_id,
            last_name, first_name, profession_code, profession_label,
            structure_id, first(_O), card_type, card_number,
            internal_id=chosen.internal_id,
            locality=first(_ST) or first(_L),
            pseudonym=pseudonym,
            upn=upn,
            rpps_luhn_ok=chosen.rpps_luhn_ok,
            card_type_inferred=inferred,
            profession_code_source=code_source,
            profession_mismatch=mismatch,
            validated=validated,
            warnings=tuple(warnings),
        )

    # ------------------------------------------------------------------ helpers
    def as_validated(self) -> "Practitioner":
        """A copy marked ``validated=True``.

        For the trust and authentication layers only, once the certificate
        chain is validated against IGC-Santé and the card has proven possession
        of the key. Calling it anywhere else defeats its purpose.

        :returns: an equal practitioner except for ``validated``.
        """
        return dataclasses.replace(self, validated=True)

    @property
    def rpps(self) -> Optional[str]:
        """The bare RPPS number (11 digits), ``None`` unless :attr:`id_type` is RPPS."""
        return self.national_id if self.id_type is IdType.RPPS else None

    @property
    def adeli(self) -> Optional[str]:
        """The bare ADELI number, ``None`` unless :attr:`id_type` is ADELI."""
        return self.national_id if self.id_type is IdType.ADELI else None

    @property
    def display_name(self) -> str:
        """``"<first name> <last name>"`` for humans, or the idnat when the names are absent."""
        return " ".join(n for n in (self.first_name, self.last_name) if n) or self.idnat

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly data (for ``--json``): enums as their values, tuples as lists.

        Keys are the field names, plus ``id_type_name`` (``"RPPS"``...).

        :returns: a new dict of str, bool, list and ``None`` values.
        """
        out: Dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            out[item.name] = value
        out["id_type_name"] = self.id_type.name
        return out


def _raw_oid(dotted: str) -> bytes:
    from .trust.certs import oid_from_str

    return oid_from_str(dotted)


#: the OID TLV that opens a UPN otherName
_UPN_OTHER_NAME = b"\x06" + bytes([len(_raw_oid(OID_MS_UPN))]) + _raw_oid(OID_MS_UPN)

#: the extensions identity extraction reads, by raw DER OID
_WANTED_RAW = {_raw_oid(o): o for o in (_SAN, OID_CARD_TYPE, OID_CARD_ISSUER_ID,
                                        OID_PROFESSION)}
