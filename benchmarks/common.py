"""Shared helpers: timing and the Figure record every benchmark returns."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Optional


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
