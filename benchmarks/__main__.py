"""Run every benchmark; write benchmarks/results/latest.json and docs/performance.md.

``python -m benchmarks`` runs them all (``make bench``). Naming modules runs only
those, with or without the ``bench_`` prefix: ``python -m benchmarks trust auth``
(the other modules' figures are kept from the last run). Paths are relative to
this package's own checkout, so a copy of ``benchmarks/`` in another work tree
writes into that tree.
"""

from __future__ import annotations

import datetime
import importlib
import json
import pkgutil
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    package = importlib.import_module("benchmarks")
    available = sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                       if m.name.startswith("bench_"))
    if any(a in ("-h", "--help") for a in argv):
        print(f"usage: python -m benchmarks [NAME ...]\n{__doc__}\nmodules: "
              + " ".join(m[len("bench_"):] for m in available), file=sys.stderr)
        return 0
    only = {a if a.startswith("bench_") else f"bench_{a}" for a in argv}
    unknown = sorted(only - set(available))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: "
              + " ".join(m[len("bench_"):] for m in available), file=sys.stderr)
        return 2
    figures = []
    for name in available:
        if only and name not in only:
            continue
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"running {name}...", file=sys.stderr)
        for fig in module.run():
            figures.append((name, fig))
            print(f"  {fig.name}: {_fmt(fig.ours)} {fig.unit}  anchors: "
                  + ", ".join(f"{k}={_fmt(v)}" for k, v in fig.anchors.items()), file=sys.stderr)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "machine": platform.machine(),
            "platform": platform.platform()}
    latest = ROOT / "benchmarks" / "results" / "latest.json"
    new = [dict(fig.as_dict(), module=mod) for mod, fig in figures]
    if only and latest.exists():
        # A partial run keeps the other modules' figures from the last full run.
        kept = [f for f in json.loads(latest.read_text(encoding="utf-8"))["figures"]
                if f["module"] not in {m for m, _ in figures}]
        new = kept + new
    out = {"meta": meta, "figures": sorted(new, key=lambda f: f["module"])}
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    latest.write_text(
        json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    rows = ["| benchmark | figure | ours | anchors (same run) | target | met |",
            "|---|---|---|---|---|---|"]
    for f in out["figures"]:
        anchors = "; ".join(f"{k}: {_fmt(v)}" for k, v in f["anchors"].items()) or "—"
        target = f"{'≤' if f['better'] == 'lower' else '≥'} {_fmt(f['target'])}" \
            if f["target"] is not None else "—"
        met = {True: "yes", False: "**no**", None: "—"}[f["meets_target"]]
        rows.append(f"| {f['module']} | {f['name']} ({f['unit']}) | {_fmt(f['ours'])} | "
                    f"{anchors} | {target} | {met} |")
    doc = ROOT / "docs" / "performance.md"
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    table = (f"{start}\nMeasured {meta['date']} on {meta['platform']}, Python {meta['python']} "
             f"(`make bench`; raw figures in benchmarks/results/latest.json).\n\n"
             + "\n".join(rows) + f"\n{end}")
    if start in text and end in text:
        text = text[:text.index(start)] + table + text[text.index(end) + len(end):]
    else:
        text = text + "\n" + table + "\n"
    doc.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
