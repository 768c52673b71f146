"""split() throughput (MB/s) for the PSO HASH intermediate state, beside hashlib.

``cps.sha.split`` hashes the full blocks with libcrypto through ctypes when it
can (the fast path), else in pure Python (the fallback). Both are measured, with
hashlib's own digest of the same message as the anchor; the target is half of
hashlib's speed in the same run.
"""

from __future__ import annotations

import hashlib
import os
from typing import List

from cps import sha

from .common import Figure, per_call

SIZE = 4 << 20  # 4 MiB, through the fast path and hashlib
PURE_SIZE = 256 << 10  # the pure-Python fallback is timed on 256 KiB (~0.5 s per run)


def _mbps(seconds: float, size: int) -> float:
    return size / seconds / 1e6


def run() -> List[Figure]:
    message = os.urandom(SIZE)
    figures = []
    for alg in ("sha256", "sha1"):
        impl = sha.implementation()
        fast = _mbps(per_call(lambda alg=alg: sha.split(alg, message), number=5), SIZE)
        anchor = _mbps(per_call(lambda alg=alg: hashlib.new(alg, message).digest(),
                                number=5), SIZE)
        previous = sha.PURE_PYTHON
        sha.PURE_PYTHON = True
        try:
            pure = _mbps(per_call(lambda alg=alg: sha.split(alg, message[:PURE_SIZE]), number=1,
                                  repeat=3), PURE_SIZE)
        finally:
            sha.PURE_PYTHON = previous
        figures.append(Figure(
            f"sha.split({alg!r}) over 4 MiB", "MB/s", fast,
            {f"hashlib.{alg} (same 4 MiB)": anchor,
             "pure-Python fallback (256 KiB)": pure},
            better="higher", target=anchor / 2,
            note=f"{impl}; target: half of hashlib in the same run; median of 7 x 5 calls "
                 "(fallback: of 3 x 1)"))
    return figures
