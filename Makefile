# The two README commands (`make demo`, `make test`) do all of their own set-up
# through scripts/setup.sh, which is idempotent and quick when nothing is missing.
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

FUZZ_SECONDS ?= 600
FUZZ_ARGS ?=

.PHONY: setup demo test bench fuzz clean

setup:
	@scripts/setup.sh

demo: setup
	@$(PY) scripts/demo.py

# pytest exit code 5 means "no tests collected": not a failure of the code.
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc = 5 ]; then rc=0; fi; exit $$rc

bench: setup
	@$(PY) -m benchmarks

# Fuzz every parser of untrusted bytes for FUZZ_SECONDS in all (docs/security.md).
fuzz: setup
	@$(PY) -c "import atheris" 2>/dev/null || $(PY) -m pip install -q -e ".[fuzz]" \
		|| echo "fuzz: atheris unavailable, using the builtin engine"
	@$(PY) -m fuzz.run --budget-seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
