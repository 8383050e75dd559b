"""Fast subset of the posteriordb accuracy suite (``benchmarks/posteriordb``, ``make accuracy``).

* log-densities of 12 posteriordb models written in jaxvi against independent NumPy/SciPy code
  (differences between two points, so normalising constants of improper or truncated priors drop out);
* full-rank ADVI from ``start="laplace"`` on five posteriors (two regressions, the ill-conditioned
  kilpisjarvi and earnings, arma11) matches posteriordb's reference posterior: every parameter's mean
  within 0.1 reference sd and its sd within [0.85, 1.15] of the reference sd.

Uses the bundled data copy (``benchmarks/posteriordb/data``), never ``../shared``.  float64 inside.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import posteriordb as pdb  # noqa: E402

import jaxvi as jv  # noqa: E402

BUNDLED = pdb.BUNDLED_ROOT


def _data(name):
    return pdb.load_data(name, root=BUNDLED)


def _ref(name):
    return pdb.load_reference(name, root=BUNDLED)


# -- independent log densities, keyed by the jaxvi model's free variables (constrained values) -------
def _norm_reg(y, mu, sigma):
    return stats.norm.logpdf(y, mu, sigma).sum()


def lp_kidiq_momiq(d, p):
    mu = p["beta"][0] + p["beta"][1] * d["mom_iq"]
    return stats.halfcauchy.logpdf(p["sigma"], scale=2.5) + _norm_reg(d["kid_score"], mu, p["sigma"])


def lp_earn_height(d, p):
    return _norm_reg(d["earn"], p["beta"][0] + p["beta"][1] * d["height"], p["sigma"])


def lp_sblrc(d, p):
    X = np.asarray(d["X"])
    return (stats.norm.logpdf(p["beta"], 0, 10).sum() + stats.halfnorm.logpdf(p["sigma"], scale=10)
            + _norm_reg(d["y"], X @ p["beta"], p["sigma"]))


def lp_kilpisjarvi(d, p):
    return (stats.norm.logpdf(p["alpha"], d["pmualpha"], d["psalpha"])
            + stats.norm.logpdf(p["beta"], d["pmubeta"], d["psbeta"])
            + _norm_reg(d["y"], p["alpha"] + p["beta"] * d["x"], p["sigma"]))


def lp_arK(d, p):
    y, K = d["y"], int(d["K"])
    total = stats.norm.logpdf(p["alpha"], 0, 10) + stats.norm.logpdf(p["beta"], 0, 10).sum()
    total += stats.halfcauchy.logpdf(p["sigma"], scale=2.5)
    for t in range(K, len(y)):
        mu = p["alpha"] + sum(p["beta"][k] * y[t - k - 1] for k in range(K))
        total += stats.norm.logpdf(y[t], mu, p["sigma"])
    return total


def lp_arma(d, p):
    y = d["y"]
    mu, phi, theta, sigma = p["mu"], p["phi"], p["theta"], p["sigma"]
    nu = mu + phi * mu
    err = y[0] - nu
    total = stats.norm.logpdf(err, 0, sigma)
    for t in range(1, len(y)):
        nu = mu + phi * y[t - 1] + theta * err
        err = y[t] - nu
        total += stats.norm.logpdf(err, 0, sigma)
    return (total + stats.norm.logpdf(mu, 0, 10) + stats.norm.logpdf(phi, 0, 2) + stats.norm.logpdf(theta, 0, 2)
            + stats.halfcauchy.logpdf(sigma, scale=2.5))


def lp_garch(d, p):
    # flat on (mu, alpha0, alpha1, beta1); the model's coordinates are (alpha1, beta1_frac) with
    # beta1 = (1 - alpha1) * beta1_frac, whose Jacobian is (1 - alpha1)
    y = d["y"]
    mu, a0, a1 = p["mu"], p["alpha0"], p["alpha1"]
    b1 = (1 - a1) * p["beta1_frac"]
    s = float(d["sigma1"])
    total = stats.norm.logpdf(y[0], mu, s)
    for t in range(1, len(y)):
        s = np.sqrt(a0 + a1 * (y[t - 1] - mu) ** 2 + b1 * s**2)
        total += stats.norm.logpdf(y[t], mu, s)
    return total + np.log1p(-a1)


def lp_gauss_mix(d, p):
    mu = np.array([p["mu_first"], p["mu_first"] + p["mu_gap"]])  # unit Jacobian
    sig, th = p["sigma"], p["theta"]
    comp = np.stack([np.log(th) + stats.norm.logpdf(d["y"], mu[0], sig[0]),
                     np.log1p(-th) + stats.norm.logpdf(d["y"], mu[1], sig[1])])
    return (stats.norm.logpdf(mu, 0, 2).sum() + stats.halfnorm.logpdf(sig, scale=2).sum()
            + stats.beta.logpdf(th, 5, 5) + logsumexp(comp, axis=0).sum())


def lp_8s_centered(d, p):
    return (-np.log1p((p["tau"] / 5) ** 2) - p["mu"] ** 2 / 50 + stats.norm.logpdf(p["theta"], p["mu"], p["tau"]).sum()
            + stats.norm.logpdf(d["y"], p["theta"], d["sigma"]).sum())


def lp_8s_noncentered(d, p):
    theta = p["mu"] + p["tau"] * p["theta_trans"]
    return (-np.log1p((p["tau"] / 5) ** 2) - p["mu"] ** 2 / 50 - 0.5 * np.sum(p["theta_trans"] ** 2)
            + stats.norm.logpdf(d["y"], theta, d["sigma"]).sum())


def _kernel(x, alpha, rho):
    return alpha**2 * np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * rho**2))


def lp_gp_regr(d, p):
    x = d["x"]
    K = _kernel(x, p["alpha"], p["rho"]) + p["sigma"] * np.eye(len(x))
    return (stats.gamma.logpdf(p["rho"], 25, scale=1 / 4) + stats.halfnorm.logpdf(p["alpha"], scale=2)
            + stats.halfnorm.logpdf(p["sigma"], scale=1) + stats.multivariate_normal.logpdf(d["y"], np.zeros(len(x)), K))


def lp_gp_pois(d, p):
    x = d["x"]
    L = np.linalg.cholesky(_kernel(x, p["alpha"], p["rho"]) + 1e-10 * np.eye(len(x)))
    f = L @ p["f_tilde"]
    return (stats.gamma.logpdf(p["rho"], 25, scale=1 / 4) + stats.halfnorm.logpdf(p["alpha"], scale=2)
            + stats.norm.logpdf(p["f_tilde"]).sum() + stats.poisson.logpmf(d["k"].astype(int), np.exp(f)).sum())


LOGP = {
    "kidiq-kidscore_momiq": lp_kidiq_momiq,
    "earnings-earn_height": lp_earn_height,
    "sblrc-blr": lp_sblrc,
    "kilpisjarvi_mod-kilpisjarvi": lp_kilpisjarvi,
    "arK-arK": lp_arK,
    "arma-arma11": lp_arma,
    "garch-garch11": lp_garch,
    "low_dim_gauss_mix-low_dim_gauss_mix": lp_gauss_mix,
    "eight_schools-eight_schools_centered": lp_8s_centered,
    "eight_schools-eight_schools_noncentered": lp_8s_noncentered,
    "gp_pois_regr-gp_regr": lp_gp_regr,
    "gp_pois_regr-gp_pois_regr": lp_gp_pois,
}


def _point(model, ref, rng, shift):
    """A point near the reference posterior: reference means (+ shift sd) where the names match,
    otherwise a plausible value in the variable's support."""
    point = {}
    for rv in model.free_RVs:
        names = pdb.flat_reference_names(rv.name, rv.shape)
        if all(n in ref["parameters"] for n in names):
            m = np.array([ref["parameters"][n]["mean"] for n in names])
            s = np.array([ref["parameters"][n]["sd"] for n in names])
            v = m + shift * s * rng.uniform(0.5, 1.0, size=m.shape)
        elif rv.value_name.endswith(("_interval__", "_logodds__")):
            v = rng.uniform(0.2, 0.6, size=int(np.prod(rv.shape)))
        elif rv.value_name.endswith("_log__"):
            v = rng.uniform(0.5, 2.0, size=int(np.prod(rv.shape)))
        else:
            v = rng.normal(size=int(np.prod(rv.shape)))
        if rv.value_name.endswith("_log__"):
            v = np.abs(v)
        point[rv.name] = v.reshape(rv.shape)
    return point


