"""Run every fuzzing harness for a time budget: ``python -m fuzz.run --budget-seconds 600``.

Each harness runs in its own process (a crash, a hang or a memory blow-up
cannot take the others down; the address space is capped), for an equal share
of the budget, with atheris (coverage-guided libFuzzer) when it is installed,
else the builtin mutation engine. Inputs that break the contract are written
to ``<out>/findings/`` with their report; a summary table and
``<out>/summary.json`` give executions, rates and findings per harness.

Known bugs (``fuzz.engine.KNOWN_BUGS``, reported and awaiting a fix) are
counted apart and fuzzing goes on past them; they still make the run fail
unless ``--tolerate-known`` is given.

Exit status: 0 when every harness ran clean, 1 when something was found
(or a known bug was hit without ``--tolerate-known``), 2 on a usage or
set-up error.

Other uses::

    python -m fuzz.run --list                          # the harnesses
    python -m fuzz.run --only tlv,pkcs15 --budget-seconds 60
    python -m fuzz.run --reproduce pkcs15 FILE         # replay one input, full report
    python -m fuzz.run --engine builtin                # no atheris even if installed
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "build" / "fuzz"
#: address-space cap of a worker: far above what any input may need, far below the machine
ADDRESS_SPACE_LIMIT = 6 << 30
SETUP_ALLOWANCE = 180.0   # seconds a worker may spend building seeds (first PKI generation)


def _have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _limit_memory() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not POSIX
        pass


def _context(args: argparse.Namespace):
    from fuzz.engine import Context

    pki = None
    if args.pki_dir:
        from cps.emulator.pki import TestPKI

        pki = TestPKI.generate(args.pki_dir, seed=1)
    return Context(pki=pki, workdir=Path(args.out) / "work" / f"{os.getpid()}")


# --------------------------------------------------------------------------- worker
def worker(args: argparse.Namespace) -> int:
    """Run one harness with the builtin engine; write its stats as JSON."""
    _limit_memory()
    from fuzz import harnesses
    from fuzz.engine import fuzz

    harness = harnesses.get(args.worker, _context(args))
    stats = fuzz(harness, args.seconds, seed=args.seed,
                 crash_dir=Path(args.out) / "findings", tolerate_known=True)
    out = stats.as_dict()
    out["engine"] = "builtin"
    Path(args.result).write_text(json.dumps(out, indent=1))
    return 1 if stats.findings else 0


def _run_atheris(name: str, seconds: float, args: argparse.Namespace) -> dict:
    out = Path(args.out)
    corpus = out / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    findings = out / "findings"
    findings.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "fuzz.atheris_main", name, "--out", str(out),
               "--seed", str(args.seed)]
    if args.pki_dir:
        command += ["--pki-dir", args.pki_dir]
    command += ["--", str(corpus), f"-max_total_time={int(max(seconds, 1))}", "-timeout=10",
                "-rss_limit_mb=3072", "-print_final_stats=1", f"-seed={args.seed + 1}",
                f"-artifact_prefix={findings}/{name}-"]
    start = time.monotonic()
    try:
        proc = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True,
                              timeout=seconds + SETUP_ALLOWANCE)
        log, code = proc.stderr + proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        log = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) \
            else (exc.stderr or "")
        code = -9
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "logs" / f"{name}.log").write_text(log)
    executions = _stat(log, r"stat::number_of_executed_units:\s*(\d+)") or \
        _stat(log, r"Done (\d+) runs")
    elapsed = _stat(log, r"Done \d+ runs in (\d+) second") or (time.monotonic() - start)
    known_file = out / "known" / f"{name}.json"
    known_hits = json.loads(known_file.read_text()) if known_file.exists() else {}
    known_file.unlink(missing_ok=True)
    result = {"harness": name, "engine": "atheris", "executions": executions or 0,
              "seconds": float(elapsed), "rate": round((executions or 0) / max(elapsed, 1), 1),
              "known_hits": known_hits, "findings": []}
    if code != 0:
        tail = "\n".join(log.strip().splitlines()[-40:])
        result["findings"].append({"kind": "crash" if code != -9 else "hang",
                                   "detail": f"atheris exited {code}", "log": tail})
    return result


def _stat(log: str, pattern: str) -> Optional[int]:
    found = re.findall(pattern, log)
    return int(found[-1]) if found else None


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def _run_builtin(name: str, seconds: float, args: argparse.Namespace) -> dict:
    out = Path(args.out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    result_file = out / "results" / f"{name}.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "fuzz.run", "--worker", name, "--seconds", str(seconds),
               "--out", str(out), "--result", str(result_file), "--seed", str(args.seed)]
    if args.pki_dir:
        command += ["--pki-dir", args.pki_dir]
    try:
        proc = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True,
                              timeout=seconds + SETUP_ALLOWANCE)
        log, code = proc.stderr + proc.stdout, proc.returncode
    except subprocess.TimeoutExpired:
        log, code = "worker killed: budget exceeded (a hang outside the watchdog?)", -9
    if result_file.exists():
        return json.loads(result_file.read_text())
    return {"harness": name, "engine": "builtin", "executions": 0, "seconds": 0.0, "rate": 0.0,
            "findings": [{"kind": "crash", "detail": f"worker exited {code}",
                          "log": "\n".join(log.strip().splitlines()[-40:])}]}


# --------------------------------------------------------------------------- driver
def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("--budget-seconds", type=float, default=600.0,
                        help="total fuzzing time, shared equally by the harnesses (600)")
    parser.add_argument("--engine", choices=("auto", "atheris", "builtin"), default="auto")
    parser.add_argument("--only", default="", help="comma-separated harness names")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="findings, corpora, logs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pki-dir", default=None,
                        help="test PKI directory (default: the emulator's cached one)")
    parser.add_argument("--tolerate-known", action="store_true",
                        help="do not fail on known bugs (fuzz.engine.KNOWN_BUGS): count them")
    parser.add_argument("--list", action="store_true", help="list the harnesses and exit")
    parser.add_argument("--reproduce", nargs=2, metavar=("HARNESS", "FILE"),
                        help="run one input through a harness and print the verdict")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        return worker(args)

    from fuzz import harnesses

    if args.list:
        for name, cls in harnesses.HARNESSES.items():
            print(f"{name:<22} {', '.join(cls.targets)}")
        return 0
    if args.reproduce:
        from fuzz.engine import Finding, check

        name, path = args.reproduce
        harness = harnesses.get(name, _context(args))
        try:
            print(check(harness, Path(path).read_bytes(), memory=True))
        except Finding as finding:
            print(finding)
            return 1
        return 0

    names = [n for n in args.only.split(",") if n] or harnesses.names()
    unknown = sorted(set(names) - set(harnesses.names()))
    if unknown:
        parser.error(f"unknown harness(es): {', '.join(unknown)}")
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if _have_atheris() else "builtin"
    elif engine == "atheris" and not _have_atheris():
        print("atheris is not installed: pip install atheris (or --engine builtin)",
              file=sys.stderr)
        return 2
    share = args.budget_seconds / len(names)
    print(f"fuzzing {len(names)} harnesses with {engine}, {share:.0f} s each "
          f"({args.budget_seconds:.0f} s in all); findings in {args.out}/findings", flush=True)
    results = []
    for name in names:
        run = _run_atheris if engine == "atheris" else _run_builtin
        result = run(name, share, args)
        results.append(result)
        state = "clean" if not result["findings"] else f"{len(result['findings'])} FINDING(S)"
        if result.get("known_hits"):
            state += "; known bugs hit: " + ", ".join(
                f"{bug} x{n}" for bug, n in sorted(result["known_hits"].items()))
        print(f"  {name:<22} {result['executions']:>10} execs  {result['seconds']:7.1f} s  "
              f"{result['rate']:>9.1f}/s  {state}", flush=True)
        for finding in result["findings"]:
            print("    " + finding["kind"] + ": " + finding["detail"][:300], flush=True)
            if finding.get("log"):
                print("      " + finding["log"].replace("\n", "\n      ")[-3000:], flush=True)
    total = sum(r["executions"] for r in results)
    seconds = sum(r["seconds"] for r in results)
    found = sum(len(r["findings"]) for r in results)
    known_bugs = sorted({bug for r in results for bug in r.get("known_hits", {})})
    print(f"total: {total} executions in {seconds:.0f} s of fuzzing, "
          f"{found} finding(s), known bugs hit: {', '.join(known_bugs) or 'none'}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(
        {"engine": engine, "budget_seconds": args.budget_seconds, "executions": total,
         "seconds": round(seconds, 1), "findings": found, "known_bugs_hit": known_bugs,
         "harnesses": results}, indent=1))
    return 1 if found or (known_bugs and not args.tolerate_known) else 0


if __name__ == "__main__":
    sys.exit(main())
