# cmt-slurm: `make demo` and `make test` are the two commands a newcomer needs (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: all deps venv lint test test-fast demo bench clean

all: test

deps:
	@scripts/install-deps

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check cmt_slurm tests bench
	$(VENV)/bin/ruff format --check cmt_slurm tests bench
	$(VENV)/bin/mypy

# The whole suite: lint, unit, integration (real PostgreSQL, Slurm, lldpd) and e2e (QEMU VMs).
test: deps venv lint
	scripts/with-postgres $(PY) -m pytest $(PYTEST_ARGS)

# Only the pure, fast tests: for the edit-test loop.
test-fast: venv
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

demo: deps venv
	@scripts/demo

bench: deps venv
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
