"""PDF signatures with the card: PAdES baseline B-B (B-T with a timestamp), through pyHanko.

::

    from cps.pades import sign_pdf, verify_pdf

    card.verify_pin(pin)
    signed = sign_pdf(card, pdf, reason="Ordonnance")        # an incremental update, PAdES B-B
    [sig] = verify_pdf(signed, validator)                      # raises on any failure
    sig.practitioner, sig.covers_whole_file, sig.modification_level

Signing: :class:`CardSigner` is a pyHanko ``Signer`` whose raw signature
comes from the Card API (``card.sign``: the signature key CPS_PRIV_SIG, RSA
PKCS#1 v1.5 over SHA-256, the last hash block on the card); pyHanko writes
the CMS (``/SubFilter /ETSI.CAdES.detached``) and the incremental update.

Verification: pyHanko parses the PDF (strict mode, its decode limits), this
module checks the ``/ByteRange`` itself (it must cover the whole revision
except exactly the ``/Contents`` hex string), and the CMS goes to
:func:`cps.sign.verify_cms` with the signed bytes, so the certificate is
judged by :mod:`cps.trust` (one CMS verifier). Incremental updates after a
signature are reported with pyHanko's difference analysis; those beyond
adding signatures and filling forms are refused unless ``allow_updates``.
See docs/signing.md ("PDF signatures").

Needs the ``[pdf]`` extra (pyHanko); the pyHanko command-line plugin is
:mod:`cps_cli.pades_plugin`.
"""

from __future__ import annotations

import asyncio
import io
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import (
    TYPE_CHECKING,
    Any,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ._extras import require
from .card import KeyRole
from .der import read_length
from .errors import CpsError, NotSupported
from .sign import (
    CmsVerification,
    SignatureError,
    SignatureInvalid,
    Signer,
    _default_chain,
    _rsa_verify,
    _subject,
    _to_der,
    verify_cms,
)

if TYPE_CHECKING:  # pragma: no cover
    from .identity import Practitioner
    from .trust.validate import ValidationResult, Validator

require("pyhanko", "pdf")

from asn1crypto import algos  # noqa: E402 - after the extra's guard
from asn1crypto import x509 as asn1_x509  # noqa: E402
from pyhanko.pdf_utils import misc  # noqa: E402
from pyhanko.pdf_utils.decode_limits import DecodeLimits  # noqa: E402
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter  # noqa: E402
from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: E402
from pyhanko.sign import fields  # noqa: E402
from pyhanko.sign.diff_analysis import (  # noqa: E402
    DEFAULT_DIFF_POLICY,
    DiffResult,
    ModificationLevel,
    SuspiciousModification,
)
from pyhanko.sign.general import SigningError  # noqa: E402
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner  # noqa: E402
from pyhanko.sign.signers import Signer as PyHankoSigner  # noqa: E402
from pyhanko.sign.timestamps import HTTPTimeStamper  # noqa: E402
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature  # noqa: E402
from pyhanko.sign.validation.status import SignatureCoverageLevel  # noqa: E402
from pyhanko.stamp import TextStampStyle  # noqa: E402
from pyhanko_certvalidator.registry import SimpleCertificateStore  # noqa: E402

__all__ = [
    "MAX_PDF_SIZE",
    "MAX_SIGNATURES",
    "CardSigner",
    "PdfSignatureError",
    "PdfVerification",
    "sign_pdf",
    "verify_pdf",
]

#: Largest PDF :func:`verify_pdf` reads (and :func:`sign_pdf` signs): the whole
#: file is in memory and hashed once per signature.
MAX_PDF_SIZE = 64 * 1024 * 1024
#: Most signatures :func:`verify_pdf` verifies in one document.
MAX_SIGNATURES = 32
#: Largest /Contents accepted (hex-decoded): a CMS with a timestamp and a few
#: certificates is a few kilobytes; pyHanko reserves at most tens.
MAX_CONTENTS = 512 * 1024
#: The text of a visible signature: ``signer`` is the certificate's common name.
STAMP_TEXT = "Signé par %(signer)s\n%(ts)s"

_HEX = re.compile(rb"[0-9A-Fa-f]*")
_BENIGN = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES, ModificationLevel.FORM_FILLING)
Box = Tuple[int, int, int, int]


