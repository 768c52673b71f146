"""OCSP client (RFC 6960): ask a responder whether a certificate is revoked.

:class:`OcspClient` builds a request (SHA-1 CertID by default, as most
responders expect, and a 16-byte nonce), sends it (POST, or GET for short
requests), and accepts the answer only after these checks, in this order:

1. it decodes, its status is ``successful`` and it is a BasicOCSPResponse
   (reasons ``"malformed"``, ``"responder-error:<status>"``);
2. the signer is authorised (RFC 6960 4.2.2.2, reason ``"unauthorized-responder"``):
   the certificate's issuer itself; or a locally trusted responder
   (``trusted_responders``); or a delegated responder certificate included in
   the answer, issued *directly* by the issuer (name and signature), with the
   ``id-kp-OCSPSigning`` extended key usage, valid at the checking time. When a
   delegated certificate lacks ``id-pkix-ocsp-nocheck`` its own revocation is
   not checked: the answer is accepted and :attr:`OcspStatus.responder_unchecked`
   says so;
3. the signature over ``tbsResponseData`` verifies with the signer's key
   (``"bad-signature"``);
4. a single response carries our CertID: issuer name hash, issuer key hash and
   serial, in whatever hash algorithm the responder used (``"certid-mismatch"``);
5. the nonce (RFC 8954): a different nonce is always refused
   (``"nonce-mismatch"``); a missing one is refused when ``require_nonce``
   (default ``True``) with its own reason, ``"nonce-not-echoed"``, whose message
   says what to do: responders that serve pre-computed answers never echo
   nonces, and are used with ``require_nonce=False`` and a freshness bound
   (``max_age``) instead. :class:`OcspClient` logs that case at WARNING once per
   responder URL;
6. freshness, with ``clock_skew`` tolerance (``"not-yet-valid"``, ``"stale"``):
   thisUpdate and producedAt not in the future, and the checking time not past
   :attr:`OcspStatus.usable_until` = min(nextUpdate, thisUpdate + ``max_age``)
   (thisUpdate + ``max_age`` without nextUpdate): a far nextUpdate does not make
   an old answer current.

:class:`OcspClient` reuses an answer across checks only when it carries no
nonce (``use_nonce=False``, or ``require_nonce=False`` and the responder did
not echo it): an answer that echoed our nonce was proof of freshness for that
request only. The cache holds verified answers only, keyed by content (CertID
hash algorithm, issuer name hash, issuer key hash, serial, responder URL), is a
bounded LRU (``cache_size``), and serves an entry only while
``thisUpdate - clock_skew <= at <= usable_until``. A cached ``revoked``
status (other than certificateHold) is final: no later answer, or lack of one,
turns it back into ``good``.

Every refusal raises :class:`~cps.errors.OcspError` (``source`` = responder
URL, ``reason`` as above); transport failures raise
:class:`~cps.errors.RevocationUnavailable` (``"unreachable"``, ``"timeout"``,
``"too-large"``, ``"http-error:<status>"``...) from :class:`~cps.trust.fetch.Fetcher`.
Whether a ``revoked`` or ``unknown`` status (or an error) fails a validation is
the validator's decision, not this module's.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from asn1crypto import core as asn1_core
from asn1crypto import keys as asn1_keys
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from ..errors import OcspError, RevocationUnavailable
from .algorithms import is_sha1, verify_signature
from .fetch import DEFAULT_POST_MAX_BYTES, Fetcher

__all__ = [
    "NONCE_SIZE",
    "OcspClient",
    "OcspStatus",
    "build_request",
    "ocsp_urls",
    "validate_response",
]

log = logging.getLogger(__name__)

#: Nonce length: RFC 8954 asks for 1..32 octets and recommends 32; 16 random
#: octets are unguessable and fit responders that cap the length at 16.
NONCE_SIZE = 16
#: RFC 6960 appendix A.1: GET is for requests whose encoding is under 255 bytes.
MAX_GET_LENGTH = 255
#: What :class:`OcspClient` does with a responder that ignores nonces (the
#: message of ``OcspError(reason="nonce-not-echoed")``).
NONCE_NOT_ECHOED_ADVICE = (
    "the responder did not echo the request's nonce (it may serve pre-computed answers); "
    "to use it, set OcspClient(require_nonce=False) and bound freshness with max_age "
    "(OcspClient(max_age=...), default 7 days)")
_RSASSA_PSS = x509.ObjectIdentifier("1.2.840.113549.1.1.10")
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}
_STATUS = {
    ocsp.OCSPCertStatus.GOOD: "good",
    ocsp.OCSPCertStatus.REVOKED: "revoked",
    ocsp.OCSPCertStatus.UNKNOWN: "unknown",
}


@dataclass(frozen=True)
class OcspStatus:
    """A verified OCSP answer about one certificate.

    :ivar status: ``"good"``, ``"revoked"`` or ``"unknown"``.
    :ivar revocation_time: when it was revoked (``revoked`` only).
    :ivar revocation_reason: RFC 5280 reason name (``"keyCompromise"``...), ``None``
        when the responder gave none.
    :ivar this_update: when the status was known to be correct.
    :ivar next_update: when newer information will be available (may be ``None``).
    :ivar produced_at: when the responder signed.
    :ivar responder: RFC 4514 subject of the signing certificate.
    :ivar source: the responder URL.
    :ivar authorized_by: ``"issuer"``, ``"delegated"`` or ``"trusted"``: why the
        signer was accepted.
    :ivar responder_unchecked: a delegated responder certificate without
        ``id-pkix-ocsp-nocheck``: its own revocation was not checked.
    :ivar nonce_echoed: the answer echoed the nonce of our request (``False`` when
        none was sent, or the responder ignored it). Only answers with
        ``nonce_echoed=False`` are reused by :class:`OcspClient`'s cache.
    :ivar notes: human-readable remarks about accepted irregularities.
    :ivar usable_until: the last moment the answer may be relied on:
        min(nextUpdate, thisUpdate + max_age), thisUpdate + max_age when there is
        no nextUpdate (``max_age`` of the check that accepted it).
    """

    status: str
    revocation_time: datetime | None
    revocation_reason: str | None
    this_update: datetime
    next_update: datetime | None
    produced_at: datetime
    responder: str
    source: str
    authorized_by: str = "issuer"
    responder_unchecked: bool = False
    nonce_echoed: bool = False
    notes: tuple[str, ...] = ()
    usable_until: datetime = field(kw_only=True)


# --------------------------------------------------------------------------- requests


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    """The ``http(s)`` OCSP responder URLs of a certificate's AIA extension.

    :param cert: the certificate to check.
    :returns: URLs in certificate order (empty when there is none or the
        extension is malformed).
    """
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    urls = []
    for description in aia:
        location = description.access_location
        if (description.access_method == AuthorityInformationAccessOID.OCSP
                and isinstance(location, x509.UniformResourceIdentifier)
                and urllib.parse.urlsplit(location.value).scheme.lower() in ("http", "https")):
            urls.append(location.value)
    return urls


def build_request(cert: x509.Certificate, issuer: x509.Certificate, *,
                  algorithm: hashes.HashAlgorithm | None = None,
                  nonce: bytes | None = None) -> bytes:
    """DER OCSPRequest for one certificate.

    :param cert: the certificate to check.
    :param issuer: its issuer's certificate (hashes of its name and key form the CertID).
    :param algorithm: CertID hash; default SHA-1 (RFC 5019 profile, what deployed
        responders answer).
    :param nonce: nonce extension value, or ``None`` for no nonce.
    """
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer,
                                                        algorithm or hashes.SHA1())  # noqa: S303
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


# --------------------------------------------------------------------------- validation


def validate_response(*args: Any, **kwargs: Any) -> "OcspStatus":
    """Check a DER OCSP response (see :func:`_validate_response` for the parameters).

    Whatever a hostile responder sends, only :class:`~cps.errors.OcspError`
    (or another cps error) comes out: cryptography's own exceptions on broken
    certificates inside the answer are turned into ``reason="malformed"``.
    """
    return _verified(*args, **kwargs)[0]


def _verified(*args: Any, **kwargs: Any) -> tuple["OcspStatus", x509.Certificate]:
    """:func:`_verify_answer` with cryptography's exceptions turned into ``OcspError``."""
    _check_max_age(kwargs.get("max_age", timedelta(days=7)))
    try:
        return _verify_answer(*args, **kwargs)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        source = kwargs.get("source", "")
        raise OcspError(f"{source}: malformed OCSP response ({exc})", source=source,
                        reason="malformed") from None


