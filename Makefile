# Verity: `make run` serves everything on embedded defaults; `make test` runs the suite.
# Both do their own set-up (virtual environment, pinned dependencies, migrations).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run test lint bench-ingest clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	@export DJANGO_DEBUG=$${DJANGO_DEBUG:-true} RV_ACCEPT_UNKNOWN_AE=$${RV_ACCEPT_UNKNOWN_AE:-true}; \
	$(PY) manage.py migrate --no-input -v0 && \
	$(PY) manage.py demo_setup && \
	exec $(PY) manage.py serve

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

bench-ingest: setup
	$(PY) tests/bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