# --------------------------------------------------------------------------- errors
class PdfSignatureError(SignatureError):
    """A PDF cannot be signed or its signature cannot be accepted.

    :ivar reason: ``"malformed"`` (unreadable PDF, broken xref, truncated,
        beyond pyHanko's decode limits), ``"too-large"``, ``"no-signature"``
        (no signed field, or not the one asked for), ``"byte-range"`` (the
        ``/ByteRange`` is not ``[0 a b c]`` around exactly the ``/Contents``
        hex string), ``"not-covered"`` (the signature does not cover its whole
        revision, or unsigned bytes that are not an incremental update follow
        it), ``"modified"`` (incremental updates after signing beyond new
        signatures and form filling: see ``allow_updates``), ``"unsupported"``
        (another ``/SubFilter``, too many signatures), and when signing
        ``"field"`` (the field exists and is signed, or is not a signature
        field), ``"timestamp"`` (the TSA failed), ``"signing"``.
    :ivar field_name: the signature field concerned, when known.
    :ivar verification: for ``"modified"`` and ``"not-covered"`` after the
        signature itself verified, what was found (:class:`PdfVerification`).
    """

    def __init__(self, message: str, *, reason: str = "malformed",
                 field_name: Optional[str] = None,
                 verification: Optional["PdfVerification"] = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field_name = field_name
        self.verification = verification


# --------------------------------------------------------------------------- signing
class CardSigner(PyHankoSigner):
    """A pyHanko ``Signer`` whose signatures come from a CPS card (the Card API).

    The signing certificate is the card's signature certificate
    (``KeyRole.SIGN``), the certificate registry holds the chain to embed, and
    the mechanism is sha256WithRSAEncryption: PKCS#1 v1.5, the one a CPS3 can
    make (no RSASSA-PSS). Each signature is checked with the certificate's key
    before pyHanko embeds it.

    :param card_or_signer: a :class:`cps.Card` with its PIN verified, or any
        :class:`cps.sign.Signer` (:class:`cps.sign.SoftwareSigner`).
    :param chain: CA certificates to embed (cryptography objects or DER).
        Default: the issuing CA when it is one of the bundled IGC-Santé
        intermediates (as :func:`cps.sign.sign_cms`), so that a verifier that
        knows only the roots builds the path. The root is never needed.
    :raises NotSupported: the certificate's key is not RSA.
    """

    def __init__(self, card_or_signer: Signer, *,
                 chain: Optional[Sequence[Union[x509.Certificate, bytes]]] = None) -> None:
        certificate = card_or_signer.certificate(KeyRole.SIGN)
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise NotSupported("only RSA signers are supported (CPS cards hold RSA keys)")
        cert_der = certificate.public_bytes(serialization.Encoding.DER)
        extra = _default_chain(cert_der) if chain is None else [_to_der(c) for c in chain]
        registry = SimpleCertificateStore()  # type: ignore[no-untyped-call]
        registry.register_multiple([asn1_x509.Certificate.load(der) for der in extra])
        super().__init__(
            prefer_pss=False, embed_roots=False, signing_cert=asn1_x509.Certificate.load(cert_der),
            cert_registry=registry,
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}))
        self._card = card_or_signer
        self._certificate = certificate
        self._signature_size = (key.key_size + 7) // 8

    @property
    def subject_name(self) -> Optional[str]:
        """The name on the stamp and in ``/Name``: the practitioner's first and last
        names for a CPS certificate, else the certificate's common name."""
        from .identity import Practitioner

        try:
            who = Practitioner.from_certificate(self._certificate)
        except CpsError:
            who = None
        if who is not None and who.last_name:
            return " ".join(n for n in (who.first_name, who.last_name) if n)
        name: Optional[str] = super().subject_name
        return name

    @property
    def card(self) -> Signer:
        """The card (or signer) that signs."""
        return self._card

    async def async_sign_raw(self, data: bytes, digest_algorithm: str,
                             dry_run: bool = False) -> bytes:
        """PKCS#1 v1.5 signature of SHA-256(``data``) by the card.

        ``data`` (the DER signed attributes) goes to ``card.sign(data,
        hash="sha256")``: the host hashes the full blocks, the card the last
        one, as for :func:`cps.sign.sign_cms`. A dry run (pyHanko sizing the
        ``/Contents`` placeholder) returns zeros and spends no signature.
        """
        if digest_algorithm.lower().replace("-", "") != "sha256":
            raise NotSupported(f"digest {digest_algorithm!r}: a CPS card signs SHA-256 "
                               "(sha256WithRSAEncryption)")
        if dry_run:
            return bytes(self._signature_size)
        signature = self._card.sign(bytes(data), hash="sha256")
        try:
            _rsa_verify(self._certificate, signature, bytes(data), "sha256")
        except InvalidSignature:
            raise SignatureInvalid("the card's signature does not verify with its own "
                                   "certificate (wrong key or faulty card)",
                                   subject=_subject(self._certificate)) from None
        return signature

    def __repr__(self) -> str:
        return f"<CardSigner {_subject(self._certificate)}>"