def _validate_response(
    der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    at: datetime,
    source: str = "",
    nonce: bytes | None = None,
    require_nonce: bool = True,
    trusted_responders: Sequence[x509.Certificate] = (),
    max_age: timedelta = timedelta(days=7),
    clock_skew: timedelta = timedelta(minutes=5),
    allow_sha1: bool = True,
) -> OcspStatus:
    """Check an OCSP answer about ``cert`` (see the module docstring for the checks).

    Usable on its own for answers obtained elsewhere (stapled, from a file).

    :param der: the DER OCSPResponse.
    :param cert: the certificate asked about.
    :param issuer: its issuer.
    :param at: the checking time (aware): freshness and responder validity.
    :param source: where the answer came from (for errors and the result).
    :param nonce: the nonce that was sent, if any.
    :param require_nonce: refuse (``"nonce-not-echoed"``) an answer that does not
        echo ``nonce``.
    :param trusted_responders: responder certificates trusted locally.
    :param max_age: how long after its thisUpdate an answer stays usable, whatever
        its nextUpdate says (:attr:`OcspStatus.usable_until`).
    :param clock_skew: tolerance between our clock and the responder's.
    :raises OcspError: the answer is unusable (``reason`` says why).
    """
    return _verify_answer(der, cert, issuer, at=at, source=source, nonce=nonce,
                          require_nonce=require_nonce, trusted_responders=trusted_responders,
                          max_age=max_age, clock_skew=clock_skew, allow_sha1=allow_sha1)[0]


