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
signature are reported with pyHanko's difference analysis; by default only
co-signatures, document timestamps and validation data are accepted (filling
other form fields needs ``allow_form_filling``, anything else
``allow_updates``), and never what the document's certification (DocMDP)
forbids. See docs/signing.md ("PDF signatures").

Needs the ``[pdf]`` extra (pyHanko); the pyHanko command-line plugin is
:mod:`cps_cli.pades_plugin`.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import (
    TYPE_CHECKING,
    Any,
    List,
    NamedTuple,
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
from asn1crypto import cms as asn1_cms  # noqa: E402
from asn1crypto import x509 as asn1_x509  # noqa: E402
from pyhanko.pdf_utils import misc  # noqa: E402
from pyhanko.pdf_utils.decode_limits import DecodeLimits  # noqa: E402
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter  # noqa: E402
from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: E402
from pyhanko.sign import fields  # noqa: E402
from pyhanko.sign.diff_analysis import (  # noqa: E402
    DEFAULT_DIFF_POLICY,
    DiffResult,
    FormUpdatingRule,
    ModificationLevel,
    SigFieldCreationRule,
    SigFieldModificationRule,
    StandardDiffPolicy,
    SuspiciousModification,
)
from pyhanko.sign.fields import FieldMDPSpec, MDPPerm  # noqa: E402
from pyhanko.sign.general import SigningError  # noqa: E402
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner  # noqa: E402
from pyhanko.sign.signers import Signer as PyHankoSigner  # noqa: E402
from pyhanko.sign.timestamps import TimeStamper  # noqa: E402
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
#: pyHanko's default policy without its rule for filling ordinary form fields:
#: a form-filling update that passes it only added or filled signature fields.
_SIGNATURES_ONLY_POLICY = StandardDiffPolicy(
    global_rules=DEFAULT_DIFF_POLICY.global_rules,
    form_rule=FormUpdatingRule(field_rules=[
        SigFieldCreationRule(), SigFieldModificationRule()]))  # type: ignore[no-untyped-call]


class _QuietReview(logging.Filter):
    """Drops pyHanko's "Error in diff operation" warnings (with a traceback) while
    this thread runs the signatures-only review: its refusal is expected there."""

    active = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.active, "on", False)


