"""RFC 3161 timestamps: ask a Time-Stamping Authority, verify its tokens.

::

    from cps.timestamp import request_timestamp, verify_timestamp

    digest = hashlib.sha256(document).digest()
    token = request_timestamp("http://tsa.example/tsa", digest)      # DER TimeStampToken
    info = verify_timestamp(token, digest, validator=tsa_validator)  # raises on any failure
    info.gen_time        # aware UTC: when the TSA saw the digest
    info.tsa_certificate, info.serial_number, info.policy, info.accuracy

A timestamp token is a CMS SignedData (one signer, the TSA) over a TSTInfo:
it is checked by the same code as :func:`cps.sign.verify_cms` (signed
contentType id-ct-TSTInfo, messageDigest over the TSTInfo, RSA signature over
the signed attributes, ESS signing-certificate(-v2) naming the TSA
certificate), then the TSTInfo itself (message imprint, nonce, critical
extensions) and the TSA certificate: extendedKeyUsage id-kp-timeStamping
only and critical (RFC 3161 2.3), keyUsage limited to digitalSignature /
nonRepudiation, and, with a validator, its path through :mod:`cps.trust` at
the timestamp's own genTime.

Every failure is a :class:`TimestampError` (a :class:`cps.sign.SignatureError`)
whose ``reason`` says what went wrong. See docs/signing.md, "Timestamps".
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Optional, Protocol, Sequence, Tuple, Union

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from .errors import CpsError
from .sign import (
    CmsError,
    DigestMismatch,
    SignatureError,
    SignatureInvalid,
    SigningCertificateMismatch,
    _check_signer_info,
    _parse,
    _Parsed,
    _subject,
    _to_der,
    _unarmor,
)

if TYPE_CHECKING:  # pragma: no cover
    from .trust.validate import ValidationResult, Validator

__all__ = [
    "MAX_ACCURACY",
    "MAX_RESPONSE_SIZE",
    "TIMESTAMP_HASHES",
    "TimestampError",
    "TimestampInfo",
    "Poster",
    "TimeStampResp",
    "request_timestamp",
    "timestamp_token",
    "verify_timestamp",
]

#: Largest TimeStampResp (or token) accepted: a token with a few certificates
#: weighs a few kilobytes.
MAX_RESPONSE_SIZE = 1024 * 1024
#: Largest TSTInfo accuracy accepted. RFC 3161 sets no maximum, but the
#: certificate is judged at genTime + accuracy (CAdES-T, XAdES-T, PAdES-T): a
#: token claiming two years would move that time two years ahead, 10^13 s
#: overflowed datetime. ETSI EN 319 421 TSAs (IGC-Santé's among them) keep
#: within 1 s of UTC and declare about 1 s; 10 minutes leaves room for any
#: honest TSA. A token above it is a TimestampError, reason ``"accuracy"``.
MAX_ACCURACY = timedelta(minutes=10)
#: Message-imprint hashes requested and accepted (SHA-1 is refused: collisions).
TIMESTAMP_HASHES = ("sha256", "sha384", "sha512")
_HASH_OIDS = {"sha256": "2.16.840.1.101.3.4.2.1", "sha384": "2.16.840.1.101.3.4.2.2",
              "sha512": "2.16.840.1.101.3.4.2.3"}
_OID_HASHES = {oid: name for name, oid in _HASH_OIDS.items()}
_SHA1_OID = "1.3.14.3.2.26"
_ID_CT_TST_INFO = "1.2.840.113549.1.9.16.1.4"
_EKU_TIMESTAMPING = ExtendedKeyUsageOID.TIME_STAMPING
_GRANTED = ("granted", "granted_with_mods")


class TimeStampResp(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """RFC 3161 2.4.2 TimeStampResp, with ``timeStampToken`` OPTIONAL as the RFC says
    (asn1crypto's ``tsp.TimeStampResp`` requires it, so it can neither read nor
    write a rejection)."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