def _verify_answer(
    der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    at: datetime,
    source: str = "",
    nonce: bytes | None = None,
    require_nonce: bool = True,
    trusted_responders: Sequence[x509.Certificate] = (),
    max_age: timedelta = timedelta(days=7),
    clock_skew: timedelta = timedelta(minutes=5),
    allow_sha1: bool = True,
) -> tuple[OcspStatus, x509.Certificate]:
    """:func:`_validate_response`, also returning the certificate whose key verified it."""
    at = _aware(at)
    response = _load(der, source)
    oid = response.signature_algorithm_oid.dotted_string
    params = _response_signature_parameters(der)
    if not allow_sha1 and is_sha1(oid, params):
        raise OcspError(f"{source}: the OCSP response is signed with SHA-1, which is "
                        "refused (allow_sha1=False)", source=source, reason="weak-algorithm")
    signer, authorized_by, unchecked, notes = _authorize(response, issuer, at,
                                                         trusted_responders, source,
                                                         allow_sha1)
    _check_signature(response, signer, source, params)
    single = _matching_single(response, cert, issuer, source)
    echoed = _check_nonce(response, nonce, require_nonce, source, notes)
    try:
        this_update = _utc(single, "this_update")
        next_update = _utc(single, "next_update")
        produced_at = _utc(response, "produced_at")
        status = _STATUS[single.certificate_status]
        revoked_at = _utc(single, "revocation_time") if status == "revoked" else None
        reason = single.revocation_reason if status == "revoked" else None
    except (ValueError, KeyError) as exc:
        raise OcspError(f"{source}: malformed single response ({exc})", source=source,
                        reason="malformed") from exc
    assert this_update is not None and produced_at is not None  # noqa: S101 - mandatory fields
    usable_until = _usable_until(this_update, next_update, max_age)
    _check_freshness(this_update, next_update, produced_at, at, max_age, clock_skew, source)
    return OcspStatus(
        status=status, revocation_time=revoked_at,
        revocation_reason=reason.value if reason is not None else None,
        this_update=this_update, next_update=next_update, produced_at=produced_at,
        responder=signer.subject.rfc4514_string(), source=source,
        authorized_by=authorized_by, responder_unchecked=unchecked,
        nonce_echoed=echoed, notes=tuple(notes), usable_until=usable_until,
    ), signer


def _load(der: bytes, source: str) -> ocsp.OCSPResponse:
    try:
        response = ocsp.load_der_ocsp_response(der)
        status = response.response_status
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise OcspError(f"{source}: not an OCSP response ({exc})", source=source,
                        reason="malformed") from exc
    if status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        name = status.name.lower()
        raise OcspError(f"{source}: the responder answered {name}", source=source,
                        reason=f"responder-error:{name}")
    try:
        # Touch the mandatory fields now so that later code meets no lazy ValueError.
        _ = (response.tbs_response_bytes, response.signature, _utc(response, "produced_at"),
             response.certificates, response.responder_name, response.responder_key_hash)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise OcspError(f"{source}: malformed BasicOCSPResponse ({exc})", source=source,
                        reason="malformed") from exc
    return response


def _authorize(response: ocsp.OCSPResponse, issuer: x509.Certificate, at: datetime,
               trusted: Sequence[x509.Certificate], source: str, allow_sha1: bool = True
               ) -> tuple[x509.Certificate, str, bool, list[str]]:
    """Find the signer among issuer / trusted / included certificates; check its authority."""
    refusals: list[str] = []
    if _is_responder(issuer, response):
        return issuer, "issuer", False, []
    for candidate in trusted:
        if _is_responder(candidate, response):
            return candidate, "trusted", False, []
    for candidate in response.certificates:
        if not _is_responder(candidate, response):
            continue
        problem = _delegation_problem(candidate, issuer, at, allow_sha1, source)
        if problem is not None:
            refusals.append(f"{candidate.subject.rfc4514_string()}: {problem}")
            continue
        notes = []
        unchecked = not _has_extension(candidate, x509.OCSPNoCheck)
        if unchecked:
            notes.append("the delegated responder certificate has no id-pkix-ocsp-nocheck: "
                         "its own revocation status was not checked")
        return candidate, "delegated", unchecked, notes
    detail = "; ".join(refusals) or "the signer is neither the issuer, nor a trusted " \
                                    "responder, nor an included certificate"
    raise OcspError(f"{source}: unauthorised OCSP responder ({detail})", source=source,
                    reason="unauthorized-responder")


