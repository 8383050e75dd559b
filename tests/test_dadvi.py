"""method="dadvi": fixed draws, L-BFGS, linear-response covariances, against analytic posteriors and quadrature."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvi as jv
from jaxvi import diagnostics
from jaxvi.vi import dadvi as numerics
from jaxvi.vi.families import MeanFieldFamily

MEAN = np.array([1.0, -2.0])
COV = np.array([[1.0, 1.8], [1.8, 4.0]])  # sds 1 and 2, correlation 0.9


@pytest.fixture(scope="module")
def conjugate():
    y = np.random.default_rng(0).normal(3.0, 2.0, 50)
    with jv.Model() as m:
        mu = jv.Normal("mu", 0, 10)
        jv.Normal("y", mu, 2, observed=y)
    prec = 1 / 100 + y.size / 4
    return m, y.sum() / 4 / prec, prec**-0.5


@pytest.fixture(scope="module")
def correlated():
    with jv.Model() as m:
        jv.MvNormal("x", mu=MEAN, cov=COV)
    return m


@pytest.fixture(scope="module")
def logistic():
    rng = np.random.default_rng(3)
    x = rng.normal(size=60)
    y = (rng.random(60) < 1 / (1 + np.exp(-(0.5 + 1.5 * x)))).astype(float)
    with jv.Model() as m:
        a = jv.Normal("a", 0, 2)
        b = jv.Normal("b", 0, 2)
        jv.Bernoulli("y", logit_p=a + b * x, observed=y)
    # the exact posterior moments by quadrature on a grid
    ga, gb = np.meshgrid(np.linspace(-3, 4, 401), np.linspace(-2, 5, 401), indexing="ij")
    eta = ga[..., None] + gb[..., None] * x
    logp = (y * eta - np.logaddexp(0, eta)).sum(-1) - (ga**2 + gb**2) / 8
    w = np.exp(logp - logp.max())
    w /= w.sum()
    mean = np.array([(w * ga).sum(), (w * gb).sum()])
    var = np.array([(w * (ga - mean[0]) ** 2).sum(), (w * (gb - mean[1]) ** 2).sum()])
    return m, mean, np.sqrt(var)


def test_whitened_fixed_draws_match_the_first_two_moments():
    eps = numerics.fixed_draws(jax.random.key(0), 30, 3, jnp.float32)
    np.testing.assert_allclose(eps.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(eps.T @ eps / 30, np.eye(3), atol=1e-5)
    few = numerics.fixed_draws(jax.random.key(0), 5, 8, jnp.float32)  # M <= d: centred, unit variances
    np.testing.assert_allclose(few.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose((few**2).mean(0), 1, atol=1e-5)


def test_conjugate_normal_mean_is_exact(conjugate):
    m, mean, sd = conjugate
    with warnings.catch_warnings():
        warnings.simplefilter("error", diagnostics.FitWarning)
        approx = jv.fit(method="dadvi", model=m, random_seed=0)
    assert isinstance(approx, jv.variational.approximations.DADVIMeanField)
    assert float(approx.mean[0]) == pytest.approx(mean, abs=1e-4 * sd)
    assert float(approx.std[0]) == pytest.approx(sd, rel=1e-3)  # linear response
    assert float(approx.q_std[0]) == pytest.approx(sd, rel=1e-3)  # and q's own (exact for a normal)
    assert approx.converged and approx.n_grad_evals < 30 and len(approx.hist) == approx.n_iter
    assert np.all(np.diff(approx.hist) <= 1e-5 * abs(approx.hist[0]))  # L-BFGS never goes up
    assert approx.khat < 0.5
    draws = approx.sample(2000, random_seed=1).posterior["mu"].values.ravel()
    assert draws.mean() == pytest.approx(mean, abs=0.1 * sd) and draws.std() == pytest.approx(sd, rel=0.1)


def test_plain_draws_leave_the_papers_monte_carlo_error(conjugate):
    """Unwhitened draws (the paper's): the optimum is mu = m - sd * mean(eps), sd = 1 / sqrt(prec var(eps))."""
    m, mean, sd = conjugate
    inference = jv.DADVI(model=m, random_seed=0, whiten=False)
    key = jax.random.split(inference._key)[1]
    eps = np.asarray(numerics.fixed_draws(key, 30, 1, jnp.float32, whiten=False))[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", diagnostics.FitWarning)
        approx = inference.fit()
    q_sd = sd / eps.std()
    assert float(approx.q_std[0]) == pytest.approx(q_sd, rel=1e-3)
    assert float(approx.mean[0]) == pytest.approx(mean - q_sd * eps.mean(), abs=1e-3 * sd)


def test_correlated_gaussian_linear_response_recovers_the_covariance(correlated):
    # q itself is mean-field: its k-hat (0.52 from 4000 draws) or its reweighted sds (0.72-0.74) flag it
    with pytest.warns((diagnostics.KhatWarning, diagnostics.MomentsWarning)):
        approx = jv.fit(method="dadvi", model=correlated, random_seed=0)
    np.testing.assert_allclose(approx.mean, MEAN, atol=1e-3)
    np.testing.assert_allclose(approx.cov, COV, rtol=1e-3, atol=1e-3)  # LRVB: the true covariance
    # q's own sds are the conditional ones, sd_i * sqrt(1 - rho^2)
    np.testing.assert_allclose(approx.q_std, np.sqrt(np.diag(COV) * (1 - 0.81)), rtol=1e-3)
    full = jv.fit(method="dadvi", model=correlated, random_seed=0, inf_kwargs={"full_rank": True})
    np.testing.assert_allclose(full.q_cov, COV, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(full.cov, COV, rtol=1e-3, atol=1e-3)
    assert full.khat < 0.5


def test_logistic_regression_against_quadrature(logistic):
    m, mean, sd = logistic
    approx = jv.fit(method="dadvi", model=m, random_seed=0)
    assert approx.converged and approx.lr_cov is not None
    assert np.all(np.abs(np.asarray(approx.mean) - mean) < 0.15 * sd), (approx.mean, mean, sd)
    np.testing.assert_allclose(approx.std, sd, rtol=0.15)
    assert approx.n_grad_evals < 200


def test_objective_and_lr_covariance_on_a_gaussian_are_analytic():
    prec = np.linalg.inv(COV)

    def logp(z):
        r = z - MEAN
        return -0.5 * r @ prec @ r

    fam = MeanFieldFamily()
    res = numerics.dadvi(fam, logp, fam.init(jnp.zeros(2)), jax.random.key(0), 30)
    np.testing.assert_allclose(res.params["mu"], MEAN, atol=1e-3)
    np.testing.assert_allclose(fam.std(res.params), 1 / np.sqrt(np.diag(prec)), rtol=1e-3)
    np.testing.assert_allclose(res.lr_cov, COV, rtol=1e-3, atol=1e-3)
    assert res.hessian_pd and res.converged


def test_dadvi_is_registered_and_checks_its_arguments(correlated):
    assert jv.variational.inference.METHODS["dadvi"] is jv.DADVI
    with pytest.raises(ValueError, match="n_draws"):
        jv.DADVI(model=correlated, n_draws=0)
    with pytest.raises(NotImplementedError, match="refine"):
        jv.DADVI(model=correlated).refine(10)
