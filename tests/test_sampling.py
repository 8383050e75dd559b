"""NUTS (jv.sample) and predictive sampling against analytic answers.

Every NUTS run costs a few seconds of XLA compilation, so runs are shared through
module-scoped fixtures and kept small (2 chains, <= 1000 draws).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvi as jv
from jaxvi.faces import demo
from jaxvi.results.mcmc import INIT_METHODS, _initial_points
from jaxvi.results.predictive import sample_posterior_predictive, sample_prior_predictive
from jaxvi.variational.sampling import sample

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

STATS = ("diverging", "energy", "tree_depth", "n_steps", "acceptance_rate", "lp", "step_size")
N_OBS, PRIOR_SD = 50, 10.0
Y = np.random.default_rng(42).normal(1.5, 1.0, size=N_OBS)
POST_PREC = 1.0 / PRIOR_SD**2 + N_OBS          # y_i ~ N(mu, 1), mu ~ N(0, 10)
POST_MEAN, POST_SD = Y.sum() / POST_PREC, POST_PREC**-0.5


def conjugate_model():
    with jv.Model() as m:
        mu = jv.Normal("mu", mu=0, sigma=PRIOR_SD)
        jv.Normal("y", mu=mu, sigma=1.0, observed=Y)
    return m


def conjugate_run(model):
    return sample(draws=1000, tune=500, chains=2, random_seed=7, model=model)


@pytest.fixture(scope="module")
def conjugate():
    model = conjugate_model()
    return model, conjugate_run(model)


@pytest.fixture(scope="module")
def hierarchical():
    model = demo.hierarchical_model()
    return model, sample(draws=300, tune=300, chains=2, random_seed=3, model=model)


# -- NUTS ------------------------------------------------------------------------------------------
def test_conjugate_normal_matches_analytic_posterior(conjugate):
    _, idata = conjugate
    mu = idata.posterior["mu"].values
    assert mu.shape == (2, 1000)
    ess = float(az.ess(idata, var_names=["mu"])["mu"])
    assert ess > 300
    mcse = POST_SD / np.sqrt(ess)
    assert abs(mu.mean() - POST_MEAN) < 4 * mcse
    assert abs(mu.std() / POST_SD - 1) < 0.1
    # every chain is on target, not just the pooled draws
    for c in range(2):
        assert abs(mu[c].mean() - POST_MEAN) < 6 * POST_SD / np.sqrt(ess / 2)


def test_sample_stats_have_pymc_names_and_sensible_values(conjugate):
    model, idata = conjugate
    ss = idata.sample_stats
    for name in STATS:
        assert name in ss, name
        assert ss[name].shape == (2, 1000), name
    assert not ss["diverging"].values.any()
    acc = float(ss["acceptance_rate"].mean())
    assert 0.6 < acc < 0.99, acc
    step = ss["step_size"].values
    assert np.all(step > 0) and np.allclose(step, step[:, :1])  # fixed after tuning
    depth, steps = ss["tree_depth"].values, ss["n_steps"].values
    assert np.all(depth >= 1) and depth.max() <= 4  # a 1-d Gaussian needs short trajectories
    assert np.all((2 ** (depth - 1) <= steps) & (steps <= 2**depth - 1))
    assert not ss["reached_max_treedepth"].values.any()
    # lp is the model log-density at the draw; energy = potential + kinetic >= -lp
    cm = model.compile()
    mu = idata.posterior["mu"].values
    lp = jax.vmap(cm.logp)(jnp.asarray(mu[0, :20, None], cm.dtype))
    np.testing.assert_allclose(ss["lp"].values[0, :20], np.asarray(lp), rtol=1e-4, atol=1e-3)
    assert np.all(ss["energy"].values >= -ss["lp"].values - 1e-3)
    assert idata.posterior.attrs["inference_library"] == "jaxvi"
    assert "NUTS" in idata.posterior.attrs["sampler"]
    np.testing.assert_allclose(idata.observed_data["y"].values, Y, rtol=1e-6)


def test_same_seed_reproduces_the_run(conjugate):
    model, idata = conjugate
    again = conjugate_run(model)
    np.testing.assert_array_equal(again.posterior["mu"].values, idata.posterior["mu"].values)
    np.testing.assert_array_equal(again.sample_stats["n_steps"].values, idata.sample_stats["n_steps"].values)


MV_SETTINGS = dict(draws=1000, tune=500, chains=2)


@pytest.fixture(scope="module")
def mvnormal():
    model = demo.mvnormal_model()
    with model:  # the model from the context
        return model, sample(random_seed=0, **MV_SETTINGS)


def test_mvnormal_recovers_correlation(mvnormal):
    _, idata = mvnormal
    x = idata.posterior["density"].values.reshape(-1, 2)
    assert abs(np.corrcoef(x.T)[0, 1] - 0.8) < 0.05
    np.testing.assert_allclose(x.mean(0), 0, atol=0.15)
    np.testing.assert_allclose(x.std(0), 1, rtol=0.1)
    assert not idata.sample_stats["diverging"].values.any()


def test_hierarchical_dims_and_summary(hierarchical):
    model, idata = hierarchical
    post = idata.posterior
    assert post["group_mu"].dims == ("chain", "draw", "group")
    assert list(post["group"].values) == [f"g{i}" for i in range(8)]
    assert post["sigma_mu"].values.min() > 0
    summary = az.summary(idata)
    assert {"mu_mu", "sigma_mu", "group_mu[g0]"} <= set(summary.index)
    assert summary["r_hat"].max() < 1.05
    assert int(idata.sample_stats["diverging"].values.sum()) == 0
    # the group means sit near the per-group data means (50 obs each, unit noise)
    y = idata.observed_data["y_obs"].values.reshape(8, 50)
    np.testing.assert_allclose(post["group_mu"].values.mean((0, 1)), y.mean(1), atol=0.1)


class _FakeApprox:
    """Stands in for a fitted approximation (a later issue): hands NUTS its starting points."""

    def __init__(self, inverse_mass=None):
        self.calls, self.inverse_mass = [], inverse_mass

    def nuts_init(self, key, chains):
        self.calls.append(chains)
        return 0.1 * jax.random.normal(key, (chains, 2)), self.inverse_mass


def test_init_hook(mvnormal):
    model, reference = mvnormal
    approx = _FakeApprox()
    # same settings as the fixture: the compiled sampler is reused
    idata = sample(init=approx, random_seed=1, model=model, **MV_SETTINGS)
    assert approx.calls == [2]
    x = idata.posterior["density"].values
    assert x.shape == (2, 1000, 2)
    assert abs(np.corrcoef(x.reshape(-1, 2).T)[0, 1] - 0.8) < 0.05
    assert not np.array_equal(x, reference.posterior["density"].values)
    with pytest.raises(ValueError, match="inverse mass matrix"):
        sample(init=_FakeApprox(np.ones(3)), model=model, **MV_SETTINGS)


def test_bad_init_and_arguments():
    model = conjugate_model()
    with pytest.raises(ValueError, match="jitter\\+adapt_diag"):
        sample(10, 10, chains=2, init="advi_map_nonsense", model=model)
    with pytest.raises(ValueError, match="nuts_init"):
        sample(10, 10, chains=2, init=object(), model=model)
    with pytest.raises(ValueError, match="draws"):
        sample(0, 10, model=model)
    assert "jitter+adapt_diag" in INIT_METHODS


def test_initial_points_jitter_and_initvals():
    with jv.Model() as m:
        jv.Normal("a", 0, 1)
        jv.HalfNormal("s", 2.0)
    cm = m.compile()
    key = jax.random.key(0)
    flat, base, _ = _initial_points(cm, key, 3, 0.0, {"s": 3.0}, cm.data)
    np.testing.assert_allclose(np.asarray(flat), [[0.0, np.log(3.0)]] * 3, rtol=1e-5, atol=1e-6)
    flat, base, _ = _initial_points(cm, key, 3, 1.0, None, cm.data)
    d = np.asarray(flat - base)
    assert np.all(np.abs(d) <= 1) and len({tuple(r) for r in d}) == 3  # chains differ
    with pytest.raises(KeyError, match="nope"):
        _initial_points(cm, key, 2, 0.0, {"nope": 1.0}, cm.data)


def test_bad_initial_point_names_the_variable():
    with jv.Model() as m:
        jv.Normal("a", 0, 1)
        jv.Potential("wall", jv.math.where(m["a"] > 0, -jnp.inf, 0.0))
    # jitter of 0 at a = 0 is fine; an initval in the wall is not (and cannot be re-jittered)
    with pytest.raises(ValueError, match="wall"):
        sample(10, 10, chains=2, init="adapt_diag", initvals={"a": 1.0}, model=m)


# -- posterior predictive ----------------------------------------------------------------------------
def test_posterior_predictive_matches_analytic(conjugate):
    model, idata = conjugate
    pp = sample_posterior_predictive(idata, model=model, random_seed=1)
    y = pp.posterior_predictive["y"].values
    assert y.shape == (2, 1000, N_OBS)
    mu = idata.posterior["mu"].values
    # against the trace's own moments: mean = E[mu], var = 1 + Var[mu]
    n = mu.size
    np.testing.assert_allclose(y.mean((0, 1)), mu.mean(), atol=4.5 * np.sqrt(1.1 / n))
    np.testing.assert_allclose(y.var((0, 1)), 1 + mu.var(), atol=4.5 * np.sqrt(2 / n) * 1.1)
    assert abs(y.mean() - POST_MEAN) < 0.05
    assert abs(y.var() - (1 + POST_SD**2)) < 0.03
    # each draw uses its own mu: the residual has variance 1 exactly (not 1 + 2 Var[mu])
    resid = y - mu[..., None]
    assert abs(resid.var() - 1) < 0.02
    assert abs(resid.mean()) < 0.02


def test_posterior_predictive_dims_context_and_extend(hierarchical):
    model, idata = hierarchical
    with model:
        pp = sample_posterior_predictive(idata, random_seed=0)
    y = pp.posterior_predictive["y_obs"]
    assert {"posterior_predictive", "observed_data"} <= set(pp.groups())
    assert y.shape == (2, 300, 400)
    assert y.dims[:2] == ("chain", "draw")
    again = sample_posterior_predictive(idata, model=model, random_seed=0)
    np.testing.assert_array_equal(again.posterior_predictive["y_obs"].values, y.values)
    other = sample_posterior_predictive(idata, model=model, random_seed=1)
    assert not np.array_equal(other.posterior_predictive["y_obs"].values, y.values)
    # predictive means per group follow the posterior group means
    gm = idata.posterior["group_mu"].values.mean((0, 1))
    np.testing.assert_allclose(y.values.mean((0, 1)).reshape(8, 50).mean(1), gm, atol=0.05)
    out = sample_posterior_predictive(idata, model=model, random_seed=0, extend_inferencedata=True)
    assert out is idata and "posterior_predictive" in idata.groups()
    np.testing.assert_array_equal(idata.posterior_predictive["y_obs"].values, y.values)
    pred = sample_posterior_predictive(idata, model=model, random_seed=0, predictions=True)
    assert "predictions" in pred.groups() and "posterior_predictive" not in pred.groups()
    az.summary(pp, group="posterior_predictive", var_names=["y_obs"], kind="stats")


def test_posterior_predictive_from_dict_uses_current_data():
    with jv.Model(coords={"obs": range(4)}) as m:
        x = jv.Data("x", np.zeros(4), dims="obs")
        a = jv.Normal("a", 0, 1)
        b = jv.Normal("b", 0, 1)
        s = jv.HalfNormal("s", 1)
        mu = jv.Deterministic("mu", a + b * x, dims="obs")
        jv.Normal("y", mu=mu, sigma=s, observed=np.zeros(4), dims="obs")
    chains, draws = 2, 2000
    trace = {"a": np.full((chains, draws), 1.0), "b": np.full((chains, draws), 2.0),
             "s": np.full((chains, draws), 0.5)}
    x_new = np.array([0.0, 1.0, -1.0, 3.0])
    jv.set_data({"x": x_new}, model=m)
    pp = sample_posterior_predictive(trace, model=m, var_names=["y", "mu"], random_seed=3)
    y = pp.posterior_predictive["y"]
    assert y.dims == ("chain", "draw", "obs") and y.shape == (2, 2000, 4)
    np.testing.assert_array_equal(pp.constant_data["x"].values, x_new)
    pred = sample_posterior_predictive(trace, model=m, random_seed=3, predictions=True)
    assert set(pred.groups()) == {"predictions", "predictions_constant_data"}
    np.testing.assert_array_equal(pred.predictions["y"].values, y.values)
    np.testing.assert_array_equal(pred.predictions_constant_data["x"].values, x_new)
    np.testing.assert_allclose(y.values.mean((0, 1)), 1 + 2 * x_new, atol=0.05)
    np.testing.assert_allclose(y.values.std((0, 1)), 0.5, rtol=0.06)
    np.testing.assert_allclose(pp.posterior_predictive["mu"].values[0, 0], 1 + 2 * x_new, rtol=1e-6)
    with pytest.raises(KeyError, match="'s'"):
        sample_posterior_predictive({"a": trace["a"], "b": trace["b"]}, model=m)
    with pytest.raises(ValueError, match="free random variable"):
        sample_posterior_predictive(trace, model=m, var_names=["a"])


# -- prior predictive ------------------------------------------------------------------------------------
def test_prior_predictive_moments():
    with jv.Model() as m:
        mu = jv.Normal("mu", mu=1.0, sigma=2.0)
        sd = jv.HalfNormal("sd", sigma=1.0)
        jv.Deterministic("twice", 2 * mu)
        jv.Normal("y", mu=mu, sigma=0.5, observed=np.zeros(3))
    n = 4000
    idata = sample_prior_predictive(draws=n, model=m, random_seed=0)
    assert {"prior", "prior_predictive", "observed_data"} <= set(idata.groups())
    mu_d, sd_d = idata.prior["mu"].values, idata.prior["sd"].values
    assert mu_d.shape == (1, n) and sd_d.min() > 0
    se = 2.0 / np.sqrt(n)
    assert abs(mu_d.mean() - 1) < 4 * se and abs(mu_d.std() / 2 - 1) < 0.05
    assert abs(sd_d.mean() - np.sqrt(2 / np.pi)) < 0.03
    np.testing.assert_allclose(idata.prior["twice"].values, 2 * mu_d, rtol=1e-5)
    y = idata.prior_predictive["y"].values
    assert y.shape == (1, n, 3)
    np.testing.assert_allclose(y.mean((0, 1)), 1.0, atol=4 * np.sqrt(4.25 / n))
    np.testing.assert_allclose(y.var((0, 1)), 4.25, rtol=0.1)
    c = np.cov(y.reshape(n, 3).T)
    np.testing.assert_allclose(c[0, 1], 4.0, rtol=0.12)  # shared mu
    # each draw is consistent: y - mu ~ N(0, 0.5)
    assert abs((y - mu_d[..., None]).std() - 0.5) < 0.02
    same = sample_prior_predictive(draws=n, model=m, random_seed=0)
    np.testing.assert_array_equal(same.prior_predictive["y"].values, y)
    only = sample_prior_predictive(draws=n, model=m, var_names=["mu", "y"], random_seed=1)
    assert set(only.prior.data_vars) == {"mu"} and set(only.prior_predictive.data_vars) == {"y"}
    az.summary(idata, group="prior", kind="stats")


def test_prior_predictive_with_dims():
    model = demo.hierarchical_model()
    with model:
        idata = sample_prior_predictive(draws=50, random_seed=0)
    assert idata.prior["group_mu"].dims == ("chain", "draw", "group")
    assert idata.prior_predictive["y_obs"].shape == (1, 50, 400)


def test_posterior_predictive_progress_goes_to_stderr(conjugate, capsys):
    """progressbar=True reports the draws done (it once failed with a NameError after the re-layout)."""
    model, idata = conjugate
    same = sample_posterior_predictive(idata, model=model, random_seed=1, progressbar=True)
    assert "posterior predictive: 2000/2000 draws" in capsys.readouterr().err
    reference = sample_posterior_predictive(idata, model=model, random_seed=1)
    np.testing.assert_array_equal(same.posterior_predictive["y"].values, reference.posterior_predictive["y"].values)


def test_interrupted_nuts_keeps_its_draws(monkeypatch, capsys):
    """Ctrl-C after the tuning returns the draws so far (with a warning), as PyMC keeps a partial trace;
    the progress bar reports on stderr."""
    import jaxvi.results.mcmc as mcmc

    model = conjugate_model()
    build = mcmc._nuts_fns

    def interrupting(*args, **kwargs):
        init_fn, chunk_fn = build(*args, **kwargs)
        calls = []

        def chunk(state, batch):
            calls.append(1)
            if len(calls) == 4:  # tune 250 = chunk 1 (250 steps each); chunks 2-3 are kept, then Ctrl-C
                raise KeyboardInterrupt
            return chunk_fn(state, batch)

        return init_fn, chunk

    monkeypatch.setattr(mcmc, "_nuts_fns", interrupting)
    with pytest.warns(UserWarning, match="interrupted after 750 of 1250 steps"):
        idata = sample(draws=1000, tune=250, chains=2, random_seed=7, model=model)
    assert idata.posterior["mu"].shape == (2, 500)
    assert abs(float(idata.posterior["mu"].mean()) - POST_MEAN) < 4 * POST_SD / np.sqrt(200)
    assert "NUTS, 2 chains" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt):  # nothing to keep while tuning
        monkeypatch.setattr(mcmc, "_nuts_fns", interrupting)
        sample(draws=100, tune=1000, chains=2, random_seed=7, model=model, progressbar=False)
