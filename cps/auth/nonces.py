"""Nonce stores: single use of the challenges a :class:`~cps.auth.ChallengeIssuer` hands out.

A challenge costs no memory until it is answered. The nonce carries what the
server needs to check it (docs/auth-token.md, "The nonce")::

    nonce = base64url(version || expires_ms || issuer_tag || random || mac)   (48 bytes, 64 chars)

``expires_ms`` is the expiry (milliseconds since the epoch, 6 bytes),
``issuer_tag`` a keyed tag of the issuer's id (8 bytes), ``random`` 17 bytes
from a CSPRNG, ``mac`` keyed BLAKE2b (16 bytes, the keyed mode of RFC 7693) of
what precedes it under the store's key. A flood of anonymous challenges stores nothing, so it can
neither evict a pending login nor lock new ones out.

``take`` checks the MAC, the issuer, the expiry, then consumes the nonce
atomically: of any number of concurrent takes of one nonce, exactly one gets
``OK``. Only *consumed* nonces are stored, and only until they would have
expired anyway (plus ``tombstone_grace``): a consumed nonce is never forgotten
while it could still be accepted, so a replay is always told apart.

The key: each store holds the MAC key (``key=``; default a random key drawn once
per store, so per process). Server instances sharing a :class:`RedisNonceStore`
must share the key too: ``RedisNonceStore(url, key=K)`` or
``ChallengeIssuer(RedisNonceStore(url), key=K)`` with the same ``K`` everywhere.
The :class:`~cps.auth.Verifier` reaches the key through the store
(``Verifier(validator, issuer.store, origins)``), so existing code is unchanged.
"""

from __future__ import annotations

import abc
import base64
import binascii
import enum
import hashlib
import heapq
import hmac
import math
import os
import secrets
import threading
from typing import Any, Dict, List, Optional, Tuple

from ..errors import CpsError, NonceStoreFull, NonceStoreUnavailable  # noqa: F401

__all__ = ["TakeResult", "NonceStore", "MemoryNonceStore", "RedisNonceStore", "NonceStoreFull",
           "NONCE_LENGTH"]