def _delegation_problem(candidate: x509.Certificate, issuer: x509.Certificate,
                        at: datetime, allow_sha1: bool = True, source: str = "") -> str | None:
    """Why ``candidate`` may not answer for ``issuer`` (RFC 6960 4.2.2.2), or ``None``.

    Its signature is checked under the same algorithm policy as certificates,
    CRLs and answers (:mod:`cps.trust.algorithms`): a SHA-1 signature is a
    SHA-1 signature, not "another issuer".
    """
    if candidate.issuer != issuer.subject:
        return "not issued directly by the certificate's issuer (its issuer name differs)"
    oid = candidate.signature_algorithm_oid.dotted_string
    params = _certificate_signature_parameters(candidate)
    if not allow_sha1 and is_sha1(oid, params):
        raise OcspError(f"{source}: the delegated responder certificate "
                        f"{candidate.subject.rfc4514_string()} is signed with SHA-1, which is "
                        "refused (allow_sha1=False)", source=source, reason="weak-algorithm")
    try:
        _verify(issuer.public_key(), candidate.signature, candidate.tbs_certificate_bytes,
                candidate.signature_hash_algorithm, candidate.signature_algorithm_oid, params)
    except InvalidSignature:
        return "its signature does not verify with the issuer's key"
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"its signature cannot be checked ({exc})"
    try:
        eku = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "no extended key usage id-kp-OCSPSigning"
    except ValueError:
        return "malformed extensions"
    if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        return "extended key usage lacks id-kp-OCSPSigning"
    try:
        usage = candidate.extensions.get_extension_for_class(x509.KeyUsage).value
        if not (usage.digital_signature or usage.content_commitment):
            return "key usage forbids signatures"
    except x509.ExtensionNotFound:
        pass
    if not candidate.not_valid_before_utc <= at <= candidate.not_valid_after_utc:
        return (f"not valid at {at.isoformat()} ({candidate.not_valid_before_utc.isoformat()}"
                f" .. {candidate.not_valid_after_utc.isoformat()})")
    return None


def _is_responder(cert: x509.Certificate, response: ocsp.OCSPResponse) -> bool:
    """Whether the ResponderID (byName or byKey) designates ``cert``."""
    if response.responder_name is not None:
        return cert.subject == response.responder_name
    key_hash = response.responder_key_hash
    return key_hash is not None and hmac.compare_digest(
        _key_hash(cert, hashes.SHA1()), key_hash)  # noqa: S303 - RFC 6960 fixes SHA-1 here


def _check_signature(response: ocsp.OCSPResponse, signer: x509.Certificate,
                     source: str, params: bytes | None = None) -> None:
    try:
        algorithm = response.signature_hash_algorithm
        _verify(signer.public_key(), response.signature, response.tbs_response_bytes,
                algorithm, response.signature_algorithm_oid, params)
    except InvalidSignature:
        raise OcspError(f"{source}: the OCSP response signature does not verify with the key "
                        f"of {signer.subject.rfc4514_string()}", source=source,
                        reason="bad-signature") from None
    except (UnsupportedAlgorithm, ValueError, TypeError) as exc:
        raise OcspError(f"{source}: cannot verify the OCSP signature ({exc})", source=source,
                        reason="bad-signature") from exc


def _verify(key: object, signature: bytes, data: bytes,
            algorithm: hashes.HashAlgorithm | None, oid: x509.ObjectIdentifier,
            params: bytes | None = None) -> None:
    """Raise InvalidSignature unless ``signature`` verifies (:mod:`cps.trust.algorithms`)."""
    if not verify_signature(key, signature, data, oid.dotted_string, params):
        raise InvalidSignature(f"the signature does not verify with a {type(key).__name__}")


def _response_signature_parameters(der: bytes) -> bytes | None:
    """The raw parameters of a BasicOCSPResponse's signatureAlgorithm (None if absent)."""
    return _raw_parameters(
        lambda: asn1_ocsp.OCSPResponse.load(der)["response_bytes"]["response"].parsed)


def _certificate_signature_parameters(cert: x509.Certificate) -> bytes | None:
    """The raw parameters of a certificate's signatureAlgorithm (None if absent)."""
    return _raw_parameters(
        lambda: asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)))


