# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?= -n 2

.PHONY: demo test test-long install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"

## install jaxvi into .venv and run the main job
demo: install
	$(BIN)/jaxvi demo

## install jaxvi with its test extras into .venv and run the test suite
test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## the long tests, kept out of CI
test-long: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m long

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
