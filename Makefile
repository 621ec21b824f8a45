# Developer shortcuts. CI (.ci/run) installs the package and runs `python -m pytest` (= make test).
PYTHON ?= python

.PHONY: fmt lint test check

fmt:
	ruff format .
	ruff check --fix .

lint:
	ruff check .
	ruff format --check .

test:
	$(PYTHON) -m pytest

check: lint test
