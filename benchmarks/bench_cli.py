"""Start-up time of the ``cps`` command, beside ``python -c "import click"``.

What a sysadmin feels first is how long ``cps`` takes to answer at all. The
floor for any click program is the interpreter plus click; the figure is how
far above that floor ``cps --help`` and ``cps --version`` stay (the command
modules must import their heavy libraries inside their commands). Each is run
as a subprocess of the installed console script, interleaved with the floor
so that both see the same machine load.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

from .common import Figure

RUNS, WARMUPS = 15, 2
TARGET = 1.5


def _cps_script() -> str:
    return str(Path(sys.executable).with_name("cps"))


def _wall(argv: Sequence[str]) -> float:
    start = time.perf_counter()
    subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,  # noqa: S603
                   check=True, env=dict(os.environ, CPS_DEBUG=""))
    return time.perf_counter() - start


def measure(commands: Dict[str, Sequence[str]], runs: int = RUNS,
            warmups: int = WARMUPS) -> Dict[str, float]:
    """Median wall seconds per command, the commands interleaved run by run."""
    for _ in range(warmups):
        for argv in commands.values():
            _wall(argv)
    times: Dict[str, List[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(_wall(argv))
    return {name: statistics.median(values) for name, values in times.items()}


def run() -> List[Figure]:
    cps = _cps_script()
    floor = "python -c 'import click'"
    medians = measure({
        "help": [cps, "--help"],
        "version": [cps, "--version"],
        floor: [sys.executable, "-c", "import click"],
    })
    base = medians[floor]
    figures = []
    for name in ("help", "version"):
        figures.append(Figure(
            f"`cps --{name}` wall time / `python -c 'import click'`", "ratio",
            medians[name] / base,
            {f"cps --{name} (ms, median)": medians[name] * 1e3,
             f"{floor} (ms, median)": base * 1e3},
            better="lower", target=TARGET,
            note=f"subprocesses of the installed console script, median of {RUNS} runs "
                 f"after {WARMUPS} warm-ups, interleaved with the floor"))
    return figures
