"""Our SHA-1/SHA-256 with exportable state agree with hashlib at every boundary, through
libcrypto (the fast path) and through the pure-Python fallback."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import types
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cps import errors, sha
from cps.sha import digest, finish, split


@pytest.mark.parametrize("alg", ["sha1", "sha256"])
@pytest.mark.parametrize("n", [0, 1, 55, 56, 63, 64, 65, 119, 127, 128, 129, 1000])
def test_split_then_finish_matches_hashlib(alg, n):
    msg = bytes((i * 7) & 0xFF for i in range(n))
    part, value = digest(alg, msg)
    assert value == hashlib.new(alg, msg).digest()
    if n:
        assert 1 <= len(part.tail) <= 64
    assert part.bit_count == (n - len(part.tail)) * 8
    assert len(part.state_and_count) == {"sha1": 28, "sha256": 40}[alg]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["sha1", "sha256"]))
def test_property_matches_hashlib(msg, alg):
    assert digest(alg, msg)[1] == hashlib.new(alg, msg).digest()


def test_empty_state_starts_from_the_initial_value():
    assert finish("sha256", b"", 0, b"abc") == hashlib.sha256(b"abc").digest()


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(errors.NotSupported):
        split("md5", b"x")
    with pytest.raises(errors.CardProtocolError):
        finish("sha1", b"\x00" * 19, 0, b"")
    with pytest.raises(errors.CardProtocolError):
        finish("sha1", b"\x00" * 20, 7, b"")


# --- the libcrypto fast path and the pure-Python fallback --------------------------------

ALGS = ["sha1", "sha256"]
LENGTHS = [0, 1, 55, 56, 63, 64, 65, 119, 127, 128, 129, 1000, 4095, 4096, 4097]


@pytest.fixture
def fresh(monkeypatch):
    """A libcrypto lookup of the test's own, forgotten again afterwards."""
    monkeypatch.setattr(sha, "PURE_PYTHON", False)
    sha._reset_native()
    yield
    sha._reset_native()


def _real():
    """The first libcrypto this process can load with the SHA symbols, or skip."""
    for name, lib in sha._open_libcrypto():
        try:
            return sha._LibCrypto.from_library(lib, name)
        except AttributeError:
            continue
    pytest.skip("no libcrypto with SHA1_Init/SHA256_Init on this machine")


def _expected(alg, msg):
    """What split must give, from hashlib's digest and the pure-Python path."""
    n = len(msg)
    keep = n % 64 or min(64, n)
    return sha._python_state(alg, msg, n - keep), (n - keep) * 8, msg[n - keep:]


def _pattern(n, seed=0):
    return random.Random(seed * 1_000_003 + n).randbytes(n)


def test_import_does_not_load_ctypes():
    code = "import sys, cps.sha; print('ctypes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_libcrypto_is_used_where_it_loads(fresh):
    native = _real()
    assert sha._verify(native)
    assert sha.implementation() == f"libcrypto {sha._native.name}"


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("n", LENGTHS)
def test_fast_and_pure_paths_agree_with_each_other_and_hashlib(fresh, monkeypatch, alg, n):
    _real()
    msg = _pattern(n)
    fast = sha.split(alg, msg)
    assert sha.implementation().startswith("libcrypto")
    monkeypatch.setattr(sha, "PURE_PYTHON", True)
    pure = sha.split(alg, msg)
    assert fast == pure
    assert (fast.state, fast.bit_count, fast.tail) == _expected(alg, msg)
    if n:
        assert 1 <= len(fast.tail) <= 64
    else:
        assert fast.tail == b"" and fast.bit_count == 0
    assert sha.finish(alg, fast.state, fast.bit_count, fast.tail) == hashlib.new(alg, msg).digest()


@pytest.mark.parametrize("alg", ALGS)
def test_random_lengths_fast_against_pure(fresh, alg):
    _real()
    rng = random.Random(7)
    for n in [rng.randrange(1, 64 * 1024) for _ in range(6)]:
        msg = _pattern(n, 1)
        assert sha.split(alg, msg) == sha.PartialHash(alg, *_expected(alg, msg))


@pytest.mark.parametrize("alg", ALGS)
def test_random_lengths_up_to_mebibytes_against_hashlib(fresh, alg):
    _real()
    rng = random.Random(11)
    lengths = [rng.randrange(64 * 1024, 3 << 20) for _ in range(5)] + [4 << 20, (4 << 20) + 1]
    for n in lengths:
        msg = _pattern(n, 2)
        part = sha.split(alg, msg)
        assert 1 <= len(part.tail) <= 64 and part.bit_count == (n - len(part.tail)) * 8
        assert part.tail == msg[n - len(part.tail):]
        assert sha.finish(alg, part.state, part.bit_count, part.tail) == \
            hashlib.new(alg, msg).digest()
        assert part.state_and_count[-8:] == part.bit_count.to_bytes(8, "big")


@pytest.mark.parametrize("alg", ALGS)
def test_other_bytes_like_messages(fresh, alg):
    msg = _pattern(1000)
    want = sha.split(alg, msg)
    assert sha.split(alg, bytearray(msg)) == want
    assert sha.split(alg, memoryview(msg)) == want
    assert sha.split(alg, memoryview(b"xx" + msg)[2:]) == want


