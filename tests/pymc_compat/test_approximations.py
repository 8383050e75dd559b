"""Port of PyMC's tests/variational/test_approximations.py."""

import numpy as np
import pytest

import jaxvi as jv
from jaxvi.variational.approximations import Empirical, MeanField

from pymc_compat.compat_models import build_another_simple_model

MU0, Y_OBS = 1.5, np.array([1.6, 1.4])
POST_MU, POST_SIGMA = np.array([1.88]), np.array([1.0])


def _elbo_true():
    """The exact ELBO of q = N(1.88, 1) for mu ~ N(1.5, 1), y_i ~ N(mu, 1) (PyMC's closed form)."""
    return -0.5 * (3 + 3 * POST_MU**2 - 2 * (Y_OBS[0] + Y_OBS[1] + MU0) * POST_MU + Y_OBS[0] ** 2
                   + Y_OBS[1] ** 2 + MU0**2 + 3 * np.log(2 * np.pi)) + 0.5 * (np.log(2 * np.pi) + 1)


def _set_posterior(approx):
    approx.shared_params["mu"].set_value(POST_MU)
    approx.shared_params["rho"].set_value(np.log(np.exp(POST_SIGMA) - 1))


def _elbo(approx, beta=1.0, draws=10000):
    return -float(jv.variational.operators.KL(approx, beta=beta)()(draws))


def test_empirical_from_inference_data():
    """PyMC refuses InferenceData here (NotImplementedError); jaxvi takes it (deliberate difference)."""
    with build_another_simple_model():
        trace = jv.sample(100, chains=1, tune=0, random_seed=1, progressbar=False)
        emp = Empirical(trace)
    assert emp.histogram.shape[0] == 100
    np.testing.assert_allclose(emp.histogram, trace.posterior["x"].values[0], rtol=1e-5)


def test_empirical_from_trace():
    with build_another_simple_model():
        trace = jv.sample(100, chains=1, tune=0, return_inferencedata=False, random_seed=1, progressbar=False)
        assert Empirical(trace).histogram.shape[0] == 100
        trace = jv.sample(100, chains=4, tune=0, return_inferencedata=False, random_seed=1, progressbar=False)
        assert Empirical(trace).histogram.shape[0] == 400


def test_elbo():
    with jv.Model() as model:
        mu = jv.Normal("mu", mu=MU0, sigma=1.0)
        jv.Normal("y", mu=mu, sigma=1, observed=Y_OBS)
    mean_field = MeanField(model=model)
    _set_posterior(mean_field)
    np.testing.assert_allclose(_elbo(mean_field), _elbo_true(), rtol=0, atol=1e-1)


def _total_size_model(total_size):
    with jv.Model() as model:
        mu = jv.Normal("mu", mu=MU0, sigma=1.0)
        jv.Normal("y", mu=mu, sigma=1, observed=Y_OBS, total_size=total_size)
    return model


@pytest.mark.parametrize("aux_total_size", range(2, 10, 3))
def test_scale_cost_to_minibatch_works(x64, aux_total_size):
    beta = len(Y_OBS) / float(aux_total_size)
    with _total_size_model(aux_total_size):
        mean_field_1 = MeanField()
        assert mean_field_1.scale_cost_to_minibatch
        _set_posterior(mean_field_1)
        scaled = _elbo(mean_field_1)
    with _total_size_model(aux_total_size):
        mean_field_2 = MeanField()
        mean_field_2.scale_cost_to_minibatch = False
        assert not mean_field_2.scale_cost_to_minibatch
        _set_posterior(mean_field_2)
        unscaled = _elbo(mean_field_2)
    np.testing.assert_allclose(unscaled, scaled * (1 / beta), rtol=0.02, atol=1e-1)


@pytest.mark.parametrize("aux_total_size", range(2, 10, 3))
def test_elbo_beta_kl(x64, aux_total_size):
    beta = len(Y_OBS) / float(aux_total_size)
    with _total_size_model(aux_total_size):
        mean_field_1 = MeanField()
        mean_field_1.scale_cost_to_minibatch = True
        _set_posterior(mean_field_1)
        scaled = _elbo(mean_field_1)
    with _total_size_model(None):
        mean_field_3 = MeanField()
        _set_posterior(mean_field_3)
        via_beta = _elbo(mean_field_3, beta=beta)
    np.testing.assert_allclose(scaled, via_beta, rtol=0, atol=1e-1)
    # and the beta form is PyMC's: -ELBO = -E[log p(y|mu)] + beta * (E log q - E log p(mu)) in closed form
    e_loglik = sum(-0.5 * np.log(2 * np.pi) - 0.5 * ((y - POST_MU[0]) ** 2 + 1) for y in Y_OBS)
    kl_prior = 0.5 * ((POST_MU[0] - MU0) ** 2 + 1) - 0.5  # KL(N(1.88, 1) || N(1.5, 1))
    np.testing.assert_allclose(via_beta, e_loglik - beta * kl_prior, rtol=0, atol=1e-1)


def test_klqp_beta_fit_records_pymc_objective(x64):
    """Not a PyMC test: KLqp(beta=b).fit's hist is PyMC's -ELBO, beta scaling log q - log p(latent)."""
    with jv.Model() as model:
        mu = jv.Normal("mu", mu=MU0, sigma=1.0)
        jv.Normal("y", mu=mu, sigma=1, observed=Y_OBS)
    e_loglik = sum(-0.5 * np.log(2 * np.pi) - 0.5 * ((y - POST_MU[0]) ** 2 + 1) for y in Y_OBS)
    kl_prior = 0.5 * ((POST_MU[0] - MU0) ** 2 + 1) - 0.5
    for beta in (5.0, 8.0):
        approx = MeanField(model=model)
        _set_posterior(approx)
        inference = jv.KLqp(approx, beta=beta)
        inference.fit(4000, obj_optimizer=jv.sgd(learning_rate=0.0), progressbar=False)
        np.testing.assert_allclose(np.mean(inference.hist), -(e_loglik - beta * kl_prior), atol=0.25)


def test_seeding_advi_fit():
    with jv.Model():
        jv.Normal("x", 0, 10, initval="prior")
        approx1 = jv.fit(random_seed=42, n=10, method="advi", obj_optimizer=jv.adagrad_window, progressbar=False)
        approx2 = jv.fit(random_seed=42, n=10, method="advi", obj_optimizer=jv.adagrad_window, progressbar=False)
        np.testing.assert_allclose(approx1.mean.eval(), approx2.mean.eval())
        approx3 = jv.fit(random_seed=43, n=10, method="advi", obj_optimizer=jv.adagrad_window, progressbar=False)
        assert not np.allclose(approx1.mean.eval(), approx3.mean.eval())
