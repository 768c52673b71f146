"""Signatures with the card's signing key: raw PKCS#1 v1.5, and CMS / CAdES-BES.

::

    from cps.sign import sign_cms, verify_cms

    card.verify_pin(pin)
    p7s = sign_cms(card, document)                     # detached CAdES-BES, DER
    result = verify_cms(p7s, document, validator)      # raises on any failure
    result.signer, result.practitioner
    result.validation_time      # when the certificate was judged: now, unless at=
    result.signing_time         # what the signer claims: reported, not trusted

    p7s = sign_cms(card, document, timestamp="http://tsa.example/")   # CAdES-T
    result = verify_cms(p7s, document, validator)
    result.timestamp.gen_time   # proven by the TSA: the certificate is judged then

The CMS is RFC 5652 SignedData with one SignerInfo (version 1,
IssuerAndSerialNumber) and the signed attributes contentType, signingTime,
messageDigest and signing-certificate-v2 (RFC 5035): the baseline of a
CAdES-BES signature (ETSI EN 319 122-1). With ``timestamp=``, an RFC 3161
timestamp over the signature value travels as the unsigned attribute
id-aa-signatureTimeStampToken (CAdES-T, :mod:`cps.timestamp`). No long-term
validation data. The signer certificate is judged now unless the caller
says otherwise or a verified timestamp proves when the signature existed: a
signingTime is the signer's claim. See docs/signing.md.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    FrozenSet,
    List,
    NamedTuple,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Union,
)

from asn1crypto import algos, cms, core

# tsp registers signing-certificate(-v2) in cms.CMSAttribute: imported for that effect
from asn1crypto import tsp as _tsp  # noqa: F401
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as _padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from . import pem
from .card import SIGNATURE_PADDINGS, KeyRole, check_padding_name
from .der import encode_length
from .errors import CertificateParseError, CpsError, NotSupported
from .trust.algorithms import (
    RSASSA_PSS,
    PssParameters,
    algorithm_identifier,
    check_rsa_padding,
    parse_pss_parameters,
    pss_max_salt,
)

if TYPE_CHECKING:  # pragma: no cover
    from .identity import Practitioner
    from .timestamp import TimestampInfo
    from .trust.validate import ValidationResult, Validator

#: What ``sign_cms(timestamp=...)`` takes: a TSA URL, or ``f(digest) -> token``.
TimestampSource = Union[str, Callable[[bytes], bytes]]

__all__ = [
    "MAX_CMS_SIZE",
    "MAX_TIMESTAMPS",
    "Signer",
    "TimestampSource",
    "SoftwareSigner",
    "CmsVerification",
    "SignatureError",
    "SignatureInvalid",
    "DigestMismatch",
    "SigningCertificateMismatch",
    "CmsError",
    "PADDINGS",
    "sign_pkcs1",
    "verify_pkcs1",
    "verify_pss",
    "sign_cms",
    "verify_cms",
]

#: Largest CMS :func:`verify_cms` parses: a detached signature with a few
#: certificates is a few kilobytes; anything near this is an attack or a mistake.
MAX_CMS_SIZE = 16 * 1024 * 1024
#: Most certificates accepted in one SignedData (bounds the signer search).
MAX_CERTIFICATES = 32
#: The RSA signature paddings: PKCS#1 v1.5 (every CPS card) and RSASSA-PSS
#: (CPS4 only; MGF1 over the signature's hash, a salt as long as that hash).
PADDINGS = SIGNATURE_PADDINGS

_HASHES: Dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
    "sha512": hashes.SHA512}
#: Hashes for new CMS signatures and accepted in CMS: SHA-1 is refused (collisions).
_CMS_HASHES = ("sha256", "sha384", "sha512")
_DIGEST_OIDS = {"1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.1": "sha256",
                "2.16.840.1.101.3.4.2.2": "sha384", "2.16.840.1.101.3.4.2.3": "sha512"}
_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
#: signatureAlgorithm OIDs -> the hash they name (rsaEncryption names none).
_SIGNATURE_OIDS = {"1.2.840.113549.1.1.5": "sha1", "1.2.840.113549.1.1.11": "sha256",
                   "1.2.840.113549.1.1.12": "sha384", "1.2.840.113549.1.1.13": "sha512"}
_ID_DATA = "1.2.840.113549.1.7.1"
_ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_ATTR_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_ATTR_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_ATTR_SIGNING_TIME = "1.2.840.113549.1.9.5"
_ATTR_SIGNING_CERT = "1.2.840.113549.1.9.16.2.12"      # RFC 2634, SHA-1 ESSCertID
_ATTR_SIGNING_CERT_V2 = "1.2.840.113549.1.9.16.2.47"   # RFC 5035, ESSCertIDv2
#: id-aa-signatureTimeStampToken (RFC 3161 appendix A, CAdES-T): unsigned attribute
_ATTR_TIMESTAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"  # noqa: S105 - an OID
#: Most signature timestamps accepted on one SignerInfo.
MAX_TIMESTAMPS = 8


# --------------------------------------------------------------------------- errors
class SignatureError(CpsError):
    """Base of the errors of :mod:`cps.sign`."""


class SignatureInvalid(SignatureError):
    """A signature does not verify.

    :ivar reason: ``"signature"`` (the RSA signature is wrong),
        ``"message-digest"``, ``"signing-certificate"``, ``"content-type"``,
        ``"content-mismatch"``.
    :ivar subject: the signer certificate's subject (RFC 4514), when known.
    """

    def __init__(self, message: str, *, reason: str = "signature", subject: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.subject = subject


class DigestMismatch(SignatureInvalid):
    """The signed messageDigest is not the digest of the data: the data changed.

    :ivar algorithm: the digest algorithm (``"sha256"``...).
    :ivar expected: the digest the signer signed.
    :ivar actual: the digest of the data given.
    """

    def __init__(self, message: str, *, algorithm: str, expected: bytes, actual: bytes,
                 subject: str = "") -> None:
        super().__init__(message, reason="message-digest", subject=subject)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class SigningCertificateMismatch(SignatureInvalid):
    """The signing-certificate(-v2) attribute names another certificate than the signer's.

    :ivar algorithm: the hash algorithm of the ESSCertID(v2).
    :ivar expected: the certificate hash the signer signed.
    :ivar actual: the hash of the certificate found in the CMS.
    """

    def __init__(self, message: str, *, algorithm: str, expected: bytes, actual: bytes,
                 subject: str = "") -> None:
        super().__init__(message, reason="signing-certificate", subject=subject)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class CmsError(SignatureError):
    """The CMS cannot be used: malformed, too large, or outside what is supported.

    :ivar reason: ``"malformed"``, ``"too-large"``, ``"unsupported"``,
        ``"weak-algorithm"``, ``"no-signer-certificate"``, ``"no-content"``.
    """

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------------- signers
class Signer(Protocol):
    """What :func:`sign_cms` needs: a :class:`cps.Card`, or :class:`SoftwareSigner`."""

    def sign(self, data: bytes, hash: str = "sha256", *, padding: str = "pkcs1v15") -> bytes:
        """RSA signature of ``data`` (hashed with ``hash`` by the signer):
        PKCS#1 v1.5, or RSASSA-PSS with ``padding="pss"`` (MGF1 over ``hash``,
        a salt of the hash's length). :func:`sign_cms` passes ``padding``
        only for PSS, so a signer of PKCS#1 v1.5 alone need not take it.

        A signer may also have ``signature_paddings`` (a set of :data:`PADDINGS`),
        as :attr:`cps.Card.signature_paddings`: PSS is then refused before
        the card is asked when it is not in it."""

    def certificate(self, role: KeyRole) -> x509.Certificate:
        """The certificate of the signing key (``role`` is ``KeyRole.SIGN``)."""


class SoftwareSigner:
    """An RSA private key in memory and its certificate, with the card's signing interface.

    For tests and for servers that sign with a software key; a card keeps its
    key inside.

    :param private_key: the RSA private key.
    :param certificate: its certificate (returned for every role).
    :raises NotSupported: not an RSA key.
    :raises ValueError: the key is not the certificate's.
    """

    def __init__(self, private_key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> None:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise NotSupported("SoftwareSigner signs with RSA keys only, like CPS cards")
        cert_key = certificate.public_key()
        if (not isinstance(cert_key, rsa.RSAPublicKey)
                or private_key.public_key().public_numbers() != cert_key.public_numbers()):
            raise ValueError("the private key does not belong to the certificate")
        self._key = private_key
        self._certificate = certificate

    #: what :meth:`sign` can do, like :attr:`cps.Card.signature_paddings` (a CPS4's)
    signature_paddings: FrozenSet[str] = frozenset(PADDINGS)

    def sign(self, data: bytes, hash: str = "sha256", *, prehashed: bool = False,
             padding: str = "pkcs1v15") -> bytes:
        """RSA signature, like :meth:`cps.Card.sign`: PKCS#1 v1.5, or RSASSA-PSS
        (MGF1 over ``hash``, a salt of the hash's length, as a CPS4 card signs).

        :param data: the data, or its digest when ``prehashed``.
        :param hash: ``"sha1"``, ``"sha256"``, ``"sha384"`` or ``"sha512"``.
        :param padding: ``"pkcs1v15"`` or ``"pss"``.
        :raises ValueError: another ``padding``.
        """
        algorithm = _hash_algorithm(hash)
        return self._key.sign(data, _padding_for(padding, hash),
                              Prehashed(algorithm) if prehashed else algorithm)

    def certificate(self, role: KeyRole = KeyRole.SIGN) -> x509.Certificate:
        """The certificate, whatever ``role``: a software signer has one key."""
        return self._certificate

    def __repr__(self) -> str:  # never shows the key
        return f"<SoftwareSigner {_subject(self._certificate)}>"


# --------------------------------------------------------------------------- raw PKCS#1
def sign_pkcs1(card: Signer, data: bytes, hash: str = "sha256") -> bytes:
    """The card's raw RSA PKCS#1 v1.5 signature of ``data`` (signing key, PIN verified).

    :param card: a :class:`cps.Card` (or any :class:`Signer`).
    :param data: the document; the card computes the last hash block itself.
    :param hash: ``"sha256"`` (or ``"sha1"``, which CPS3 cards also accept).
    :returns: the signature, as long as the modulus (256 bytes for RSA-2048).
    """
    return card.sign(data, hash=hash)


def verify_pkcs1(cert: Union[x509.Certificate, bytes], signature: bytes, data: bytes,
                 hash: str = "sha256") -> None:
    """Check an RSA PKCS#1 v1.5 signature with a certificate's public key.

    Only the mathematics: validate the certificate with :mod:`cps.trust`
    before trusting who it names.

    :param cert: the signer's certificate (cryptography object, DER or PEM).
    :param signature: the signature.
    :param data: the signed data.
    :param hash: the hash the signer used.
    :raises SignatureInvalid: the signature does not match.
    :raises NotSupported: not an RSA key, or an unknown hash.
    :raises CertificateParseError: ``cert`` cannot be decoded.
    """
    cert = _load_certificate(cert)
    _check_certificate_padding(cert, "pkcs1v15", None)
    try:
        _rsa_verify(cert, signature, data, hash)
    except InvalidSignature:
        raise SignatureInvalid(f"the {hash} PKCS#1 v1.5 signature does not verify with the "
                               "certificate's key", subject=_subject(cert)) from None


def verify_pss(cert: Union[x509.Certificate, bytes], signature: bytes, data: bytes,
               hash: str = "sha256", *, salt_length: Optional[int] = None) -> None:
    """Check an RSASSA-PSS signature (MGF1 over ``hash``) with a certificate's public key.

    The sibling of :func:`verify_pkcs1` for what a CPS4 card signs with
    ``padding="pss"``. Only the mathematics, as there.

    :param hash: the hash the signer used (and MGF1 with it).
    :param salt_length: the salt's length; default the hash's length (a
        CPS4's, RFC 8017's recommendation). Never "any salt".
    :raises SignatureInvalid: the signature does not match, or the
        certificate's key is restricted to other PSS parameters (or to none).
    :raises NotSupported: not an RSA key, or an unknown hash.
    :raises CertificateParseError: ``cert`` cannot be decoded.
    :raises ValueError: a negative ``salt_length``.
    """
    cert = _load_certificate(cert)
    _hash_algorithm(hash)  # NotSupported for an unknown hash, before anything else
    size = hashlib.new(hash).digest_size if salt_length is None else salt_length
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"salt_length must be an integer >= 0, not {salt_length!r}")
    pss = PssParameters(hash, size)
    subject = _subject(cert)
    _check_certificate_padding(cert, "pss", pss)
    try:
        _rsa_verify(cert, signature, data, hash, pss=pss)
    except InvalidSignature:
        raise SignatureInvalid(f"the {hash} RSASSA-PSS signature (salt of {size} bytes) "
                               "does not verify with the certificate's key",
                               subject=subject) from None


def _check_certificate_padding(cert: x509.Certificate, padding: str,
                               pss: Optional[PssParameters]) -> None:
    """SignatureInvalid when the certificate's key (id-RSASSA-PSS) does not allow it."""
    try:
        spki = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))[
            "tbs_certificate"]["subject_public_key_info"].dump()
        check_rsa_padding(spki, padding, pss)
    except ValueError as exc:
        raise SignatureInvalid(f"the certificate's key: {exc}", subject=_subject(cert)) from None


