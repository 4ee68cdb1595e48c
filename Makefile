# The two commands: `make run` and `make test`. Everything else supports them.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test lint bench install devenv migrate demo clean system-deps

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# The development environment (DEBUG, SECRET_KEY, DATABASE_URL, REDIS_URL, REDIS_PREFIX) in one
# file, var/dev.env, from this make's environment; manage.py reads it, so commands typed in a
# plain shell use the same database and Redis as `make run` (apigw/devenv.py).
devenv: install
	$(PY) -m apigw.devenv

migrate: devenv
	$(PY) manage.py migrate --noinput

# Starts the demo appliance upstream and the platform; Ctrl-C stops both.
run: migrate
	$(PY) manage.py runplatform --port $(PORT)

# System packages some tests need (headless browser, promtool); installed once when missing.
system-deps:
	@bash scripts/system-deps.sh

test: install system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=true $(VENV)/bin/mypy .
	$(VENV)/bin/hadolint Dockerfile

bench: install
	@bash bench/run.sh

clean:
	rm -rf $(VENV) staticfiles db.sqlite3
