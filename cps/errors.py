"""The errors the library raises on purpose.

Every error derives from :class:`CpsError`. Errors carry data (status word,
tries left, ATR, reader name...) as attributes; the message is for humans.
No domain error inherits :class:`ValueError`: callers catch ``CpsError`` (or a
subclass) and never confuse a wrong PIN with a programming mistake. A caller's
mistake (a naive datetime, an unknown mode string, an argument of the wrong
type) is a plain :class:`TypeError` or :class:`ValueError`, never a ``CpsError``.
Errors about one certificate of a path name it: ``str()`` ends with its
position in the path (0 = the leaf) and its subject, also kept as attributes.

The hierarchy::

    CpsError
    ├── ReaderError                 PC/SC layer: service, readers, presence
    │   ├── PcscServiceUnavailable
    │   ├── NoReaders
    │   ├── ReaderNotFound
    │   ├── NoCard
    │   ├── CardRemoved
    │   ├── CardReset
    │   ├── SharingViolation
    │   ├── ReaderTimeout
    │   └── PinpadProtocolError     a PIN-pad reader's part 10 answer is malformed
    ├── CardError(sw, data)         the card answered with an error status word
    │   ├── SecurityStatusNotSatisfied
    │   └── PinError
    │       ├── WrongPin(tries_left)
    │       ├── PinBlocked
    │       └── PinEntryError(what, reason)   the PIN pad refused an entry: no try spent
    │           ├── PinEntryCancelled
    │           └── PinEntryTimeout
    ├── CardProtocolError           the card broke the protocol (bad length, endless 61xx...)
    ├── CardIdentificationError(atr)
    │   ├── UnknownCard
    │   └── UnsupportedCard(card_name)
    │       └── CryptolibRequired(install_advice, installed)
    ├── NotSupported                the operation does not exist on this card/backend
    │   └── MissingExtra(extra, package)  an optional dependency is not installed
    ├── CertificateError            certificate parsing and validation (cps.trust)
    │   ├── CertificateParseError
    │   └── CertificateInvalid(reason, position, subject)
    │       ├── CertificateExpired(not_before, not_after)
    │       ├── UntrustedCertificate
    │       ├── CertificatePurposeError(purpose)
    │       ├── CertificatePolicyError
    │       └── CertificateRevoked(revocation_date, revocation_reason)
    ├── RevocationError             revocation status could not be established
    │   ├── RevocationUnavailable(source, reason, next_update, failures)
    │   ├── CrlError(source, reason)
    │   └── OcspError(source, reason)
    ├── TlsError(reason, host)      TLS client authentication with the card (cps.tls)
    │   └── ServerCertificateError(reason, host, cause)  the server's certificate or name
    ├── ClientCertificateRefused(reason, status)  cps.tls server side: 401/403/503 to send
    └── AuthError(reason)           challenge-response failures (cps.auth)
        ├── MalformedToken ── TokenTooLarge
        ├── UnsupportedTokenFormat, UnsupportedAlgorithm
        ├── UnknownNonce, NonceExpired, NonceReplayed, NonceIssuerMismatch
        ├── NonceStoreFull, NonceStoreUnavailable, RateLimited
        ├── OriginMismatch(expected, got), OriginNotAllowed
        └── InvalidSignature
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional, Sequence, Union

__all__ = [
    "ValidationBudgetExceeded",
    "NonceStoreFull",
    "NonceStoreUnavailable",
    "RateLimited",
    "CpsError",
    "ReaderError",
    "PcscServiceUnavailable",
    "NoReaders",
    "ReaderNotFound",
    "NoCard",
    "CardRemoved",
    "CardReset",
    "SharingViolation",
    "ReaderTimeout",
    "CardError",
    "SecurityStatusNotSatisfied",
    "PinError",
    "WrongPin",
    "PinBlocked",
    "PinEntryError",
    "PinEntryCancelled",
    "PinEntryTimeout",
    "PinpadProtocolError",
    "CardProtocolError",
    "CardIdentificationError",
    "UnknownCard",
    "UnsupportedCard",
    "CryptolibRequired",
    "NotSupported",
    "MissingExtra",
    "CertificateError",
    "CertificateParseError",
    "CertificateInvalid",
    "CertificateExpired",
    "UntrustedCertificate",
    "CertificatePurposeError",
    "CertificatePolicyError",
    "CertificateRevoked",
    "RevocationError",
    "RevocationUnavailable",
    "CrlError",
    "OcspError",
    "AuthError",
    "MalformedToken",
    "TokenTooLarge",
    "UnsupportedTokenFormat",
    "UnsupportedAlgorithm",
    "UnknownNonce",
    "NonceExpired",
    "NonceReplayed",
    "NonceIssuerMismatch",
    "OriginMismatch",
    "OriginNotAllowed",
    "InvalidSignature",
    "TlsError",
    "ServerCertificateError",
    "ClientCertificateRefused",
]


class CpsError(Exception):
    """Base of every error the library raises on purpose."""


# --------------------------------------------------------------------------- reader
class ReaderError(CpsError):
    """A failure of the reader layer (PC/SC or PKCS#11 slot), not of the card.

    :ivar reader: the reader's name, when one was involved.
    :ivar code: the backend's numeric error code (PC/SC ``SCARD_*``), when known.
    """

    def __init__(self, message: str, *, reader: Optional[str] = None,
                 code: Optional[int] = None) -> None:
        super().__init__(message)
        self.reader = reader
        self.code = code


class PcscServiceUnavailable(ReaderError):
    """The PC/SC service (pcscd) is not running or not reachable."""


class NoReaders(ReaderError):
    """PC/SC is running but no reader is connected."""


class ReaderNotFound(ReaderError):
    """No reader matches the given selector (index, name substring or ATR)."""


class NoCard(ReaderError):
    """The reader holds no card."""


class CardRemoved(ReaderError):
    """The card was removed while in use."""


class CardReset(ReaderError):
    """The card was reset (by another application or a power event); its security state is lost."""


class SharingViolation(ReaderError):
    """Another application holds the card exclusively."""


class ReaderTimeout(ReaderError):
    """The reader or card did not answer in time (mute card, hung driver)."""


class PinpadProtocolError(ReaderError):
    """A PIN-pad reader answered a PC/SC part 10 request (feature list, PIN
    properties, PIN entry) with bytes that are not a part 10 answer."""


# --------------------------------------------------------------------------- card
class CardError(CpsError):
    """The card answered a command with an error status word.

    :ivar sw: the status word (``0x6A82``...), or ``None`` when the error came
        from a backend that does not expose status words (PKCS#11).
    :ivar data: response data returned with the status word (usually empty).
    """

    def __init__(self, message: str, *, sw: Optional[int] = None, data: bytes = b"") -> None:
        super().__init__(message)
        self.sw = sw
        self.data = data


class SecurityStatusNotSatisfied(CardError):
    """The operation needs a PIN verification (or another condition) first (``69 82``)."""


class PinError(CardError):
    """Base of PIN and unblock-code failures."""


class WrongPin(PinError):
    """The PIN (or unblock code) was refused.

    :ivar tries_left: tries remaining before the code blocks.
    """

    def __init__(self, tries_left: int, *, sw: Optional[int] = None, what: str = "PIN") -> None:
        plural = "try" if tries_left == 1 else "tries"
        super().__init__(f"wrong {what}, {tries_left} {plural} left", sw=sw)
        self.tries_left = tries_left
        self.what = what


class PinBlocked(PinError):
    """The PIN (or unblock code) is blocked: no tries left."""

    def __init__(self, message: str = "PIN blocked", *, sw: Optional[int] = None,
                 what: str = "PIN") -> None:
        super().__init__(message, sw=sw)
        self.what = what


class PinEntryError(PinError):
    """The reader refused a PIN entered on its keypad before the card saw it: no
    try was spent (PC/SC part 10 status words ``64xx``).

    :ivar what: ``"PIN"`` (the code entered).
    :ivar reason: ``"timeout"`` (``6400``), ``"cancelled"`` (``6401``),
        ``"mismatch"`` (``6402``: the new PIN and its confirmation differ),
        ``"length"`` (``6403``: a length the card does not take).
    """

    reason_default = "refused"

    def __init__(self, message: str, *, sw: Optional[int] = None, what: str = "PIN",
                 reason: Optional[str] = None) -> None:
        super().__init__(message, sw=sw)
        self.what = what
        self.reason = reason or self.reason_default


class PinEntryCancelled(PinEntryError):
    """The holder cancelled the PIN entry on the reader's keypad (``6401``)."""

    reason_default = "cancelled"


class PinEntryTimeout(PinEntryError):
    """No PIN was entered on the reader's keypad in time (``6400``)."""

    reason_default = "timeout"


class CardProtocolError(CpsError):
    """The card (or a device pretending to be one) broke the protocol.

    Raised for malformed responses, impossible lengths, or loops that would
    never end (a card answering ``61xx`` forever).
    """


class CardIdentificationError(CpsError):
    """The card in the reader is not one this library can use.

    :ivar atr: the card's ATR.
    """

    def __init__(self, message: str, *, atr: bytes = b"") -> None:
        super().__init__(message)
        self.atr = atr


class UnknownCard(CardIdentificationError):
    """The ATR matches no known CPS card."""


class UnsupportedCard(CardIdentificationError):
    """A recognised card that this library does not support (e.g. CPS4).

    :ivar card_name: the recognised card's name.
    """

    def __init__(self, message: str, *, atr: bytes = b"", card_name: str = "") -> None:
        super().__init__(message, atr=atr)
        self.card_name = card_name


class CryptolibRequired(UnsupportedCard):
    """A CPS4 is in the reader and no usable ANS Cryptolib CPS (5.2 or later) is
    installed: the library reaches a CPS4 only through the Cryptolib's PKCS#11
    module. An :class:`UnsupportedCard` (same exit code, same ``except`` clauses)
    that also says what to do.

    :ivar install_advice: what to install on this platform, from where, and the
        module path it will have (one sentence, no full stop).
    :ivar installed: the Cryptolib found (a :class:`cps.cryptolib.CryptolibInstall`:
        too old, or of unknown version and blind to the CPS4), ``None`` when none is
        installed.
    """

    def __init__(self, message: str, *, install_advice: str, atr: bytes = b"",
                 installed: object = None, card_name: str = "CPS4 (NXP ChipDoc)") -> None:
        super().__init__(f"{message}. {install_advice}.", atr=atr, card_name=card_name)
        self.install_advice = install_advice
        self.installed = installed


class NotSupported(CpsError):
    """The operation is not available on this card, mode or backend."""


class MissingExtra(NotSupported):
    """An optional dependency of this operation is not installed (or cannot load).

    ``pip install cps-middleware`` is the light install (certificate validation,
    login verification); card access and some stores come with extras. The
    message names the command to run.

    :ivar extra: the extra that brings the dependency (``"card"``, ``"redis"``...).
    :ivar package: the missing distribution (``"pyscard"``, ``"python-pkcs11"``...).
    :ivar module: the module that failed to import (``"smartcard.scard"``...).
    """

    def __init__(self, message: str, *, extra: str, package: str, module: str = "") -> None:
        super().__init__(message)
        self.extra = extra
        self.package = package
        self.module = module


# --------------------------------------------------------------------------- certificates
class CertificateError(CpsError):
    """Base of certificate parsing and validation errors."""


class CertificateParseError(CertificateError):
    """A certificate (or CRL, OCSP answer) could not be decoded."""


def _which_certificate(message: str, position: Optional[int], subject: str) -> str:
    """``message`` followed by the certificate it is about: its position in the path
    (0 = the leaf) and its subject, unless the message already names them."""
    parts = []
    if position is not None:
        parts.append("leaf, path position 0" if position == 0 else f"path position {position}")
    if subject and subject not in message:
        parts.append(subject)
    return f"{message} [{': '.join(parts)}]" if parts else message


class CertificateInvalid(CertificateError):
    """A certificate failed validation.

    ``str()`` is the message followed by the certificate's position in the path
    and subject: ``bad signature [path position 1: CN=...]``.

    :ivar reason: a short machine-readable reason (``"expired"``, ``"untrusted"``...).
    :ivar position: index of the failing certificate in the path (0 = leaf), if known.
    :ivar subject: the failing certificate's subject, as an RFC 4514 string.
    """

    def __init__(self, message: str, *, reason: str = "invalid",
                 position: Optional[int] = None, subject: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.position = position
        self.subject = subject

    def __str__(self) -> str:
        return _which_certificate(super().__str__(), self.position, self.subject)


class CertificateExpired(CertificateInvalid):
    """A certificate is outside its validity period at the validation time.

    :ivar not_before: start of the validity period.
    :ivar not_after: end of the validity period.
    """

    def __init__(self, message: str, *, not_before: Optional[datetime] = None,
                 not_after: Optional[datetime] = None, position: Optional[int] = None,
                 subject: str = "", reason: str = "expired") -> None:
        super().__init__(message, reason=reason, position=position, subject=subject)
        self.not_before = not_before
        self.not_after = not_after


class UntrustedCertificate(CertificateInvalid):
    """No path leads from the certificate to a trust anchor (unknown or unpinned CA)."""


class ValidationBudgetExceeded(UntrustedCertificate):
    """Path building gave up: the certificates offered would cost more work than a
    validation may spend (signature checks, candidate issuers), as a hostile set
    of helper certificates would. ``reason`` is ``"budget"``.
    """


class CertificatePurposeError(CertificateInvalid):
    """The certificate is valid but not for this use (authentication vs signature).

    :ivar purpose: the use that was asked for (``"auth"``, ``"sign"``).
    """

    def __init__(self, message: str, *, purpose: str = "", position: Optional[int] = 0,
                 subject: str = "") -> None:
        super().__init__(message, reason="purpose", position=position, subject=subject)
        self.purpose = purpose


class CertificatePolicyError(CertificateInvalid):
    """The path does not satisfy the certificate policy requirements (RFC 5280 6.1)."""


class CertificateRevoked(CertificateInvalid):
    """A certificate is revoked.

    :ivar revocation_date: when it was revoked.
    :ivar revocation_reason: the CRL/OCSP reason code name, if given.
    """

    def __init__(self, message: str, *, revocation_date: Optional[datetime] = None,
                 revocation_reason: Optional[str] = None, position: Optional[int] = None,
                 subject: str = "") -> None:
        super().__init__(message, reason="revoked", position=position, subject=subject)
        self.revocation_date = revocation_date
        self.revocation_reason = revocation_reason


class RevocationError(CpsError):
    """Base of revocation-checking errors."""


class RevocationUnavailable(RevocationError):
    """No usable revocation information could be obtained.

    :ivar source: which source failed (URL, file or description).
    :ivar reason: a short machine-readable reason (``"unreachable"``, ``"expired"``,
        ``"bad-signature"``, ``"malformed"``, ``"out-of-scope"``...).
    :ivar next_update: the nextUpdate of the CRL involved, when there was one.
    :ivar position: index in the path of the certificate whose status is unknown.
    :ivar subject: that certificate's subject (RFC 4514), when the error is about one.
    :ivar failures: the individual source failures, when several were tried.

    When raised by validation, ``str()`` ends with the certificate's position
    and subject, as :class:`CertificateInvalid`'s.
    """

    def __init__(self, message: str, *, source: str = "", reason: str = "unavailable",
                 next_update: Optional[datetime] = None, position: Optional[int] = None,
                 failures: Optional[Sequence[Union[str, Exception]]] = None,
                 subject: str = "") -> None:
        super().__init__(message)
        self.source = source
        self.reason = reason
        self.next_update = next_update
        self.position = position
        self.subject = subject
        self.failures: list[Union[str, Exception]] = list(failures or [])

    def __str__(self) -> str:
        return _which_certificate(super().__str__(), self.position, self.subject)


class CrlError(RevocationError):
    """A CRL cannot be used: malformed, badly signed, out of scope, stale.

    :ivar source: where it came from; :ivar reason: why it is refused.
    """

    def __init__(self, message: str, *, source: str = "", reason: str = "invalid",
                 next_update: Optional[datetime] = None) -> None:
        super().__init__(message)
        self.source = source
        self.reason = reason
        self.next_update = next_update


class OcspError(RevocationError):
    """An OCSP answer cannot be used (unauthorised responder, bad nonce, stale...).

    :ivar source: the responder URL; :ivar reason: why it is refused.
    """

    def __init__(self, message: str, *, source: str = "", reason: str = "invalid") -> None:
        super().__init__(message)
        self.source = source
        self.reason = reason


class AuthError(CpsError):
    """Base of challenge-response authentication failures (``cps.auth``).

    :ivar reason: a stable machine-readable reason (``"unknown-nonce"``...).
    """

    reason = "auth"


class NonceStoreFull(AuthError):
    """The in-process nonce store holds its maximum of consumed, unexpired nonces:
    no new nonce can be consumed (and so no login accepted) until some expire."""

    reason = "nonce-store-full"


class NonceStoreUnavailable(AuthError):
    """The nonce store could not be reached (a Redis server down, a network
    failure): no nonce can be checked, so no login is accepted. Retry later.

    :ivar store: the store's class name (``"RedisNonceStore"``).
    """

    reason = "nonce-store-unavailable"

    def __init__(self, message: str, *, store: str = "") -> None:
        super().__init__(message)
        self.store = store


class RateLimited(AuthError):
    """The web layer's rate limit refused a challenge (``ChallengeIssuer(rate_limit=...)``)."""

    reason = "rate-limited"


class MalformedToken(AuthError):
    """The token is not valid JSON, base64 or token structure."""

    reason = "malformed-token"


class TokenTooLarge(MalformedToken):
    """The token or one of its fields exceeds its size limit."""

    reason = "token-too-large"


class UnsupportedTokenFormat(AuthError):
    """A token format version this verifier does not know."""

    reason = "unsupported-format"


class UnsupportedAlgorithm(AuthError):
    """The token's signature algorithm is not on the allow-list."""

    reason = "unsupported-algorithm"


class UnknownNonce(AuthError):
    """The nonce was never issued here (or was already forgotten)."""

    reason = "unknown-nonce"


class NonceExpired(AuthError):
    """The nonce was issued here but its time to live has passed."""

    reason = "nonce-expired"


class NonceReplayed(AuthError):
    """The nonce was already used: the token is a replay."""

    reason = "nonce-replayed"


class NonceIssuerMismatch(AuthError):
    """The nonce was issued by another challenge issuer sharing the store."""

    reason = "nonce-issuer-mismatch"


class OriginMismatch(AuthError):
    """The token was made for another origin than the one verifying it.

    :ivar expected: this server's origin; :ivar got: the token's.
    """

    reason = "origin-mismatch"

    def __init__(self, message: str, *, expected: str = "", got: str = "") -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got


class OriginNotAllowed(AuthError):
    """The origin is not among the verifier's allowed origins."""

    reason = "origin-not-allowed"


class InvalidSignature(AuthError):
    """The token's signature does not verify with its certificate."""

    reason = "invalid-signature"


class TlsError(CpsError):
    """A TLS connection authenticated with the card failed (:mod:`cps.tls`).

    :ivar reason: a stable keyword: ``"protocol-version"`` (the server wants
        TLS 1.3, which a CPS3 key cannot do), ``"no-signature-scheme"`` (the
        server accepts no RSA PKCS#1 v1.5 client signature), ``"handshake"``
        (any other refusal or alert), ``"no-client-certificate-request"`` (the
        server never asked for the card), ``"closed"`` (the peer closed), ``"timeout"``,
        ``"connect"`` (TCP), ``"server-certificate"``/``"server-name"`` (see
        :class:`ServerCertificateError`).
    :ivar host: the server, ``host:port``.
    """

    def __init__(self, message: str, *, reason: str = "handshake", host: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.host = host


class ServerCertificateError(TlsError):
    """The server's certificate is not trusted for its name: the card signed nothing.

    ``reason`` is ``"server-certificate"`` (chain, validity, key usage) or
    ``"server-name"`` (the host name is not in the certificate); ``cause`` is the
    verifier's own words.
    """

    def __init__(self, message: str, *, reason: str = "server-certificate", host: str = "",
                 cause: str = "") -> None:
        super().__init__(message, reason=reason, host=host)
        self.cause = cause


class ClientCertificateRefused(CpsError):
    """cps.tls server side: the request's client certificate gives no practitioner.

    :ivar reason: ``"no-certificate"``, ``"malformed-certificate"``,
        ``"untrusted-proxy"`` (a certificate header from an address not
        configured), ``"certificate-invalid"``, ``"certificate-revoked"``,
        ``"revocation-unavailable"``, ``"not-a-practitioner"``...
    :ivar status: the HTTP status to answer: 401 (no usable certificate), 403
        (a certificate that is refused) or 503 (revocation status unavailable
        in hard-fail: nothing is known against the card, the server cannot tell yet).
    :ivar cause: the underlying cps error, if any.
    """

    def __init__(self, message: str, *, reason: str, status: int = 401,
                 cause: Optional[BaseException] = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.cause = cause
