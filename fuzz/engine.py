"""The fuzzing contract, a pure-Python mutation engine, and the atheris bridge.

Every input a harness is given must end in one of two ways:

* the parser returns, or raises a :class:`cps.errors.CpsError` (the library's
  documented refusal);
* anything else is a :class:`Finding`: another exception (``IndexError``,
  ``AttributeError``, ``RecursionError``, ``MemoryError``...), a broken
  :class:`Violation` (an invariant the harness checks, such as "no PIN try is
  spent that was not asked for"), a call slower than the harness's
  ``time_limit``, a call that hangs, or a peak of Python allocations above
  ``memory_factor * len(input) + memory_base`` (a length field driving an
  allocation).

Memory is measured with :mod:`tracemalloc` (Python allocations, which is where
a length field would make us allocate) on a sample of inputs, because tracing
slows every allocation down.

Two engines drive the harnesses:

* :func:`fuzz` (``builtin``): seeds, then mutations of the seeds (bit flips,
  interesting bytes, DER length bombs, splices, duplications, nesting...) and
  random structured TLVs; inputs with a new *outcome* (which error, which
  message) join the corpus. No dependency; deterministic for a given seed.
  This is what ``make test`` runs for a few seconds.
* atheris (``python -m fuzz.run --engine atheris``): libFuzzer's
  coverage-guided mutations over instrumented ``cps`` code, the seeds as the
  initial corpus (:mod:`fuzz.atheris_main`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import re
import signal
import threading
import time
import traceback
import tracemalloc
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from cps.der import encode_length
from cps.errors import CpsError

__all__ = ["Harness", "Context", "Violation", "Finding", "Stats", "check", "fuzz", "Mutator",
           "KNOWN_BUGS"]


class Violation(AssertionError):
    """A harness invariant broke: a wrong answer, not only a crash.

    :param key: a short stable name for the invariant (groups findings).
    """

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key or message[:60]


class _Hang(BaseException):
    """Raised by the watchdog alarm inside a call that does not return (BaseException:
    library code catching ``Exception`` must not swallow it)."""


@dataclass
class Finding(Exception):
    """One input that broke the contract.

    :ivar kind: ``exception``, ``violation``, ``slow``, ``hang`` or ``memory``.
    """

    harness: str
    kind: str
    data: bytes
    detail: str
    trace: str = ""
    signature: Tuple[str, ...] = ()

    def __str__(self) -> str:
        shown = self.data[:2048].hex()
        more = f"... ({len(self.data)} bytes in all)" if len(self.data) > 2048 else ""
        return (f"[{self.harness}] {self.kind}: {self.detail}\n"
                f"input ({len(self.data)} bytes): {shown}{more}\n{self.trace}")

    def __hash__(self) -> int:  # dataclass(eq=True) would make it unhashable
        return hash(self.signature)


# Known bugs reported to the library's owners, by finding signature prefix:
# (harness, "exception", exception type[, innermost cps frame]) or
# (harness, "violation", invariant key). A known bug is counted apart and the
# engines keep fuzzing past it; the short run of `make test` passes with it,
# `make fuzz` reports it (and fails unless --tolerate-known). Each has a
# regression test with the same input (tests/fuzz/test_fuzz_regressions.py),
# a strict xfail that turns red once the library is fixed: then delete the
# entry here and the xfail marker there. An entry that never matches is harmless.
KNOWN_BUGS: Dict[Tuple[str, ...], str] = {
    # Empty: BUG-1 to BUG-12 found by these harnesses are fixed (regression tests in
    # tests/fuzz/test_fuzz_regressions.py and tests/reliability/).
}


class Harness:
    """One parser of untrusted bytes, and how to feed it.

    Subclasses set :attr:`name` and implement :meth:`one`; :meth:`setup`
    prepares what the target needs (keys, certificates...) from the
    :class:`Context`; :meth:`seeds` returns valid inputs to mutate.
    """

    name: str = ""
    #: what is exercised (dotted names), for reports and docs/security.md
    targets: Tuple[str, ...] = ()
    max_len: int = 4096
    #: seconds one input may take
    time_limit: float = 1.0
    memory_factor: int = 50
    memory_base: int = 1 << 20

    def setup(self, ctx: "Context") -> None:
        """Prepare the target's fixed inputs (called once, before any input)."""

    def seeds(self) -> List[bytes]:
        """Valid (or nearly valid) inputs to start from."""
        return []

    def dictionary(self) -> List[bytes]:
        """Byte strings worth splicing in (tags, magic values)."""
        return []

    def one(self, data: bytes) -> Optional[str]:
        """Feed one input to the parser(s); may return a short description of what
        happened (new descriptions steer the builtin engine's corpus)."""
        raise NotImplementedError