# --------------------------------------------------------------------------- errors
class TimestampError(SignatureError):
    """A timestamp could not be obtained, or does not prove what it should.

    :ivar reason: ``"unreachable"``, ``"timeout"``, ``"bad-url"`` (not an
        http(s) URL, or redirected to another scheme), ``"http-status"``
        (``http_status`` says which), ``"too-large"``, ``"malformed"``,
        ``"rejected"`` (the TSA refused: ``status``, ``fail_info``,
        ``status_text``), ``"nonce-mismatch"``, ``"imprint-mismatch"``,
        ``"signature"`` (the token's signature or its messageDigest is wrong),
        ``"signing-certificate"`` (no ESS signing-certificate(-v2), or it names
        another certificate), ``"no-tsa-certificate"`` (not in the token nor
        given), ``"not-a-tsa"`` (the certificate is not a timestamping one),
        ``"tsa-name"`` (the TSTInfo names another TSA), ``"untrusted-tsa"``
        (the validator refused the TSA certificate: ``cause`` is its error),
        ``"unsupported"``, ``"weak-algorithm"``, ``"accuracy"`` (the TSTInfo's
        accuracy is malformed, over :data:`MAX_ACCURACY`, or puts genTime ±
        accuracy out of the representable dates).
    :ivar status: the PKIStatus of a rejection (``"rejection"``, ``"waiting"``...).
    :ivar fail_info: the PKIFailureInfo bits of a rejection (``("bad_alg",)``...).
    :ivar status_text: the TSA's free text, if any.
    :ivar http_status: the HTTP status of an ``"http-status"`` error.
    :ivar cause: the underlying error (a validator's, a transport's), if any.
    """

    def __init__(self, message: str, *, reason: str = "malformed",
                 status: Optional[str] = None, fail_info: Tuple[str, ...] = (),
                 status_text: str = "", http_status: Optional[int] = None,
                 cause: Optional[BaseException] = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.fail_info = tuple(fail_info)
        self.status_text = status_text
        self.http_status = http_status
        self.cause = cause


# --------------------------------------------------------------------------- result
@dataclass(frozen=True)
class TimestampInfo:
    """A timestamp token that verified.

    :ivar gen_time: when the TSA says it saw the imprint (aware, UTC).
    :ivar tsa_certificate: the certificate that signed the token.
    :ivar serial_number: the token's serial number (unique per TSA).
    :ivar policy: the TSA policy (dotted OID) the token was issued under.
    :ivar accuracy: the declared accuracy of ``gen_time``, ``None`` if not stated.
    :ivar ordering: the TSA claims its tokens are ordered by ``gen_time`` alone.
    :ivar nonce: the nonce echoed from the request, if any.
    :ivar hash_algorithm: the message-imprint hash (``"sha256"``...).
    :ivar message_imprint: the timestamped digest.
    :ivar tsa_name: the TSTInfo's ``tsa`` field (RFC 4514 for a directory
        name), ``None`` when absent.
    :ivar certificates: the other certificates of the token.
    :ivar validation: the :class:`cps.trust.ValidationResult` of the TSA
        certificate, ``None`` without a validator (then nothing says the TSA
        is one you trust).
    :ivar validation_time: when the TSA certificate was judged (``gen_time``
        unless the caller gave ``at``); ``None`` without a validator.
    :ivar token: the token (DER ContentInfo).
    """

    gen_time: datetime
    tsa_certificate: x509.Certificate
    serial_number: int
    policy: str
    accuracy: Optional[timedelta]
    ordering: bool
    nonce: Optional[int]
    hash_algorithm: str
    message_imprint: bytes
    tsa_name: Optional[str]
    certificates: Tuple[x509.Certificate, ...]
    validation: Optional["ValidationResult"] = None
    validation_time: Optional[datetime] = None
    token: bytes = field(default=b"", repr=False)

    @property
    def earliest(self) -> datetime:
        """``gen_time`` minus the accuracy: the earliest instant the token allows."""
        return self.gen_time - (self.accuracy or timedelta(0))

    @property
    def latest(self) -> datetime:
        """``gen_time`` plus the accuracy: the instant the data existed by, at the latest."""
        return self.gen_time + (self.accuracy or timedelta(0))


class Poster(Protocol):
    """What :func:`request_timestamp` sends through: :class:`cps.trust.fetch.Fetcher`
    (bounded in time and size, http(s) only, redirects to http(s) only)."""

    def post(self, url: str, body: bytes, content_type: str, *, accept: Optional[str] = None,
             max_bytes: int = ..., deadline: Optional[float] = None) -> bytes:
        """POST ``body``; the answer's body."""


# --------------------------------------------------------------------------- client
def request_timestamp(url: str, digest: bytes, *, hash: str = "sha256", nonce: bool = True,
                      cert_req: bool = True, timeout: float = 30.0,
                      opener: Optional[Poster] = None, policy: Optional[str] = None) -> bytes:
    """Ask the TSA at ``url`` to timestamp ``digest``; return its TimeStampToken (DER).

    Sends a TimeStampReq (RFC 3161 2.4.1) by ``POST`` with ``Content-Type:
    application/timestamp-query`` (RFC 3161 3.4), then checks the
    TimeStampResp: status granted (or grantedWithMods), the nonce echoed, the
    message imprint equal to the request's and, when the token carries the
    TSA certificate (``cert_req``), its signature, ESS binding and
    timestamping EKU (:func:`verify_timestamp` without a validator: judging
    the TSA is the verifier's business).

    Bounded: ``timeout`` is the deadline of the whole exchange (each socket
    operation and their sum: a server dripping bytes is cut off), answers over
    :data:`MAX_RESPONSE_SIZE` are abandoned while reading, only ``http`` and
    ``https`` are spoken, redirects included.

    :param url: the TSA's ``http(s)`` URL.
    :param digest: the digest to timestamp (e.g. SHA-256 of the document, or
        of a signature value for CAdES-T).
    :param hash: the algorithm of ``digest``: ``"sha256"``, ``"sha384"``, ``"sha512"``.
    :param nonce: send a random 63-bit nonce and require it back (replay protection).
    :param cert_req: ask the TSA to include its certificate in the token.
    :param timeout: seconds allowed to the whole exchange.
    :param opener: what sends the request: a :class:`cps.trust.fetch.Fetcher`
        (its proxies, TLS context, User-Agent), or any object with its
        ``post``; default a fresh ``Fetcher(timeout=timeout, deadline=timeout)``.
    :param policy: a TSA policy OID to request (``reqPolicy``), if any.
    :returns: the TimeStampToken (DER ContentInfo), as embedded in CAdES-T.
    :raises TimestampError: see its ``reason`` (``"unreachable"``, ``"timeout"``,
        ``"http-status"``, ``"too-large"``, ``"malformed"``, ``"rejected"``,
        ``"nonce-mismatch"``, ``"imprint-mismatch"``, ``"signature"``...).
    :raises NotSupported: an unknown or weak ``hash``.
    :raises ValueError: ``digest`` has the wrong length for ``hash``.
    """
    digest = _check_digest(digest, hash)
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    nonce_value = (secrets.randbits(63) | (1 << 62)) if nonce else None  # positive, 8 octets
    fields: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": _HASH_OIDS[hash], "parameters": None},
                            "hashed_message": digest},
        "cert_req": bool(cert_req),
    }
    if policy is not None:
        fields["req_policy"] = policy
    if nonce_value is not None:
        fields["nonce"] = nonce_value
    query = tsp.TimeStampReq(fields).dump()

    from .errors import RevocationUnavailable

    if opener is None:
        from .trust.fetch import Fetcher

        opener = Fetcher(timeout=timeout, deadline=timeout)
    try:
        answer = opener.post(url, query, "application/timestamp-query",
                             accept="application/timestamp-reply", max_bytes=MAX_RESPONSE_SIZE,
                             deadline=timeout)
    except RevocationUnavailable as exc:  # the fetcher's transport errors
        raise _transport_error(url, exc) from None
    token = timestamp_token(answer)
    if cert_req:
        verify_timestamp(token, digest, hash=hash, nonce=nonce_value)
    else:  # no certificate to check the signature with: the TSTInfo only
        tst, _ = _tst_info(token)
        _check_tst(tst, digest, hash, nonce_value)
    return token


