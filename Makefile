# JagCall: `make run` serves the whole stack; `make test` runs every test.
# Both install what they need first (Python packages into .venv, and the
# Debian packages the tests use).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: run test install install-dev system-packages check clean-data help

help:
	@echo "make run    install, migrate, load demo data, serve on http://127.0.0.1:8000 (Ctrl-C stops all)"
	@echo "make test   install everything the tests need and run the whole suite"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed-runtime $@

install: $(VENV)/.installed-runtime

install-dev: $(VENV)/.installed-dev

system-packages:
	@scripts/ensure-system-packages.sh chromium nginx-light xmlsec1 espeak-ng sox

# espeak-ng and sox speak "Simulate a caller"; without them the rest runs and that button says what is missing.
run: install
	@scripts/ensure-system-packages.sh espeak-ng sox || echo "Simulated callers are off until espeak-ng and sox are installed."
	DEBUG=$${DEBUG:-true} $(BIN)/python -m jagcall.devserver

# The exit status is pytest's; it is also left in .data/pytest-status for .ci/run.
test: install-dev system-packages
	@mkdir -p .data
	@$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS); status=$$?; echo $$status > .data/pytest-status; exit $$status

check: install-dev
	DEBUG=true $(BIN)/python manage.py check

clean-data:
	@echo "Stop 'make run' first. This deletes the development database and Redis data in .data/."
	rm -rf .data