# --------------------------------------------------------------------------- CMS signing
def sign_cms(card_or_signer: Signer, data: bytes, *, hash: str = "sha256",
             chain: Optional[Sequence[Union[x509.Certificate, bytes]]] = None,
             signing_time: Optional[datetime] = None, detached: bool = True,
             timestamp: Optional[TimestampSource] = None,
             padding: str = "pkcs1v15") -> bytes:
    """Sign ``data`` as a CMS SignedData, CAdES-BES or CAdES-T (DER, a ``.p7s`` file).

    The card signs the DER of the signed attributes (a SET OF, tag 0x31); it
    hashes the last block itself (PSO HASH), so the signature is PKCS#1 v1.5
    over SHA-256 of those attributes, as RFC 5652 5.4 requires. The result is
    checked with the certificate's key before it is returned: a card whose key
    does not match its certificate would otherwise produce signatures nobody
    can verify.

    :param card_or_signer: a :class:`cps.Card` with its PIN verified, or a
        :class:`Signer` such as :class:`SoftwareSigner`.
    :param data: the document.
    :param hash: ``"sha256"`` (CPS3 cards sign SHA-1 and SHA-256; SHA-1 is
        refused here); a software signer may use ``"sha384"``, ``"sha512"``.
    :param chain: CA certificates to embed after the signer's (cryptography
        objects or DER). Default: the issuing CA when it is one of the bundled
        IGC-Santé intermediates, else none. The root is not needed: the
        verifier must already hold it as a trust anchor.
    :param signing_time: aware datetime of the signingTime attribute; default now.
    :param detached: leave the content out (default), or embed it.
    :param timestamp: make a CAdES-T signature: the URL of an RFC 3161 TSA
        (asked with :func:`cps.timestamp.request_timestamp`), or a callable
        taking the ``hash`` digest of the signature value and returning a
        TimeStampToken (DER), e.g. a TSA client of your own. The token is
        checked (signature, imprint, TSA certificate's EKU; not its trust,
        which the verifier judges) and added as the unsigned attribute
        id-aa-signatureTimeStampToken (1.2.840.113549.1.9.16.2.14).
    :param padding: ``"pkcs1v15"`` (default: every CPS card, signatureAlgorithm
        sha256WithRSAEncryption), or ``"pss"`` (a CPS4 card or a software key:
        signatureAlgorithm id-RSASSA-PSS with explicit RSASSA-PSS-params,
        RFC 4056: hash = the digest algorithm, MGF1 over it, a salt of the
        hash's length, trailerField 1).
    :returns: the DER ContentInfo.
    :raises NotSupported: SHA-1 or an unknown hash; not an RSA certificate;
        ``"pss"`` with a signer whose ``signature_paddings`` lacks it (a CPS3).
    :raises ValueError: an unknown ``padding`` (``TypeError``: not a string).
    :raises SignatureInvalid: the card's signature does not verify with its certificate.
    :raises TimestampError: no usable timestamp (the TSA is unreachable,
        refused, or answered a token that does not verify); nothing is
        returned without the timestamp asked for.
    :raises CardError: the card refused (e.g. ``SecurityStatusNotSatisfied``: PIN not verified).
    """
    check_padding_name(padding)
    if hash not in _CMS_HASHES:
        raise NotSupported(f"hash {hash!r} for CMS: use sha256 (sha384, sha512 with software keys)")
    if padding == "pss":
        supported = getattr(card_or_signer, "signature_paddings", None)
        if supported is not None and "pss" not in supported:  # before any card command
            raise NotSupported("this card signs RSA PKCS#1 v1.5 only (a CPS3): RSASSA-PSS "
                               "needs a CPS4 card")
    pss = PssParameters(hash, hashlib.new(hash).digest_size) if padding == "pss" else None
    cert = card_or_signer.certificate(KeyRole.SIGN)
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):  # before the card spends a signature
        raise NotSupported("only RSA signers are supported (CPS cards hold RSA keys)")
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    signer_cert = asn1_x509.Certificate.load(cert_der)
    extra = _default_chain(cert_der) if chain is None else [_to_der(c) for c in chain]
    when = _utc_seconds(signing_time)

    attributes = cms.CMSAttributes([
        {"type": "content_type", "values": ["data"]},
        # RFC 5652 11.3: UTCTime through 2049, GeneralizedTime after.
        {"type": "signing_time", "values": [cms.Time(
            {"utc_time": when} if 1950 <= when.year < 2050 else {"generalized_time": when})]},
        {"type": "message_digest", "values": [hashlib.new(hash, data).digest()]},
        {"type": "signing_certificate_v2", "values": [{"certs": [{
            # hash_algorithm left out: SHA-256 is its DEFAULT, which DER omits.
            "cert_hash": hashlib.sha256(cert_der).digest(),
            "issuer_serial": {
                "issuer": [asn1_x509.GeneralName({"directory_name": signer_cert.issuer})],
                "serial_number": signer_cert.serial_number,
            },
        }]}]},
    ])
    # asn1crypto sorts SET OF encodings on dump: this is the DER the card signs.
    to_be_signed = attributes.dump()
    if pss is None:  # no padding argument: a PKCS#1-only signer need not take one
        signature = card_or_signer.sign(to_be_signed, hash=hash)
    else:
        signature = card_or_signer.sign(to_be_signed, hash=hash, padding="pss")
    try:
        # a card that salted otherwise (or padded PKCS#1) fails here, before anyone sees it
        _rsa_verify(cert, signature, to_be_signed, hash, pss=pss)
    except InvalidSignature:
        raise SignatureInvalid("the signer's signature does not verify with its own "
                               "certificate (wrong key or faulty card)",
                               subject=_subject(cert)) from None

    unsigned = None
    if timestamp is not None:
        token = _signature_timestamp(timestamp, signature, hash)
        unsigned = cms.CMSAttributes([{"type": "signature_time_stamp_token",
                                       "values": [cms.ContentInfo.load(token)]}])
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": signer_cert.issuer, "serial_number": signer_cert.serial_number}}),
        # RFC 5754: SHA-2 digest AlgorithmIdentifiers without parameters.
        "digest_algorithm": {"algorithm": hash, "parameters": None},
        "signed_attrs": attributes,
        "signature_algorithm": _signature_algorithm(hash, pss),
        "signature": signature,
        "unsigned_attrs": unsigned,
    })
    signed_data = cms.SignedData({
        "version": "v1",  # RFC 5652 5.1: id-data, X.509 certificates only, SignerInfo v1
        "digest_algorithms": [{"algorithm": hash, "parameters": None}],
        "encap_content_info": {"content_type": "data",
                               "content": None if detached else data},
        "certificates": [signer_cert] + [asn1_x509.Certificate.load(d) for d in extra],
        "signer_infos": [signer_info],
    })
    encoded: bytes = cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
    return encoded