@pytest.mark.parametrize("name", list(LOGP))
def test_logp_matches_independent_computation(name):
    with jax.enable_x64(True):
        d = _data(name)
        ref = _ref(name)
        model = pdb.build_model(name, data=d)
        rng = np.random.default_rng(0)
        p1, p2 = _point(model, ref, rng, 0.0), _point(model, ref, rng, 0.7)
        cm = model.compile()
        logp = jax.jit(lambda flat: cm.logp(flat, jacobian=False))
        diff_jv = float(logp(cm.flat_from_point(p1)) - logp(cm.flat_from_point(p2)))
        diff_ref = LOGP[name](d, p1) - LOGP[name](d, p2)
    assert np.isfinite(diff_jv) and np.isfinite(diff_ref)
    assert diff_jv == pytest.approx(diff_ref, rel=1e-6, abs=1e-6)


def test_reference_names_and_flattening():
    ref = _ref("sblrc-blr")
    assert ref["param_names"] == pdb.flat_reference_names("beta", (5,)) + pdb.flat_reference_names("sigma", ())
    for name in LOGP:  # every reference parameter is a variable (free or Deterministic) of the model
        with jax.enable_x64(True):
            model = pdb.build_model(name, data=_data(name))
        have = {n for v in [*model.free_RVs, *model.deterministics] for n in pdb.flat_reference_names(v.name, v.shape)}
        assert set(_ref(name)["param_names"]) <= have, name


