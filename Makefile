# The two commands a newcomer runs: `make demo` and `make test`. Both make their own venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# pytest-xdist workers: the suite waits on leases and servers more than it computes, so more
# workers than cores pay off (each worker gets its own test database, Redis database, cluster
# and bouncer ports: tests/services.py). 6 on 2 cores: the PostgreSQL run took 169 s, against
# 197 s with 4.
TEST_WORKERS ?= 6
# Bytecode caches (__pycache__, ignored by git) are written even where PYTHONDONTWRITEBYTECODE
# is set: without them each of a run's processes (workers, forkservers, manage.py children)
# compiles chatstate again and pytest rewrites every test module again (some 3 s a worker).
unexport PYTHONDONTWRITEBYTECODE
# worksteal: an idle worker takes tests queued on a busy one, so the run does not end on one
# worker still going through the cross-process tests that the others finished long ago.
XDIST := -n $(TEST_WORKERS) --dist worksteal

.PHONY: venv demo test test-sqlite test-postgres test-mysql lint typecheck tox matrix matrix-all \
	wheel-smoke bench docs clean

# tox needs python3.10 ... python3.13 on PATH: with pyenv, select every installed CPython 3
# so that its shims answer for each (the first one stays the default `python3`).
PYENV_ALL := $(shell command -v pyenv >/dev/null 2>&1 && \
	{ pyenv version-name; pyenv versions --bare; } | grep -E '^3\.[0-9]+\.[0-9]+$$' | \
	awk '!seen[$$0]++' | paste -sd: -)
PYENV_SET := $(if $(PYENV_ALL),PYENV_VERSION=$(PYENV_ALL) )
TOX := $(PYENV_SET)$(VENV)/bin/tox

# The packages go in with uv (itself from PyPI, into the venv): some 10 s where pip takes 20
# (bytecode compiled at install, as pip does); with pip where uv cannot be installed.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if $(PY) -m pip install --quiet uv; then \
		install="$(VENV)/bin/uv pip install --python $(PY) --quiet --compile-bytecode"; \
	else $(PY) -m pip install --quiet --upgrade pip; install="$(PY) -m pip install --quiet"; fi; \
	echo "$$install -e .[dev]"; $$install -e ".[dev]" || exit 1; \
	$$install -e ".[mysql]" 2>/dev/null || { $(PY) -m tests.services mysql 2>/dev/null; \
	if [ $$? -eq 3 ] && [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "a MariaDB server answers: installing mysqlclient's build dependencies (apt-get)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			default-libmysqlclient-dev build-essential pkg-config; } >/dev/null || exit 1; \
		$$install -e ".[mysql]" || exit 1; \
	else echo "mysqlclient did not build (apt-get install default-libmysqlclient-dev" \
		"build-essential pkg-config): make test fails while a MariaDB server answers."; fi; }
	@# Debian's Chromium drives the admin's real-browser test, which fails without it.
	@test -x /usr/bin/chromium || if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; \
	then echo "installing Chromium for the admin's browser test (apt-get)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get \
			-o DPkg::Lock::Timeout=300 install -y -qq chromium; } >/dev/null || exit 1; \
	else echo "Chromium is missing (apt-get install chromium): the admin's browser test fails."; fi
	touch $(STAMP)

venv: $(STAMP)

## demo: the example chat bot on SQLite: migrate, replay a sample conversation, explain.
demo: venv
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py demo

## test: the whole suite: SQLite always; PostgreSQL (+ Redis) and MariaDB/MySQL when reachable,
## required in CI. test-sqlite, test-postgres, test-mysql: one backend's run (it fails when
## its server is unreachable).
test: venv
	@$(MAKE) --no-print-directory test-sqlite
	@$(PY) -m tests.services postgres; rc=$$?; \
	if [ $$rc -eq 0 ]; then $(MAKE) --no-print-directory test-postgres || exit 1; \
	elif [ $$rc -ge 2 ]; then exit 1; \
	else echo "SKIPPED the PostgreSQL suite: PostgreSQL is unreachable (set CHATSTATE_PG_HOST/PORT)."; fi
	@$(PY) -m tests.services mysql; rc=$$?; \
	if [ $$rc -eq 0 ]; then $(MAKE) --no-print-directory test-mysql || exit 1; \
	elif [ $$rc -ge 2 ]; then exit 1; \
	else echo "SKIPPED the MariaDB/MySQL suite: it is unreachable (set CHATSTATE_MYSQL_HOST/PORT)."; fi

test-sqlite: venv
	@echo "== SQLite run =="
	CHATSTATE_TEST_DB=sqlite $(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-postgres: venv
	@echo "== PostgreSQL run (with the Redis adapter's suites) =="
	CHATSTATE_TEST_DB=postgres $(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-mysql: venv
	@echo "== MariaDB run =="
	CHATSTATE_TEST_DB=mysql $(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check chatstate example_project
	$(VENV)/bin/lint-imports --no-cache

typecheck: venv
	$(PY) -m mypy

## matrix: the oldest (Python 3.10, Django 5.2) and newest (3.13, 6.1) pairs, SQLite and PostgreSQL.
matrix: venv
	$(TOX) run -m ends

## matrix-all (or tox): every supported Python/Django pair on SQLite and PostgreSQL (tox.ini).
matrix-all tox: venv
	$(TOX) run

## wheel-smoke: build sdist + wheel, install the wheel alone into a clean venv, smoke a new project
## (SQLite and PostgreSQL). SMOKE_PYTHON=python3.13 smokes the newest Django that Python gets.
SMOKE_PYTHON ?= python3
wheel-smoke:
	$(PYENV_SET)SMOKE_PYTHON=$(SMOKE_PYTHON) bash ci/wheel-smoke.sh

## docs: the documentation site (Sphinx, warnings are errors) in docs/_build/html.
DOCS_STAMP := $(VENV)/.docs-stamp
$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

bench: venv
	$(PY) manage.py chatstate_bench --adapter memory --workers 1 --cycles 20000
	$(PY) manage.py chatstate_bench --adapter database --workers 1 --cycles 2000

clean:
	rm -rf $(VENV) docs/_build test-artifacts .tox .pytest_cache .mypy_cache .ruff_cache *.egg-info db.sqlite3
