"""NUTS started from a fitted approximation: draws as starts, its covariance as the inverse mass matrix."""

import jax
import numpy as np
import pytest

import jaxvi as jv




def _check(idata, mean, cov):
    sd = np.sqrt(np.diag(cov))
    post = idata.posterior
    got = np.array([post["a"].values.mean(), post["b"].values.mean()])
    np.testing.assert_array_less(np.abs(got - mean), 0.15 * sd)
    np.testing.assert_allclose([post["a"].values.std(), post["b"].values.std()], sd, rtol=0.15)
    assert int(idata.sample_stats["diverging"].sum()) == 0


def test_init_from_a_fullrank_approximation_uses_its_dense_covariance(regression):
    m, mean, cov = regression
    approx = jv.fit(5000, method="fullrank_advi", model=m, random_seed=0, progressbar=False)
    flats, inv_mass = approx.nuts_init(jax.random.key(0), 3)
    assert flats.shape == (3, 2) and inv_mass.shape == (2, 2)
    np.testing.assert_allclose(inv_mass, approx.cov)
    idata = jv.sample(500, tune=100, chains=2, init=approx, model=m, random_seed=1)
    _check(idata, mean, cov)


def test_init_strings_fit_advi_first(regression):
    m, mean, cov = regression
    idata = jv.sample(500, tune=100, chains=2, init="advi+adapt_diag", model=m, random_seed=2, n_init=20_000)
    _check(idata, mean, cov)
    with pytest.raises(ValueError, match="pathfinder"):
        jv.sample(10, tune=10, chains=1, init="advi_map", model=m)