class Context:
    """What harnesses build their seeds from: the test PKI and a scratch directory.

    :param pki: a :class:`cps.emulator.pki.TestPKI`; default the emulator's
        cached one (``$CPS_TEST_PKI_DIR`` or ``test-pki`` in
        :func:`cps.platform_paths.user_cache_dir`).
    :param workdir: scratch directory; default a fresh temporary one.
    """

    def __init__(self, pki: object = None, workdir: Optional[Path] = None) -> None:
        self._pki = pki
        self._workdir = workdir

    @cached_property
    def pki(self):  # -> TestPKI
        if self._pki is not None:
            return self._pki
        from cps.emulator.card import default_pki

        return default_pki()

    @cached_property
    def workdir(self) -> Path:
        if self._workdir is not None:
            self._workdir.mkdir(parents=True, exist_ok=True)
            return self._workdir
        import tempfile

        return Path(tempfile.mkdtemp(prefix="cps-fuzz-"))


# --------------------------------------------------------------------------- one input
class _Alarm:
    """A watchdog: raises :class:`_Hang` in the main thread after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.armed = (seconds > 0 and hasattr(signal, "setitimer")
                      and threading.current_thread() is threading.main_thread())
        if self.armed:
            self._old = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, seconds)

    @staticmethod
    def _fire(signum: int, frame: object) -> None:
        raise _Hang()

    def cancel(self) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old)
            self.armed = False


_DIGITS = re.compile(r"\b[0-9A-Fa-f]{2,}\b|\d+")


def _innermost_cps_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        path = frame.filename.replace(os.sep, "/")
        if "/cps/" in path and "/fuzz/" not in path:
            module = path[path.rindex("/cps/") + 1:].removesuffix(".py").replace("/", ".")
            return f"{module}:{frame.name}"
    return frames[-1].name if frames else "?"


def check(harness: Harness, data: bytes, *, memory: bool = False,
          hang_seconds: Optional[float] = None, time_limit: Optional[float] = None) -> str:
    """Run one input under the contract; return its outcome, or raise :class:`Finding`.

    :param memory: trace Python allocations and check the peak.
    :param hang_seconds: arm a watchdog (main thread only; ``None``: 5 x time_limit,
        ``0``: none -- libFuzzer has its own).
    :returns: ``"ok"`` or ``"<CpsError class>: <start of the message>"``.
    """
    limit = harness.time_limit if time_limit is None else time_limit
    alarm = _Alarm(limit * 5 if hang_seconds is None else hang_seconds)
    if memory:
        tracemalloc.start()
    outcome = "ok"
    failure: Optional[Finding] = None
    start = time.perf_counter()
    try:
        try:
            shape = harness.one(data)
            if isinstance(shape, str):
                outcome = f"ok: {shape}"
        finally:
            alarm.cancel()
    except CpsError as exc:
        # Numbers in messages would make every input a new outcome: mask them.
        outcome = f"{type(exc).__name__}: {_DIGITS.sub('#', str(exc)[:40])}"
    except _Hang:
        failure = Finding(harness.name, "hang", data,
                          f"no answer after {time.perf_counter() - start:.1f} s",
                          traceback.format_exc(), (harness.name, "hang"))
    except Violation as exc:
        failure = Finding(harness.name, "violation", data, str(exc), traceback.format_exc(),
                          (harness.name, "violation", exc.key))
    except Exception as exc:  # noqa: BLE001 - that is the point
        where = _innermost_cps_frame(exc)
        failure = Finding(harness.name, "exception", data,
                          f"{type(exc).__name__} escaped from {where}: {exc}"[:500],
                          traceback.format_exc(),
                          (harness.name, "exception", type(exc).__name__, where))
    finally:
        elapsed = time.perf_counter() - start
        peak = 0
        if memory:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    if failure is not None:
        raise failure
    # Tracing allocations slows a call down: judge time only on untraced calls.
    if not memory and elapsed > limit:
        raise Finding(harness.name, "slow", data,
                      f"one call took {elapsed:.2f} s (limit {limit} s), outcome {outcome}",
                      signature=(harness.name, "slow"))
    budget = harness.memory_factor * len(data) + harness.memory_base
    if memory and peak > budget:
        raise Finding(harness.name, "memory", data,
                      f"peak of {peak} bytes allocated for a {len(data)}-byte input "
                      f"(limit {budget}), outcome {outcome}",
                      signature=(harness.name, "memory"))
    return outcome


def known(finding: Finding) -> Optional[str]:
    """The known bug (its short name) a finding is an instance of, if any."""
    for key, name in KNOWN_BUGS.items():
        if finding.signature[:len(key)] == key:
            return name
    return None


# --------------------------------------------------------------------------- mutations
INTERESTING = (0x00, 0x01, 0x02, 0x03, 0x04, 0x0F, 0x10, 0x1F, 0x20, 0x30, 0x31, 0x3F, 0x40,
               0x5A, 0x61, 0x63, 0x6C, 0x70, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x88,
               0x90, 0x9A, 0x9B, 0xA0, 0xA1, 0xBF, 0xC0, 0xFE, 0xFF)
LENGTH_BOMBS = (b"\x80", b"\x81\xff", b"\x82\xff\xff", b"\x83\xff\xff\xff",
                b"\x84\xff\xff\xff\xff", b"\x84\x7f\xff\xff\xff", b"\x85\x01\x00\x00\x00\x00",
                b"\x88\xff\xff\xff\xff\xff\xff\xff\xff", b"\x8f" + b"\xff" * 15,
                b"\xff", b"\x7f", b"\x00")


class Mutator:
    """Seed-mutating input generator (no coverage feedback; outcome feedback instead).

    :param rng: the random generator (seeded: runs are reproducible).
    :param seeds: the starting corpus.
    :param dictionary: byte strings worth splicing in.
    :param max_len: longest input produced.
    """

    MAX_CORPUS = 256

    def __init__(self, rng: random.Random, seeds: Sequence[bytes],
                 dictionary: Sequence[bytes] = (), max_len: int = 4096) -> None:
        self.rng = rng
        self.corpus: List[bytes] = [bytes(s) for s in seeds if s] or [b"\x00"]
        self.dictionary = [bytes(d) for d in dictionary if d] + list(LENGTH_BOMBS)
        self.max_len = max_len

    def add(self, data: bytes) -> None:
        if len(self.corpus) < self.MAX_CORPUS:
            self.corpus.append(data)
        else:
            self.corpus[self.rng.randrange(len(self.corpus))] = data

    # -- generators
    def random_bytes(self) -> bytes:
        n = self.rng.choice((0, 1, 2, 3, 4, 5, 7, 8, 16, 64, 256, 1024))
        return self.rng.randbytes(min(n, self.max_len))

    def random_tlv(self, depth: int = 0) -> bytes:
        """Structurally valid BER-TLVs with random tags: reaches past the first length check."""
        rng = self.rng
        parts = []
        for _ in range(rng.randint(1, 4)):
            tag = rng.choice((0x30, 0x31, 0x04, 0x02, 0x03, 0x06, 0x0C, 0x13, 0x17, 0x18, 0x5A,
                              0x70, 0x80, 0x81, 0x9A, 0x9B, 0xA0, 0xA1, 0xA3, 0xA4, 0xA8, 0x61,
                              0x62, 0x4F, 0x50)).to_bytes(1, "big")
            if rng.random() < 0.1:
                tag = rng.choice((b"\xbf\x81\x01", b"\x7f\x49", b"\x5f\x20", b"\x9f\x7f"))
            constructed = tag[0] & 0x20 and depth < 6 and rng.random() < 0.6
            value = self.random_tlv(depth + 1) if constructed else rng.randbytes(
                rng.choice((0, 1, 2, 4, 8, 20)))
            parts.append(tag + encode_length(len(value)) + value)
        return b"".join(parts)[:self.max_len]

    def nested(self) -> bytes:
        """Deep nesting: a recursion bomb for recursive parsers."""
        depth = self.rng.choice((20, 100, 1000, 5000))
        tag = self.rng.choice((0x30, 0x31, 0xA0, 0xA1, 0x70, 0x61, 0x5B))
        if self.rng.random() < 0.5:
            data = bytes((tag, 0x80)) * depth          # indefinite lengths
        else:
            data = b""
            for _ in range(min(depth, self.max_len // 6)):
                data = bytes((tag,)) + encode_length(len(data)) + data
        return data[:self.max_len]

    def generate(self) -> bytes:
        r = self.rng.random()
        if r < 0.03:
            return self.random_bytes()
        if r < 0.06:
            return self.random_tlv()
        if r < 0.07:
            return self.nested()
        data = bytearray(self.rng.choice(self.corpus))
        for _ in range(1 + int(self.rng.expovariate(0.8))):
            data = self.mutate(data)
        return bytes(data[:self.max_len])

    def mutate(self, data: bytearray) -> bytearray:
        rng = self.rng
        n = len(data)
        op = rng.randrange(14)
        if n == 0:
            return bytearray(rng.randbytes(rng.randint(1, 8)))
        i = rng.randrange(n)
        if op == 0:                                       # flip a bit
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:                                     # random byte
            data[i] = rng.randrange(256)
        elif op == 2:                                     # interesting byte
            data[i] = rng.choice(INTERESTING)
        elif op == 3:                                     # small arithmetic (lengths)
            data[i] = (data[i] + rng.choice((-16, -2, -1, 1, 2, 16))) & 0xFF
        elif op == 4:                                     # insert random bytes
            data[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 5:                                     # delete a range
            del data[i:i + rng.randint(1, max(1, min(64, n - i)))]
        elif op == 6:                                     # duplicate a range elsewhere
            j = rng.randrange(n)
            chunk = data[i:i + rng.randint(1, 256)]
            data[j:j] = chunk
        elif op == 7:                                     # truncate
            del data[i:]
        elif op == 8:                                     # splice another corpus entry
            other = rng.choice(self.corpus)
            j = rng.randrange(len(other)) if other else 0
            data = data[:i] + bytearray(other[j:])
        elif op in (9, 10):                               # length bomb after a tag-like byte
            tag_like = [k for k in range(min(n - 1, 4096))
                        if data[k] in (0x30, 0x31, 0x04, 0x02, 0x03, 0x06, 0x0C, 0x5A, 0x70,
                                       0xA0, 0xA1, 0xA3, 0x61, 0x9A, 0x9B, 0x80)]
            k = (rng.choice(tag_like) + 1) if tag_like else i
            bomb = rng.choice(LENGTH_BOMBS)
            data[k:k + 1] = bomb
        elif op == 11:                                    # dictionary word
            word = rng.choice(self.dictionary)
            if rng.random() < 0.5:
                data[i:i] = word
            else:
                data[i:i + len(word)] = word
        elif op == 12:                                    # swap two ranges
            j = rng.randrange(n)
            a, b = sorted((i, j))
            size = rng.randint(1, 32)
            if b - a >= size:
                data[a:a + size], data[b:b + size] = data[b:b + size], data[a:a + size]
        else:                                             # repeat the tail
            tail = data[i:]
            data += tail * rng.randint(1, 4)
        return data


# --------------------------------------------------------------------------- the engine
@dataclass
class Stats:
    """What one run of one harness did."""

    harness: str
    engine: str = "builtin"
    executions: int = 0
    seconds: float = 0.0
    seeds: int = 0
    outcomes: int = 0
    corpus: int = 0
    memory_checked: int = 0
    slowest: float = 0.0
    known_hits: Dict[str, int] = field(default_factory=dict)
    findings: List[Finding] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.executions / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {"harness": self.harness, "engine": self.engine, "executions": self.executions,
                "seconds": round(self.seconds, 2), "rate": round(self.rate, 1),
                "seeds": self.seeds, "outcomes": self.outcomes, "corpus": self.corpus,
                "memory_checked": self.memory_checked, "slowest": round(self.slowest, 4),
                "known_hits": self.known_hits,
                "findings": [{"kind": f.kind, "detail": f.detail, "input": f.data.hex()}
                             for f in self.findings]}


def fuzz(harness: Harness, seconds: float, *, seed: int = 0, memory_every: int = 4,
         max_executions: Optional[int] = None, max_findings: int = 5,
         tolerate_known: bool = True, crash_dir: Optional[Path] = None) -> Stats:
    """Run ``harness`` for ``seconds`` with the builtin engine.

    Seeds go first (each with its memory checked), then mutations. Distinct
    findings are collected (at most ``max_findings``), not raised: the caller
    decides. Known bugs (:data:`KNOWN_BUGS`) are counted apart when
    ``tolerate_known``.
    """
    stats = Stats(harness.name)
    with _quiet_library():
        _fuzz_loop(harness, seconds, stats, seed, memory_every, max_executions, max_findings,
                   tolerate_known, crash_dir)
    return stats


@contextlib.contextmanager
def _quiet_library() -> Iterator[None]:
    """The library's warnings (cache entries discarded...) by the thousand are noise here."""
    logger = logging.getLogger("cps")
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before


