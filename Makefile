# `make run`: set up a virtualenv and run the daemon on its embedded default (tcp:8080).
# `make test`: set up the virtualenv with the test extras and run the whole test suite.
PYTHON ?= python3
VENV ?= .venv
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test bench install install-test django-example

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

install: $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet .

install-test: $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet ".[test]"

run: install
	$(VENV)/bin/twistd -n sse --demo $(ARGS)

test: install-test
	scripts/test-tools
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(VENV)/bin/python benchmarks/bench.py --out benchmarks/results.json $(BENCH_ARGS)

# `make django-example`: redis-server, `twistd sse --jwt-key ...` and the Django example app (examples/django).
django-example: $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet ".[django-example]"
	PY=$(abspath $(VENV))/bin/python examples/django/run.sh
