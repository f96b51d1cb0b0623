# OpenKCM Ceremony. `make run` starts the demo, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: test lint bench deps system-modules clean help

help:
	@echo "make run    - the ceremony TUI in a demo workspace (throwaway keys, SoftHSM2 tokens, a folder as the medium)"
	@echo "make test   - install what the tests need, then ruff, mypy, import-linter and pytest"
	@echo "make bench  - benchmarks against the reference tools (ratios)"
	@echo "make lint   - ruff, mypy (strict on core), import-linter"
	@echo "make iso    - build the offline ceremony ISO; make iso-test boots it in qemu"
	@echo "make lock   - regenerate the hash-locked requirements/*.lock from pyproject.toml"

deps:
	@tools/install-debian-deps.sh

# The venv holds exactly requirements/test.lock (hash-locked, wheels only, the host's pip
# configuration ignored: tools/pip-locked), then the project itself, editable, offline.
$(VENV)/.installed: pyproject.toml requirements/test.lock
	@$(MAKE) --no-print-directory deps
	$(PYTHON) -m venv --clear $(VENV)
	tools/pip-locked $(PY) install -q --require-hashes --only-binary=:all: -r requirements/test.lock
	tools/pip-locked $(PY) install -q --no-deps --no-build-isolation --no-index -e .
	touch $@

# Debian's python3-seccomp (the image decoder's sandbox) linked into the venv, alone.
system-modules: $(VENV)/.installed
	@tools/venv-system-modules.sh $(VENV)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check core kcm_tui tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# pytest-randomly shuffles the test order and seeds each test's randomness from one seed
# (conftest.py); make test fixes it so every run is the same: `make test TEST_SEED=N`
# replays another. Hypothesis runs its derandomized `ci` profile. Under CI=true as root a
# skipped test fails the run, with its reason (tests/strict_skips.py).
# The suite runs in TEST_WORKERS pytest-xdist processes (a test file stays on one worker:
# module fixtures such as a practice ceremony are built once); TEST_WORKERS=0 runs it in
# this process.
TEST_SEED ?= 1
TEST_WORKERS ?= 2
test: deps $(VENV)/.installed system-modules lint
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q -rs -p randomly --randomly-seed=$(TEST_SEED) -n $(TEST_WORKERS) --dist loadfile

# Every benchmark runs; the target fails if any missed its target (bench_startup.py with
# --strict: the first screen over its ratio).
bench: deps $(VENV)/.installed system-modules
	@fail=0; for b in benchmarks/bench_*.py; do echo "== $$b"; \
	  $(PY) $$b $$([ $$b = benchmarks/bench_startup.py ] && echo --strict) || fail=1; done; exit $$fail

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-workspace

-include mk/*.mk
