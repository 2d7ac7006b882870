# Canal: two commands.
#   make run   set up everything (venv, requirements, dot, the step sandbox's bubblewrap
#              and slirp4netns, migrations, first admin)
#              and start web + worker + scheduler in the foreground under supervisord
#              (a crashed process is restarted); Ctrl-C stops all.
#   make test  lint, layer contracts, Django checks, and the whole test suite.

PYTHON3 ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip --disable-pip-version-check
UV      := $(VENV)/bin/uv
HOST    ?= 127.0.0.1
PORT    ?= 8000
export HOST PORT

.DEFAULT_GOAL := help
.PHONY: help run setup install install-dev deps-system lock migrate test lint check pytest bench clean

help:
	@echo "make run    - set up and start Canal (web on http://$(HOST):$(PORT), worker, scheduler)"
	@echo "make test   - run linters, layer contracts and the test suite"
	@echo "make bench  - run every benchmark and print one table (Canal vs its peers, the machine)"

$(VENV)/bin/python:
	@$(PYTHON3) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Canal needs Python >= 3.11")'
	$(PYTHON3) -m venv $(VENV)

# Dependencies are installed from the hash-locked files (requirements*.lock, made by
# `make lock` from the requirements*.txt pins): the exact versions CI tested, and the
# installer refuses any file whose hash differs. Stamps make the second `make run` start in
# seconds; they are redone when a lock file changes.
#
# The locks are installed by uv (pinned and hash-checked in requirements.lock itself),
# which pip bootstraps: its one locked line, hashes and all, is copied out of
# requirements.lock and installed with --require-hashes. On this project's 2-core
# machine pip took 35 s for requirements.lock and 92 s more for requirements-dev.lock
# from its cache, uv 1.2 s and 2.8 s from its own (~/.cache/uv).
$(VENV)/.uv: requirements.lock | $(VENV)/bin/python
	@awk '/^uv==/ {p = 1} p {print} p && !/\\$$/ {exit}' requirements.lock > $(VENV)/uv-requirement.txt
	$(PIP) install -q --require-hashes --no-deps -r $(VENV)/uv-requirement.txt
	touch $@

$(VENV)/.runtime: requirements.lock $(VENV)/.uv
	$(UV) pip install --quiet --compile-bytecode --python $(PY) --require-hashes -r requirements.lock
	touch $@

$(VENV)/.dev: requirements-dev.lock $(VENV)/.runtime
	$(UV) pip install --quiet --compile-bytecode --python $(PY) --require-hashes -r requirements-dev.lock
	touch $@

# The MySQL driver has a stamp of its own, so that switching an existing checkout to
# MySQL (DATABASE_URL=mysql://...) installs it however the venv was made before. Building
# mysqlclient needs the MariaDB client headers and pkg-config (installed first when root).
$(VENV)/.mysql: requirements-mysql.lock $(VENV)/.runtime
	@scripts/ensure-system-deps.sh mysql-headers
	$(UV) pip install --quiet --compile-bytecode --python $(PY) --require-hashes -r requirements-mysql.lock
	touch $@

# The schemes dj-database-url maps to Django's MySQL backend, whose driver is mysqlclient.
USES_MYSQL := $(filter mysql://% mysql2://% mysqlgis://%,$(DATABASE_URL))

install: $(VENV)/.runtime $(if $(USES_MYSQL),$(VENV)/.mysql)
install-dev: $(VENV)/.dev $(if $(USES_MYSQL),$(VENV)/.mysql)

# graphviz draws DAGs; bubblewrap and slirp4netns sandbox pipeline steps; with MySQL,
# the client headers mysqlclient builds against.
deps-system:
	@scripts/ensure-system-deps.sh dot sandbox $(if $(USES_MYSQL),mysql-headers)

# Re-resolve the lock files after editing a requirements*.txt: `make lock`. Pins already in
# the locks are kept unless LOCK_ARGS says otherwise: LOCK_ARGS=--upgrade moves every
# unpinned dependency to its newest release, LOCK_ARGS="--upgrade-package requests" one.
# All three come from ONE resolution (dev + mysql, which include runtime), so that any
# combination of them installs together. uv is the one pinned in requirements.txt.
LOCK_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 \
               --generate-hashes --custom-compile-command "make lock" $(LOCK_ARGS)
lock: | $(VENV)/bin/python
	$(PIP) install -q "$$(grep -E '^uv==' requirements.txt)"
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cat requirements-dev.lock requirements-mysql.lock > "$$tmp/all.lock" 2>/dev/null || true; \
	$(LOCK_COMPILE) requirements-dev.txt requirements-mysql.txt -o "$$tmp/all.lock"; \
	for name in requirements requirements-dev requirements-mysql; do \
	  $(LOCK_COMPILE) -c "$$tmp/all.lock" $$name.txt -o "$$tmp/$$name.lock"; \
	  grep -vxF "    #   -c $$tmp/all.lock" "$$tmp/$$name.lock" > $$name.lock; \
	done
	@echo "Locked: requirements.lock requirements-dev.lock requirements-mysql.lock"

migrate: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_admin

setup: install deps-system migrate

# supervisord runs web, worker and scheduler (config generated from the environment
# into $(CANAL_DATA_DIR)/supervisor/): a process that dies is restarted, the others go on.
run: setup
	@echo "Canal: http://$(HOST):$(PORT)/  (health: /healthz, admin: /admin/)  Ctrl-C stops everything."
	$(PY) manage.py canal_supervise

# mypy keeps its cache under the user's cache directory, not in the checkout: a fresh
# clone (CI's) checks only what changed, about 12 s less than a cold run here. mypy
# revalidates each cached module against its source's hash, so clones can share it.
MYPY_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/canal/mypy
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy --cache-dir "$(MYPY_CACHE)" apps pipelines_site

check: install-dev
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run

# PYTEST_ARGS: extra pytest arguments (CI uses it to run one slow file beside pass 2).
# PYTEST_WORKERS: pytest-xdist worker processes (2: the suite waits on steps, servers and
# browsers as much as it computes). Each worker is a session of its own (tests/pytest_env.py);
# --dist loadfile keeps a file's tests, and its module fixtures, on one worker; with
# --no-loadscope-reorder files go out in the suite's order, slow files first
# (tests/conftest.py). 0: no xdist.
PYTEST_WORKERS ?= 2
pytest: install-dev deps-system
	@scripts/run-pytest.sh -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test: lint check pytest

# Every benchmark, then one table (bench/report.py). The MariaDB + Redis rows need them on
# 127.0.0.1 (the MySQL driver is installed for them); bench/scale.py generates (once) 100k
# runs and 1M tasks in MariaDB's canal_scale database (SCALE_DATABASE_URL to change it).
# BENCH_ARGS=--quick: one repeat, no fan-5000, scale.py on a small SQLite dataset.
bench: install-dev deps-system $(VENV)/.mysql
	$(PY) bench/report.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache "$(MYPY_CACHE)"