def test_data_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXVI_POSTERIORDB", str(tmp_path))
    assert pdb.data_root() == tmp_path
    monkeypatch.delenv("JAXVI_POSTERIORDB")
    assert pdb.data_root(BUNDLED) == BUNDLED


# -- accuracy of full-rank ADVI on near-Gaussian regressions ------------------------------------------------
# from start="laplace" with steps scaled by the start's sds (the accuracy suite's settings, fewer steps); from
# PyMC's default start 100k steps were needed for kidiq, and kilpisjarvi, earnings and arma11 never got there
FIT_STEPS = 10_000
DRAWS = 4_000


@pytest.fixture(scope="module", params=["kidiq-kidscore_momiq", "sblrc-blr", "kilpisjarvi_mod-kilpisjarvi",
                                        "earnings-earn_height", "arma-arma11"])
def fullrank_fit(request):
    import optax

    from jaxvi.vi.starts import scaled_optimizer

    name = request.param
    ref = _ref(name)
    with jax.enable_x64(True):
        model = pdb.build_model(name, data=_data(name))
        sched = optax.exponential_decay(0.01, FIT_STEPS, 1e-5 / 0.01)
        with model:
            inference = jv.FullRankADVI(random_seed=0, stick_the_landing=True, start="laplace")
            approx = inference.fit(FIT_STEPS, obj_optimizer=scaled_optimizer(jv.adam(learning_rate=sched),
                                                                              inference.approx), progressbar=False)
        post = approx.sample(DRAWS, random_seed=1).posterior
        draws = {}
        for var in post.data_vars:
            vals = np.asarray(post[var].values).reshape(DRAWS, -1)
            for j, n in enumerate(pdb.flat_reference_names(var, post[var].shape[2:])):
                draws[n] = vals[:, j]
    return name, ref, draws


def test_fullrank_advi_matches_reference(fullrank_fit):
    name, ref, draws = fullrank_fit
    for n in ref["param_names"]:
        p, x = ref["parameters"][n], draws[n]
        err = abs(x.mean() - p["mean"]) / p["sd"]
        ratio = x.std(ddof=1) / p["sd"]
        assert err <= 0.1, f"{name} {n}: standardised mean error {err:.3f}"
        assert 0.85 <= ratio <= 1.15, f"{name} {n}: sd ratio {ratio:.3f}"