class _PdfSigner(PdfSigner):
    """PdfSigner with the signing time (``/M``, the stamp) chosen by the caller."""

    def __init__(self, *args: Any, signing_time: Optional[datetime] = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signing_time = signing_time

    def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
        session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
        if self._signing_time is not None:
            session.system_time = self._signing_time
        return session


def sign_pdf(card_or_signer: Union[Signer, CardSigner], pdf: bytes, *,
             field_name: str = "Signature1", visible: Optional[Box] = None,
             reason: Optional[str] = None, location: Optional[str] = None,
             timestamp: Optional[str] = None, signing_time: Optional[datetime] = None,
             chain: Optional[Sequence[Union[x509.Certificate, bytes]]] = None,
             timeout: float = 10.0) -> bytes:
    """Sign a PDF with the card: an incremental update, PAdES baseline B-B (B-T with a timestamp).

    The original bytes are kept as they are; the update adds the signature
    field (or fills an empty one of that name), the signature dictionary
    (``/SubFilter /ETSI.CAdES.detached``, ``/M`` = the signing time) and the
    CMS: signed attributes contentType, messageDigest and signing-certificate-v2
    (no signingTime attribute: PAdES puts the time in ``/M``).

    :param card_or_signer: a :class:`cps.Card` with its PIN verified, a
        :class:`cps.sign.Signer`, or a :class:`CardSigner`.
    :param pdf: the document.
    :param field_name: the signature field: filled when it exists empty, else created.
    :param visible: ``(x1, y1, x2, y2)`` in points on page 1 for a visible
        signature with a text stamp (the signer's name and the signing time);
        ``None`` for an invisible one.
    :param reason: ``/Reason`` (e.g. ``"Ordonnance"``).
    :param location: ``/Location``.
    :param timestamp: URL of an RFC 3161 TSA (pyHanko's ``HTTPTimeStamper``):
        the signature timestamp becomes an unsigned attribute (PAdES B-T).
    :param signing_time: aware datetime for ``/M`` and the stamp; default now.
        What the signer claims: a verifier trusts only a timestamp.
    :param chain: CA certificates to embed (see :class:`CardSigner`); ignored
        when ``card_or_signer`` is already a :class:`CardSigner`.
    :param timeout: seconds for the TSA to answer.
    :returns: the signed PDF.
    :raises PdfSignatureError: ``malformed`` (unreadable input), ``too-large``,
        ``field``, ``timestamp``, ``signing``.
    :raises CardError: the card refused (``SecurityStatusNotSatisfied``: PIN not verified).
    """
    if not isinstance(pdf, (bytes, bytearray, memoryview)):
        raise TypeError(f"the PDF must be bytes, not {type(pdf).__name__}")
    if len(pdf) > MAX_PDF_SIZE:
        raise PdfSignatureError(f"PDF of {len(pdf)} bytes: more than {MAX_PDF_SIZE}",
                                reason="too-large")
    if signing_time is not None and signing_time.tzinfo is None:
        raise ValueError("naive datetime: give an aware (UTC) signing_time")
    if visible is not None and (len(visible) != 4 or not all(isinstance(v, (int, float))
                                                              for v in visible)):
        raise ValueError("visible is a box (x1, y1, x2, y2) in points")
    signer = card_or_signer if isinstance(card_or_signer, CardSigner) else \
        CardSigner(card_or_signer, chain=chain)
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(bytes(pdf)), strict=True)
    except CpsError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyHanko reports bad input in many ways
        raise PdfSignatureError(f"unreadable PDF: {_describe(exc)}") from None
    _check_field(writer, field_name)
    meta = PdfSignatureMetadata(
        field_name=field_name, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason, location=location)
    new_field = None
    style = None
    if visible is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in visible)
        new_field = fields.SigFieldSpec(field_name, on_page=0, box=(x1, y1, x2, y2))
        style = TextStampStyle(stamp_text=STAMP_TEXT, timestamp_format="%d/%m/%Y %H:%M:%S %Z")
    timestamper = HTTPTimeStamper(timestamp, timeout=timeout) if timestamp else None
    pdf_signer = _PdfSigner(meta, signer=signer, timestamper=timestamper, stamp_style=style,
                            new_field_spec=new_field,
                            signing_time=None if signing_time is None
                            else signing_time.astimezone(timezone.utc))
    try:
        output = pdf_signer.sign_pdf(writer)
    except CpsError:
        raise
    except SigningError as exc:
        raise PdfSignatureError(f"pyHanko refused to sign: {_describe(exc)}",
                                reason="signing", field_name=field_name) from None
    except misc.PdfError as exc:
        raise PdfSignatureError(f"unreadable PDF: {_describe(exc)}",
                                field_name=field_name) from None
    except Exception as exc:  # noqa: BLE001 - TSA failures: aiohttp, asn1crypto, ...
        if timestamper is not None and _is_timestamp_failure(exc):
            raise PdfSignatureError(f"the timestamp authority failed: {_describe(exc)}",
                                    reason="timestamp", field_name=field_name) from None
        raise
    signed: bytes = output.getvalue()
    return signed