def timestamp_token(response: bytes) -> bytes:
    """The TimeStampToken of a TimeStampResp (a ``.tsr`` file), once its status granted it.

    Checks nothing but the status: verify the token with :func:`verify_timestamp`.

    :param response: the DER TimeStampResp.
    :returns: the token (DER ContentInfo).
    :raises TimestampError: ``"rejected"`` (``status``, ``fail_info``,
        ``status_text``), ``"malformed"``, ``"too-large"``.
    """
    if not isinstance(response, (bytes, bytearray, memoryview)):
        raise TypeError(f"the response must be bytes, not {type(response).__name__}")
    if len(response) > MAX_RESPONSE_SIZE:
        raise TimestampError(f"timestamp response of {len(response)} bytes", reason="too-large")
    try:
        resp = TimeStampResp.load(bytes(response), strict=True)
        status_info = resp["status"]
        status = status_info["status"].native
        text_field = status_info["status_string"]
        text = "" if isinstance(text_field, core.Void) else "; ".join(
            str(t) for t in text_field.native)
        fail_field = status_info["fail_info"]
        fail_info = () if isinstance(fail_field, core.Void) else tuple(
            sorted(str(b) for b in fail_field.native))
        token_field = resp["time_stamp_token"]
        token: Optional[bytes] = None if isinstance(token_field, core.Void) \
            else bytes(token_field.dump())
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError) as exc:
        raise TimestampError(f"malformed timestamp response: {type(exc).__name__}: {exc}"[:300],
                             reason="malformed") from None
    if status not in _GRANTED:
        detail = ", ".join(p for p in (", ".join(fail_info), text) if p)
        raise TimestampError(f"the TSA refused: {status}" + (f" ({detail})" if detail else ""),
                             reason="rejected", status=str(status), fail_info=fail_info,
                             status_text=text)
    if token is None:
        raise TimestampError(f"the TSA answered {status} without a token", reason="malformed")
    return token