def _signature_algorithm(hash: str, pss: Optional[PssParameters]) -> Dict[str, Any]:
    """The SignerInfo's signatureAlgorithm.

    PKCS#1 v1.5: sha256WithRSAEncryption (NULL parameters, RFC 4055) names the
    hash with the key algorithm; OpenSSL, BouncyCastle and EU DSS accept it as
    well as the older rsaEncryption. PSS: id-RSASSA-PSS with its parameters
    spelt out (RFC 4056 2.2; the SHA-1 defaults would be wrong): the hash
    (NULL parameters, as OpenSSL writes them), MGF1 over it, the salt length;
    trailerField 1 is the DEFAULT, which DER leaves out.
    """
    if pss is None:
        return {"algorithm": f"{hash}_rsa", "parameters": core.Null()}
    return {"algorithm": "rsassa_pss", "parameters": algos.RSASSAPSSParams({
        "hash_algorithm": {"algorithm": pss.hash},
        "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": pss.hash}},
        "salt_length": pss.salt_length,
        "trailer_field": "trailer_field_bc",
    })}


def _signature_timestamp(source: TimestampSource, signature: bytes, hash: str) -> bytes:
    """A verified timestamp token over ``hash(signature)`` (RFC 3161 appendix A)."""
    from .timestamp import request_timestamp, verify_timestamp

    digest = hashlib.new(hash, signature).digest()
    if isinstance(source, str):
        return request_timestamp(source, digest, hash=hash)  # verified there
    if not callable(source):
        raise TypeError(f"timestamp must be a TSA URL or a callable, not "
                        f"{type(source).__name__}")
    token = source(digest)
    if not isinstance(token, (bytes, bytearray, memoryview)):
        raise TypeError(f"the timestamp callable returned {type(token).__name__}, not bytes")
    token = bytes(token)
    verify_timestamp(token, digest, hash=hash)
    return token


