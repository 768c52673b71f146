"""Stateless challenges (issue 13, items 6 and 7): a nonce carries its expiry, its
issuer's tag and a MAC; the stores keep only answered nonces, until they expire."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading

import pytest

import cps
from cps import errors
from cps.auth import (
    ChallengeIssuer,
    MemoryNonceStore,
    NonceStoreFull,
    RateLimited,
    RedisNonceStore,
    Verifier,
)
from cps.auth.nonces import NONCE_LENGTH, TakeResult
from cps.auth.token import TOKEN_FORMAT

ORIGIN = "https://dmp.example.fr"
KEY = b"k" * 32


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def validator(cps_pki):
    return cps_pki.validator()


@pytest.fixture
def redis_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    return client


@pytest.fixture(params=["memory", "redis"])
def kind(request):
    return request.param


def make_store(kind, request, key=None):
    if kind == "memory":
        return MemoryNonceStore(key=key)
    return RedisNonceStore(request.getfixturevalue("redis_client"), key=key)


def stored(store) -> int:
    """How many nonces the store holds."""
    if isinstance(store, MemoryNonceStore):
        return len(store)
    return len(store.client.keys(store.prefix + "*"))


def token_for(cps_card_factory, nonce, origin=ORIGIN):
    emu = cps_card_factory("cps3-medecin")
    with cps.open_card(connection=emu.connection()) as card:
        card.verify_pin(emu.pin)
        return card.auth_token(nonce, origin)


def fake_token(nonce, **fields):
    return dict({"format": TOKEN_FORMAT, "algorithm": "RS256", "certificate": "AA==",
                 "signature": "AA==", "nonce": nonce, "origin": ORIGIN}, **fields)


# ---------------------------------------------------------------- floods
def test_a_million_challenges_cost_no_store_memory(kind, request, validator, cps_card_factory):
    store = make_store(kind, request)
    issuer = ChallengeIssuer(store)
    pending = issuer.issue()                       # a practitioner's login, under way
    token = token_for(cps_card_factory, pending.nonce)
    issue = issuer.issue
    for _ in range(1_000_000):
        issue()
    assert stored(store) == 0
    result = Verifier(validator, issuer.store, [ORIGIN]).verify(token, ORIGIN)
    assert result.practitioner.validated          # the flood evicted nothing
    assert stored(store) == 1                     # the answered nonce, until it expires
    # and a new login after the flood is not locked out
    fresh = token_for(cps_card_factory, issuer.issue().nonce)
    Verifier(validator, issuer.store, [ORIGIN]).verify(fresh, ORIGIN)


def test_nonces_are_opaque_base64url_strings(kind, request):
    issuer = ChallengeIssuer(make_store(kind, request))
    nonces = {issuer.issue().nonce for _ in range(1000)}
    assert len(nonces) == 1000
    for n in nonces:
        assert len(n) == NONCE_LENGTH == 64
        assert len(base64.urlsafe_b64decode(n)) == 48


# ---------------------------------------------------------------- forged, expired, replayed
def _flip(nonce: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(nonce))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("index", [0, 1, 6, 7, 20, 40, 47])   # version, expiry, tag, random, MAC
def test_forged_nonces_are_unknown(kind, request, index):
    store = make_store(kind, request)
    nonce = ChallengeIssuer(store).issue().nonce
    assert store.take(_flip(nonce, index), "default", 0) is TakeResult.UNKNOWN
    assert stored(store) == 0                      # nothing consumed, nothing stored
    assert store.take(nonce, "default", 0) is TakeResult.OK


@pytest.mark.parametrize("nonce", ["", "A" * 43, "A" * 64, "A" * 63 + "=", "\ud800" * 64,
                                   "é" * 64, "A" * 128])
def test_garbage_nonces_are_unknown(kind, request, nonce):
    store = make_store(kind, request)
    assert store.take(nonce, "default", 0) is TakeResult.UNKNOWN
    assert stored(store) == 0


def test_another_spelling_of_a_nonce_is_not_another_nonce(kind, request):
    store = make_store(kind, request)
    issuer = ChallengeIssuer(store)
    nonce = next(n for n in (issuer.issue().nonce for _ in range(1000)) if "-" in n)
    assert store.take(nonce.replace("-", "+", 1), "default", 0) is TakeResult.UNKNOWN
    assert store.take(nonce, "default", 0) is TakeResult.OK


def test_a_nonce_from_a_store_with_another_key_is_unknown(kind, request, validator,
                                                          cps_card_factory):
    store = make_store(kind, request)
    elsewhere = ChallengeIssuer(MemoryNonceStore())                 # its own random key
    token = token_for(cps_card_factory, elsewhere.issue().nonce)
    with pytest.raises(errors.UnknownNonce):
        Verifier(validator, store, [ORIGIN]).verify(token, ORIGIN)


def test_expired_replayed_and_other_issuer(kind, request, validator, cps_card_factory):
    clock = Clock(dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc))
    store = make_store(kind, request)
    issuer = ChallengeIssuer(store, clock=clock)
    verifier = Verifier(validator, store, [ORIGIN], clock=clock)

    late = fake_token(issuer.issue().nonce)
    clock.now += dt.timedelta(minutes=5, seconds=6)               # ttl + clock skew + 1 s
    for _ in range(2):                                             # expired, stays expired
        with pytest.raises(errors.NonceExpired):
            verifier.verify(late, ORIGIN)
    assert stored(store) == 0

    # replayed (the signature is bad: the nonce is consumed all the same, step 2)
    once = fake_token(issuer.issue().nonce)
    with pytest.raises(errors.CpsError) as first:
        verifier.verify(once, ORIGIN)
    assert not isinstance(first.value, (errors.UnknownNonce, errors.NonceReplayed))
    with pytest.raises(errors.NonceReplayed):
        verifier.verify(once, ORIGIN)

    other = ChallengeIssuer(store, issuer_id="other-service", clock=clock)
    with pytest.raises(errors.NonceIssuerMismatch):
        verifier.verify(fake_token(other.issue().nonce), ORIGIN)


def test_the_nonce_expiry_follows_the_injected_clock(kind, request):
    clock = Clock(dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc))
    store = make_store(kind, request)
    challenge = ChallengeIssuer(store, clock=clock).issue()
    assert challenge.expires_at == clock.now + dt.timedelta(minutes=5)
    limit = challenge.expires_at.timestamp()
    assert store.take(challenge.nonce, "default", limit + 0.002) is TakeResult.EXPIRED
    assert store.take(challenge.nonce, "default", limit) is TakeResult.OK


# ---------------------------------------------------------------- several instances, one key
def test_instances_sharing_redis_share_the_key(redis_client):
    one = ChallengeIssuer(RedisNonceStore(redis_client), key=KEY)
    two = RedisNonceStore(redis_client, key=KEY)
    nonce = one.issue().nonce
    assert two.take(nonce, "default", 0) is TakeResult.OK
    assert one.store.take(nonce, "default", 0) is TakeResult.USED   # across instances
    stranger = RedisNonceStore(redis_client)                         # forgot the key
    assert stranger.take(one.issue().nonce, "default", 0) is TakeResult.UNKNOWN


def test_keys_are_checked():
    # a caller's mistake: ValueError / TypeError, not a CpsError
    with pytest.raises(ValueError, match="at least 16 bytes"):
        ChallengeIssuer(key=b"short")
    with pytest.raises(TypeError, match="must be bytes"):
        ChallengeIssuer(key="k" * 32)
    store = MemoryNonceStore(key=KEY)
    ChallengeIssuer(store, key=KEY)                                  # the same: fine
    with pytest.raises(ValueError, match="another key"):
        ChallengeIssuer(store, key=b"x" * 32)                        # another: refused
    random_key = MemoryNonceStore()
    issuer = ChallengeIssuer(random_key, key=KEY)                    # replaces the random one
    assert MemoryNonceStore(key=KEY).take(issuer.issue().nonce, "default", 0) is TakeResult.OK


# ---------------------------------------------------------------- atomic single use
def test_hundred_threads_one_consumption(kind, request):
    store = make_store(kind, request)
    nonce = ChallengeIssuer(store).issue().nonce
    barrier = threading.Barrier(100)
    outcomes = []
    lock = threading.Lock()

    def attempt():
        barrier.wait()
        result = store.take(nonce, "default", 0)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes.count(TakeResult.OK) == 1
    assert outcomes.count(TakeResult.USED) == 99


# ---------------------------------------------------------------- the memory store's bounds
def test_consumed_nonces_are_forgotten_once_expired():
    clock = Clock(dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
    store = MemoryNonceStore(tombstone_grace=0)
    issuer = ChallengeIssuer(store, clock=clock)
    for _ in range(50):
        assert store.take(issuer.issue().nonce, "default", clock.now.timestamp()) \
            is TakeResult.OK
    assert len(store) == 50
    later = clock.now + dt.timedelta(minutes=6)
    assert store.take(ChallengeIssuer(store, clock=Clock(later)).issue().nonce, "default",
                      later.timestamp()) is TakeResult.OK
    assert len(store) == 1


def test_a_full_memory_store_refuses_new_consumptions_never_forgets(validator):
    clock = Clock(dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc))
    store = MemoryNonceStore(max_entries=10, tombstone_grace=0)
    issuer = ChallengeIssuer(store, clock=clock)
    now = clock.now.timestamp()
    used = [issuer.issue().nonce for _ in range(10)]
    for n in used:
        assert store.take(n, "default", now) is TakeResult.OK
    assert store.take(issuer.issue().nonce, "default", now) is TakeResult.FULL
    assert all(store.take(n, "default", now) is TakeResult.USED for n in used)  # no replay
    verifier = Verifier(validator, store, [ORIGIN], clock=clock)
    with pytest.raises(NonceStoreFull) as info:
        verifier.verify(fake_token(issuer.issue().nonce), ORIGIN)
    assert isinstance(info.value, errors.AuthError) and info.value.reason == "nonce-store-full"
    # once the consumed nonces have expired there is room again
    clock.now += dt.timedelta(minutes=6)
    assert store.take(issuer.issue().nonce, "default", clock.now.timestamp()) is TakeResult.OK
    assert len(store) == 1


# ---------------------------------------------------------------- the rate-limit hook
def test_rate_limit_hook():
    seen = []
    allowed = {"10.0.0.1"}

    def limit(client):
        seen.append(client)
        return client in allowed

    issuer = ChallengeIssuer(rate_limit=limit)
    issuer.issue(client="10.0.0.1")
    with pytest.raises(RateLimited) as info:
        issuer.issue(client="10.0.0.2")
    assert isinstance(info.value, errors.AuthError) and info.value.reason == "rate-limited"
    assert seen == ["10.0.0.1", "10.0.0.2"]
    assert len(issuer.store) == 0
    ChallengeIssuer().issue()                     # no hook: issue() as before
    ChallengeIssuer().issue(client="anyone")


# ---------------------------------------------------------------- item 7: lone surrogates
class _Untouchable:
    """A store that fails the test when touched."""

    def take(self, *args):  # pragma: no cover - reaching it is the failure
        raise AssertionError("the store was reached")

    put = mint = take


@pytest.mark.parametrize("field", ["nonce", "origin", "certificate", "signature", "format",
                                   "algorithm", "library"])
@pytest.mark.parametrize("as_text", [True, False], ids=["str", "dict"])
@pytest.mark.parametrize("where", ["memory", "redis", "untouchable"])
def test_lone_surrogates_are_malformed_tokens(request, validator, field, as_text, where,
                                             monkeypatch):
    if where == "untouchable":
        store = _Untouchable()
        nonce = ChallengeIssuer().issue().nonce
    else:
        store = make_store(where, request)
        nonce = ChallengeIssuer(store).issue().nonce
        monkeypatch.setattr(store, "take", _Untouchable().take)
    token = fake_token(nonce, library="cps/0.1.0")
    token[field] = token[field][:-1] + "\ud800"
    if as_text:
        token = json.dumps(token)                  # "\ud800" escaped: a valid JSON text
        assert "\\ud800" in token
    verifier = Verifier(validator, store, [ORIGIN])
    with pytest.raises(errors.MalformedToken):
        verifier.verify(token, ORIGIN)
    if where == "redis":
        assert stored(store) == 0
