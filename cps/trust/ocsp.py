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
5. the nonce is echoed (``"nonce-mismatch"``): a different nonce is always
   refused; a missing one only when ``require_nonce`` (default ``True``: our test
   PKI echoes nonces; many production responders, which pre-compute answers,
   do not, so set it to ``False`` for them);
6. freshness, with ``clock_skew`` tolerance (``"not-yet-valid"``, ``"stale"``):
   thisUpdate and producedAt not in the future, nextUpdate (when present) not
   in the past, and without nextUpdate, thisUpdate no older than ``max_age``.

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
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from asn1crypto import keys as asn1_keys  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from ..errors import OcspError, RevocationUnavailable
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
    :ivar nonce_echoed: ``True``/``False`` whether the nonce came back, ``None`` when
        none was sent.
    :ivar notes: human-readable remarks about accepted irregularities.
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
    nonce_echoed: bool | None = None
    notes: tuple[str, ...] = ()


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
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        return _validate_response(*args, **kwargs)
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
) -> OcspStatus:
    """Check an OCSP answer about ``cert`` (see the module docstring for the checks).

    Usable on its own for answers obtained elsewhere (stapled, from a file).

    :param der: the DER OCSPResponse.
    :param cert: the certificate asked about.
    :param issuer: its issuer.
    :param at: the checking time (aware): freshness and responder validity.
    :param source: where the answer came from (for errors and the result).
    :param nonce: the nonce that was sent, if any.
    :param require_nonce: refuse an answer that does not echo ``nonce``.
    :param trusted_responders: responder certificates trusted locally.
    :param max_age: oldest acceptable thisUpdate when nextUpdate is absent.
    :param clock_skew: tolerance between our clock and the responder's.
    :raises OcspError: the answer is unusable (``reason`` says why).
    """
    at = _aware(at)
    response = _load(der, source)
    signer, authorized_by, unchecked, notes = _authorize(response, issuer, at,
                                                         trusted_responders, source)
    _check_signature(response, signer, source)
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
    _check_freshness(this_update, next_update, produced_at, at, max_age, clock_skew, source)
    return OcspStatus(
        status=status, revocation_time=revoked_at,
        revocation_reason=reason.value if reason is not None else None,
        this_update=this_update, next_update=next_update, produced_at=produced_at,
        responder=signer.subject.rfc4514_string(), source=source,
        authorized_by=authorized_by, responder_unchecked=unchecked,
        nonce_echoed=echoed, notes=tuple(notes),
    )


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
               trusted: Sequence[x509.Certificate], source: str
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
        problem = _delegation_problem(candidate, issuer, at)
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
                        at: datetime) -> str | None:
    """Why ``candidate`` may not answer for ``issuer`` (RFC 6960 4.2.2.2), or ``None``."""
    try:
        candidate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return "not issued directly by the certificate's issuer"
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
                     source: str) -> None:
    try:
        algorithm = response.signature_hash_algorithm
        _verify(signer.public_key(), response.signature, response.tbs_response_bytes,
                algorithm, response.signature_algorithm_oid)
    except InvalidSignature:
        raise OcspError(f"{source}: the OCSP response signature does not verify with the key "
                        f"of {signer.subject.rfc4514_string()}", source=source,
                        reason="bad-signature") from None
    except (UnsupportedAlgorithm, ValueError, TypeError) as exc:
        raise OcspError(f"{source}: cannot verify the OCSP signature ({exc})", source=source,
                        reason="bad-signature") from exc


def _verify(key: object, signature: bytes, data: bytes,
            algorithm: hashes.HashAlgorithm | None, oid: x509.ObjectIdentifier) -> None:
    if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
        pad: padding.AsymmetricPadding = padding.PKCS1v15()
        if oid == _RSASSA_PSS:
            pad = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.AUTO)
        key.verify(signature, data, pad, algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        key.verify(signature, data)
    elif isinstance(key, dsa.DSAPublicKey) and algorithm is not None:
        key.verify(signature, data, algorithm)
    else:
        raise UnsupportedAlgorithm(f"signature with a {type(key).__name__} key")


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
                 source: str, notes: list[str]) -> bool | None:
    if nonce is None:
        return None
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        if required:
            raise OcspError(f"{source}: the responder did not echo the nonce", source=source,
                            reason="nonce-mismatch") from None
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