class TakeResult(str, enum.Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    OTHER_ISSUER = "other-issuer"
    FULL = "full"


_VERSION = b"\x01"
_EXPIRY_BYTES = 6
_TAG_BYTES = 8
_RANDOM_BYTES = 17
_MAC_BYTES = 16
_BODY = 1 + _EXPIRY_BYTES + _TAG_BYTES + _RANDOM_BYTES          # 32 bytes
_RAW = _BODY + _MAC_BYTES                                        # 48 bytes
#: length of a nonce string (base64url, no padding)
NONCE_LENGTH = _RAW * 4 // 3                                     # 64 characters
_MAC_PERSON = b"cps-nonce/1"
_TAG_PERSON = b"cps-nonce-iss/1"
_KEY_PERSON = b"cps-nonce-key/1"
_MAX_MS = (1 << (8 * _EXPIRY_BYTES)) - 1


class NonceStore(abc.ABC):
    """Mints self-describing nonces and remembers the consumed ones until they expire.

    :param key: the MAC key (at least 16 bytes); default: random, drawn once.
        Every instance that verifies another's nonces needs the same key.
    """

    def __init__(self, key: Optional[bytes] = None) -> None:
        self._key = b""
        self._key_explicit = False
        self._tags: Dict[str, bytes] = {}
        if key is None:
            self._set_key(secrets.token_bytes(32))
        else:
            self.use_key(key)

    # ------------------------------------------------------------------ the key
    def _set_key(self, key: bytes) -> None:
        self._key = key
        self._tags = {}
        # keyed BLAKE2b: a MAC (RFC 7693 section 2.5), faster than HMAC for 32 bytes
        mac_key = hashlib.blake2b(key, digest_size=32, person=_KEY_PERSON).digest()
        self._mac0 = hashlib.blake2b(key=mac_key, digest_size=_MAC_BYTES, person=_MAC_PERSON)
        self._tag_key = mac_key

    def _mac(self, body: bytes) -> bytes:
        h = self._mac0.copy()
        h.update(body)
        return h.digest()

    def use_key(self, key: bytes) -> None:
        """Set the MAC key, shared by every instance that must accept these nonces.

        :raises TypeError: the key is not bytes.
        :raises ValueError: a key of fewer than 16 bytes, or another explicit key
            was already set on this store.
        """
        if not isinstance(key, (bytes, bytearray)):
            raise TypeError(f"a nonce key must be bytes (at least 16), not {type(key).__name__}")
        if len(key) < 16:
            raise ValueError(f"a nonce key must have at least 16 bytes, not {len(key)}")
        key = bytes(key)
        if self._key_explicit and not hmac.compare_digest(key, self._key):
            raise ValueError("this nonce store already has another key: every issuer and "
                             "server instance sharing a store must use the same key")
        self._key_explicit = True
        self._set_key(key)

    def _tag(self, issuer: str) -> bytes:
        tag = self._tags.get(issuer)
        if tag is None:
            tag = hashlib.blake2b(issuer.encode("utf-8", "surrogatepass"), key=self._tag_key,
                                  digest_size=_TAG_BYTES, person=_TAG_PERSON).digest()
            if len(self._tags) < 64:
                self._tags[issuer] = tag
        return tag

    # ------------------------------------------------------------------ issue
    def mint(self, issuer: str, expires_at: float) -> str:
        """A fresh nonce for ``issuer``, good until ``expires_at`` (POSIX seconds).

        Stores nothing.
        """
        ms = min(_MAX_MS, max(0, math.ceil(expires_at * 1000)))
        body = (_VERSION + ms.to_bytes(_EXPIRY_BYTES, "big") + self._tag(issuer)
                + os.urandom(_RANDOM_BYTES))             # what secrets.token_bytes uses
        return base64.urlsafe_b64encode(body + self._mac(body)).decode("ascii")

    # The former API's hook, a deliberate concrete no-op: not abstract, nothing to override.
    def put(self, nonce: str, issuer: str, expires_at: float) -> None:  # noqa: B027
        """Kept for callers of the former API: nonces are no longer stored when issued."""

    # ------------------------------------------------------------------ answer
    def _check(self, nonce: str, issuer: str, now: float) -> Tuple[TakeResult, float]:
        """Stateless checks: MAC, issuer, expiry. Returns (result, expires_at)."""
        if not isinstance(nonce, str) or len(nonce) != NONCE_LENGTH:
            return TakeResult.UNKNOWN, 0.0
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (UnicodeEncodeError, binascii.Error, ValueError):
            return TakeResult.UNKNOWN, 0.0
        # urlsafe_b64decode is lenient (it drops characters outside the alphabet):
        # one spelling per nonce only, or a replay could hide behind another one.
        if len(raw) != _RAW or base64.urlsafe_b64encode(raw).decode("ascii") != nonce:
            return TakeResult.UNKNOWN, 0.0
        body, mac = raw[:_BODY], raw[_BODY:]
        if body[:1] != _VERSION or not hmac.compare_digest(mac, self._mac(body)):
            return TakeResult.UNKNOWN, 0.0
        if not hmac.compare_digest(body[1 + _EXPIRY_BYTES:1 + _EXPIRY_BYTES + _TAG_BYTES],
                                   self._tag(issuer)):
            return TakeResult.OTHER_ISSUER, 0.0
        expires = int.from_bytes(body[1:1 + _EXPIRY_BYTES], "big") / 1000
        if now > expires:
            return TakeResult.EXPIRED, expires
        return TakeResult.OK, expires

    def take(self, nonce: str, issuer: str, now: float) -> TakeResult:
        """Consume a nonce atomically; say why when it cannot be used.

        :param now: the verifier's time (POSIX seconds, clock skew already taken off).
        """
        result, expires = self._check(nonce, issuer, now)
        if result is not TakeResult.OK:
            return result
        return self._consume(nonce, expires, now)

    @abc.abstractmethod
    def _consume(self, nonce: str, expires_at: float, now: float) -> TakeResult:
        """Mark a genuine, unexpired nonce used, atomically: ``OK`` the first time,
        ``USED`` after; keep the mark at least until ``expires_at``."""


class MemoryNonceStore(NonceStore):
    """An in-process store: thread-safe, bounded by time and by size.

    Only consumed nonces are kept, each until it would have expired plus
    ``tombstone_grace``. When ``max_entries`` consumed, unexpired nonces are held,
    a *new* consumption is refused (:class:`NonceStoreFull`): forgetting one
    would allow its replay. Size it above the peak number of answers per time
    to live, and rate-limit the login route.

    :param max_entries: at most this many consumed nonces.
    :param tombstone_grace: seconds a consumed nonce is kept after its expiry
        (verifiers sharing the store with clocks behind this one's).
    :param key: the MAC key (see :class:`NonceStore`).
    """

    def __init__(self, max_entries: int = 100_000, tombstone_grace: float = 60.0,
                 key: Optional[bytes] = None) -> None:
        super().__init__(key)
        self.max_entries = max_entries
        self.grace = tombstone_grace
        self._lock = threading.Lock()
        self._used: set[str] = set()
        self._heap: List[Tuple[float, str]] = []      # (forget at, nonce), soonest first

    def _consume(self, nonce: str, expires_at: float, now: float) -> TakeResult:
        with self._lock:
            heap = self._heap
            while heap and heap[0][0] < now:
                self._used.discard(heapq.heappop(heap)[1])
            if nonce in self._used:
                return TakeResult.USED
            if len(self._used) >= self.max_entries:
                return TakeResult.FULL
            self._used.add(nonce)
            heapq.heappush(heap, (expires_at + self.grace, nonce))
            return TakeResult.OK

    def __len__(self) -> int:
        """How many consumed nonces are held (issued, unanswered ones cost nothing)."""
        return len(self._used)


class RedisNonceStore(NonceStore):
    """Consumed nonces in Redis, for several server instances behind a load balancer.

    Consumption is one ``SET key 1 NX PX ttl``: atomic on the Redis server. The
    mark lives until the nonce would have expired (by the verifier's clock) plus
    ``tombstone_grace``. Configure Redis so that it never evicts these keys
    (``maxmemory-policy noeviction`` or a volatile policy on another database):
    an evicted mark would allow a replay.

    :param client: a ``redis.Redis`` client, or a URL (``redis://127.0.0.1:6379/0``).
    :param prefix: key prefix.
    :param tombstone_grace: seconds a consumed nonce stays after its expiry.
    :param key: the MAC key, the same on every instance sharing this Redis.
    """

    def __init__(self, client: Any, prefix: str = "cps:nonce:",
                 tombstone_grace: float = 60.0, key: Optional[bytes] = None) -> None:
        super().__init__(key)
        from .._extras import require

        # MissingExtra names the command: pip install 'cps-middleware[redis]'
        redis = require("redis")
        self._redis = redis
        self.client = redis.Redis.from_url(client) if isinstance(client, str) else client
        self.prefix = prefix
        self.grace = tombstone_grace

    def _key_for(self, nonce: str) -> str:
        return self.prefix + nonce

    def _consume(self, nonce: str, expires_at: float, now: float) -> TakeResult:
        ttl_ms = max(1, math.ceil((expires_at - now + self.grace) * 1000))
        try:
            fresh = self.client.set(self._key_for(nonce), b"1", px=ttl_ms, nx=True)
        except self._redis.RedisError as exc:
            raise NonceStoreUnavailable(f"nonce store unavailable (Redis): {exc}",
                                        store=type(self).__name__) from None
        return TakeResult.OK if fresh else TakeResult.USED
