# The two README commands (`make demo`, `make test`) do all of their own set-up
# through scripts/setup.sh, which is idempotent and quick when nothing is missing.
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test bench clean

setup:
	@scripts/setup.sh

demo: setup
	@$(PY) scripts/demo.py

# pytest exit code 5 means "no tests collected": not a failure of the code.
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc = 5 ]; then rc=0; fi; exit $$rc

bench: setup
	@$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
