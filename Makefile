# The two commands: `make run` and `make test`. Everything else supports them.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test lint bench install devenv migrate demo clean system-deps cluster test-cluster

UV := $(VENV)/bin/uv

.PHONY: lock

# Dependencies: requirements.txt (runtime) and requirements-dev.txt (dev/test) are edited by hand;
# what gets installed is their locks, every package pinned with its hashes. uv installs the dev
# lock into a fresh venv in ~25-30 s where pip takes ~2.5 min (docs/dependencies.md); the image
# installs requirements.lock with pip --require-hashes. uv itself comes hash-checked from its lock.
$(UV): requirements-uv.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --require-hashes --no-deps -r requirements-uv.lock
	@touch $(UV)

$(STAMP): $(UV) requirements-dev.lock
	@echo "Installing the locked dev/test dependencies into $(VENV) ..."
	$(UV) pip sync --require-hashes --python $(PY) requirements-dev.lock
	@touch $(STAMP)

install: $(STAMP)

# After editing requirements.txt or requirements-dev.txt (or UV_VERSION): new locks, in seconds.
# Resolved for CPython 3.11.7 on Linux (this machine; the image runs a later 3.11).
UV_VERSION := 0.13.8
LOCK := $(UV) pip compile --quiet --generate-hashes --python-version 3.11.7 --python-platform linux \
	--custom-compile-command "make lock"
lock: $(UV)
	$(LOCK) -o requirements.lock requirements.txt
	$(LOCK) -o requirements-dev.lock requirements-dev.txt
	echo "uv==$(UV_VERSION)" | $(LOCK) -o requirements-uv.lock -

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

# The platform as a local cluster until Ctrl-C: gateways in production mode behind nginx, Redis,
# the machine's PostgreSQL (database apigw_cluster), the demo upstream (docs/operations.md).
# E.g. make cluster CLUSTER_ARGS="--instances 5 --redis cluster"
cluster: install
	$(PY) -m localcluster $(CLUSTER_ARGS)

# The failure drills on a local cluster under load (tests/cluster, marker `cluster`, ~4 min); kept
# out of `make test` for its time budget. CI runs both (.ci/run). They need PostgreSQL.
test-cluster: install system-deps
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(PY) -m pytest -m cluster tests/cluster $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=true $(VENV)/bin/mypy .
	$(VENV)/bin/hadolint Dockerfile

bench: install
	@bash bench/run.sh

clean:
	rm -rf $(VENV) staticfiles db.sqlite3