def _raw_parameters(signed: Callable[[], Any]) -> bytes | None:
    """The signatureAlgorithm parameters of what ``signed()`` decodes, as DER."""
    try:
        params = signed()["signature_algorithm"]["parameters"]
        return None if isinstance(params, asn1_core.Void) or params.native is None \
            else params.dump()
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _matching_single(response: ocsp.OCSPResponse, cert: x509.Certificate,
                     issuer: x509.Certificate, source: str) -> ocsp.OCSPSingleResponse:
    """The SingleResponse whose CertID designates ``cert`` (RFC 6960 4.2.2.3)."""
    name_der = issuer.subject.public_bytes()
    try:
        singles = list(response.responses)
    except ValueError as exc:
        raise OcspError(f"{source}: malformed responses ({exc})", source=source,
                        reason="malformed") from exc
    seen = []
    for single in singles:
        try:
            algorithm = single.hash_algorithm
            name_hash, key_hash, serial = (single.issuer_name_hash, single.issuer_key_hash,
                                           single.serial_number)
        except (ValueError, UnsupportedAlgorithm):
            continue
        if algorithm.name not in _HASHES:
            continue
        if (serial == cert.serial_number
                and hmac.compare_digest(name_hash, _digest(algorithm, name_der))
                and hmac.compare_digest(key_hash, _key_hash(issuer, algorithm))):
            return single
        seen.append(f"serial {serial:x}")
    raise OcspError(f"{source}: the answer is not about serial {cert.serial_number:x} of "
                    f"{issuer.subject.rfc4514_string()} (it covers: "
                    f"{', '.join(seen) or 'nothing usable'})", source=source,
                    reason="certid-mismatch")


def _check_nonce(response: ocsp.OCSPResponse, nonce: bytes | None, required: bool,
                 source: str, notes: list[str]) -> bool:
    """Whether the answer echoes ``nonce`` (``False`` when none was sent)."""
    if nonce is None:
        return False
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        if required:
            raise OcspError(f"{source}: {NONCE_NOT_ECHOED_ADVICE}", source=source,
                            reason="nonce-not-echoed") from None
        notes.append("the responder did not echo the nonce (replay protection relies on "
                     "freshness only)")
        return False
    except ValueError as exc:
        raise OcspError(f"{source}: malformed response extensions ({exc})", source=source,
                        reason="malformed") from exc
    if not hmac.compare_digest(echoed, nonce):
        raise OcspError(f"{source}: the nonce in the answer is not the one sent (replay?)",
                        source=source, reason="nonce-mismatch")
    return True


def _check_max_age(max_age: timedelta) -> None:
    if not isinstance(max_age, timedelta) or max_age <= timedelta(0):
        raise ValueError(f"max_age must be a positive timedelta, not {max_age!r}")


def _usable_until(this_update: datetime, next_update: datetime | None,
                  max_age: timedelta) -> datetime:
    """min(nextUpdate, thisUpdate + max_age); thisUpdate + max_age without nextUpdate."""
    limit = this_update + max_age
    return limit if next_update is None else min(next_update, limit)


def _check_freshness(this_update: datetime, next_update: datetime | None,
                     produced_at: datetime, at: datetime, max_age: timedelta,
                     skew: timedelta, source: str) -> None:
    if this_update > at + skew or produced_at > at + skew:
        raise OcspError(f"{source}: the answer is dated in the future (thisUpdate "
                        f"{this_update.isoformat()}, producedAt {produced_at.isoformat()}, "
                        f"now {at.isoformat()})", source=source, reason="not-yet-valid")
    if next_update is not None and next_update < at - skew:
        raise OcspError(f"{source}: stale answer (nextUpdate {next_update.isoformat()}, "
                        f"now {at.isoformat()})", source=source, reason="stale")
    if this_update + max_age < at - skew:
        raise OcspError(f"{source}: stale answer (thisUpdate {this_update.isoformat()} is "
                        f"more than max_age={max_age} before {at.isoformat()}, whatever its "
                        f"nextUpdate)", source=source, reason="stale")


# --------------------------------------------------------------------------- helpers


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(_HASHES[algorithm.name]())
    digest.update(data)
    return digest.finalize()


