"""One harness under atheris (libFuzzer, coverage-guided): used by ``fuzz.run``.

::

    python -m fuzz.atheris_main HARNESS [--out DIR] [--pki-dir DIR] -- CORPUS_DIR [libFuzzer flags]

The ``cps`` modules are imported under atheris's instrumentation, so libFuzzer
sees which branches of our parsers an input reaches. The harness's seeds are
written into the corpus directory first. Every input goes through
:func:`fuzz.engine.check` (memory traced on one input in eight); a finding is
raised out of the callback, which makes libFuzzer save the input under
``-artifact_prefix`` and stop. Known bugs (``fuzz.engine.KNOWN_BUGS``) are
counted in ``<out>/known/<harness>.json`` and skipped, so fuzzing goes on past
them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

# Every cps module a harness may reach: imported under instrumentation, before
# anything else imports them uninstrumented.
_CPS_MODULES = (
    "cps", "cps.errors", "cps.sw", "cps.tlv", "cps.atr", "cps.connection", "cps.apdu",
    "cps.logs", "cps.card", "cps.pkcs15", "cps.sha", "cps.cps3", "cps.identity",
    "cps.professions", "cps.trust", "cps.trust.certs", "cps.trust.crlindex",
    "cps.trust.names", "cps.trust.policy", "cps.trust.validate", "cps.trust.fetch",
    "cps.trust.ocsp", "cps.trust.anchors", "cps.auth", "cps.auth.token", "cps.auth.server",
    "cps.auth.nonces", "cps.sign",
)


def main(argv: list) -> None:
    if "--" in argv:
        split = argv.index("--")
        ours, libfuzzer = argv[:split], argv[split + 1:]
    else:
        ours, libfuzzer = argv, []
    parser = argparse.ArgumentParser(prog="python -m fuzz.atheris_main")
    parser.add_argument("harness")
    parser.add_argument("--out", default="build/fuzz")
    parser.add_argument("--pki-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args(ours)

    import importlib

    import atheris

    with atheris.instrument_imports(include=["cps"]):
        for name in _CPS_MODULES:
            importlib.import_module(name)
    from fuzz import harnesses
    from fuzz.engine import Context, Finding, check, known
    from fuzz.run import _limit_memory

    _limit_memory()
    pki = None
    if args.pki_dir:
        from cps.emulator.pki import TestPKI

        pki = TestPKI.generate(args.pki_dir, seed=1)
    out = Path(args.out)
    harness = harnesses.get(args.harness, Context(pki=pki, workdir=out / "work" / args.harness))
    corpus = [a for a in libfuzzer if not a.startswith("-")]
    if corpus:
        folder = Path(corpus[0])
        folder.mkdir(parents=True, exist_ok=True)
        for seed in harness.seeds():
            name = hashlib.sha1(seed).hexdigest()  # noqa: S324 - a file name
            (folder / f"seed-{name}").write_bytes(seed)
    dictionary = [w for w in harness.dictionary() if w]
    if dictionary:
        path = out / "dict" / f"{args.harness}.dict"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join('"' + "".join(f"\\x{b:02x}" for b in word) + '"\n'
                                for word in dictionary))
        libfuzzer.append(f"-dict={path}")
    known_file = out / "known" / f"{args.harness}.json"
    hits: dict = {}
    counter = [0]

    # Silence the library's warnings (discarded cache entries...): thousands of lines.
    import logging

    logging.getLogger("cps").disabled = True

    def one_input(data: bytes) -> None:
        counter[0] += 1
        try:
            check(harness, data, memory=counter[0] % 8 == 0, hang_seconds=0)
        except Finding as finding:
            bug = known(finding)
            if bug is None or args.strict:
                raise  # atheris prints it (with the input) and saves the input
            hits[bug] = hits.get(bug, 0) + 1
            if hits[bug] in (1, 10, 100) or hits[bug] % 1000 == 0:
                known_file.parent.mkdir(parents=True, exist_ok=True)
                known_file.write_text(json.dumps(hits))

    atheris.Setup([sys.argv[0]] + libfuzzer, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