# --------------------------------------------------------------------------- CMS verification
@dataclass(frozen=True)
class CmsVerification:
    """A CMS signature that verified.

    :ivar signer: the signer's certificate.
    :ivar signing_time: the signingTime attribute as the signer claims it
        (anyone holding the key can write any date: reported, never used to
        judge the certificate unless the caller passes it as ``at=``),
        ``None`` when absent.
    :ivar digest_algorithm: ``"sha256"``...
    :ivar certificates: the other certificates of the SignedData.
    :ivar signing_certificate_bound: a signing-certificate(-v2) attribute was
        present and names the signer certificate (CAdES-BES); ``False`` for a
        plain CMS (e.g. ``openssl cms -sign`` without ``-cades``).
    :ivar validation: the :class:`cps.trust.ValidationResult` of the signer
        certificate, ``None`` when no validator was given (then nothing says
        who signed).
    :ivar practitioner: who the signer certificate names; ``validated`` only
        when the chain was validated. ``None`` for a non-CPS certificate.
    :ivar validation_time: the time the signer certificate was judged at
        (``validation.validated_at``); ``None`` without a validator.
    :ivar validation_time_source: where that time comes from: ``"now"`` (the
        validator's clock, the default), ``"timestamp"`` (a verified signature
        timestamp, CAdES-T), ``"caller"`` (the ``at=`` argument); ``None``
        without a validator. A signingTime alone is never a source.
    :ivar timestamp: the verified signature timestamp
        (:class:`cps.timestamp.TimestampInfo`; the earliest when there are
        several, all verified), ``None`` for a CAdES-BES signature.
    :ivar signature_padding: ``"pkcs1v15"`` or ``"pss"`` (RSASSA-PSS, its
        parameters checked: MGF1 over the digest algorithm, the declared salt).
    """

    signer: x509.Certificate
    signing_time: Optional[datetime]
    digest_algorithm: str
    certificates: Tuple[x509.Certificate, ...]
    signing_certificate_bound: bool
    validation: Optional["ValidationResult"] = None
    practitioner: Optional["Practitioner"] = None
    validation_time: Optional[datetime] = None
    validation_time_source: Optional[str] = None
    timestamp: Optional["TimestampInfo"] = None
    signature_padding: str = "pkcs1v15"


