"""start="laplace" / "pathfinder": Gaussian starts for the normal families (jaxvi.laplace)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxvi as jv
from jaxvi.vi.families import FullRankFamily, LowRankFamily, MeanFieldFamily
from jaxvi.vi.starts import family_params, laplace_normal, parameter_scales, scaled_optimizer

COV = np.array([[4.0, 1.9, 0.0], [1.9, 1.0, 0.1], [0.0, 0.1, 0.25]])
MEAN = np.array([1.0, -2.0, 0.5])


def test_family_params_reproduce_the_normal(x64):
    mean, cov = jnp.asarray(MEAN), jnp.asarray(COV)
    fr = family_params(FullRankFamily(), mean, cov)
    np.testing.assert_allclose(FullRankFamily.cov(fr), COV, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(FullRankFamily.mean(fr), MEAN)
    # mean-field: the KL(q || p)-closest diagonal has variances 1 / diag(cov^-1)
    mf = family_params(MeanFieldFamily(), mean, cov)
    np.testing.assert_allclose(MeanFieldFamily.std(mf) ** 2, 1 / np.diag(np.linalg.inv(COV)), rtol=1e-10)
    # low rank with rank d - 1 = 2 keeps the two leading directions exactly
    fam = LowRankFamily(rank=2)
    lr = family_params(fam, mean, cov)
    lam, vec = np.linalg.eigh(COV)
    got = np.asarray(fam.cov(lr))
    for j in (1, 2):
        v = vec[:, j]
        assert v @ got @ v == pytest.approx(lam[j], rel=0.2)


def test_laplace_normal_is_exact_on_a_gaussian(x64):
    prec = np.linalg.inv(COV)
    logp = lambda z: -0.5 * (z - MEAN) @ prec @ (z - MEAN)  # noqa: E731
    mean, cov, info = laplace_normal(logp, jnp.zeros(3), jax.random.key(0))
    np.testing.assert_allclose(mean, MEAN, atol=1e-8)
    np.testing.assert_allclose(cov, COV, atol=1e-8)
    assert bool(info["laplace"])


def _scaled_regression():
    """y = a + b x with x on the scale of thousands: corr(a, b) about -0.9999, like posteriordb's kilpisjarvi."""
    rng = np.random.default_rng(3)
    x = rng.uniform(2000, 2020, size=40)
    y = 3.0 + 0.02 * (x - 2010) + rng.normal(0, 0.5, size=40)
    with jv.Model() as m:
        a = jv.Normal("a", 0, 1000)
        b = jv.Normal("b", 0, 10)
        jv.Normal("y", a + b * x, 0.5, observed=y)
    X = np.column_stack([np.ones_like(x), x])
    prior_prec = np.diag([1e-6, 1e-2])
    cov = np.linalg.inv(X.T @ X / 0.25 + prior_prec)
    return m, cov @ X.T @ y / 0.25, cov


def test_start_laplace_fits_an_ill_conditioned_regression(x64):
    m, mean, cov = _scaled_regression()
    assert abs(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])) > 0.999
    sd = np.sqrt(np.diag(cov))
    with m:
        inference = jv.FullRankADVI(start="laplace", random_seed=0, stick_the_landing=True)
        start = inference.approx
        np.testing.assert_allclose(start.mean, mean, atol=1e-3 * sd.min())
        np.testing.assert_allclose(start.cov, cov, rtol=1e-4)
        assert start.start_info["method"] == "laplace" and start.start_info["n_grad_evals"] > 0
        sched = optax.exponential_decay(0.01, 3000, 1e-3)
        approx = inference.fit(3000, obj_optimizer=scaled_optimizer(jv.adam(learning_rate=sched), start),
                               progressbar=False)
    fitted_sd = np.asarray(approx.std)
    assert np.all(np.abs(np.asarray(approx.mean) - mean) < 0.1 * sd)
    assert np.all(np.abs(fitted_sd / sd - 1) < 0.1)
    # from the default start the same fit does not get there
    with m:
        plain = jv.fit(3000, method="fullrank_advi", random_seed=0, obj_optimizer=jv.adam(learning_rate=sched),
                       progressbar=False)
    assert np.max(np.abs(np.asarray(plain.mean) - mean) / sd) > 1


@pytest.mark.parametrize("method", ["advi", "lowrank_advi", "nfvi"])
def test_start_laplace_for_every_family(regression, method, x64):
    m, mean, cov = regression
    with m:
        approx = jv.fit(1, method=method, start="laplace", random_seed=1, progressbar=False)
    np.testing.assert_allclose(approx.mean, mean, atol=0.05)


def test_start_pathfinder_and_bad_values(regression, x64):
    m, mean, cov = regression
    with m:
        approx = jv.FullRank(start="pathfinder", random_seed=0)
        np.testing.assert_allclose(approx.mean, mean, atol=0.05)
        assert approx.start_info["method"] == "pathfinder"
        with pytest.raises(ValueError, match="start must be a dict of variable values or one of 'auto', 'laplace'"):
            jv.FullRank(start="lapalce")
        with pytest.raises(ValueError, match="start_sigma must be None"):
            jv.MeanField(start="laplace", start_sigma={"a": 1.0})


def test_parameter_scales(x64):
    fr = family_params(FullRankFamily(), jnp.asarray(MEAN), jnp.asarray(COV))
    sc = parameter_scales(FullRankFamily(), fr)
    sd = np.minimum(np.sqrt(np.diag(COV)), 1.0)
    np.testing.assert_allclose(sc["mu"], sd)
    rows, cols = np.tril_indices(3)
    np.testing.assert_allclose(sc["L_tril"], np.where(rows == cols, 1.0, sd[rows]))


def test_default_optimizer_keeps_a_laplace_start_on_a_badly_scaled_regression():
    # x ~ 1000: intercept and slope correlate at -0.99995 and their sds differ 1000-fold.  From the
    # Laplace start the default optimizer's steps are scaled by the start's sds, so full-rank ADVI stays
    # on the exact (Gaussian) posterior instead of being shaken off it.
    rng = np.random.default_rng(0)
    x = rng.normal(1000.0, 10.0, 200)
    y = 3.0 + 0.002 * x + rng.normal(0.0, 0.1, 200)
    with jv.Model() as m:
        a = jv.Normal("a", 0.0, 100.0)
        b = jv.Normal("b", 0.0, 10.0)
        jv.Normal("y", a + b * x, 0.1, observed=y)
    X = np.c_[np.ones_like(x), x]
    precision = X.T @ X / 0.1**2 + np.diag([1 / 100.0**2, 1 / 10.0**2])
    cov = np.linalg.inv(precision)
    mean = cov @ (X.T @ y / 0.1**2)
    sd = np.sqrt(np.diag(cov))
    approx = jv.fit(5000, method="fullrank_advi", model=m, start="laplace", progressbar=False, random_seed=0)
    assert np.all(np.abs(np.asarray(approx.mean) - mean) < 0.1 * sd)
    np.testing.assert_allclose(np.asarray(approx.std), sd, rtol=0.1)
