"""Test support for users' own test suites (the ``cps`` pytest plugin)."""