# --------------------------------------------------------------------------- verification
def verify_timestamp(token: bytes, digest: Optional[bytes] = None, *,
                     data: Optional[bytes] = None, hash: Optional[str] = None,
                     validator: Optional["Validator"] = None, at: Optional[datetime] = None,
                     nonce: Optional[int] = None,
                     certificates: Sequence[Union[x509.Certificate, bytes]] = ()
                     ) -> TimestampInfo:
    """Verify an RFC 3161 timestamp token over ``digest`` (or over ``data``).

    Checks the CMS SignedData (one signer, signed contentType id-ct-TSTInfo,
    messageDigest over the TSTInfo, the RSA signature, an ESS
    signing-certificate(-v2) naming the TSA certificate), the TSTInfo
    (version 1, message imprint, ``nonce`` when given, no unknown critical
    extension), that the certificate is a TSA's (extendedKeyUsage exactly
    id-kp-timeStamping, critical; keyUsage, if present, digitalSignature and/or
    nonRepudiation only) and that the ``tsa`` field, if it is a directory
    name, names it; then, with a ``validator``, the TSA certificate's path
    through :mod:`cps.trust` at the token's own genTime (or ``at``).

    :param token: the TimeStampToken (DER ContentInfo, or PEM). A whole
        TimeStampResp is not a token: see :func:`timestamp_token`.
    :param digest: the digest the token must cover; or give ``data``.
    :param data: the timestamped bytes, hashed here with the token's algorithm
        (or ``hash``).
    :param hash: the algorithm of ``digest`` (default ``"sha256"``); with
        ``data``, the algorithm the token must use (default: whichever of
        :data:`TIMESTAMP_HASHES` it names).
    :param validator: a :class:`cps.trust.Validator` trusting the TSA's CA;
        ``None`` checks the token only.
    :param at: when to judge the TSA certificate (aware); default the genTime.
    :param nonce: the nonce of the request, which the token must echo.
    :param certificates: certificates where the TSA's may be found when the
        token carries none (requested without ``certReq``), and more
        intermediates.
    :raises TimestampError: see its ``reason``.
    :raises CertificateParseError: an undecodable certificate in ``certificates``.
    :raises TypeError: ``digest`` and ``data`` both or neither given.
    """
    if (digest is None) == (data is None):
        raise TypeError("give the digest or the data, not both")
    if digest is not None:
        hash = hash or "sha256"
        digest = _check_digest(digest, hash)
    parsed = _decode_token(token, [_to_der(c) for c in certificates])
    assert parsed.content is not None  # noqa: S101 - _decode_token requires it
    try:
        _check_signer_info(parsed, parsed.content)
    except SigningCertificateMismatch as exc:
        raise TimestampError(f"timestamp token: {exc}", reason="signing-certificate",
                             cause=exc) from None
    except (DigestMismatch, SignatureInvalid) as exc:
        raise TimestampError(f"the timestamp token's signature does not verify: {exc}",
                             reason="signature", cause=exc) from None
    except CmsError as exc:
        raise TimestampError(f"timestamp token: {exc}", reason=exc.reason, cause=exc) from None
    if not parsed.cert_ids:  # RFC 3161 2.4.2: the token MUST carry one
        raise TimestampError("the timestamp token has no ESS signing-certificate(-v2) "
                             "attribute naming the TSA certificate",
                             reason="signing-certificate")
    tst = _decode_tst(parsed.content)
    if data is not None:
        algorithm = _imprint_algorithm(tst)
        if hash is not None and hash != algorithm:
            raise TimestampError(f"the token's imprint is {algorithm}, not {hash}",
                                 reason="imprint-mismatch")
        digest = hashlib.new(algorithm, bytes(data)).digest()
        hash = algorithm
    assert digest is not None and hash is not None  # noqa: S101 - set above
    info = _check_tst(tst, digest, hash, nonce)
    tsa = parsed.signer
    _check_tsa_certificate(tsa)
    tsa_name = _check_tsa_name(tst, parsed)
    validation = when = None
    if validator is not None:
        when = info["gen_time"] if at is None else at
        try:
            validation = validator.validate(tsa, intermediates=parsed.others, at=when)
        except CpsError as exc:
            raise TimestampError(f"the TSA certificate is not trusted at "
                                 f"{when.isoformat()}: {exc}", reason="untrusted-tsa",
                                 cause=exc) from None
    return TimestampInfo(tsa_certificate=tsa, tsa_name=tsa_name,
                         certificates=tuple(parsed.others), validation=validation,
                         validation_time=when, token=_unarmor(bytes(token)), **info)