def _key_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """Hash of the subjectPublicKey BIT STRING value (CertID issuerKeyHash, byKey)."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    # contents = unused-bits octet + key bits; the hash covers the key bits only.
    bits = asn1_keys.PublicKeyInfo.load(spki)["public_key"].contents[1:]
    return _digest(algorithm, bits)


def _has_extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> bool:
    try:
        cert.extensions.get_extension_for_class(kind)
    except (x509.ExtensionNotFound, ValueError):
        return False
    return True


def _utc(obj: object, name: str) -> datetime | None:
    # cryptography >= 43 has aware *_utc properties; older versions naive UTC ones.
    value = getattr(obj, f"{name}_utc", None) if hasattr(obj, f"{name}_utc") \
        else getattr(obj, name)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def _authority_holds(entry: "_CacheEntry", at: datetime | None,
                     trusted: Sequence[x509.Certificate]) -> bool:
    """Whether a cached answer's signer would still be accepted (at ``at``, if given)."""
    if entry.trusted_signer is not None and not any(
            hmac.compare_digest(entry.trusted_signer, t.fingerprint(hashes.SHA256()))
            for t in trusted):
        return False
    if at is not None and entry.signer_validity is not None:
        return entry.signer_validity[0] <= at <= entry.signer_validity[1]
    return True


def _is_final_revocation(entry: "_CacheEntry", trusted: Sequence[x509.Certificate]) -> bool:
    """A cached ``revoked`` answer that no later answer may undo (RFC 5280 5.3.1: only
    certificateHold is reversible), signed by a responder this check still accepts."""
    status = entry.status
    return (status.status == "revoked" and status.revocation_reason not in _REVERSIBLE_REASONS
            and _authority_holds(entry, None, trusted))


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise TypeError("naive datetime: give an aware (UTC) datetime")
    return moment.astimezone(timezone.utc)


# --------------------------------------------------------------------------- client


@dataclass(frozen=True)
class _CacheEntry:
    """A verified answer without nonce, and what its acceptance depended on."""

    status: OcspStatus
    #: validity of the delegated responder certificate (``None``: issuer or trusted)
    signer_validity: tuple[datetime, datetime] | None
    #: SHA-256 of the locally trusted responder that signed (``authorized_by="trusted"``)
    trusted_signer: bytes | None


#: Revocation reasons after which a certificate may become good again (RFC 5280 5.3.1).
_REVERSIBLE_REASONS = frozenset({"certificateHold", "removeFromCRL"})
#: How many responder URLs :class:`OcspClient` remembers having warned about.
_WARNED_URLS = 256


#: (CertID hash name, issuer name hash, issuer key hash, serial, URL, allow_sha1)
_CacheKey = tuple[str, bytes, bytes, int, str, bool]


