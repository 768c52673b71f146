"""A short fuzz run of every harness (the long one is `make fuzz`), and the contract itself.

Each harness runs its seeds, then mutations, for ``CPS_FUZZ_SECONDS`` (default
0.8 s) with the builtin engine, deterministically (``CPS_FUZZ_SEED``, default
0): only ``cps.errors.CpsError`` may escape, every call stays under the
harness's time limit, sampled calls under its memory bound, and the
harness's invariants hold. Known, reported bugs (``fuzz.engine.KNOWN_BUGS``)
are counted, not failed: their regression tests are in
test_fuzz_regressions.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz import harnesses  # noqa: E402
from fuzz.engine import Context, Finding, Harness, Violation, check, fuzz  # noqa: E402

SECONDS = float(os.environ.get("CPS_FUZZ_SECONDS", "0.8"))
SEED = int(os.environ.get("CPS_FUZZ_SEED", "0"))


@pytest.fixture(scope="module")
def context(cps_pki, tmp_path_factory):
    return Context(pki=cps_pki, workdir=tmp_path_factory.mktemp("fuzz"))


@pytest.mark.parametrize("name", harnesses.names())
def test_short_fuzz_run(name, context, record_property):
    harness = harnesses.get(name, context)
    stats = fuzz(harness, SECONDS, seed=SEED, max_findings=3)
    record_property("executions", stats.executions)
    print(f"{name}: {stats.executions} executions in {stats.seconds:.2f} s, "
          f"{stats.outcomes} outcomes, known bugs hit: {stats.known_hits or 'none'}")
    assert stats.executions > stats.seeds, "the harness did not get past its seeds"
    assert not stats.findings, "\n\n".join(str(f) for f in stats.findings)


def test_every_harness_has_seeds_that_pass(context):
    """Seeds are the valid inputs: they must parse (or be refused cleanly) within limits."""
    for name in harnesses.names():
        harness = harnesses.get(name, context)
        seeds = harness.seeds()
        assert seeds, name
        for seed in seeds:
            check(harness, seed, memory=True)


# --------------------------------------------------------------------------- the contract
class _Broken(Harness):
    name = "self-test"
    time_limit = 0.2

    def one(self, data: bytes) -> None:
        from cps.errors import CardProtocolError

        kind = data[:1]
        if kind == b"c":
            raise CardProtocolError("a documented refusal")
        if kind == b"i":
            [][1]  # noqa: B018 - an IndexError escaping
        if kind == b"m":
            bytearray(8 << 20)  # a length field driving an allocation
        if kind == b"s":
            time.sleep(0.3)
        if kind == b"h":
            while True:  # a card answering 61xx for ever, say
                time.sleep(0.01)
        if kind == b"v":
            raise Violation("a PIN try spent", key="pin")


@pytest.mark.parametrize("data,kind", [(b"i", "exception"), (b"m", "memory"), (b"s", "slow"),
                                       (b"h", "hang"), (b"v", "violation")])
def test_the_contract_catches(data, kind):
    with pytest.raises(Finding) as info:
        check(_Broken(), data, memory=kind == "memory", hang_seconds=0.5)
    assert info.value.kind == kind
    assert data.hex() in str(info.value)


def test_cps_errors_and_clean_returns_are_fine():
    assert check(_Broken(), b"c").startswith("CardProtocolError")
    assert check(_Broken(), b"ok", memory=True) == "ok"


def test_status_word_table_is_total():
    """Every one of the 65,536 status words has an entry, a text and a CardError."""
    from cps import errors
    from cps.sw import describe, error_for_sw, lookup

    for sw in range(0x10000):
        entry = lookup(sw)
        assert entry.name and describe(sw)
        err = error_for_sw(sw, b"\x01", "ctx")
        assert isinstance(err, errors.CardError) and err.sw == sw


def test_make_fuzz_entry_point_runs(tmp_path):
    """`python -m fuzz.run` (what `make fuzz` calls) runs a harness and writes its summary."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "fuzz.run", "--only", "atr,docp", "--budget-seconds", "1",
         "--engine", "builtin", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "atr" in proc.stdout and "total:" in proc.stdout
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["executions"] > 100 and summary["findings"] == 0