# --------------------------------------------------------------------------- internals
def _check_digest(digest: Any, hash: str) -> bytes:
    from .errors import NotSupported

    if hash not in TIMESTAMP_HASHES:
        raise NotSupported(f"hash {hash!r} for timestamps: use one of "
                           f"{', '.join(TIMESTAMP_HASHES)}")
    if not isinstance(digest, (bytes, bytearray, memoryview)):
        raise TypeError(f"the digest must be bytes, not {type(digest).__name__}")
    value = bytes(digest)
    size = hashlib.new(hash).digest_size
    if len(value) != size:
        raise ValueError(f"a {hash} digest has {size} bytes, not {len(value)}")
    return value


def _transport_error(url: str, exc: Any) -> TimestampError:
    reason = str(getattr(exc, "reason", "unreachable"))
    if reason.startswith("http-error:"):
        code = reason.partition(":")[2]
        return TimestampError(f"timestamp request to {url}: HTTP {code}", reason="http-status",
                              http_status=int(code) if code.isdigit() else None, cause=exc)
    mapped = {"too-large": "too-large", "timeout": "timeout", "unsupported-scheme": "bad-url",
              "bad-url": "bad-url", "forbidden-host": "bad-url"}.get(reason, "unreachable")
    return TimestampError(f"timestamp request failed: {exc}", reason=mapped, cause=exc)