logging.getLogger("pyhanko.sign.diff_analysis.policies").addFilter(_QuietReview())
_DOCMDP_NAMES = {MDPPerm.NO_CHANGES: "no-changes", MDPPerm.FILL_FORMS: "fill-forms",
                 MDPPerm.ANNOTATE: "annotate"}
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
        it), ``"modified"`` (incremental updates after signing beyond what
        :func:`verify_pdf` accepts: see ``allow_form_filling`` and
        ``allow_updates``; or beyond what the document's certification, its
        DocMDP level, permits), ``"unsupported"``
        (another ``/SubFilter``, too many signatures), and when signing
        ``"field"`` (the field exists and is signed, or is not a signature
        field), ``"timestamp"`` (the TSA failed), ``"signing"``.
    :ivar field_name: the signature field concerned, when known.
    :ivar verification: for ``"modified"`` and ``"not-covered"`` after the
        signature itself verified, what was found (:class:`PdfVerification`).
    :ivar cause: the underlying error, if any: for ``"timestamp"`` the
        :class:`cps.timestamp.TimestampError` (its ``reason``: ``"too-large"``,
        ``"rejected"``, ``"nonce-mismatch"``, ``"imprint-mismatch"``...).
    """

    def __init__(self, message: str, *, reason: str = "malformed",
                 field_name: Optional[str] = None,
                 verification: Optional["PdfVerification"] = None,
                 cause: Optional[BaseException] = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field_name = field_name
        self.verification = verification
        self.cause = cause


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


class _CpsTimeStamper(TimeStamper):
    """pyHanko's ``TimeStamper`` through :func:`cps.timestamp.request_timestamp`.

    pyHanko's ``HTTPTimeStamper`` reads an answer of any size, lets its
    parsing errors out untyped (``ValueError``, ``AttributeError``) and embeds
    a token whose imprint is another digest's. Here each request (pyHanko's
    sizing dry run, then the signature's) is bounded (a deadline, answers over
    1 MiB abandoned while reading) and the token is checked before pyHanko
    sees it: status granted, nonce echoed, imprint equal to the digest, the
    TSA's signature and ESS binding. Any failure is a
    :class:`cps.timestamp.TimestampError`.
    """

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]
        self.url = url
        self.timeout = timeout

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> Any:
        from .timestamp import TimestampError, request_timestamp

        hash_name = str(md_algorithm).lower().replace("-", "")
        if hash_name not in ("sha256", "sha384", "sha512"):
            raise TimestampError(f"digest {md_algorithm!r}: a timestamp needs SHA-2",
                                 reason="unsupported")
        token = await asyncio.to_thread(request_timestamp, self.url, bytes(message_digest),
                                        hash=hash_name, timeout=self.timeout)
        try:
            return asn1_cms.ContentInfo.load(token)
        except Exception as exc:  # noqa: BLE001 - request_timestamp parsed it already
            raise TimestampError(f"timestamp token: {_describe(exc)}") from None

    async def async_request_tsa_response(self, req: Any) -> Any:
        raise NotImplementedError("_CpsTimeStamper asks through cps.timestamp.request_timestamp")


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
    :param timestamp: URL of an RFC 3161 TSA: the signature timestamp becomes
        an unsigned attribute (PAdES B-T). Asked through
        :func:`cps.timestamp.request_timestamp` (bounded in time and size; the
        token's nonce, imprint and signature checked before it is embedded).
    :param signing_time: aware datetime for ``/M`` and the stamp; default now.
        What the signer claims: a verifier trusts only a timestamp.
    :param chain: CA certificates to embed (see :class:`CardSigner`); ignored
        when ``card_or_signer`` is already a :class:`CardSigner`.
    :param timeout: seconds allowed to each exchange with the TSA (a deadline).
    :returns: the signed PDF.
    :raises PdfSignatureError: ``malformed`` (unreadable input), ``too-large``,
        ``field``, ``timestamp`` (the TSA failed or its token is wrong:
        ``cause`` is the :class:`cps.timestamp.TimestampError`; no PDF is
        returned), ``signing``.
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
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    timestamper = _CpsTimeStamper(timestamp, timeout) if timestamp else None
    pdf_signer = _PdfSigner(meta, signer=signer, timestamper=timestamper, stamp_style=style,
                            new_field_spec=new_field,
                            signing_time=None if signing_time is None
                            else signing_time.astimezone(timezone.utc))
    from .timestamp import TimestampError

    try:
        output = pdf_signer.sign_pdf(writer)
    except TimestampError as exc:
        raise PdfSignatureError(f"the timestamp authority failed: {exc} ({exc.reason})",
                                reason="timestamp", field_name=field_name, cause=exc) from exc
    except CpsError:
        raise
    except SigningError as exc:
        raise PdfSignatureError(f"pyHanko refused to sign: {_describe(exc)}",
                                reason="signing", field_name=field_name) from None
    except misc.PdfError as exc:
        raise PdfSignatureError(f"unreadable PDF: {_describe(exc)}",
                                field_name=field_name) from None
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
        (pyHanko found a change it refuses outright, such as a locked field
        changed, or could not analyse).
    :ivar modification_detail: pyHanko's words for ``"suspicious"``; for
        ``"form-filling"`` that changed fields other than signatures, the
        fields changed; else ``""``.
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
    :ivar docmdp: the modifications this signature permits after it (its
        ``/DocMDP`` transform: a certification signature, or the ``/Lock``
        ``/P`` of its field): ``"no-changes"`` (P=1: none; pyHanko's rule
        still lets document timestamps and validation data through),
        ``"fill-forms"`` (P=2: form filling and signatures), ``"annotate"``
        (P=3: also annotations); ``None`` when it sets no such level.
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
    docmdp: Optional[str] = None


def verify_pdf(pdf: bytes, validator: Optional["Validator"] = None, *,
               at: Optional[datetime] = None, field_name: Optional[str] = None,
               allow_updates: bool = False, tsa_validator: Optional["Validator"] = None,
               max_size: int = MAX_PDF_SIZE,
               allow_form_filling: bool = False) -> List[PdfVerification]:
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
    ``modification_level``). By default only updates that add document
    timestamps and validation data (``"none"``, ``"lta-updates"``) or that
    add or fill signature fields and nothing else (a ``"form-filling"`` that
    pyHanko's rules for signature fields alone explain) are accepted: a
    co-signed document verifies; one whose page was changed afterwards, or
    where a text field was filled after signing (its appearance can cover
    the signed text), raises ``PdfSignatureError(reason="modified")`` (its
    ``verification`` attribute holds the report). ``allow_form_filling=True``
    also accepts filling other form fields; ``allow_updates=True`` accepts any
    update and leaves the judgement to the caller. Refused either way: bytes
    after the signature that are not an update (``"not-covered"``), and
    updates that the signature's DocMDP level forbids (``docmdp``: a
    certification with P=1 allows no change but document timestamps and
    validation data, P=2 form filling and signatures, P=3 also annotations;
    pyHanko's rule, level <= P). Field locks (``/FieldMDP``, or the signed
    field's ``/Lock``) make a change to a locked field ``"suspicious"``.

    :param pdf: the PDF, at most ``max_size`` bytes.
    :param validator: a :class:`cps.trust.Validator`; without one, only the
        signatures are checked and nothing says who signed.
    :param at: judge the certificates at this time (trusted as given); default
        now, or the genTime of a verified signature timestamp.
    :param field_name: verify only this field.
    :param allow_updates: accept any incremental update after a signature
        (reported) that its DocMDP level permits.
    :param tsa_validator: judges the certificates of signature timestamps'
        TSAs (see :func:`cps.sign.verify_cms`); default ``validator``.
    :param max_size: the largest PDF accepted.
    :param allow_form_filling: also accept updates that fill form fields other
        than signatures (``"form-filling"``), which the default refuses.
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
    reader, everything = _read_signatures(data)
    embedded = everything
    if field_name is not None:
        embedded = [e for e in everything if _field_name(e) == field_name]
        if not embedded:
            raise PdfSignatureError(f"no signed field {field_name!r}", reason="no-signature",
                                    field_name=field_name)
    if not everything:
        raise PdfSignatureError("the PDF holds no signature", reason="no-signature")
    if len(everything) > MAX_SIGNATURES:
        raise PdfSignatureError(f"{len(everything)} signatures: at most {MAX_SIGNATURES}",
                                reason="unsupported")
    policy = _Policy(allow_updates, allow_form_filling)
    for other in everything:  # a certification binds the later signatures' updates too
        if other not in embedded:
            _check_docmdp_only(data, reader, other)
    return [_verify_one(data, reader, e, validator, at, policy, tsa_validator)
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


class _Policy(NamedTuple):
    allow_updates: bool
    allow_form_filling: bool


class _Integrity(NamedTuple):
    """What follows a signed revision (see :func:`_integrity`)."""

    updates_after: int
    level: str  # a modification level, or "not-covered"
    detail: str
    signatures_only: bool  # the updates add or fill signature fields, nothing else
    docmdp: Optional[MDPPerm]
    docmdp_violated: bool


def _verify_one(data: bytes, reader: Any, emb: "EmbeddedPdfSignature",
                validator: Optional["Validator"], at: Optional[datetime],
                policy: _Policy, tsa_validator: Optional["Validator"]) -> PdfVerification:
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
    found = _integrity(data, reader, emb, name, signed_end)
    level, detail = found.level, found.detail

    info = _claims(emb)
    report = PdfVerification(
        field_name=name, signer=result.signer, practitioner=result.practitioner,
        byte_range=byte_range, signed_end=signed_end, covers_whole_file=unsigned == 0,
        unsigned_bytes=unsigned, updates_after=found.updates_after,
        modification_level="none" if level == "not-covered" else level,
        modification_detail=detail, signing_time=result.signing_time or info[0],
        timestamp=result.timestamp.gen_time if result.timestamp is not None else None,
        validation=result.validation, validation_time=result.validation_time,
        validation_time_source=result.validation_time_source, subfilter=subfilter,
        reason=info[1], location=info[2], cms=result,
        docmdp=None if found.docmdp is None else _DOCMDP_NAMES[found.docmdp])
    if level == "not-covered":
        raise PdfSignatureError(
            f"{name}: the signature does not cover its whole revision, or {unsigned} unsigned "
            "bytes that are not an incremental update follow it", reason="not-covered",
            field_name=name, verification=report)
    what = (f"{found.updates_after} incremental update(s), {level}"
            f"{': ' + detail if detail else ''}")
    if found.docmdp_violated:
        raise PdfSignatureError(_docmdp_message(name, found, what), reason="modified",
                                field_name=name, verification=report)
    if policy.allow_updates or level in ("none", "lta-updates"):
        return report
    if level == "form-filling" and (found.signatures_only or policy.allow_form_filling):
        return report
    hint = ("allow_form_filling=True accepts filled form fields, allow_updates=True any "
            "update" if level == "form-filling" else "allow_updates=True reports them instead")
    raise PdfSignatureError(
        f"{name}: the document was modified after it was signed ({what}); {hint}",
        reason="modified", field_name=name, verification=report)


def _docmdp_message(name: str, found: _Integrity, what: str) -> str:
    assert found.docmdp is not None  # noqa: S101 - only called for a violation
    return (f"{name}: the document was modified beyond what its certification permits "
            f"(DocMDP P={found.docmdp.value}, {_DOCMDP_NAMES[found.docmdp]}; {what})")


def _check_docmdp_only(data: bytes, reader: Any, emb: Any) -> None:
    """A signature not asked for (``field_name``): refuse the document when its
    DocMDP level forbids what followed (its own CMS is not verified here)."""
    name = _field_name(emb)
    docmdp = _docmdp(emb, name)
    if docmdp is None:
        return
    _, _, b, c = _check_byte_range(data, emb, name)
    found = _integrity(data, reader, emb, name, b + c, docmdp)
    if found.docmdp_violated:
        raise PdfSignatureError(_docmdp_message(name, found, f"{found.updates_after} "
                                                f"incremental update(s), {found.level}"),
                                reason="modified", field_name=name)


def _docmdp(emb: Any, name: str) -> Optional[MDPPerm]:
    """The signature's DocMDP level (its /DocMDP transform, else its field's /Lock /P)."""
    try:
        level: Optional[MDPPerm] = emb.docmdp_level
    except Exception as exc:  # noqa: BLE001 - a bad /P: pyHanko's error, or ValueError
        raise PdfSignatureError(f"{name}: unreadable DocMDP permissions: {_describe(exc)}",
                                field_name=name) from None
    return level


def _field_mdp(emb: Any) -> Optional[FieldMDPSpec]:
    """The fields locked by this signature: its /FieldMDP transform, else its
    field's /Lock dictionary (which pyHanko does not read yet)."""
    spec: Optional[FieldMDPSpec] = emb.fieldmdp
    if spec is None:
        lock = emb.sig_field.get("/Lock")
        if lock is not None:
            lock = lock.get_object()
            if "/Action" in lock:
                spec = FieldMDPSpec.from_pdf_object(lock)
    return spec


