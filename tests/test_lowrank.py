"""Low-rank plus diagonal normal family: densities against scipy, fits against known covariances."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

import jaxvi as jv
from jaxvi.vi.families import FAMILIES, LowRankFamily


def _random_params(d, k, seed=0):
    rng = np.random.default_rng(seed)
    return {"mu": jnp.asarray(rng.normal(size=d)), "rho": jnp.asarray(rng.normal(size=d)),
            "W": jnp.asarray(rng.normal(size=(d, k)))}


@pytest.mark.parametrize("d,k", [(1, 1), (6, 2), (12, 5)])
def test_log_prob_entropy_moments_match_dense_normal(x64, d, k):
    fam = LowRankFamily(rank=k)
    params = _random_params(d, k, seed=d)
    cov = np.asarray(fam.cov(params))
    ref = stats.multivariate_normal(np.asarray(params["mu"]), cov)
    z = np.random.default_rng(1).normal(size=(7, d)) * 2
    np.testing.assert_allclose(fam.log_prob(params, jnp.asarray(z)), ref.logpdf(z), rtol=1e-10)
    np.testing.assert_allclose(fam.log_prob(params, jnp.asarray(z[0])), ref.logpdf(z[0]), rtol=1e-10)
    np.testing.assert_allclose(fam.entropy(params), ref.entropy(), rtol=1e-10)
    np.testing.assert_allclose(fam.std(params), np.sqrt(np.diag(cov)), rtol=1e-12)
    # draws have the family's covariance, and sample_and_log_prob agrees with log_prob
    draws, logq = fam.sample_and_log_prob(params, jax.random.key(0), 200_000)
    np.testing.assert_allclose(np.cov(np.asarray(draws).T).reshape(d, d), cov, atol=0.03 * np.abs(cov).max())
    np.testing.assert_allclose(logq[:5], ref.logpdf(np.asarray(draws[:5])), rtol=1e-10)


def test_init_has_the_requested_std_and_a_nonzero_factor():
    fam = LowRankFamily(3)
    params = fam.init(jnp.arange(4.0), jnp.array([1.0, 2.0, 0.5, 3.0]))
    np.testing.assert_allclose(fam.std(params), [1.0, 2.0, 0.5, 3.0], rtol=1e-5)
    assert params["W"].shape == (4, 3) and float(jnp.abs(params["W"]).min()) > 0
    assert LowRankFamily().init(jnp.zeros(2))["W"].shape == (2, 2)  # default rank min(d, 5)
    assert FAMILIES["low_rank"] == LowRankFamily() and hash(LowRankFamily(2)) == hash(LowRankFamily(2))
    with pytest.raises(ValueError, match="rank must be a positive integer"):
        LowRankFamily(0)


def test_fits_the_correlated_2d_normal():
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    with jv.Model():
        jv.MvNormal("density", mu=[0.0, 0.0], cov=cov, shape=2)
        schedule = optax.cosine_decay_schedule(0.02, 10000, alpha=0.01)
        approx = jv.fit(10000, method="lowrank_advi", inf_kwargs={"rank": 1}, random_seed=0,
                        progressbar=False, obj_optimizer=jv.adam(learning_rate=schedule), obj_n_mc=4)
    assert isinstance(approx, jv.LowRank) and approx.rank == 1
    np.testing.assert_allclose(approx.cov, cov, atol=0.08)
    np.testing.assert_allclose(approx.mean, 0.0, atol=0.08)


def test_fits_a_5d_normal_with_rank_2_structure_and_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    v = rng.normal(size=(5, 2))
    cov = np.diag(rng.uniform(0.3, 1.0, 5) ** 2) + v @ v.T
    mu = rng.normal(size=5)
    with jv.Model() as m:
        jv.MvNormal("x", mu=mu, cov=cov, shape=5)
    schedule = optax.cosine_decay_schedule(0.02, 20000, alpha=0.01)
    inference = jv.LowRankADVI(model=m, rank=2, random_seed=1)
    approx = inference.fit(20000, progressbar=False, obj_optimizer=jv.adam(learning_rate=schedule), obj_n_mc=4)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(approx.mean, mu, atol=0.1 * sd.max())
    np.testing.assert_allclose(np.sqrt(np.diag(approx.cov)), sd, rtol=0.1)
    corr = approx.cov / np.outer(np.sqrt(np.diag(approx.cov)), np.sqrt(np.diag(approx.cov)))
    np.testing.assert_allclose(corr, cov / np.outer(sd, sd), atol=0.1)
    approx.save(tmp_path / "lr.npz")
    back = jv.load(tmp_path / "lr.npz", model=m)
    assert type(back) is jv.LowRank and back.rank == 2
    np.testing.assert_allclose(back.cov, approx.cov)