def _fuzz_loop(harness: Harness, seconds: float, stats: Stats, seed: int, memory_every: int,
               max_executions: Optional[int], max_findings: int, tolerate_known: bool,
               crash_dir: Optional[Path]) -> None:
    rng = random.Random(f"{harness.name}/{seed}")
    seeds = [bytes(s) for s in harness.seeds()]
    stats.seeds = len(seeds)
    mutator = Mutator(rng, seeds, harness.dictionary(), harness.max_len)
    outcomes: Dict[str, int] = {}
    seen: set = set()
    start = time.perf_counter()
    deadline = start + seconds

    # Warm up once (imports, caches) so the first timed call is not penalised.
    if seeds:
        try:
            check(harness, seeds[0], time_limit=max(harness.time_limit, 30.0))
        except Finding:
            pass

    def run(data: bytes, memory: bool) -> None:
        t0 = time.perf_counter()
        try:
            outcome = check(harness, data, memory=memory)
        except Finding as finding:
            report = known(finding)
            if report and tolerate_known:
                stats.known_hits[report] = stats.known_hits.get(report, 0) + 1
            elif finding.signature not in seen:
                seen.add(finding.signature)
                stats.findings.append(finding)
                if crash_dir is not None:
                    save_finding(finding, crash_dir)
            outcome = f"finding:{finding.kind}"
        stats.executions += 1
        stats.memory_checked += memory
        if not memory:
            stats.slowest = max(stats.slowest, time.perf_counter() - t0)
        if outcome not in outcomes:
            outcomes[outcome] = 1
            mutator.add(data)
        else:
            outcomes[outcome] += 1

    for s in seeds:
        run(s, True)
    i = 0
    while time.perf_counter() < deadline and len(stats.findings) < max_findings:
        if max_executions is not None and stats.executions >= max_executions:
            break
        run(mutator.generate(), i % memory_every == 0)
        i += 1
    stats.seconds = time.perf_counter() - start
    stats.outcomes = len(outcomes)
    stats.corpus = len(mutator.corpus)


def save_finding(finding: Finding, directory: Path) -> Path:
    """Write the input (``.bin``) and the report (``.txt``) of a finding."""
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(finding.data).hexdigest()[:16]  # noqa: S324 - a file name
    path = directory / f"{finding.harness}-{finding.kind}-{digest}.bin"
    path.write_bytes(finding.data)
    path.with_suffix(".txt").write_text(str(finding))
    return path