def _integrity(data: bytes, reader: Any, emb: Any, name: str, signed_end: int,
               docmdp: Optional[MDPPerm] = None) -> _Integrity:
    """Coverage, then pyHanko's difference analysis of the updates after the
    signed revision, judged against the signature's DocMDP level."""
    if docmdp is None:
        docmdp = _docmdp(emb, name)
    try:
        coverage = emb.evaluate_signature_coverage()
        updates_after = max(0, reader.xrefs.total_revisions - 1 - emb.signed_revision)
    except Exception as exc:  # noqa: BLE001
        raise PdfSignatureError(f"{name}: malformed revision structure: {_describe(exc)}",
                                field_name=name) from None
    level, detail, signatures_only, value = "none", "", True, ModificationLevel.NONE.value
    if coverage != SignatureCoverageLevel.ENTIRE_FILE:
        if updates_after == 0 and coverage == SignatureCoverageLevel.ENTIRE_REVISION \
                and not data[signed_end:].strip():
            pass  # whitespace after %%EOF: not an update
        elif coverage < SignatureCoverageLevel.ENTIRE_REVISION or updates_after == 0:
            level = "not-covered"
        else:
            level, detail, signatures_only, value = _diff(emb, coverage, docmdp)
    # pyHanko's rule (docmdp_ok): a level above the permission, or "other"/"suspicious"
    violated = docmdp is not None and level != "not-covered" and (
        value >= ModificationLevel.OTHER.value or value > docmdp.value)
    return _Integrity(updates_after, level, detail, signatures_only, docmdp, violated)


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