def _check_freshness(this_update: datetime, next_update: datetime | None,
                     produced_at: datetime, at: datetime, max_age: timedelta,
                     skew: timedelta, source: str) -> None:
    if this_update > at + skew or produced_at > at + skew:
        raise OcspError(f"{source}: the answer is dated in the future (thisUpdate "
                        f"{this_update.isoformat()}, producedAt {produced_at.isoformat()}, "
                        f"now {at.isoformat()})", source=source, reason="not-yet-valid")
    if next_update is not None:
        if next_update < at - skew:
            raise OcspError(f"{source}: stale answer (nextUpdate {next_update.isoformat()}, "
                            f"now {at.isoformat()})", source=source, reason="stale")
    elif this_update < at - max_age:
        raise OcspError(f"{source}: stale answer (thisUpdate {this_update.isoformat()} older "
                        f"than {max_age}, no nextUpdate)", source=source, reason="stale")


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


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise TypeError("naive datetime: give an aware (UTC) datetime")
    return moment.astimezone(timezone.utc)


# --------------------------------------------------------------------------- client


class OcspClient:
    """Asks OCSP responders and verifies their answers.

    :param fetcher: the HTTP transport (shares its proxies, user agent, clock);
        ``None`` creates a cache-less :class:`~cps.trust.fetch.Fetcher`.
    :param timeout: overall time limit of one exchange, in seconds.
    :param use_nonce: send a random nonce (RFC 8954) with each request.
    :param require_nonce: refuse answers that do not echo the nonce; set ``False``
        for responders serving pre-computed answers (the note then says so).
    :param hash_algorithm: CertID hash, ``"sha1"`` (default) or ``"sha256"``...
    :param method: ``"post"`` (default) or ``"get"`` (RFC 6960 A.1; used only for
        requests shorter than 255 bytes once base64-encoded, POST otherwise). A POST
        refused with ``405`` is retried as GET.
    :param max_bytes: largest answer accepted.
    :param clock: current time (default: the fetcher's clock).
    """

    def __init__(self, fetcher: Fetcher | None = None, timeout: float = 10.0,
                 use_nonce: bool = True, *, require_nonce: bool = True,
                 hash_algorithm: str = "sha1", method: str = "post",
                 max_bytes: int = DEFAULT_POST_MAX_BYTES,
                 clock: Callable[[], datetime] | None = None) -> None:
        if hash_algorithm not in _HASHES:
            raise ValueError(f"unsupported CertID hash {hash_algorithm!r}")
        if method not in ("post", "get"):
            raise ValueError("method must be 'post' or 'get'")
        self.fetcher = fetcher if fetcher is not None else Fetcher(timeout=timeout)
        self.timeout = float(timeout)
        self.use_nonce = use_nonce
        self.require_nonce = require_nonce
        self.hash_algorithm = hash_algorithm
        self.method = method
        self.max_bytes = max_bytes
        self.clock = clock or self.fetcher.clock

    def check(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        *,
        url: str | None = None,
        at: datetime | None = None,
        trusted_responders: Iterable[x509.Certificate] = (),
        max_age: timedelta = timedelta(days=7),
        clock_skew: timedelta = timedelta(minutes=5),
    ) -> OcspStatus:
        """Ask for the status of ``cert`` and verify the answer.

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
        :param max_age: oldest acceptable thisUpdate when nextUpdate is absent.
        :param clock_skew: tolerance between our clock and the responder's.
        :raises OcspError: an answer came but is unusable (see :func:`validate_response`).
        :raises RevocationUnavailable: no responder (``"no-responder"``) or no
            answer (transport reasons of :class:`~cps.trust.fetch.Fetcher`).
        """
        urls = [url] if url else ocsp_urls(cert)
        if not urls:
            raise RevocationUnavailable(
                f"no OCSP responder URL for {cert.subject.rfc4514_string()}",
                reason="no-responder")
        trusted = tuple(trusted_responders)
        failures: list[Exception] = []
        for target in urls:
            try:
                return self._check_one(target, cert, issuer, at, trusted, max_age, clock_skew)
            except (OcspError, RevocationUnavailable) as exc:
                log.info("OCSP %s: %s", target, exc)
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        raise RevocationUnavailable(
            f"no OCSP responder gave a usable answer ({'; '.join(map(str, failures))})",
            source=", ".join(urls), reason="unreachable", failures=failures)

    def _check_one(self, url: str, cert: x509.Certificate, issuer: x509.Certificate,
                   at: datetime | None, trusted: Sequence[x509.Certificate],
                   max_age: timedelta, clock_skew: timedelta) -> OcspStatus:
        nonce = os.urandom(NONCE_SIZE) if self.use_nonce else None
        algorithm = _HASHES[self.hash_algorithm]()
        request = build_request(cert, issuer, algorithm=algorithm, nonce=nonce)
        answer = self._send(url, request)
        # The checking time is taken after the exchange: a slow responder must not
        # make a just-produced answer look like it comes from the future.
        moment = _aware(at) if at is not None else _aware(self.clock())
        return validate_response(answer, cert, issuer, at=moment, source=url, nonce=nonce,
                                 require_nonce=self.require_nonce, trusted_responders=trusted,
                                 max_age=max_age, clock_skew=clock_skew)

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
