"""Shared helpers: timing and the Figure record every benchmark returns."""

from __future__ import annotations

import hashlib
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, Optional

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509

    from cps.emulator.pki import TestPKI

#: The CA key sizes the trust and auth benchmarks measure side by side: the test
#: PKI's default (RSA-2048) and production IGC-Santé's (RSA-4096).
CA_KEY_BITS = (2048, 4096)


@dataclass
class Figure:
    """One measured figure, with the anchors measured in the same run.

    :ivar better: ``"lower"`` or ``"higher"``: which direction is better.
    :ivar target: the issue's target for ``ours``, if there is one.
    """

    name: str
    unit: str
    ours: float
    anchors: Dict[str, Optional[float]] = field(default_factory=dict)
    better: str = "lower"
    target: Optional[float] = None
    note: str = ""

    @property
    def meets_target(self) -> Optional[bool]:
        if self.target is None:
            return None
        return self.ours <= self.target if self.better == "lower" else self.ours >= self.target

    def as_dict(self) -> dict:
        d = asdict(self)
        d["meets_target"] = self.meets_target
        return d


def per_call(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` runs of ``number`` calls."""
    fn()  # warm-up
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number)
    return statistics.median(runs)


def bench_pki(ca_key_bits: int = 2048) -> "TestPKI":
    """The benchmarks' test PKI (seed 1) with CA keys of ``ca_key_bits``, kept on disk.

    Each key size has its own directory under the benchmark cache (the manifest
    records the size, so one shared directory would regenerate the CAs at every
    switch): ``pki`` for RSA-2048 (as before), ``pki-4096`` for RSA-4096. A
    4096-bit PKI costs ~20 s the first time, then loads in well under a second.
    """
    from cps.emulator.pki import TestPKI

    from .crlgen import CACHE_DIR

    folder = CACHE_DIR / ("pki" if ca_key_bits == 2048 else f"pki-{ca_key_bits}")
    return TestPKI.generate(folder, seed=1, ca_key_bits=ca_key_bits)


def cert_tag(*certs: "x509.Certificate") -> str:
    """A short hash of certificates' DER, to name cache files after what they derive from
    (the template leaf *and* the CA that signs: leaves of the RSA-2048 and RSA-4096
    PKIs share serials and names, not signatures)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    digest = hashlib.sha256()
    for cert in certs:
        digest.update(cert.public_bytes(Encoding.DER))
    return digest.hexdigest()[:12]
