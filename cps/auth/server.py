"""The server side: issue challenges, verify tokens.

::

    issuer = ChallengeIssuer()                           # MemoryNonceStore, 5 minutes
    challenge = issuer.issue()                           # send challenge.nonce to the client
    verifier = Verifier(validator, issuer.store, allowed_origins=["https://app.example"])
    result = verifier.verify(token, origin="https://app.example")
    result.practitioner                                  # validated identity

Checks, in this order (each failure its own error, docs/auth-token.md):
format and algorithm allow-list; nonce known, unexpired, consumed atomically;
origin binding; signature; authentication-purpose certificate; chain and
revocation through :mod:`cps.trust`; identity extraction.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, TypeGuard, Union

from ..card import KeyRole
from ..errors import (  # noqa: F401 - CpsError importable here
    CpsError,
    InvalidSignature,
    NonceExpired,
    NonceIssuerMismatch,
    NonceReplayed,
    OriginMismatch,
    OriginNotAllowed,
    RateLimited,
    UnknownNonce,
    UnsupportedAlgorithm,
)
from .nonces import MemoryNonceStore, NonceStore, NonceStoreFull, TakeResult
from .token import ALGORITHMS, TOKEN_FORMAT, parse_token, text_digest

__all__ = ["Challenge", "ChallengeIssuer", "Verifier", "AuthResult", "RateLimited",
           "DEFAULT_PADDINGS"]

# cps.auth is a server-side module: it may load cryptography when imported
# (``import cps`` itself does not import cps.auth).
from cryptography.exceptions import InvalidSignature as _Bad  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402

from ..identity import Practitioner  # noqa: E402
from ..trust import check_purpose, is_rsa_key, parse_cert  # noqa: E402

_PKCS1 = padding.PKCS1v15()
_HASHES = {"sha256": hashes.SHA256()}
#: RSASSA-PSS as PS256 defines it (RFC 7518 3.5) and a CPS4 signs: MGF1 over
#: SHA-256, a salt of 32 bytes, exactly (never "any salt")
_PSS256 = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
#: the paddings a Verifier accepts by default: PKCS#1 v1.5 (CPS3 and CPS4) and
#: PSS (CPS4); both are sound, and neither can pass for the other
DEFAULT_PADDINGS = frozenset({"pkcs1v15", "pss"})


def _is_rsa(key: object) -> TypeGuard[rsa.RSAPublicKey]:
    """:func:`~cps.trust.is_rsa_key` (an isinstance check remembered per class), narrowing."""
    return is_rsa_key(key)


#: the nonce's length in bytes before base64url (docs/auth-token.md, "The nonce")
NONCE_BYTES = 48


@dataclass(frozen=True)
class Challenge:
    """A challenge for one login: the nonce and when it expires."""

    nonce: str
    expires_at: dt.datetime


class ChallengeIssuer:
    """Issues single-use nonces (base64url, 64 characters) with a time to live.

    A nonce carries its expiry, a tag of its issuer and a MAC under the store's
    key: issuing stores nothing; the store only remembers answered nonces
    (:mod:`cps.auth.nonces`).

    :param store: checks and consumes the nonces (default: a :class:`MemoryNonceStore`);
        share a :class:`RedisNonceStore` between server instances, with one key.
    :param ttl: time to live (default five minutes).
    :param issuer_id: tells issuers apart when they share a store (and its key).
    :param clock: returns the current aware datetime (default: the system's);
        tests inject one to simulate time.
    :param key: the MAC key (at least 16 bytes), set on the store; default: the
        store's own (random, per process unless the store was given one). Server
        instances that share a :class:`RedisNonceStore` must all use the same key.
    :param rate_limit: called as ``rate_limit(client)`` by :meth:`issue` before
        anything else; returns false (or raises) to refuse: :class:`RateLimited`.
    """

    def __init__(self, store: Optional[NonceStore] = None,
                 ttl: dt.timedelta = dt.timedelta(minutes=5), issuer_id: str = "default",
                 *, clock: Optional[Callable[[], dt.datetime]] = None,
                 key: Optional[bytes] = None,
                 rate_limit: Optional[Callable[[Any], Any]] = None) -> None:
        if store is None:
            store = MemoryNonceStore(key=key)
        elif key is not None:
            use_key = getattr(store, "use_key", None)
            if use_key is None:
                raise TypeError(f"{type(store).__name__} does not take a key: give key= "
                                "to a NonceStore subclass (MemoryNonceStore, RedisNonceStore)")
            use_key(key)
        self.store = store
        self.ttl = ttl
        self.issuer_id = issuer_id
        self.clock = clock
        self.rate_limit = rate_limit

    def issue(self, client: Any = None) -> Challenge:
        """A new challenge; nothing is stored until it is answered.

        :param client: whatever the web layer identifies the requester by (an
            address, a session...), handed to ``rate_limit``.
        :raises RateLimited: ``rate_limit`` refused.
        """
        if self.rate_limit is not None and not self.rate_limit(client):
            raise RateLimited("too many challenges requested")
        now = _aware(self.clock()).timestamp() if self.clock is not None else time.time()
        expires = now + self.ttl.total_seconds()
        mint = getattr(self.store, "mint", None)
        if mint is not None:
            nonce = mint(self.issuer_id, expires)
        else:   # a store written for the former API: it records each nonce
            nonce = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
            self.store.put(nonce, self.issuer_id, expires)
        return Challenge(nonce, dt.datetime.fromtimestamp(expires, dt.timezone.utc))


@dataclass(frozen=True)
class AuthResult:
    """A successful authentication: who, with which certificate path."""

    practitioner: Any           # cps.identity.Practitioner, validated=True
    validation: Any             # cps.trust.ValidationResult
    certificate_der: bytes

    @property
    def certificate(self) -> Any:
        """The authentication certificate (cryptography object)."""
        from cryptography import x509

        return x509.load_der_x509_certificate(self.certificate_der)

    def __repr__(self) -> str:
        """One line: the practitioner and the path's outcome (no DER, no certificate dump)."""
        p = self.practitioner
        name = " ".join(str(x) for x in (getattr(p, "first_name", None),
                                        getattr(p, "last_name", None)) if x)
        v = self.validation
        path = getattr(v, "path_der", ())
        revocation = "/".join(getattr(s, "status", "?") for s in getattr(v, "revocation", ()))
        when = getattr(v, "validated_at", None)
        card_type = getattr(p, "card_type", None)
        card_type = getattr(card_type, "value", card_type)
        return (f"AuthResult(idnat={getattr(p, 'idnat', None)!r}, name={name!r}, "
                f"card_type={card_type!r}, "
                f"profession={getattr(p, 'profession_code', None)!r}, path_length={len(path)}, "
                f"revocation={revocation}, "
                f"validated_at={when.isoformat() if when is not None else None})")


#: AlgorithmIdentifier rsaEncryption (NULL parameters), as every CPS card key has it.
_RSA_ENCRYPTION_ID = bytes.fromhex("300d06092a864886f70d0101010500")


def _rsa_encryption_key(spki: bytes) -> bool:
    """The fast path of :func:`_check_key_padding`: an ``rsaEncryption`` key (any
    padding allowed) told by its first bytes -- a SubjectPublicKeyInfo of 256 to
    65535 bytes (30 82 LL LL), its AlgorithmIdentifier next. The general reader
    decides every other shape (tests/test_fast_paths.py checks they agree)."""
    return (spki[:2] == b"\x30\x82" and spki[4:19] == _RSA_ENCRYPTION_ID
            and int.from_bytes(spki[2:4], "big") == len(spki) - 4)


def _check_key_padding(spki: bytes, padding_name: str) -> None:
    """InvalidSignature when the certificate's key may not sign with this padding:
    an id-RSASSA-PSS key (RFC 4055) signs PSS only, with its own parameters."""
    if _rsa_encryption_key(spki):  # every CPS card's key: both paddings allowed
        return
    from ..trust.algorithms import PssParameters, check_rsa_padding

    try:
        check_rsa_padding(spki, padding_name,
                          PssParameters("sha256", 32) if padding_name == "pss" else None)
    except ValueError as exc:
        raise InvalidSignature(f"the certificate's key does not allow this signature: "
                               f"{exc}") from None


def _aware(moment: dt.datetime) -> dt.datetime:
    """``moment``, refused when naive: a clock's mistake, not the client's."""
    if moment.tzinfo is None:
        raise TypeError("the clock returned a naive datetime; give an aware (UTC) one, "
                        "e.g. datetime.now(timezone.utc)")
    return moment


def _origin(value: str) -> str:
    return value.rstrip("/").lower()


class Verifier:
    """Verifies authentication tokens.

    :param validator: a :class:`cps.trust.Validator` (anchors, revocation policy).
    :param store: the nonce store of the :class:`ChallengeIssuer` (it holds the
        MAC key the nonces are checked with).
    :param allowed_origins: the origins this server answers for.
    :param clock_skew: tolerance on nonce expiry.
    :param issuer_id: the issuer whose nonces are accepted.
    :param known_certificates: how many certificates of returning practitioners
        to remember (0: none). What never changes for a certificate is kept,
        by its exact bytes, once a token made with it has been verified: its
        parsed form and public key, its CA's signature on it, the practitioner
        it names. Everything that depends on time or on the CA's answers is
        checked again on every token: the token's own signature, the validity
        dates, revocation, the CA part of the path. Oldest out first.
    :param clock: returns the current aware datetime, for nonce expiry and as the
        validation time (default: the validator's clock, else the system's).
    :param paddings: the signature paddings accepted: ``"pkcs1v15"`` (RS256,
        every CPS card) and ``"pss"`` (PS256, format 2: CPS4 cards); default
        both. ``{"pss"}`` refuses RS256 tokens (``UnsupportedAlgorithm``)
        before the nonce is consumed. Whatever this says, a certificate whose
        key is an id-RSASSA-PSS key (RFC 4055) verifies PS256 tokens only.
    """

    def __init__(self, validator: Any, store: NonceStore, allowed_origins: Iterable[str],
                 clock_skew: dt.timedelta = dt.timedelta(seconds=5),
                 issuer_id: str = "default", known_certificates: int = 4096, *,
                 clock: Optional[Callable[[], dt.datetime]] = None,
                 paddings: Iterable[str] = DEFAULT_PADDINGS) -> None:
        if isinstance(paddings, str):
            raise TypeError("paddings is a set of names, e.g. {'pss'}, not a string")
        accepted = frozenset(paddings)
        unknown = accepted - DEFAULT_PADDINGS
        if unknown or not accepted:
            raise ValueError(f"paddings: a non-empty subset of {sorted(DEFAULT_PADDINGS)}, "
                             f"not {sorted(accepted)}")
        self.paddings = accepted
        self.validator = validator
        self.clock = clock if clock is not None else getattr(validator, "clock", None)
        self.store = store
        self.allowed_origins = frozenset(_origin(o) for o in allowed_origins)
        self.clock_skew = clock_skew
        self.issuer_id = issuer_id
        self.known_certificates = max(0, int(known_certificates))
        self._known: Dict[bytes, Tuple[Any, Practitioner]] = {}
        self._known_lock = threading.Lock()
        self._origin_digests: Dict[str, bytes] = {}

    def _remember(self, der: bytes, leaf: Any, practitioner: Practitioner) -> None:
        with self._known_lock:
            if der not in self._known:
                while len(self._known) >= self.known_certificates:
                    del self._known[next(iter(self._known))]  # the oldest
                self._known[der] = (leaf, practitioner)

    def _signed_data(self, origin: str, nonce: str, fmt: str = TOKEN_FORMAT,
                     algorithm: str = "RS256") -> bytes:
        # signed_data(), with SHA-256(origin) remembered: only origins that passed
        # the allow-list get here, spelt a handful of ways at most.
        digest = self._origin_digests.get(origin)
        if digest is None:
            digest = text_digest(origin)
            if len(self._origin_digests) < 256:
                self._origin_digests[origin] = digest
        if fmt == TOKEN_FORMAT:
            return digest + text_digest(nonce)
        # format 2: the format and the algorithm are signed first (cps.token_format)
        return text_digest(f"{fmt} {algorithm}") + digest + text_digest(nonce)

    def verify(self, token: Union[str, bytes, Mapping[str, Any]], origin: str,
               at: Optional[dt.datetime] = None) -> AuthResult:
        """Verify a token for this server's ``origin``; consume its nonce.

        :raises AuthError: (a subclass per failure) for token, nonce, origin, signature;
            certificate and revocation errors of :mod:`cps.trust` as they are.
        """
        parsed = parse_token(token)                                   # format, algorithm
        if parsed.padding not in self.paddings:
            raise UnsupportedAlgorithm(f"algorithm {parsed.algorithm} ({parsed.padding}) is "
                                       "not accepted by this server")
        if self.clock is not None:
            moment = _aware(self.clock())
            now = moment.timestamp()
            if at is None:
                at = moment
        else:
            now = time.time()
        result = self.store.take(parsed.nonce, self.issuer_id,        # nonce, atomically
                                 now - self.clock_skew.total_seconds())
        if result is not TakeResult.OK:
            raise {TakeResult.UNKNOWN: UnknownNonce("unknown nonce"),
                   TakeResult.EXPIRED: NonceExpired("the challenge expired"),
                   TakeResult.USED: NonceReplayed("this challenge was already answered"),
                   TakeResult.OTHER_ISSUER: NonceIssuerMismatch(
                       "the nonce was issued by another challenge issuer"),
                   TakeResult.FULL: NonceStoreFull(
                       "too many answered challenges are pending expiry")}[result]
        mine = _origin(origin)                                        # origin binding
        if mine not in self.allowed_origins:
            raise OriginNotAllowed(f"{origin!r} is not an allowed origin")
        if not hmac.compare_digest(_origin(parsed.origin).encode(), mine.encode()):
            raise OriginMismatch("the token was made for another origin",
                                 expected=mine, got=parsed.origin[:200])
        known = self._known.get(parsed.certificate)   # a returning practitioner?
        if known is None:
            leaf = parse_cert(parsed.certificate)  # CertificateParseError when undecodable
            practitioner = None
        else:
            leaf, practitioner = known
        key = leaf.public_key()
        if not _is_rsa(key):
            raise InvalidSignature("the certificate's key is not RSA")
        algorithm = _HASHES[ALGORITHMS[parsed.algorithm]]
        pss = parsed.padding == "pss"
        _check_key_padding(leaf.spki, parsed.padding)       # an id-RSASSA-PSS key: PSS only
        try:                                                          # signature
            key.verify(parsed.signature,
                       self._signed_data(parsed.origin, parsed.nonce, parsed.format,
                                         parsed.algorithm),
                       _PSS256 if pss else _PKCS1, algorithm)
        except _Bad:
            raise InvalidSignature("the token's signature does not verify") from None
        check_purpose(leaf, KeyRole.AUTH)                            # purpose
        # chain and revocation (the purpose is checked: no need to ask again)
        validation = self.validator.validate(leaf, at=at)
        if practitioner is None:
            # identity: validated, since the chain was (only code that validated may say so)
            practitioner = Practitioner.from_parsed_certificate(leaf, validated=True)
            if self.known_certificates:
                self._remember(parsed.certificate, leaf, practitioner)
        return AuthResult(practitioner, validation, parsed.certificate)