def verify_cms(cms_der: bytes, data: Optional[bytes], validator: Optional["Validator"] = None,
               *, at: Optional[datetime] = None,
               tsa_validator: Optional["Validator"] = None) -> CmsVerification:
    """Verify a CMS SignedData signature (one signer), then, if asked, its certificate.

    Checks, in order: the structure; that the signed contentType is the
    encapsulated one; the messageDigest against ``data``; the RSA signature
    over the signed attributes; that signing-certificate-v2 (or v1), when
    present, names the signer certificate; then, with a ``validator``, the
    signer certificate for ``KeyRole.SIGN`` with the other certificates of
    the SignedData as intermediates.

    The certificate is judged at ``at``, by default **now**: the validator's
    clock (``validator.clock``), else the system time. The signingTime
    attribute is **asserted by the signer**: whoever holds the key can write
    any date, e.g. one before the certificate expired or was revoked, so it
    is reported (``result.signing_time``) but never trusted by itself. Only
    a caller who has another reason to believe it (an archive that recorded
    when it received the document, a timestamp checked elsewhere) passes it
    as ``at=``; a revocation for keyCompromise is honoured whatever ``at``.
    ``result.validation_time`` and ``result.validation_time_source`` say
    which time was used.

    :param cms_der: the CMS (DER, or PEM ``-----BEGIN CMS-----``/``PKCS7``).
    :param data: the signed data (detached), or ``None`` to use the
        encapsulated content.
    :param validator: a :class:`cps.trust.Validator`; ``None`` checks the
        signature only.
    :param at: aware validation time, trusted as given; default the
        timestamp's time, else now (the validator's clock), never the signingTime.
    :param tsa_validator: the :class:`cps.trust.Validator` that judges TSA
        certificates (a TSA may chain to other roots than the signers);
        default ``validator``.
    :raises CmsError: malformed, too large, unsupported (several signers, no
        signed attributes, non-RSA key, SHA-1), no signer certificate;
        RSASSA-PSS parameters that are missing, malformed, over another hash
        than the digest algorithm (or MGF1 over another), a salt the key
        cannot carry, a trailer field other than 1 (``reason``
        ``"malformed"``; SHA-1 ``"weak-algorithm"``), or a key restricted
        (id-RSASSA-PSS) to other parameters or to PSS (``"key-padding"``).
    :raises DigestMismatch: the data is not what was signed.
    :raises SignatureInvalid: the signature is wrong (``reason`` says which check).
    :raises SigningCertificateMismatch: the signed attributes name another certificate.
    :raises TimestampError: a signature timestamp that does not verify, whose
        imprint is not the signature's, or whose TSA the validator refuses
        (``reason``: ``"signature"``, ``"imprint-mismatch"``,
        ``"untrusted-tsa"``...): never ignored.
    :raises CertificateInvalid: from the validator (``CertificateRevoked``,
        ``CertificatePurposeError``, ``CertificateExpired``...), and ``RevocationUnavailable``.
    """
    parsed = _parse(cms_der)
    if data is None:
        if parsed.content is None:
            raise CmsError("detached signature: pass the signed data", reason="no-content")
        content = parsed.content
    else:
        content = bytes(data)
        if parsed.content is not None and parsed.content != content:
            raise SignatureInvalid("the data given is not the content embedded in the CMS",
                                   reason="content-mismatch", subject=_subject(parsed.signer))
    _check_signer_info(parsed, content)
    stamp = _verified_timestamp(parsed, tsa_validator if tsa_validator is not None
                                else validator)

    validation = when = source = None
    if validator is not None:
        when, source = _validation_time(validator, at, stamp)
        validation = validator.validate(parsed.signer, intermediates=parsed.others, at=when,
                                        purpose=KeyRole.SIGN)
    practitioner = _practitioner(parsed.signer, validated=validation is not None)
    return CmsVerification(signer=parsed.signer, signing_time=parsed.signing_time,
                           digest_algorithm=parsed.digest_algorithm,
                           certificates=tuple(parsed.others),
                           signing_certificate_bound=bool(parsed.cert_ids),
                           validation=validation, practitioner=practitioner,
                           validation_time=when, validation_time_source=source,
                           timestamp=stamp,
                           signature_padding="pkcs1v15" if parsed.pss is None else "pss")


def _verified_timestamp(parsed: _Parsed, validator: Optional["Validator"]
                        ) -> Optional["TimestampInfo"]:
    """Verify every signature-time-stamp token of the SignerInfo; the earliest.

    RFC 3161 appendix A: the imprint is the hash of the signature value (the
    OCTET STRING's contents), with the algorithm the token names.
    """
    if not parsed.timestamps:
        return None
    from .timestamp import verify_timestamp

    stamps = [verify_timestamp(token, data=parsed.signature, validator=validator)
              for token in parsed.timestamps]
    return min(stamps, key=lambda s: s.gen_time)