class OcspClient:
    """Asks OCSP responders and verifies their answers.

    :param fetcher: the HTTP transport (shares its proxies, user agent, clock);
        ``None`` creates a cache-less :class:`~cps.trust.fetch.Fetcher`.
    :param timeout: overall time limit of one exchange, in seconds.
    :param use_nonce: send a random nonce (RFC 8954) with each request.
    :param require_nonce: refuse answers that do not echo the nonce (``OcspError``,
        reason ``"nonce-not-echoed"``, logged at WARNING once per responder URL).
        Set ``False`` for responders serving pre-computed answers: their answers
        are then accepted (a note says so), bounded by ``max_age``, and cached.
    :param hash_algorithm: CertID hash, ``"sha1"`` (default) or ``"sha256"``...
    :param method: ``"post"`` (default) or ``"get"`` (RFC 6960 A.1; used only for
        requests shorter than 255 bytes once base64-encoded, POST otherwise). A POST
        refused with ``405`` is retried as GET.
    :param max_bytes: largest answer accepted.
    :param clock: current time (default: the fetcher's clock).
    :param max_age: default of :meth:`check`'s ``max_age``: an answer is usable
        until min(nextUpdate, thisUpdate + max_age) (:attr:`OcspStatus.usable_until`).
    :param cache_size: how many answers the cache keeps (least recently used
        dropped first); ``0`` disables it. Only verified answers that carry no
        nonce of ours (``nonce_echoed=False``) are cached: an echoed nonce proves
        freshness to one request only. An entry is keyed by content (CertID hash
        algorithm, issuer name and key hashes, serial, responder URL) and served
        only while ``thisUpdate - clock_skew <= at <= usable_until`` (with the
        ``max_age`` of the check asking). A cached ``revoked`` status stays revoked
        (RFC 5280 5.3.1: only certificateHold is reversible): past its
        ``usable_until`` a new answer is asked for, but if that answer says
        ``good`` or ``unknown``, or none is usable, the revoked status is
        returned (with a note saying why) rather than a success or an error. The
        cache is thread-safe.
    :param allow_sha1: accept answers (and delegated responder certificates)
        signed with SHA-1 (default); ``False`` refuses them (``"weak-algorithm"``),
        as ``Validator(allow_sha1=False)`` does for certificates and CRLs.
    """

    def __init__(self, fetcher: Fetcher | None = None, timeout: float = 10.0,
                 use_nonce: bool = True, *, require_nonce: bool = True,
                 hash_algorithm: str = "sha1", method: str = "post",
                 max_bytes: int = DEFAULT_POST_MAX_BYTES,
                 clock: Callable[[], datetime] | None = None,
                 max_age: timedelta = timedelta(days=7),
                 cache_size: int = 1024, allow_sha1: bool = True) -> None:
        if hash_algorithm not in _HASHES:
            raise ValueError(f"unsupported CertID hash {hash_algorithm!r}")
        if method not in ("post", "get"):
            raise ValueError("method must be 'post' or 'get'")
        _check_max_age(max_age)
        self.allow_sha1 = allow_sha1
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be an integer >= 0, not {cache_size!r}")
        self.fetcher = fetcher if fetcher is not None else Fetcher(timeout=timeout)
        self.timeout = float(timeout)
        self.use_nonce = use_nonce
        self.require_nonce = require_nonce
        self.hash_algorithm = hash_algorithm
        self.method = method
        self.max_bytes = max_bytes
        self.clock = clock or self.fetcher.clock
        self.max_age = max_age
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[_CacheKey, _CacheEntry] = OrderedDict()
        self._warned: OrderedDict[str, None] = OrderedDict()

    def check(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        *,
        url: str | None = None,
        at: datetime | None = None,
        trusted_responders: Iterable[x509.Certificate] = (),
        max_age: timedelta | None = None,
        clock_skew: timedelta = timedelta(minutes=5),
        allow_sha1: bool | None = None,
    ) -> OcspStatus:
        """Ask for the status of ``cert`` and verify the answer (or reuse a cached one).

        :param cert: the certificate to check.
        :param issuer: its issuer's certificate.
        :param url: responder URL; default the certificate's AIA OCSP URLs (tried
            in order until one gives a usable answer).
        :param at: the time the answer must be current at (freshness, validity of
            the responder certificate); default the clock. Like a CRL, an OCSP
            answer only tells the status as of its thisUpdate: a ``revoked`` status
            carries ``revocation_time`` for callers that reason about earlier times.
        :param trusted_responders: responder certificates trusted locally (RFC 6960
            4.2.2.2 first case), e.g. a responder pinned by configuration.
        :param max_age: how long after its thisUpdate an answer stays usable, even
            when its nextUpdate is later; default the client's ``max_age`` (7 days).
        :param clock_skew: tolerance between our clock and the responder's.
        :param allow_sha1: accept SHA-1 signatures (answer, delegated responder
            certificate); default the client's ``allow_sha1``.
        :raises OcspError: an answer came but is unusable (see :func:`validate_response`).
        :raises RevocationUnavailable: no responder (``"no-responder"``) or no
            answer (transport reasons of :class:`~cps.trust.fetch.Fetcher`).
        """
        max_age = self.max_age if max_age is None else max_age
        allow_sha1 = self.allow_sha1 if allow_sha1 is None else allow_sha1
        _check_max_age(max_age)
        urls = [url] if url else ocsp_urls(cert)
        if not urls:
            raise RevocationUnavailable(
                f"no OCSP responder URL for {cert.subject.rfc4514_string()}",
                reason="no-responder")
        trusted = tuple(trusted_responders)
        failures: list[Exception] = []
        for target in urls:
            try:
                return self._check_one(target, cert, issuer, at, trusted, max_age, clock_skew,
                                       allow_sha1)
            except (OcspError, RevocationUnavailable) as exc:
                log.info("OCSP %s: %s", target, exc)
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        raise RevocationUnavailable(
            f"no OCSP responder gave a usable answer ({'; '.join(map(str, failures))})",
            source=", ".join(urls), reason="unreachable", failures=failures)

    def clear_cache(self) -> None:
        """Forget every cached answer."""
        with self._lock:
            self._cache.clear()

    def _check_one(self, url: str, cert: x509.Certificate, issuer: x509.Certificate,
                   at: datetime | None, trusted: Sequence[x509.Certificate],
                   max_age: timedelta, clock_skew: timedelta,
                   allow_sha1: bool = True) -> OcspStatus:
        algorithm = _HASHES[self.hash_algorithm]()
        key = None
        if self.cache_size:
            # allow_sha1 is part of the key: an answer accepted under a laxer policy
            # is never served to a stricter one
            key = (self.hash_algorithm, _digest(algorithm, issuer.subject.public_bytes()),
                   _key_hash(issuer, algorithm), cert.serial_number, url, allow_sha1)
            moment = _aware(at) if at is not None else _aware(self.clock())
            cached = self._cached(key, moment, trusted, max_age, clock_skew)
            if cached is not None:
                return cached
        nonce = os.urandom(NONCE_SIZE) if self.use_nonce else None
        request = build_request(cert, issuer, algorithm=algorithm, nonce=nonce)
        try:
            answer = self._send(url, request)
            # The checking time is taken after the exchange: a slow responder must not
            # make a just-produced answer look like it comes from the future.
            moment = _aware(at) if at is not None else _aware(self.clock())
            status, signer = _verified(answer, cert, issuer, at=moment, source=url,
                                       nonce=nonce, require_nonce=self.require_nonce,
                                       trusted_responders=trusted, max_age=max_age,
                                       clock_skew=clock_skew, allow_sha1=allow_sha1)
        except (OcspError, RevocationUnavailable) as exc:
            if isinstance(exc, OcspError) and exc.reason == "nonce-not-echoed":
                self._warn_once(url, str(exc))
            revoked = self._final_revocation(key, trusted) if key is not None else None
            if revoked is None:
                raise
            log.info("OCSP %s: %s; an earlier verified answer said revoked", url, exc)
            return replace(revoked, notes=revoked.notes + (
                f"no usable answer now ({exc}); an earlier verified answer said revoked, "
                f"and a revocation is final",))
        if key is None or status.nonce_echoed:
            return status
        return self._remember(key, status, signer, trusted)

    # -- the cache ---------------------------------------------------------------

    def _cached(self, key: _CacheKey, at: datetime,
                trusted: Sequence[x509.Certificate], max_age: timedelta,
                skew: timedelta) -> OcspStatus | None:
        """The cached status for ``key`` if usable at ``at`` under this check's settings."""
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            self._cache.move_to_end(key)
        status = entry.status
        until = _usable_until(status.this_update, status.next_update, max_age)
        if not (status.this_update - skew <= at and status.produced_at - skew <= at
                and at <= until and _authority_holds(entry, at, trusted)):
            return None
        return status if until == status.usable_until else \
            replace(status, usable_until=until)

    def _remember(self, key: _CacheKey, status: OcspStatus,
                  signer: x509.Certificate, trusted: Sequence[x509.Certificate]) -> OcspStatus:
        """Cache a verified nonce-less answer; what to return (a kept revocation wins)."""
        entry = _CacheEntry(
            status,
            (signer.not_valid_before_utc, signer.not_valid_after_utc)
            if status.authorized_by == "delegated" else None,
            signer.fingerprint(hashes.SHA256()) if status.authorized_by == "trusted" else None)
        with self._lock:
            previous = self._cache.get(key)
            if previous is not None and status.status != "revoked" \
                    and _is_final_revocation(previous, trusted):
                self._cache.move_to_end(key)
                kept = previous.status
            else:
                if previous is None or previous.status.this_update <= status.this_update:
                    self._cache[key] = entry
                    self._cache.move_to_end(key)
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
                return status
        log.warning("OCSP %s: answered %s (thisUpdate %s) for serial %x after a verified "
                    "revoked answer (%s, thisUpdate %s); the certificate stays revoked",
                    status.source, status.status, status.this_update.isoformat(), key[3],
                    kept.revocation_reason, kept.this_update.isoformat())
        return replace(kept, notes=kept.notes + (
            f"a later answer (thisUpdate {status.this_update.isoformat()}) said "
            f"{status.status}; a revocation is final, the certificate stays revoked",))

    def _final_revocation(self, key: _CacheKey,
                          trusted: Sequence[x509.Certificate]) -> OcspStatus | None:
        """A cached revoked status for ``key`` that nothing can undo, whatever its age."""
        with self._lock:
            entry = self._cache.get(key)
        return entry.status if entry is not None and _is_final_revocation(entry, trusted) \
            else None

    def _warn_once(self, url: str, message: str) -> None:
        with self._lock:
            if url in self._warned:
                self._warned.move_to_end(url)
                return
            self._warned[url] = None
            while len(self._warned) > _WARNED_URLS:
                self._warned.popitem(last=False)
        log.warning("OCSP %s (logged once for this responder)", message)

    def _send(self, url: str, request: bytes) -> bytes:
        encoded = urllib.parse.quote(base64.b64encode(request).decode("ascii"), safe="")
        get_url = url.rstrip("/") + "/" + encoded
        accept = "application/ocsp-response"
        if self.method == "get" and len(encoded) <= MAX_GET_LENGTH:
            return self.fetcher.get(get_url, accept=accept, max_bytes=self.max_bytes,
                                    deadline=self.timeout)
        try:
            return self.fetcher.post(url, request, "application/ocsp-request", accept=accept,
                                     max_bytes=self.max_bytes, deadline=self.timeout)
        except RevocationUnavailable as exc:
            if exc.reason != "http-error:405":
                raise
            log.info("OCSP %s refuses POST; retrying with GET", url)
            return self.fetcher.get(get_url, accept=accept, max_bytes=self.max_bytes,
                                    deadline=self.timeout)
