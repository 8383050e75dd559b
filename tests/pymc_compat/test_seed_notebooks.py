"""The seed tutorials as notebooks (pm. -> jv.), executed with nbclient (``make test-long``)."""

import json
import os

import pytest

from pymc_compat.seed_notebooks import build, run, seed_notebooks

pytestmark = pytest.mark.long

# the cells the tutorials mean to fail (first line of the cell -> why)
MEANT_TO_FAIL = {
    "mu = jv.Normal('mu', 0, sigma=5)": "a variable outside a model context (the tutorial shows the error)",
}
# calls of other libraries that no longer exist, for PyMC users too (first words -> why)
GONE_ELSEWHERE = {
    "az.plot_trace(az.from_pymc3(": "arviz 0.2x removed az.from_pymc3 (PyMC 5 fails here too); jv.sample already returns "
                                   "InferenceData",
}
# helper modules that ship beside the original notebooks, not on PyPI
LOCAL_HELPERS = ("vi_visualization", "svgd_animated")

NOTEBOOKS = seed_notebooks()


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_seed_notebook_runs(name, tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = build(NOTEBOOKS[name])
    failures = run(nb, cwd=str(tmp_path))
    report = os.environ.get("JAXVI_NOTEBOOK_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"notebook": name, "cells": len(nb.cells), "failures": failures}) + "\n")
    unexpected = [f for f in failures if f["first_line"].strip() not in MEANT_TO_FAIL
                  and not any(f["first_line"].startswith(g) for g in GONE_ELSEWHERE)
                  and not any(h in f["error"] for h in LOCAL_HELPERS)]
    assert not unexpected, json.dumps(unexpected, indent=1)
