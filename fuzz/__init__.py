"""Fuzzing harnesses for every parser of untrusted bytes in ``cps``.

Not part of the installed package (pyproject lists its packages explicitly).

* :mod:`fuzz.engine` -- the contract every input is held to (only
  :class:`cps.errors.CpsError` escapes, bounded time, bounded memory, no
  broken invariant), a seed-mutating engine in pure Python and the bridge to
  atheris (coverage-guided libFuzzer) when it is installed;
* :mod:`fuzz.harnesses` -- one harness per parser, with its seeds;
* :mod:`fuzz.run` -- ``python -m fuzz.run --budget-seconds 600`` (``make fuzz``).

A short run of every harness is part of ``make test`` (tests/fuzz/).
See docs/security.md for what is fuzzed, why, and the figures measured.
"""