def _decode_token(token: Any, extra: Sequence[bytes]) -> _Parsed:
    """The token as a verified-to-be SignedData over a TSTInfo (not yet checked)."""
    if not isinstance(token, (bytes, bytearray, memoryview)):
        raise TypeError(f"the token must be bytes, not {type(token).__name__}")
    if len(token) > 2 * MAX_RESPONSE_SIZE:
        raise TimestampError(f"timestamp token of {len(token)} bytes", reason="too-large")
    try:
        parsed = _parse(bytes(token), extra)
    except CmsError as exc:
        reason = {"no-signer-certificate": "no-tsa-certificate", "too-large": "too-large",
                  "unsupported": "unsupported", "weak-algorithm": "weak-algorithm"
                  }.get(exc.reason, "malformed")
        raise TimestampError(f"timestamp token: {exc}", reason=reason, cause=exc) from None
    if parsed.content_type != _ID_CT_TST_INFO or parsed.content is None:
        raise TimestampError("not a timestamp token (the SignedData holds no TSTInfo)",
                             reason="malformed")
    return parsed


def _tst_info(token: bytes) -> Tuple[tsp.TSTInfo, bytes]:
    """The TSTInfo of a token without checking its signature (``certReq`` false)."""
    if len(token) > 2 * MAX_RESPONSE_SIZE:
        raise TimestampError(f"timestamp token of {len(token)} bytes", reason="too-large")
    try:
        info = cms.ContentInfo.load(_unarmor(bytes(token)), strict=True)
        if info["content_type"].native != "signed_data":
            raise TimestampError("not a timestamp token (not a SignedData)")
        encap = info["content"]["encap_content_info"]
        if encap["content_type"].dotted != _ID_CT_TST_INFO or \
                isinstance(encap["content"], core.Void):
            raise TimestampError("not a timestamp token (the SignedData holds no TSTInfo)")
        content = bytes(encap["content"].__bytes__())
    except CpsError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError) as exc:
        raise TimestampError(f"malformed timestamp token: {type(exc).__name__}: {exc}"[:300],
                             reason="malformed") from None
    return _decode_tst(content), content


def _decode_tst(content: bytes) -> tsp.TSTInfo:
    try:
        tst = tsp.TSTInfo.load(content, strict=True)
        tst.native  # decode every field now: nothing lazy reaches the checks  # noqa: B018
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError) as exc:
        raise TimestampError(f"malformed TSTInfo: {type(exc).__name__}: {exc}"[:300],
                             reason="malformed") from None
    return tst


def _imprint_algorithm(tst: tsp.TSTInfo) -> str:
    oid = tst["message_imprint"]["hash_algorithm"]["algorithm"].dotted
    if oid == _SHA1_OID:
        raise TimestampError("SHA-1 message imprints are refused (collisions)",
                             reason="weak-algorithm")
    if oid not in _OID_HASHES:
        raise TimestampError(f"message imprint algorithm {oid} is not supported",
                             reason="unsupported")
    return _OID_HASHES[oid]


