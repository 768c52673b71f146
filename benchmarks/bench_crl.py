"""A million-entry CRL: load + index time, peak memory, lookups per second.

Ours is :class:`cps.trust.crlindex.CrlIndex`. The anchor is the natural
approach, measured in the same run on the same CRL: cryptography's
``load_der_x509_crl`` plus a Python ``set`` of the serials built by iterating
it (and, for single lookups, cryptography's own
``get_revoked_certificate_by_serial_number``).

The CRL comes from :mod:`benchmarks.crlgen` (1,000,000 entries, 16-byte
random serials, a reasonCode on one entry in three, ~40 MB), signed by the
TEST PKI's "FORT PERSONNES" CA; both are cached under ``benchmarks/.cache/``.

Memory: our figure is ``tracemalloc``'s peak over reading the file and
building the index, divided by the DER size (the DER itself included).
tracemalloc cannot see cryptography's allocations (Rust, outside Python's
allocator), so the anchor is measured as the peak RSS growth of a fresh
process reading the file and building its set; ours is measured the same way
beside it, to compare like with like.
"""

from __future__ import annotations

import gc
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Callable, List

from cryptography import x509

from cps.emulator import TestPKI
from cps.trust.crlindex import CrlIndex

from .common import Figure
from .crlgen import CACHE_DIR, cached_crl_path, crl_serials

N_ENTRIES = 1_000_000
SEED = 1
ROOT = Path(__file__).resolve().parents[1]

_RSS_SCRIPT = r"""
import sys
from pathlib import Path

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no " + field)

from cryptography import x509
from cps.trust.crlindex import CrlIndex
path, mode = sys.argv[1], sys.argv[2]
base = status("VmRSS")
der = Path(path).read_bytes()
if mode == "ours":
    kept = CrlIndex.load(der)
else:
    crl = x509.load_der_x509_crl(der)
    kept = {r.serial_number for r in crl}
print((status("VmHWM") - base) / len(der))
"""


def _rss_ratio(path: Path, mode: str) -> float | None:
    """Peak RSS growth / DER size of a fresh process loading ``path`` (Linux only)."""
    if not Path("/proc/self/status").exists():
        return None
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path), mode],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    return float(out.stdout.strip())


def _best_of(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of ``runs`` calls (each result dropped before the next call)."""
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return statistics.median(times)


def _rate(check: Callable[[int], object], serials: List[int], repeat: int = 7) -> float:
    """Median calls per second of ``check`` over ``serials``, ``repeat`` passes."""
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        for serial in serials:
            check(serial)
        rates.append(len(serials) / (time.perf_counter() - start))
    return statistics.median(rates)


def _natural(der: bytes) -> set:
    return {r.serial_number for r in x509.load_der_x509_crl(der)}


def run() -> List[Figure]:
    pki = TestPKI.generate(CACHE_DIR / "pki", seed=1)
    ca = pki.ca("FORT PERSONNES")
    path = cached_crl_path(N_ENTRIES, ca.cert, ca.key, seed=SEED)
    der = path.read_bytes()
    size_mb = len(der) / 1e6
    what = f"{N_ENTRIES:,} entries, {size_mb:.0f} MB DER"

    # (a) load + index time
    t_ours = _best_of(lambda: CrlIndex.load(der), runs=5)
    t_natural = _best_of(lambda: _natural(der), runs=3)

    # (b) peak memory / DER size
    del der
    gc.collect()
    tracemalloc.start()
    der = path.read_bytes()
    index = CrlIndex.load(der)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ratio_ours = peak / len(der)
    rss_ours = _rss_ratio(path, "ours")
    rss_natural = _rss_ratio(path, "natural")

    # (c) lookups, on the loaded index
    rng = random.Random(7)
    every = crl_serials(N_ENTRIES, SEED)
    hits = rng.sample(every, 10_000)
    revoked = set(every)
    del every
    misses = [s + 1 for s in hits if s + 1 not in revoked]
    assert all(index.lookup(s) is not None for s in hits)  # noqa: S101 - a wrong index is no figure
    assert not any(index.lookup(s) is not None for s in misses)  # noqa: S101
    hit_rate = _rate(index.lookup, hits)
    miss_rate = _rate(index.lookup, misses)
    set_hit = _rate(revoked.__contains__, hits)
    set_miss = _rate(revoked.__contains__, misses)
    crl = x509.load_der_x509_crl(der)
    few = 5  # cryptography scans the entries on every call: a few calls are enough
    crypto_hit = _rate(crl.get_revoked_certificate_by_serial_number, hits[:few], repeat=3)
    crypto_miss = _rate(crl.get_revoked_certificate_by_serial_number, misses[:few], repeat=3)

    anchor = "cryptography load_der_x509_crl + set of serials"
    return [
        Figure(f"CRL load + index ({what})", "s", t_ours, {anchor: t_natural},
               better="lower", target=2.0,
               note="from bytes in memory; median of 5 (ours) and 3 (anchor) runs"),
        Figure(f"CRL peak memory / DER size ({what})", "ratio", ratio_ours,
               {f"{anchor} (peak RSS growth)": rss_natural,
                "ours, same RSS method": rss_ours},
               better="lower", target=3.0,
               note="ours: tracemalloc peak incl. the DER bytes; RSS figures from fresh "
                    "processes (tracemalloc does not see cryptography's Rust allocations)"),
        Figure(f"CRL lookup, revoked serial ({what})", "lookups/s", hit_rate,
               {"cryptography get_revoked_certificate_by_serial_number": crypto_hit,
                "Python set of serials (membership only, no entry details)": set_hit},
               better="higher", target=200_000.0,
               note="RevokedEntry decoded (date, reason); 10,000 random hits, median of 7; "
                    "target = 5 µs per lookup"),
        Figure(f"CRL lookup, unrevoked serial ({what})", "lookups/s", miss_rate,
               {"cryptography get_revoked_certificate_by_serial_number": crypto_miss,
                "Python set of serials (membership only, no entry details)": set_miss},
               better="higher", target=200_000.0,
               note="10,000 serials next to revoked ones, median of 7"),
    ]
