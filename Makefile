# The two README commands (`make demo`, `make test`) do all of their own set-up
# through scripts/setup.sh, which is idempotent and quick when nothing is missing.
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

FUZZ_SECONDS ?= 600
FUZZ_ARGS ?=

.PHONY: setup demo test check bench fuzz clean

setup:
	@scripts/setup.sh

demo: setup
	@$(PY) scripts/demo.py

# The type checker and the linter first (versions pinned in the test extra),
# then the suite. pytest's exit code 5 ("no tests collected") is a failure: a
# broken testpaths must not pass.
test: setup check
	@$(PY) -m pytest $(PYTEST_ARGS)

check: setup
	@$(VENV)/bin/mypy
	@$(VENV)/bin/ruff check .

bench: setup
	@$(PY) -m benchmarks

# Fuzz every parser of untrusted bytes for FUZZ_SECONDS in all (docs/security.md).
fuzz: setup
	@$(PY) -c "import atheris" 2>/dev/null || $(PY) -m pip install -q -e ".[fuzz]" \
		|| echo "fuzz: atheris unavailable, using the builtin engine"
	@$(PY) -m fuzz.run --budget-seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