def _check_tst(tst: tsp.TSTInfo, digest: bytes, hash: str, nonce: Optional[int]
               ) -> dict[str, Any]:
    """Check a decoded TSTInfo against the expected imprint and nonce; its fields."""
    if tst["version"].native != "v1":
        raise TimestampError(f"TSTInfo version {tst['version'].native}: 1 expected",
                             reason="unsupported")
    algorithm = _imprint_algorithm(tst)
    imprint = tst["message_imprint"]["hashed_message"].native
    if algorithm != hash or not hmac.compare_digest(imprint, digest):
        raise TimestampError(f"the token timestamps another {algorithm} digest than the "
                             f"{hash} digest given", reason="imprint-mismatch")
    echoed = tst["nonce"].native
    if nonce is not None and echoed != nonce:
        raise TimestampError("the TSA did not echo the request's nonce"
                             + (" (none in the token)" if echoed is None else ""),
                             reason="nonce-mismatch")
    extensions = tst["extensions"]
    if not isinstance(extensions, core.Void):
        for ext in extensions:
            if ext["critical"].native:
                raise TimestampError(f"unknown critical TSTInfo extension "
                                     f"{ext['extn_id'].dotted}", reason="unsupported")
    gen_time = tst["gen_time"].native
    if not isinstance(gen_time, datetime) or gen_time.tzinfo is None:
        raise TimestampError("genTime is not a UTC time")
    gen_time = gen_time.astimezone(timezone.utc)
    accuracy = None
    acc = tst["accuracy"]
    if not isinstance(acc, core.Void):
        seconds, millis, micros = (acc[k].native or 0 for k in ("seconds", "millis", "micros"))
        if seconds < 0 or not 0 <= millis <= 999 or not 0 <= micros <= 999:
            raise TimestampError("accuracy out of range (RFC 3161 2.4.2)", reason="accuracy")
        if seconds > MAX_ACCURACY.total_seconds():
            raise TimestampError(f"accuracy of {seconds} s: more than MAX_ACCURACY "
                                 f"({MAX_ACCURACY}) (the certificate is judged at genTime + "
                                 "accuracy)", reason="accuracy")
        accuracy = timedelta(seconds=seconds, milliseconds=millis, microseconds=micros)
        if accuracy > MAX_ACCURACY:
            raise TimestampError(f"accuracy of {accuracy}: more than MAX_ACCURACY "
                                 f"({MAX_ACCURACY})", reason="accuracy")
        try:
            gen_time - accuracy
            gen_time + accuracy
        except OverflowError:
            raise TimestampError(f"genTime {gen_time.isoformat()} ± {accuracy} is out of the "
                                 "representable dates", reason="accuracy") from None
    return {"gen_time": gen_time, "serial_number":
            int(tst["serial_number"].native), "policy": tst["policy"].dotted,
            "accuracy": accuracy, "ordering": bool(tst["ordering"].native), "nonce": echoed,
            "hash_algorithm": algorithm, "message_imprint": bytes(imprint)}


def _check_tsa_certificate(cert: x509.Certificate) -> None:
    """RFC 3161 2.3: EKU id-kp-timeStamping, the only one, critical; keyUsage for signing."""
    who = _subject(cert)
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TimestampError(f"{who} is not a TSA certificate (no extendedKeyUsage "
                             "id-kp-timeStamping)", reason="not-a-tsa") from None
    except ValueError as exc:  # duplicate or undecodable extensions
        raise TimestampError(f"{who}: undecodable extensions ({exc})",
                             reason="not-a-tsa") from None
    if list(eku.value) != [_EKU_TIMESTAMPING]:
        raise TimestampError(f"{who} is not a TSA certificate (extendedKeyUsage must be "
                             "id-kp-timeStamping only)", reason="not-a-tsa")
    if not eku.critical:
        raise TimestampError(f"{who}: the timeStamping extendedKeyUsage must be critical "
                             "(RFC 3161 2.3)", reason="not-a-tsa")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    signing = usage.digital_signature or usage.content_commitment
    other = (usage.key_encipherment or usage.data_encipherment or usage.key_agreement
             or usage.key_cert_sign or usage.crl_sign)
    if not signing or other:
        raise TimestampError(f"{who}: keyUsage must be digitalSignature and/or "
                             "nonRepudiation for a TSA", reason="not-a-tsa")


def _check_tsa_name(tst: tsp.TSTInfo, parsed: _Parsed) -> Optional[str]:
    """The ``tsa`` field as text; a directory name must be the TSA certificate's subject."""
    field = tst["tsa"]
    if isinstance(field, core.Void):
        return None
    if field.name != "directory_name":
        return f"{field.name}:{field.native}"
    subject = asn1_x509.Certificate.load(parsed.signer_der)["tbs_certificate"]["subject"]
    if field.chosen != subject:
        raise TimestampError("the TSTInfo names another TSA than the certificate that signed "
                             "it", reason="tsa-name")
    return _subject(parsed.signer)