def _check_signer_info(parsed: _Parsed, content: bytes) -> None:
    """The checks of one SignerInfo over ``content``: signed contentType, messageDigest,
    the RSA signature over the signed attributes, the signing-certificate(-v2)
    binding. Shared by :func:`verify_cms` and :func:`cps.timestamp.verify_timestamp`
    (a timestamp token is a SignedData over a TSTInfo)."""
    subject = _subject(parsed.signer)
    if parsed.signed_content_type != parsed.content_type:
        raise SignatureInvalid("the signed contentType is not the encapsulated content type",
                               reason="content-type", subject=subject)
    actual = hashlib.new(parsed.digest_algorithm, content).digest()
    if not hmac.compare_digest(actual, parsed.message_digest):
        raise DigestMismatch("the data does not match the signed messageDigest: it was "
                             "modified, or is not the signed document",
                             algorithm=parsed.digest_algorithm, expected=parsed.message_digest,
                             actual=actual, subject=subject)
    try:
        _rsa_verify(parsed.signer, parsed.signature, parsed.signed_attrs,
                    parsed.digest_algorithm, pss=parsed.pss)
    except InvalidSignature:
        raise SignatureInvalid("the signature over the signed attributes does not verify with "
                               "the signer certificate", subject=subject) from None
    for algorithm, expected, issuer_serial_ok in parsed.cert_ids:
        actual_hash = hashlib.new(algorithm, parsed.signer_der).digest()
        if not hmac.compare_digest(actual_hash, expected) or issuer_serial_ok is False:
            raise SigningCertificateMismatch(
                "the signing-certificate attribute names another certificate than the "
                "signer's", algorithm=algorithm, expected=expected, actual=actual_hash,
                subject=subject)


def _validation_time(validator: Any, at: Optional[datetime],
                     stamp: Optional["TimestampInfo"] = None) -> Tuple[datetime, str]:
    """(time to judge the signer certificate at, its source): ``at`` when given,
    else the verified timestamp's genTime plus its accuracy, else the
    validator's clock, else the system time. Never the signingTime: the
    signer wrote it; a TSA's verified timestamp is the one proof that
    replaces "now"."""
    if at is not None:  # the validator refuses a naive one (TypeError)
        return at, "caller"
    if stamp is not None:
        return stamp.latest, "timestamp"
    clock = getattr(validator, "clock", None)
    now = clock() if callable(clock) else datetime.now(timezone.utc)
    return now, "now"


# --------------------------------------------------------------------------- parsing
class _Parsed(NamedTuple):
    content_type: str
    content: Optional[bytes]
    signer: x509.Certificate
    signer_der: bytes
    others: List[x509.Certificate]
    digest_algorithm: str
    signature: bytes
    signed_attrs: bytes                     # DER SET OF, as signed
    signed_content_type: str
    message_digest: bytes
    signing_time: Optional[datetime]
    cert_ids: List[Tuple[str, bytes, Optional[bool]]]   # (hash, cert hash, issuerSerial ok)
    timestamps: List[bytes]                 # signature-time-stamp tokens (unsigned), DER
    pss: Optional[PssParameters] = None     # RSASSA-PSS parameters; None: PKCS#1 v1.5


def _parse(cms_der: Any, extra_certificates: Sequence[bytes] = ()) -> _Parsed:
    """Decode everything :func:`verify_cms` needs; any decoding failure is a CmsError.

    asn1crypto parses lazily, so every value is extracted here, inside the
    ``try``: nothing undecoded leaks to the checks. ``extra_certificates``
    (DER) are searched for the signer after the embedded ones (a timestamp
    token made without ``certReq`` carries no certificate).
    """
    if not isinstance(cms_der, (bytes, bytearray, memoryview)):
        raise TypeError(f"the CMS must be bytes, not {type(cms_der).__name__}")
    if len(cms_der) > MAX_CMS_SIZE * 2:  # checked again after PEM decoding
        raise CmsError(f"CMS of {len(cms_der)} bytes", reason="too-large")
    der = _unarmor(bytes(cms_der))
    if len(der) > MAX_CMS_SIZE:
        raise CmsError(f"CMS of {len(der)} bytes: more than {MAX_CMS_SIZE}", reason="too-large")
    try:
        return _parse_der(der, extra_certificates)
    except CpsError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            UnsupportedAlgorithm, RecursionError, x509.InvalidVersion) as exc:
        # asn1crypto and cryptography report bad encodings with these
        raise CmsError(f"malformed CMS: {type(exc).__name__}: {exc}"[:300]) from None


