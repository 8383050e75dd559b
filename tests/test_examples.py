"""Every example runs as a script (small sizes) and as a `jaxvi fit` model file."""

import os
import runpy
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = {
    "advi_gaussian": ["advi_gaussian.png"],
    "meanfield_vs_fullrank": ["meanfield_vs_fullrank.png"],
    "logistic_regression": ["logistic_regression.png"],
    "quickstart_callbacks": ["quickstart_tracker.png"],
    "bimodal_mixture": ["bimodal_mixture.png"],
}


def test_every_example_is_listed():
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted(SCRIPTS)


@pytest.fixture
def small(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXVI_EXAMPLE_N", "300")
    monkeypatch.setenv("JAXVI_EXAMPLE_DRAWS", "100")
    monkeypatch.setenv("JAXVI_EXAMPLE_OUT", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_example_runs_as_a_script(name, small, capsys):
    runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")
    out = capsys.readouterr().out
    for png in SCRIPTS[name]:
        assert (small / png).stat().st_size > 5000, png
    if name == "advi_gaussian":  # NUTS is right even with 100 draws: the data have mean ~1.5, sd ~0.7
        nuts = next(line for line in out.splitlines() if line.startswith("NUTS:"))
        loc, scale = float(nuts.split()[2]), float(nuts.split()[6])
        assert abs(loc - 1.5) < 0.15 and abs(scale - 0.7) < 0.1
    if name == "quickstart_callbacks":
        assert "tracked 150 values of the mean; hist has 300 losses" in out
    if name == "meanfield_vs_fullrank":
        assert "mean-field optimum sds: [0.436 0.872]" in out


def test_example_defines_model_for_the_command_line():
    from jaxvi.faces.commands import load_model

    for name in SCRIPTS:
        model = load_model(EXAMPLES / f"{name}.py")
        assert model.free_RVs, name


def test_jaxvi_fit_on_an_example_writes_netcdf_csv_and_pngs(tmp_path, capsys):
    from jaxvi.faces.cli import main
    from jaxvi.results.inference_data import import_arviz as _arviz

    out = tmp_path / "fit"
    rc = main(["fit", str(EXAMPLES / "logistic_regression.py"), "--n", "500", "--draws", "200",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    assert sorted(os.listdir(out)) == ["loss.png", "posterior.nc", "posterior.png", "summary.csv"]
    assert (out / "loss.png").stat().st_size > 5000 and (out / "posterior.png").stat().st_size > 5000
    idata = _arviz().from_netcdf(str(out / "posterior.nc"))
    assert idata.posterior["coefs"].shape == (1, 200, 2)
    assert list(idata.posterior["coefs"].coords["predictor"].values) == ["x1", "x2"]
    assert idata.observed_data["y"].shape == (300,)
    lines = (out / "summary.csv").read_text().splitlines()
    assert lines[0] == ",mean,sd,hdi_3%,hdi_97%"
    assert [line.split(",")[0] for line in lines[1:]] == ["intercept", "coefs[x1]", "coefs[x2]"]
    mean = float(lines[1].split(",")[1])
    assert np.isclose(mean, float(idata.posterior["intercept"].mean()), atol=1e-3)
    assert "coefs[x2]" in capsys.readouterr().out
