"""Nonce stores: where a challenge issuer keeps the nonces it handed out.

``take`` is atomic and single-use: of any number of concurrent takes of one
nonce, exactly one gets ``OK``. Used nonces are remembered (as tombstones)
until their time to live is over, so a replay is told apart from a nonce
that never existed.
"""

from __future__ import annotations

import abc
import enum
import threading
import time
from collections import OrderedDict
from typing import Any, Tuple

from ..errors import CpsError

__all__ = ["TakeResult", "NonceStore", "MemoryNonceStore", "RedisNonceStore"]


class TakeResult(str, enum.Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    OTHER_ISSUER = "other-issuer"


class NonceStore(abc.ABC):
    """Where issued nonces live until they are used or expire."""

    @abc.abstractmethod
    def put(self, nonce: str, issuer: str, expires_at: float) -> None:
        """Record a fresh nonce (``expires_at``: POSIX seconds)."""

    @abc.abstractmethod
    def take(self, nonce: str, issuer: str, now: float) -> TakeResult:
        """Consume a nonce atomically; say why when it cannot be used."""


class MemoryNonceStore(NonceStore):
    """An in-process store: thread-safe and bounded (the oldest entries go first).

    :param max_entries: at most this many nonces (live and tombstones) are kept;
        a flood of challenge requests cannot exhaust memory.
    :param tombstone_grace: seconds a used or expired nonce is remembered after
        its expiry, to report replays precisely.
    """

    def __init__(self, max_entries: int = 100_000, tombstone_grace: float = 300.0) -> None:
        self.max_entries = max_entries
        self.grace = tombstone_grace
        self._lock = threading.Lock()
        self._items: "OrderedDict[str, Tuple[str, float, bool]]" = OrderedDict()

    def put(self, nonce: str, issuer: str, expires_at: float) -> None:
        with self._lock:
            self._evict(time.time())
            while len(self._items) >= self.max_entries:
                self._items.popitem(last=False)
            self._items[nonce] = (issuer, expires_at, False)

    def _evict(self, now: float) -> None:
        # Entries are in insertion order and share one TTL policy: drop from the front.
        while self._items:
            nonce, (_, expires, _) = next(iter(self._items.items()))
            if expires + self.grace > now:
                break
            self._items.popitem(last=False)

    def take(self, nonce: str, issuer: str, now: float) -> TakeResult:
        with self._lock:
            item = self._items.get(nonce)
            if item is None:
                return TakeResult.UNKNOWN
            owner, expires, used = item
            if owner != issuer:
                return TakeResult.OTHER_ISSUER
            if used:
                return TakeResult.USED
            self._items[nonce] = (owner, expires, True)
            return TakeResult.EXPIRED if now > expires else TakeResult.OK

    def __len__(self) -> int:
        return len(self._items)


# GET, check, mark used: one atomic step on the server.
_TAKE_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if not v then return 'unknown' end
local owner, expires, used = string.match(v, '^(.*)|([%d%.]+)|([01])$')
if not owner then return 'unknown' end
if owner ~= ARGV[1] then return 'other-issuer' end
if used == '1' then return 'used' end
redis.call('SET', KEYS[1], owner .. '|' .. expires .. '|1', 'KEEPTTL')
if tonumber(expires) < tonumber(ARGV[2]) then return 'expired' end
return 'ok'
"""


class RedisNonceStore(NonceStore):
    """Nonces in Redis, for several server instances behind a load balancer.

    :param client: a ``redis.Redis`` client, or a URL (``redis://127.0.0.1:6379/0``).
    :param prefix: key prefix.
    :param tombstone_grace: seconds a nonce stays after its expiry (replay detection).
    """

    def __init__(self, client: Any, prefix: str = "cps:nonce:",
                 tombstone_grace: float = 300.0) -> None:
        try:
            import redis  # noqa: PLC0415 - optional dependency, loaded when used
        except ImportError as exc:  # pragma: no cover - a declared test/extra dependency
            raise CpsError("RedisNonceStore needs the redis package: pip install cps[redis]") \
                from exc
        self._redis = redis
        self.client = redis.Redis.from_url(client) if isinstance(client, str) else client
        self.prefix = prefix
        self.grace = tombstone_grace
        self._take = self.client.register_script(_TAKE_SCRIPT)

    def _key(self, nonce: str) -> str:
        return self.prefix + nonce

    def put(self, nonce: str, issuer: str, expires_at: float) -> None:
        ttl_ms = max(1, int((expires_at - time.time() + self.grace) * 1000))
        try:
            ok = self.client.set(self._key(nonce), f"{issuer}|{expires_at:.3f}|0", px=ttl_ms,
                                 nx=True)
        except self._redis.RedisError as exc:
            raise CpsError(f"nonce store unavailable: {exc}") from None
        if not ok:
            raise CpsError("nonce collision in the store")  # 256 random bits: never

    def take(self, nonce: str, issuer: str, now: float) -> TakeResult:
        try:
            result = self._take(keys=[self._key(nonce)], args=[issuer, f"{now:.3f}"])
        except self._redis.RedisError as exc:
            raise CpsError(f"nonce store unavailable: {exc}") from None
        if isinstance(result, bytes):
            result = result.decode()
        return TakeResult(result)