def _parse_der(der: bytes, extra_certificates: Sequence[bytes] = ()) -> _Parsed:
    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].dotted != _ID_SIGNED_DATA:
        raise CmsError("not a CMS SignedData", reason="unsupported")
    signed_data = info["content"]
    encap = signed_data["encap_content_info"]
    content_type = encap["content_type"].dotted
    raw_content = encap["content"]
    content = None if isinstance(raw_content, core.Void) else _octets(raw_content)

    certificates: List[Tuple[bytes, asn1_x509.Certificate]] = []
    cert_set = signed_data["certificates"]
    if not isinstance(cert_set, core.Void):
        if len(cert_set) > MAX_CERTIFICATES:
            raise CmsError(f"more than {MAX_CERTIFICATES} certificates", reason="unsupported")
        for choice in cert_set:
            if choice.name == "certificate":  # attribute certificates play no part here
                certificates.append((choice.chosen.dump(), choice.chosen))
    for extra in extra_certificates:
        if all(extra != d for d, _ in certificates):
            certificates.append((extra, asn1_x509.Certificate.load(extra, strict=True)))

    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise CmsError(f"{len(signer_infos)} signers: exactly one is supported",
                       reason="unsupported")
    signer_info = signer_infos[0]
    # RFC 5652 5.3: version 1 goes with issuerAndSerialNumber, 3 with subjectKeyIdentifier
    expected_version = "v1" if signer_info["sid"].name == "issuer_and_serial_number" else "v3"
    if signer_info["version"].native != expected_version:
        raise CmsError("SignerInfo version does not match its signer identifier")
    digest_algorithm = _digest_name(signer_info["digest_algorithm"]["algorithm"].dotted)
    # the AlgorithmIdentifier's bytes as received: the PSS parameters are read by
    # the one reader of the project (cps.trust.algorithms), not re-encoded
    signature_oid, signature_params = _signature_algorithm_parts(
        signer_info["signature_algorithm"].dump())
    pss = None
    if signature_oid == RSASSA_PSS:
        pss = _pss(signature_params, digest_algorithm)
    elif signature_oid != _RSA_ENCRYPTION:
        if signature_oid not in _SIGNATURE_OIDS:
            raise CmsError(f"signature algorithm {signature_oid}: only RSA PKCS#1 v1.5 and "
                           "RSASSA-PSS are supported", reason="unsupported")
        if _SIGNATURE_OIDS[signature_oid] != digest_algorithm:
            raise CmsError("the signature algorithm's hash is not the digest algorithm")
    signature = signer_info["signature"].native

    signer_der, signer_asn1 = _find_signer(signer_info["sid"], certificates)
    signer = _load_certificate(signer_der, CmsError)
    key = signer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CmsError("only RSA signers are supported (CPS cards hold RSA keys)",
                       reason="unsupported")
    _check_key_padding(signer_asn1, key, pss)
    others = [_load_certificate(d, CmsError) for d, _ in certificates if d != signer_der]

    attrs = signer_info["signed_attrs"]
    if isinstance(attrs, core.Void):
        # RFC 5652 allows it, CAdES does not: without signed attributes there is
        # no signing time and nothing binds the signer certificate.
        raise CmsError("no signed attributes: only CMS with signed attributes (CAdES) are "
                       "supported", reason="unsupported")
    # RFC 5652 5.4: the signature covers the attributes as a SET OF (tag 0x31),
    # not as the [0] IMPLICIT field: re-tag the bytes as received.
    signed_attrs = b"\x31" + encode_length(len(attrs.contents)) + attrs.contents
    values = {}
    for attr in attrs:
        oid = attr["type"].dotted
        if oid in (_ATTR_CONTENT_TYPE, _ATTR_MESSAGE_DIGEST, _ATTR_SIGNING_TIME,
                   _ATTR_SIGNING_CERT, _ATTR_SIGNING_CERT_V2):
            if oid in values or len(attr["values"]) != 1:
                raise CmsError(f"signed attribute {oid} must appear once with one value")
            values[oid] = attr["values"][0]
    if _ATTR_CONTENT_TYPE not in values or _ATTR_MESSAGE_DIGEST not in values:
        raise CmsError("contentType and messageDigest signed attributes are required")
    signed_content_type = values[_ATTR_CONTENT_TYPE].dotted
    message_digest = values[_ATTR_MESSAGE_DIGEST].native
    if not isinstance(message_digest, bytes):
        raise CmsError("messageDigest is not an OCTET STRING")
    signing_time = None
    if _ATTR_SIGNING_TIME in values:
        signing_time = values[_ATTR_SIGNING_TIME].native
        if not isinstance(signing_time, datetime) or signing_time.tzinfo is None:
            raise CmsError("signingTime is not a UTC time")

    cert_ids = []
    for oid in (_ATTR_SIGNING_CERT_V2, _ATTR_SIGNING_CERT):
        if oid in values:
            # RFC 5035 / 2634: the first ESSCertID is the signer's certificate.
            cert_ids.append(_ess_cert_id(values[oid]["certs"][0], signer_asn1,
                                         v1=oid == _ATTR_SIGNING_CERT))
    timestamps: List[bytes] = []
    unsigned = signer_info["unsigned_attrs"]
    if not isinstance(unsigned, core.Void):
        for attr in unsigned:
            if attr["type"].dotted == _ATTR_TIMESTAMP_TOKEN:
                # the raw ContentInfo of each value: cps.timestamp decodes and judges it
                timestamps.extend(value.dump() for value in attr["values"])
        if len(timestamps) > MAX_TIMESTAMPS:
            raise CmsError(f"more than {MAX_TIMESTAMPS} signature timestamps",
                           reason="unsupported")
    return _Parsed(content_type, content, signer, signer_der, others, digest_algorithm,
                   signature, signed_attrs, signed_content_type, message_digest, signing_time,
                   cert_ids, timestamps, pss)


def _signature_algorithm_parts(der: bytes) -> Tuple[str, Optional[bytes]]:
    try:
        return algorithm_identifier(der)
    except ValueError as exc:
        raise CmsError(f"signatureAlgorithm: {exc}") from None


def _pss(params: Optional[bytes], digest_algorithm: str) -> PssParameters:
    """The SignerInfo's RSASSA-PSS-params, checked against its digest algorithm
    (RFC 4056 2.2: the same hash; MGF1 over it is cps.trust.algorithms' rule)."""
    if params is None:
        raise CmsError("RSASSA-PSS without parameters: the SHA-1 defaults are not assumed")
    try:
        pss = parse_pss_parameters(params)
    except ValueError as exc:
        raise CmsError(str(exc)[:300]) from None
    if pss.hash == "sha1":
        raise CmsError("SHA-1 signatures are refused (collisions)", reason="weak-algorithm")
    if pss.hash != digest_algorithm:
        raise CmsError(f"the RSASSA-PSS hash ({pss.hash}) is not the digest algorithm "
                       f"({digest_algorithm})")
    return pss


def _check_key_padding(signer: Any, key: rsa.RSAPublicKey, pss: Optional[PssParameters]
                       ) -> None:
    """The salt fits the key; an id-RSASSA-PSS key (RFC 4055) signs only as it allows."""
    if pss is not None and not pss.fits(key.key_size):
        raise CmsError(f"RSASSA-PSS salt of {pss.salt_length} bytes: a {key.key_size}-bit "
                       f"key carries {max(pss_max_salt(key.key_size, pss.hash), 0)} at most")
    spki = signer["tbs_certificate"]["subject_public_key_info"].dump()
    try:
        check_rsa_padding(spki, "pkcs1v15" if pss is None else "pss", pss)
    except ValueError as exc:
        raise CmsError(f"the signer's key: {exc}", reason="key-padding") from None


def _find_signer(sid: cms.SignerIdentifier, certificates: List[Tuple[bytes, Any]]
                 ) -> Tuple[bytes, Any]:
    """The certificate named by the SignerIdentifier (IssuerAndSerialNumber or SKI)."""
    found = {}
    for der, cert in certificates:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            match = (cert.serial_number == wanted["serial_number"].native
                     and cert.issuer == wanted["issuer"])
        else:
            match = cert.key_identifier is not None and cert.key_identifier == sid.chosen.native
        if match:
            found[der] = cert
    if not found:
        raise CmsError("the signer certificate is not in the CMS", reason="no-signer-certificate")
    if len(found) > 1:
        raise CmsError("several certificates match the signer identifier")
    return next(iter(found.items()))