def test_forced_fallback_is_pure_python_and_correct(fresh, monkeypatch):
    monkeypatch.setattr(sha, "PURE_PYTHON", True)
    assert sha.implementation() == "python"

    def boom():
        raise AssertionError("libcrypto must not be looked up")

    monkeypatch.setattr(sha, "_open_libcrypto", boom)
    for alg in ALGS:
        for n in (0, 64, 65, 300):
            msg = _pattern(n)
            assert sha.digest(alg, msg)[1] == hashlib.new(alg, msg).digest()


def test_no_libcrypto_found_falls_back(fresh, monkeypatch):
    monkeypatch.setattr(sha, "_open_libcrypto", lambda: iter(()))
    msg = _pattern(200)
    assert sha.split("sha256", msg) == sha.PartialHash("sha256", *_expected("sha256", msg))
    assert sha.implementation() == "python"


def test_lookup_crash_falls_back(fresh, monkeypatch):
    def crash():
        raise OSError("no such file")
        yield  # pragma: no cover

    monkeypatch.setattr(sha, "_open_libcrypto", crash)
    assert sha.implementation() == "python"
    assert sha.digest("sha1", _pattern(130))[1] == hashlib.sha1(_pattern(130)).digest()


def _fake_library(real, **overrides):
    """A library-like object with ``real``'s functions, some replaced."""
    symbols = {}
    for alg, (prefix, _) in sha._NATIVE_ALGS.items():
        init, update = real._functions[alg]
        symbols[f"{prefix}_Init"], symbols[f"{prefix}_Update"] = init, update
    symbols.update(overrides)
    return types.SimpleNamespace(**{k: v for k, v in symbols.items() if v is not None})


def _corrupting(update):
    def bad_update(ctx, data, length):
        result = update(ctx, data, length)
        ctx[0] = bytes([ctx[0][0] ^ 1])  # one wrong bit in the first chaining word
        return result

    return bad_update


def _broken_libraries(real):
    sha1_update = real._functions["sha1"][1]
    sha256_init, sha256_update = real._functions["sha256"]
    return {
        "wrong state": _fake_library(real, SHA256_Update=_corrupting(sha256_update)),
        "wrong sha1 state": _fake_library(real, SHA1_Update=_corrupting(sha1_update)),
        # SHA-256 under the SHA-1 names: the state has the wrong values and layout
        "swapped": _fake_library(real, SHA1_Init=sha256_init, SHA1_Update=sha256_update),
        "update fails": _fake_library(real, SHA1_Update=lambda ctx, data, n: 0),
        "init fails": _fake_library(real, SHA256_Init=lambda ctx: 0),
        "bit count ignored": _fake_library(real, SHA256_Update=lambda ctx, data, n: 1),
        "missing symbol": _fake_library(real, SHA256_Update=None),
    }


@pytest.mark.parametrize("kind", ["wrong state", "wrong sha1 state", "swapped", "update fails",
                                  "init fails", "bit count ignored", "missing symbol"])
def test_broken_libcrypto_is_refused(fresh, monkeypatch, kind):
    real = _real()
    broken = _broken_libraries(real)[kind]
    assert kind == "missing symbol" or not sha._verify(sha._LibCrypto.from_library(broken, kind))
    monkeypatch.setattr(sha, "_open_libcrypto", lambda: iter([(kind, broken)]))
    assert sha.implementation() == "python"
    for alg in ALGS:
        msg = _pattern(777)
        assert sha.split(alg, msg) == sha.PartialHash(alg, *_expected(alg, msg))


def test_broken_candidate_is_skipped_for_a_good_one(fresh, monkeypatch):
    real = _real()
    broken = _broken_libraries(real)["wrong state"]
    good = _fake_library(real)
    monkeypatch.setattr(sha, "_open_libcrypto", lambda: iter([("bad", broken), ("good", good)]))
    assert sha.implementation() == "libcrypto good"


def test_failure_after_loading_falls_back_for_good(fresh, monkeypatch):
    real = _real()
    broken = []

    def failing_later(ctx, data, length):
        if broken:
            return 0
        return real._functions["sha256"][1](ctx, data, length)

    lib = _fake_library(real, SHA256_Update=failing_later)
    monkeypatch.setattr(sha, "_open_libcrypto", lambda: iter([("flaky", lib)]))
    assert sha.implementation() == "libcrypto flaky"
    broken.append(True)
    msg = _pattern(5000)
    assert sha.split("sha256", msg) == sha.PartialHash("sha256", *_expected("sha256", msg))
    assert sha.implementation() == "python"


def test_threads_each_have_their_own_context(fresh):
    _real()
    messages = [(alg, _pattern(n, 3)) for n in range(100_000, 100_032) for alg in ALGS]

    def run(item):
        alg, msg = item
        part = sha.split(alg, msg)
        return sha.finish(alg, part.state, part.bit_count, part.tail)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, messages * 4))
    assert results == [hashlib.new(alg, msg).digest() for alg, msg in messages * 4]
