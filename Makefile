# Two commands for a fresh clone: `make demo` and `make test` (see README.rst).
# Both create their own virtualenv in .venv and install the project into it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_ADDR ?= 127.0.0.1:2121
PYTEST_ARGS ?=

# The newest supported combination, tested by `make test` beside the default
# one (whatever $(PYTHON) and pip pick) in a virtualenv of its own. The
# interpreter is found on PATH or in pyenv's versions (scripts/find-python);
# set NEWEST_PYTHON to choose one.
NEWEST_PYTHON_VERSION ?= 3.13
NEWEST_DJANGO ?= Django>=6.1,<6.2
NEWEST_VENV ?= .venv-newest
NEWEST_PYTHON ?= $(shell sh scripts/find-python $(NEWEST_PYTHON_VERSION))

.PHONY: demo test test-sqlite test-newest test-postgres test-mysql lint bench bench-s3 docs system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,docs,dev]'
	touch $@

# Client programs and headers the tests use (lftp, curl and rclone for the
# client matrix, the MySQL client library for mysqlclient, Chromium and its
# driver for the admin's browser test), and Graphviz's dot for the module
# diagram of docs/architecture.rst. Installed with apt-get when missing and
# root.
system-deps:
	@missing=""; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	command -v lftp >/dev/null || missing="$$missing lftp"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v rclone >/dev/null || missing="$$missing rclone"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	test -x /usr/bin/chromedriver || missing="$$missing chromium-driver"; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	pkg-config --exists mariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null || missing="$$missing libmariadb-dev"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing (install them; tests that need them will skip)"; \
	  fi; \
	fi

demo: $(VENV)/.installed
	cd example_project && ../$(BIN)/python manage.py demo $(DEMO_ADDR)

lint: $(VENV)/.installed
	$(BIN)/ruff check django_ftpserver tests example_project bench
	$(BIN)/ruff format --check django_ftpserver tests example_project bench

test-sqlite: $(VENV)/.installed
	FTPSERVER_TEST_DB=sqlite $(BIN)/python -m pytest $(PYTEST_ARGS)

$(NEWEST_VENV)/bin/python:
	$(NEWEST_PYTHON) -m venv --clear $(NEWEST_VENV)
	$(NEWEST_VENV)/bin/python -m pip install -q --upgrade pip

$(NEWEST_VENV)/.installed: pyproject.toml Makefile $(NEWEST_VENV)/bin/python
	$(NEWEST_VENV)/bin/python -m pip install -q -e '.[test]' '$(NEWEST_DJANGO)'
	touch $@

# The SQLite suite on the newest combination. Skips with a message when no
# Python $(NEWEST_PYTHON_VERSION) is found, except in CI (CI=true or
# FTPSERVER_REQUIRE_SERVICES=1), where that is a failure.
test-newest:
	@if [ -z "$(NEWEST_PYTHON)" ]; then \
	  echo "test-newest: SKIPPED the SQLite suite on $(NEWEST_DJANGO) and Python $(NEWEST_PYTHON_VERSION): no python$(NEWEST_PYTHON_VERSION) that runs, on PATH or in pyenv's versions. Install one, or set NEWEST_PYTHON=/path/to/python$(NEWEST_PYTHON_VERSION)." >&2; \
	  if [ "$$CI" = true ] || [ "$$FTPSERVER_REQUIRE_SERVICES" = 1 ]; then \
	    echo "test-newest: required here (CI=true or FTPSERVER_REQUIRE_SERVICES=1)" >&2; exit 1; \
	  fi; \
	else \
	  $(MAKE) --no-print-directory NEWEST_PYTHON='$(NEWEST_PYTHON)' $(NEWEST_VENV)/.installed && \
	  $(NEWEST_VENV)/bin/python -c 'import sys, django; print(f"test-newest: Django {django.get_version()} on Python {sys.version.split()[0]}")' && \
	  FTPSERVER_TEST_DB=sqlite $(NEWEST_VENV)/bin/python -m pytest $(PYTEST_ARGS); \
	fi

# The database-specific tests, against the real servers. They skip when the
# server is not reachable, unless FTPSERVER_REQUIRE_SERVICES=1 (CI sets it).
test-postgres: $(VENV)/.installed
	FTPSERVER_TEST_DB=postgres $(BIN)/python -m pytest -m postgres $(PYTEST_ARGS)

test-mysql: $(VENV)/.installed
	FTPSERVER_TEST_DB=mysql $(BIN)/python -m pytest -m mysql $(PYTEST_ARGS)

test: system-deps $(VENV)/.installed lint test-sqlite test-newest test-postgres test-mysql docs

docs: $(VENV)/.installed
	$(BIN)/sphinx-build -q -W -b html docs docs/_build/html

bench: $(VENV)/.installed
	$(BIN)/python -m bench

# StorageFS on S3 (a moto_server) against boto3 itself; BENCH_S3_ARGS=--memory-mb 1024
# adds the peak memory of a 1 GB upload.
bench-s3: $(VENV)/.installed
	$(BIN)/python -m bench.s3 $(BENCH_S3_ARGS)

clean:
	rm -rf $(VENV) $(NEWEST_VENV) docs/_build .pytest_cache .ruff_cache