def _check_field(writer: Any, field_name: str) -> None:
    """Refuse a field that exists and is signed, before the card spends a signature."""
    try:
        for name, value, _ref in fields.enumerate_sig_fields(writer, filled_status=None):
            if name == field_name and value is not None:
                raise PdfSignatureError(f"the field {field_name!r} is already signed",
                                        reason="field", field_name=field_name)
    except PdfSignatureError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise PdfSignatureError(f"unreadable form fields: {_describe(exc)}") from None


def _is_timestamp_failure(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return (module.startswith(("aiohttp", "pyhanko.sign.timestamps", "asyncio"))
            or isinstance(exc, (OSError, asyncio.TimeoutError))
            or type(exc).__name__ == "TimestampRequestError")


# --------------------------------------------------------------------------- verification
@dataclass(frozen=True)
class PdfVerification:
    """One verified PDF signature (a ``/Sig`` field), from :func:`verify_pdf`.

    :ivar field_name: the signature field's fully qualified name.
    :ivar signer: the signer certificate (cryptography).
    :ivar practitioner: who signed (:class:`cps.Practitioner`), ``validated``
        only when a validator validated the chain; ``None`` for a certificate
        that is not a CPS one.
    :ivar byte_range: the ``/ByteRange`` ``(0, a, b, c)``.
    :ivar signed_end: ``b + c``: where the signed bytes end.
    :ivar covers_whole_file: the signature covers the file (nothing after it).
    :ivar unsigned_bytes: bytes after the signed range (incremental updates, or whitespace).
    :ivar updates_after: incremental updates (revisions) after the signed one.
    :ivar modification_level: pyHanko's difference analysis of those updates:
        ``"none"``, ``"lta-updates"`` (DSS, document timestamps),
        ``"form-filling"`` (other signatures, form fields), ``"annotations"``,
        ``"other"`` (anything else: content, pages...), ``"suspicious"``
        (pyHanko found a change it refuses outright or could not analyse).
    :ivar modification_detail: pyHanko's words for ``"suspicious"``, else ``""``.
    :ivar signing_time: when the signer says it signed (the CMS signingTime
        or the ``/M`` entry): a claim, never used to judge the certificate.
    :ivar timestamp: the signature timestamp's genTime, when a verified
        RFC 3161 timestamp is embedded (PAdES B-T), else ``None``; the whole
        :class:`cps.timestamp.TimestampInfo` is ``cms.timestamp``. The
        certificate is then judged at its latest instant (genTime plus the
        accuracy: ``validation_time_source == "timestamp"``).
    :ivar validation: :mod:`cps.trust`'s ValidationResult (``None`` without a validator).
    :ivar validation_time: when the certificate was judged.
    :ivar validation_time_source: ``"now"``, ``"caller"`` or ``"timestamp"``
        (``None`` without a validator).
    :ivar subfilter: ``"/ETSI.CAdES.detached"`` (PAdES) or ``"/adbe.pkcs7.detached"``.
    :ivar reason: ``/Reason``, if any.
    :ivar location: ``/Location``, if any.
    :ivar cms: the :class:`cps.sign.CmsVerification` of the CMS.
    """

    field_name: str
    signer: x509.Certificate
    practitioner: Optional["Practitioner"]
    byte_range: Tuple[int, int, int, int]
    signed_end: int
    covers_whole_file: bool
    unsigned_bytes: int
    updates_after: int
    modification_level: str
    modification_detail: str
    signing_time: Optional[datetime]
    timestamp: Optional[datetime]
    validation: Optional["ValidationResult"]
    validation_time: Optional[datetime]
    validation_time_source: Optional[str]
    subfilter: str
    reason: Optional[str]
    location: Optional[str]
    cms: CmsVerification


def verify_pdf(pdf: bytes, validator: Optional["Validator"] = None, *,
               at: Optional[datetime] = None, field_name: Optional[str] = None,
               allow_updates: bool = False, tsa_validator: Optional["Validator"] = None,
               max_size: int = MAX_PDF_SIZE) -> List[PdfVerification]:
    """Verify every signature of a PDF (or the one in ``field_name``).

    For each ``/Sig`` field, in signing order:

    1. the ``/SubFilter`` is ``/ETSI.CAdES.detached`` or ``/adbe.pkcs7.detached``;
    2. the ``/ByteRange`` is ``[0 a b c]``, inside the file, and the gap
       ``[a, b)`` is exactly the ``/Contents`` hex string ``<...>`` (the same
       bytes pyHanko parsed): nothing else is left unsigned before ``b + c``;
    3. the CMS (the ``/Contents`` DER, its zero padding removed) and the
       signed bytes go to :func:`cps.sign.verify_cms`, with ``validator`` and
       ``at``: digest, signature, signing-certificate-v2, then the certificate
       judged by :mod:`cps.trust` (purpose signature);
    4. the signature covers its whole revision (pyHanko's coverage check:
       the signed bytes end with that revision's xref and ``%%EOF``);
    5. what follows: nothing, whitespace, or incremental updates, which
       pyHanko's difference analysis classifies (``modification_level``).

    **Updates after signing.** A signature proves the revision it covers; a
    later incremental update can change what a reader displays. They are
    always reported (``updates_after``, ``unsigned_bytes``,
    ``modification_level``). By default only updates that add signatures,
    document timestamps, validation data or fill form fields are accepted
    (``"none"``, ``"lta-updates"``, ``"form-filling"``): a co-signed document
    verifies, one whose page was changed afterwards raises
    ``PdfSignatureError(reason="modified")`` (its ``verification`` attribute
    holds the report). ``allow_updates=True`` accepts any update and leaves
    the judgement to the caller; bytes after the signature that are not an
    update (``"not-covered"``) are refused either way.

    :param pdf: the PDF, at most ``max_size`` bytes.
    :param validator: a :class:`cps.trust.Validator`; without one, only the
        signatures are checked and nothing says who signed.
    :param at: judge the certificates at this time (trusted as given); default
        now, or the genTime of a verified signature timestamp.
    :param field_name: verify only this field.
    :param allow_updates: accept any incremental update after a signature (reported).
    :param tsa_validator: judges the certificates of signature timestamps'
        TSAs (see :func:`cps.sign.verify_cms`); default ``validator``.
    :param max_size: the largest PDF accepted.
    :returns: one :class:`PdfVerification` per signature, in signing order.
    :raises PdfSignatureError: see its ``reason``.
    :raises CmsError, SignatureInvalid, DigestMismatch, SigningCertificateMismatch:
        from :func:`cps.sign.verify_cms` (``DigestMismatch``: the signed bytes changed).
    :raises TimestampError: an embedded signature timestamp that does not
        verify (never ignored), from :func:`cps.sign.verify_cms`.
    :raises CertificateError: from the validator (revoked, expired, untrusted...).
    """
    if not isinstance(pdf, (bytes, bytearray, memoryview)):
        raise TypeError(f"the PDF must be bytes, not {type(pdf).__name__}")
    data = bytes(pdf)
    if len(data) > max_size:
        raise PdfSignatureError(f"PDF of {len(data)} bytes: more than {max_size}",
                                reason="too-large")
    reader, embedded = _read_signatures(data)
    if field_name is not None:
        embedded = [e for e in embedded if _field_name(e) == field_name]
        if not embedded:
            raise PdfSignatureError(f"no signed field {field_name!r}", reason="no-signature",
                                    field_name=field_name)
    if not embedded:
        raise PdfSignatureError("the PDF holds no signature", reason="no-signature")
    if len(embedded) > MAX_SIGNATURES:
        raise PdfSignatureError(f"{len(embedded)} signatures: at most {MAX_SIGNATURES}",
                                reason="unsupported")
    return [_verify_one(data, reader, e, validator, at, allow_updates, tsa_validator)
            for e in embedded]


def _read_signatures(data: bytes) -> Tuple[Any, List[Any]]:
    """pyHanko's reader (strict, default decode limits) and its ``/Sig`` signatures."""
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=True, decode_limits=DecodeLimits())
        embedded = list(reader.embedded_regular_signatures)
        for e in embedded:  # values pyHanko reads lazily: fail here, typed
            _field_name(e)
            e.signer_info  # noqa: B018
    except CpsError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyHanko and asn1crypto fail in many ways
        raise PdfSignatureError(f"malformed PDF: {_describe(exc)}") from None
    return reader, embedded