def _diff(emb: Any, coverage: Any, docmdp: Optional[MDPPerm]) -> Tuple[str, str, bool, int]:
    """pyHanko's verdict on the incremental updates after the signed revision:
    (level, detail, only signature fields added or filled, the level's value)."""
    emb.coverage = coverage
    suspicious = ModificationLevel.OTHER.value + 1

    def review(policy: Any) -> Any:
        return policy.review_file(emb.reader, emb.signed_revision,
                                  field_mdp_spec=_field_mdp(emb), doc_mdp=docmdp)

    try:
        verdict = review(DEFAULT_DIFF_POLICY)
    except SuspiciousModification as exc:
        return "suspicious", str(exc)[:300], False, suspicious
    except Exception as exc:  # noqa: BLE001 - the analysis failed: treat as suspicious
        return "suspicious", f"difference analysis failed: {_describe(exc)}", False, suspicious
    if not isinstance(verdict, DiffResult):
        return "suspicious", str(verdict)[:300], False, suspicious
    modification = verdict.modification_level
    level = modification.name.lower().replace("_", "-")
    if modification != ModificationLevel.FORM_FILLING:
        return level, "", modification <= ModificationLevel.LTA_UPDATES, int(modification.value)
    # form filling: do the rules for signature fields alone explain it (a co-signature)?
    _QuietReview.active.on = True
    try:
        alone = review(_SIGNATURES_ONLY_POLICY)
        signatures_only = isinstance(alone, DiffResult) \
            and alone.modification_level <= ModificationLevel.FORM_FILLING
    except Exception:  # noqa: BLE001 - not explained by them
        signatures_only = False
    finally:
        _QuietReview.active.on = False
    detail = "" if signatures_only else \
        ("form fields other than signatures changed: "
         + ", ".join(sorted(str(f) for f in verdict.changed_form_fields)))[:300]
    return level, detail, signatures_only, int(modification.value)


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
