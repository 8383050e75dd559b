# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?= -n 2

.PHONY: demo test test-long install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Graphviz's `dot` draws jv.model_to_graphviz graphs; try to get it, never fail without it
DOT_CHECK = command -v dot >/dev/null 2>&1 \
	|| { command -v apt-get >/dev/null 2>&1 && apt-get install -y -qq graphviz >/dev/null 2>&1; } \
	|| echo "note: Graphviz's dot program is missing: jv.model_to_graphviz(...) can build graphs but not draw them (apt-get install graphviz)"

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@$(DOT_CHECK)

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@$(DOT_CHECK)

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

## benchmarks: jaxvi vs PyMC vs NumPyro SVI vs a hand-fused JAX loop -> benchmarks/results.md;
## callbacks (fused, Tracker, no-op; jaxvi and PyMC) -> benchmarks/callbacks.md
## (PyMC pins its own arviz, so the peers get their own venv, benchmarks/.venv-peers)
PEERS      := benchmarks/.venv-peers
PEERS_JAX  := "numpyro>=0.15" "jax>=0.4.30" "jaxlib>=0.4.30" "optax>=0.2.2"
PEERS_PYMC := "pymc>=5.10"

.PHONY: bench

$(PEERS)/bin/python:
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet --upgrade pip

$(PEERS)/.installed: $(PEERS)/bin/python
	$(PEERS)/bin/python -m pip install --quiet $(PEERS_JAX) || echo "WARNING: numpyro/jax could not be installed into $(PEERS)"
	$(PEERS)/bin/python -m pip install --quiet $(PEERS_PYMC) && touch $@ \
	  || echo "WARNING: pymc could not be installed into $(PEERS); the PyMC rows will show the error"

bench: install $(PEERS)/.installed
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/callbacks.py

## fit time vs observations (1e3..1e7) and vs parameters (10..10,000), mean-field and full-rank
## -> benchmarks/scaling.md and .json (about 9 minutes on 2 busy cores; SCALING_ARGS="--quick" for a smoke run)
SCALING_ARGS ?=
.PHONY: scaling
scaling: install
	$(BIN)/python benchmarks/scaling.py $(SCALING_ARGS)

## accuracy of the VI methods on posteriordb reference posteriors -> benchmarks/accuracy.md and .json
## (restartable: finished (posterior, method) pairs are cached in accuracy.json; data from
## $JAXVI_POSTERIORDB or ../shared/posteriordb; e.g. make accuracy ACCURACY_ARGS="--methods advi --force"; the defaults
## mode, jv.fit(method=m) only in float32: make accuracy ACCURACY_ARGS="--defaults --seeds 0 --jobs 2")
ACCURACY_ARGS ?=
.PHONY: accuracy
accuracy: install
	$(BIN)/python benchmarks/accuracy.py $(ACCURACY_ARGS)