def _ess_cert_id(cert_id: Any, signer: Any, *, v1: bool) -> Tuple[str, bytes, Optional[bool]]:
    """(hash name, certificate hash, issuerSerial matches or None when absent)."""
    if v1:
        algorithm = "sha1"  # ESSCertID (v1) is SHA-1 by definition
    else:
        algorithm = _digest_name(cert_id["hash_algorithm"]["algorithm"].dotted, allow_sha1=True)
    cert_hash = cert_id["cert_hash"].native
    issuer_serial = cert_id["issuer_serial"]
    ok: Optional[bool] = None
    if not isinstance(issuer_serial, core.Void):
        names = [g.chosen for g in issuer_serial["issuer"] if g.name == "directory_name"]
        ok = (issuer_serial["serial_number"].native == signer.serial_number
              and any(n == signer.issuer for n in names))
    return algorithm, cert_hash, ok


# --------------------------------------------------------------------------- helpers
def _digest_name(oid: str, *, allow_sha1: bool = False) -> str:
    name = _DIGEST_OIDS.get(oid)
    if name is None:
        raise CmsError(f"digest algorithm {oid} is not supported", reason="unsupported")
    if name == "sha1" and not allow_sha1:
        raise CmsError("SHA-1 signatures are refused (collisions)", reason="weak-algorithm")
    return name


def _hash_algorithm(name: str) -> hashes.HashAlgorithm:
    try:
        return _HASHES[name]()
    except KeyError:
        raise NotSupported(f"hash {name!r}: use sha256 (or sha1, sha384, sha512)") from None


def _padding_for(padding: str, hash: str) -> _padding.AsymmetricPadding:
    """PKCS#1 v1.5, or PSS as CPS4 cards sign it: MGF1 over ``hash``, salt = hash length."""
    if check_padding_name(padding) == "pss":
        return PssParameters(hash, hashlib.new(hash).digest_size).padding()
    return _padding.PKCS1v15()


def _rsa_verify(cert: x509.Certificate, signature: bytes, data: bytes, hash: str, *,
                pss: Optional[PssParameters] = None) -> None:
    """PKCS#1 v1.5 check, or RSASSA-PSS with exactly ``pss``; raises cryptography's
    InvalidSignature on a mismatch."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CmsError("the signer certificate's public key cannot be decoded") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise NotSupported("only RSA signatures are supported (CPS cards hold RSA keys)")
    if pss is not None and not pss.fits(key.key_size):
        raise InvalidSignature()  # no signature by this key carries such a salt
    key.verify(signature, data, _padding.PKCS1v15() if pss is None else pss.padding(),
               _hash_algorithm(hash))


def _load_certificate(cert: Union[x509.Certificate, bytes], error: type = CertificateParseError
                      ) -> x509.Certificate:
    if isinstance(cert, x509.Certificate):
        return cert
    if not isinstance(cert, (bytes, bytearray, memoryview)):  # a caller's mistake
        raise TypeError(f"a certificate must be DER or PEM bytes or a cryptography "
                        f"x509.Certificate, not {type(cert).__name__}")
    try:
        data = bytes(cert)
        if pem.looks_pem(data):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except (ValueError, TypeError, x509.InvalidVersion) as exc:  # InvalidVersion: not a ValueError
        raise error(f"undecodable certificate: {exc}"[:200]) from None


def _to_der(cert: Union[x509.Certificate, bytes]) -> bytes:
    return _load_certificate(cert).public_bytes(serialization.Encoding.DER)


@functools.lru_cache(maxsize=1)
def _igc_sante_store() -> Any:
    from .trust.anchors import TrustStore

    return TrustStore.igc_sante()


def _default_chain(cert_der: bytes) -> List[bytes]:
    """The bundled IGC-Santé intermediate that issued the certificate, if any.

    A CPS card holds no CA certificate; embedding the intermediate lets a
    verifier that only knows the roots (``openssl cms -verify -CAfile``) build
    the path.
    """
    try:
        from .trust.certs import parse_cert

        return [c.der for c in _igc_sante_store().issuers_of(parse_cert(cert_der))]
    except (CpsError, OSError):  # no bundle: embed nothing rather than fail to sign
        return []


def _utc_seconds(moment: Optional[datetime]) -> datetime:
    if moment is None:
        moment = datetime.now(timezone.utc)
    elif moment.tzinfo is None:
        raise ValueError("naive datetime: give an aware (UTC) signing_time")
    # ASN.1 times carry whole seconds: what is signed is what is reported.
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def _octets(value: Any) -> bytes:
    """The bytes of an encapsulated content (OCTET STRING, possibly BER-chunked)."""
    content: bytes
    if isinstance(value, core.ParsableOctetString):
        content = value.__bytes__()
        return content
    if isinstance(value, core.OctetString):
        content = value.native
        return content
    raise CmsError("the encapsulated content is not an OCTET STRING")


def _unarmor(data: bytes) -> bytes:
    """PEM (``-----BEGIN CMS-----`` / ``PKCS7``) to DER; DER passes through."""
    if not pem.looks_pem(data):
        return data
    try:
        found = pem.blocks(data, None, limit=1)
    except ValueError as exc:
        raise CmsError(str(exc)) from None
    if not found:
        raise CmsError("truncated PEM block")
    return found[0]


def _subject(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except Exception:  # noqa: BLE001 - for messages only; never fail on a strange name
        return "<undecodable subject>"


def _practitioner(cert: x509.Certificate, *, validated: bool) -> Optional["Practitioner"]:
    from .identity import Practitioner

    try:
        who = Practitioner.from_certificate(cert)
    except CertificateParseError:  # a valid signature by a certificate that is not a CPS one
        return None
    return who.as_validated() if validated else who