def _verify_one(data: bytes, reader: Any, emb: "EmbeddedPdfSignature",
                validator: Optional["Validator"], at: Optional[datetime],
                allow_updates: bool, tsa_validator: Optional["Validator"]) -> PdfVerification:
    name = _field_name(emb)
    sig_object = emb.sig_object
    subfilter = _name(sig_object.get("/SubFilter"))
    if subfilter not in ("/ETSI.CAdES.detached", "/adbe.pkcs7.detached"):
        raise PdfSignatureError(f"{name}: /SubFilter {subfilter or 'missing'}: only "
                                "/ETSI.CAdES.detached and /adbe.pkcs7.detached are supported",
                                reason="unsupported", field_name=name)
    byte_range = _check_byte_range(data, emb, name)
    _, a, b, c = byte_range
    cms_der = _cms_der(bytes(emb.pkcs7_content), name)
    result = verify_cms(cms_der, data[:a] + data[b:b + c], validator, at=at,
                        tsa_validator=tsa_validator)

    signed_end = b + c
    unsigned = len(data) - signed_end
    try:
        coverage = emb.evaluate_signature_coverage()
        updates_after = max(0, reader.xrefs.total_revisions - 1 - emb.signed_revision)
    except Exception as exc:  # noqa: BLE001
        raise PdfSignatureError(f"{name}: malformed revision structure: {_describe(exc)}",
                                field_name=name) from None
    level, detail = "none", ""
    if coverage != SignatureCoverageLevel.ENTIRE_FILE:
        if updates_after == 0 and coverage == SignatureCoverageLevel.ENTIRE_REVISION \
                and not data[signed_end:].strip():
            pass  # whitespace after %%EOF: not an update
        elif coverage < SignatureCoverageLevel.ENTIRE_REVISION or updates_after == 0:
            level = "not-covered"
        else:
            level, detail = _diff(emb, coverage)

    info = _claims(emb)
    report = PdfVerification(
        field_name=name, signer=result.signer, practitioner=result.practitioner,
        byte_range=byte_range, signed_end=signed_end, covers_whole_file=unsigned == 0,
        unsigned_bytes=unsigned, updates_after=updates_after,
        modification_level="none" if level == "not-covered" else level,
        modification_detail=detail, signing_time=result.signing_time or info[0],
        timestamp=result.timestamp.gen_time if result.timestamp is not None else None,
        validation=result.validation, validation_time=result.validation_time,
        validation_time_source=result.validation_time_source, subfilter=subfilter,
        reason=info[1], location=info[2], cms=result)
    if level == "not-covered":
        raise PdfSignatureError(
            f"{name}: the signature does not cover its whole revision, or {unsigned} unsigned "
            "bytes that are not an incremental update follow it", reason="not-covered",
            field_name=name, verification=report)
    if not allow_updates and level not in ("none", "lta-updates", "form-filling"):
        raise PdfSignatureError(
            f"{name}: the document was modified after it was signed ({updates_after} "
            f"incremental update(s), {level}{': ' + detail if detail else ''}); "
            "allow_updates=True reports them instead", reason="modified", field_name=name,
            verification=report)
    return report


