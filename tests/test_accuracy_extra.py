"""The accuracy suite's extra models (``benchmarks/models_extra.py``) and their NUTS references.

* every model builds (float32 data, JAX's default precision) and its log density is finite at the initial point;
* the log densities of three of them (a logistic GLM, a StudentT regression, a two-state HMM marginalised by the
  forward algorithm) match independent SciPy/NumPy code at a random point (float64);
* the stored references (``benchmarks/reference/*.json``, ``make_references.py``) load, name every free variable
  and Deterministic of their model, and record R-hat <= 1.01 and bulk ESS >= 4000 for every parameter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, logsumexp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import models_extra as mx  # noqa: E402


@pytest.mark.parametrize("name", mx.POSTERIORS)
def test_model_builds_and_logp_finite(name):
    cm = mx.build_model(name, dtype=np.float32).compile()
    assert 4 <= cm.size <= 90
    assert np.isfinite(float(jax.jit(cm.logp)(cm.initial_point())))  # jit: eager dispatch is slower


# -- independent log densities of the constrained free variables (no Jacobian) --------------------------
def lp_logistic_glm_corr(d, p):
    eta = p["alpha"] + d["X"] @ p["beta"]
    prior = stats.norm.logpdf(p["alpha"], 0, 2.5) + stats.norm.logpdf(p["beta"], 0, 2.5).sum()
    return prior + stats.bernoulli.logpmf(d["y"], expit(eta)).sum()


def lp_robust_regression(d, p):
    prior = (stats.norm.logpdf(p["alpha"], 0, 5) + stats.norm.logpdf(p["beta"], 0, 5).sum()
             + stats.halfnorm.logpdf(p["sigma"], scale=2) + stats.gamma.logpdf(p["nu"], 2.0, scale=10.0))
    mu = p["alpha"] + d["X"] @ p["beta"]
    return prior + stats.t.logpdf(d["y"], p["nu"], mu, p["sigma"]).sum()


def lp_hmm_gaussian2(d, p):
    mu = np.array([p["mu_first"], p["mu_first"] + p["mu_gap"]])
    ps = p["p_stay"]
    trans = np.array([[ps[0], 1 - ps[0]], [1 - ps[1], ps[1]]])
    em = stats.norm.logpdf(d["y"][:, None], mu[None, :], p["sigma"])
    la = np.log([0.5, 0.5]) + em[0]
    for t in range(1, len(d["y"])):  # forward recursion, one time step at a time
        la = np.array([logsumexp(la + np.log(trans[:, j])) for j in range(2)]) + em[t]
    prior = (stats.norm.logpdf(p["mu_first"], 0, 3) + stats.halfnorm.logpdf(p["mu_gap"], scale=3)
             + stats.halfnorm.logpdf(p["sigma"], scale=2) + stats.beta.logpdf(ps, 4.0, 1.5).sum())
    return prior + logsumexp(la)


LOGP = {"extra-logistic_glm_corr": lp_logistic_glm_corr, "extra-robust_regression": lp_robust_regression,
        "extra-hmm_gaussian2": lp_hmm_gaussian2}


@pytest.mark.parametrize("name", list(LOGP))
def test_logp_matches_independent_computation(name):
    with jax.enable_x64(True):
        d = mx.load_data(name)
        model = mx.build_model(name, data=d)
        cm = model.compile()
        rng = np.random.default_rng(3)
        flat = rng.uniform(-1.0, 1.0, cm.size)  # unconstrained
        point = {k: np.asarray(v, dtype=np.float64) for k, v in cm.unravel(flat).items()
                 if k in {v.name for v in model.free_RVs}}
        lp = float(jax.jit(lambda f: cm.logp(f, jacobian=False))(flat))
    assert np.isfinite(lp)
    assert lp == pytest.approx(LOGP[name](d, point), rel=1e-8, abs=1e-8)


@pytest.mark.parametrize("name", mx.POSTERIORS)
def test_reference_file(name):
    ref = mx.load_reference(name)
    with jax.enable_x64(True):
        model = mx.build_model(name)
    names = [n for v in [*model.free_RVs, *model.deterministics] for n in mx.flat_reference_names(v.name, v.shape)]
    assert sorted(ref["param_names"]) == sorted(names)
    assert ref["rhat_max"] <= 1.01 and ref["ess_bulk_min"] >= 4000
    assert max(p["rhat"] for p in ref["parameters"].values()) == pytest.approx(ref["rhat_max"])
    assert min(p["ess_bulk"] for p in ref["parameters"].values()) == pytest.approx(ref["ess_bulk_min"])
    cov = np.asarray(ref["covariance"]["matrix"])
    sds = np.array([ref["parameters"][n]["sd"] for n in ref["covariance"]["order"]])
    assert cov.shape == (len(names), len(names))
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), sds, rtol=1e-6)
    assert ref["nuts"]["chains"] == 4 and ref["n_draws"] == 4 * ref["nuts"]["draws"]


def test_defaults_report_lists_only_silent_misses():
    import accuracy

    def rec(seed, outcome, warns=(), frac=0.5):
        return {"seed": seed, "outcome": outcome, "warnings": [{"class": w, "message": "m"} for w in warns],
                "frac_good": frac, "max_std_mean_err": 0.5, "min_sd_ratio": 0.5, "max_sd_ratio": 1.0, "khat": 0.3,
                "seconds": 1.0, "grad_evals": 100}

    res = {"p1": {"advi": {"0": rec(0, "miss"), "1": rec(1, "miss", ["KhatWarning"]), "2": rec(2, "meets", frac=1.0)}},
           "p2": {"advi": {"0": rec(0, "meets", frac=1.0), "1": rec(1, "meets", frac=1.0),
                           "2": {"seed": 2, "outcome": "raised", "error_class": "ValueError", "error": "bad", "stage": "fit"}}}}
    text = "\n".join(accuracy.defaults_lines({"defaults": {"results": res}}, ["p1", "p2"]))
    assert "| advi | 6 | 3/6 (50%) | 1/2 | 1 | 0 | 1 | 1 |" in text  # p2 meets in 2 of 3 seeds, p1 in 1
    assert "### Misses without a warning or error (1)" in text
    assert "| p1 | advi | 0 | 50 |" in text and "| p1 | advi | 1 |" not in text


def test_hier_noncentered_reference_matches_quadrature():
    """(mu, tau) of the non-centred hierarchy by 2-D quadrature (theta integrated out analytically) vs the NUTS reference."""
    d = mx.data_hier_noncentered()
    M, T = np.meshgrid(np.linspace(-30, 40, 351), np.linspace(1e-4, 40, 501), indexing="ij")
    lp = stats.norm.logpdf(M, 0, 5) + stats.halfnorm.logpdf(T, scale=5)
    for y, s in zip(d["y"], d["s"]):  # y_j | mu, tau ~ Normal(mu, sqrt(tau^2 + s_j^2))
        lp += stats.norm.logpdf(y, M, np.sqrt(T**2 + s**2))
    w = np.exp(lp - lp.max())
    w /= w.sum()
    ref = mx.load_reference("extra-hier_noncentered")["parameters"]
    for name, X in (("mu", M), ("tau", T)):
        mean = (w * X).sum()
        sd = np.sqrt((w * (X - mean) ** 2).sum())
        assert abs(ref[name]["mean"] - mean) < 0.05 * sd, name  # the reference's Monte Carlo error is ~0.01 sd
        assert ref[name]["sd"] == pytest.approx(sd, rel=0.03), name