def _check_byte_range(data: bytes, emb: Any, name: str) -> Tuple[int, int, int, int]:
    """``[0 a b c]`` within the file, the gap being exactly the ``/Contents`` hex string."""
    raw = emb.byte_range
    try:
        values = [v for v in raw]
    except TypeError:
        values = []
    if len(values) != 4 or not all(isinstance(v, int) and not isinstance(v, bool)
                                   for v in values):
        raise PdfSignatureError(f"{name}: /ByteRange is not four integers", reason="byte-range",
                                field_name=name)
    start, a, b, c = (int(v) for v in values)
    if start != 0 or a <= 0 or c < 0 or b < a + 2 or b + c > len(data):
        raise PdfSignatureError(f"{name}: /ByteRange [{start} {a} {b} {c}] is not [0 a b c] "
                                f"inside a file of {len(data)} bytes", reason="byte-range",
                                field_name=name)
    gap = data[a:b]
    contents = bytes(emb.pkcs7_content)
    hex_digits = gap[1:-1]
    if (gap[:1] != b"<" or gap[-1:] != b">" or len(hex_digits) != 2 * len(contents)
            or _HEX.fullmatch(hex_digits) is None
            or bytes.fromhex(hex_digits.decode()) != contents):
        raise PdfSignatureError(f"{name}: the bytes the /ByteRange leaves out are not exactly "
                                "the /Contents hex string", reason="byte-range", field_name=name)
    return 0, a, b, c


def _cms_der(contents: bytes, name: str) -> bytes:
    """The DER CMS inside /Contents; only zero bytes may follow it (pyHanko's padding)."""
    if len(contents) > MAX_CONTENTS:
        raise PdfSignatureError(f"{name}: /Contents of {len(contents)} bytes",
                                reason="too-large", field_name=name)

    def error(message: str) -> Exception:
        return PdfSignatureError(f"{name}: /Contents is not a DER CMS: {message}",
                                 field_name=name)

    if contents[:1] != b"\x30":
        raise error("no SEQUENCE")
    length, pos = read_length(contents, 1, len(contents), 4, error)
    end = pos + length
    if end > len(contents):
        raise error("truncated")
    if contents[end:].strip(b"\x00"):
        raise error("other bytes than zero padding follow the CMS")
    return contents[:end]


def _diff(emb: Any, coverage: Any) -> Tuple[str, str]:
    """pyHanko's verdict on the incremental updates after the signed revision."""
    emb.coverage = coverage
    try:
        verdict = emb.evaluate_modifications(DEFAULT_DIFF_POLICY)
    except SuspiciousModification as exc:
        return "suspicious", str(exc)[:300]
    except Exception as exc:  # noqa: BLE001 - the analysis failed: treat as suspicious
        return "suspicious", f"difference analysis failed: {_describe(exc)}"
    if isinstance(verdict, DiffResult):
        return verdict.modification_level.name.lower().replace("_", "-"), ""
    return "suspicious", str(verdict)[:300]


def _claims(emb: Any) -> Tuple[Optional[datetime], Optional[str], Optional[str]]:
    """(the /M signing time, /Reason, /Location): what the signer wrote, unverified."""
    sig = emb.sig_object
    when: Optional[datetime] = None
    try:
        when = emb.self_reported_timestamp
        if when is not None and when.tzinfo is None:
            when = None
    except Exception:  # noqa: BLE001 - a claim that cannot be read is reported as absent
        when = None
    return when, _text(sig.get("/Reason")), _text(sig.get("/Location"))


def _field_name(emb: Any) -> str:
    name = emb.field_name
    return str(name) if name is not None else ""


def _name(value: Any) -> str:
    return str(value) if value is not None else ""


def _text(value: Any) -> Optional[str]:
    return None if value is None else str(value)[:500]


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "msg", None) or str(exc)
    return f"{type(exc).__name__}: {text}"[:300]
