"""PSIS k-hat, importance-weighted ELBO and importance resampling against analytic posteriors."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxvi as jv
from jaxvi import diagnostics
from jaxvi.vi.families import softplus_inverse

Y8 = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA8 = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])




@pytest.fixture(scope="module")
def eight_schools():
    with jv.Model() as m:
        mu = jv.Normal("mu", 0, 5)
        tau = jv.HalfCauchy("tau", 5)
        theta = jv.Normal("theta", mu, tau, shape=8)
        jv.Normal("y", theta, SIGMA8, observed=Y8)
    return m


def test_meanfield_on_centered_eight_schools_warns(eight_schools):
    """The funnel: no mode for the default start (StartWarning), and a mean-field q too narrow for the
    theta's (k-hat above 0.5, the reweighted sds flag them)."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        approx = jv.fit(10000, model=eight_schools, random_seed=0, progressbar=False)
    kinds = {w.category for w in record}
    assert diagnostics.StartWarning in kinds and kinds & {diagnostics.KhatWarning, diagnostics.MomentsWarning}
    assert approx.khat > 0.5 and approx.khat_draws == diagnostics.KHAT_DRAWS
    if approx.khat > 0.7:
        assert diagnostics.KhatWarning in kinds
    else:
        assert any(lab.startswith("theta") for lab in approx.diagnostics["moments"].flagged)
    idata = approx.sample(100, random_seed=1)
    assert idata.posterior.attrs["khat"] == pytest.approx(approx.khat)
    assert idata.posterior.attrs["khat_draws"] == diagnostics.KHAT_DRAWS


def test_fullrank_on_conjugate_normal_has_small_khat_and_tight_iw_elbo(conjugate):
    m, _, _, log_z = conjugate
    with warnings.catch_warnings():
        warnings.simplefilter("error", diagnostics.KhatWarning)
        approx = jv.fit(5000, method="fullrank_advi", model=m, random_seed=0, progressbar=False, obj_n_mc=10)
    assert approx.khat < 0.5
    assert approx.psis_khat(2000, random_seed=3) < 0.5
    # the ELBO and the IW-ELBO bound log p(y); with an (almost) exact q both are (almost) equal to it
    iw = approx.iw_elbo(4000, random_seed=1)
    el = approx.iw_elbo(4000, k=1, random_seed=1)
    assert el <= iw + 1e-6
    assert iw == pytest.approx(log_z, abs=0.02)
    assert el == pytest.approx(log_z, abs=0.05)


def test_importance_resampling_widens_a_too_narrow_approximation(conjugate):
    m, mean, sd, _ = conjugate
    approx = jv.MeanField(model=m, random_seed=0)
    approx.vparams = {"mu": jnp.asarray([mean], jnp.float32), "rho": softplus_inverse(jnp.asarray([0.7 * sd]))}
    plain = approx.sample(4000, random_seed=1).posterior["mu"].values.ravel()
    idata = approx.sample(4000, random_seed=1, importance_resample=True)
    fixed = idata.posterior["mu"].values.ravel()
    assert plain.std() == pytest.approx(0.7 * sd, rel=0.05)
    assert fixed.std() == pytest.approx(sd, rel=0.08)
    assert fixed.mean() == pytest.approx(mean, abs=0.05 * sd)
    assert idata.posterior.attrs["importance_resampled"] and 0.3 < idata.posterior.attrs["psis_khat"] < 0.7


def test_pure_functions_against_references():
    rng = np.random.default_rng(0)
    # ratios with an exact generalised-Pareto tail of shape k: w = U**-k
    for k in (0.3, 0.9):
        lw, khat = diagnostics.psis(-k * np.log(rng.uniform(size=20000)))
        assert khat == pytest.approx(k, abs=0.1)
    assert np.exp(lw).sum() == pytest.approx(1.0)
    assert diagnostics.psis(np.zeros(10))[1] == -np.inf  # q == p up to a constant
    assert diagnostics.psis(np.full(10, -np.inf))[1] == np.inf
    lr = rng.normal(size=12)
    assert diagnostics.iw_elbo(lr, k=1) == pytest.approx(lr.mean())
    assert diagnostics.iw_elbo(lr) == pytest.approx(np.log(np.mean(np.exp(lr))))
    assert diagnostics.iw_elbo(lr, k=4) == pytest.approx(np.mean(np.log(np.mean(np.exp(lr.reshape(3, 4)), 1))))
    with pytest.raises(ValueError, match="k must be between"):
        diagnostics.iw_elbo(lr, k=13)


def test_khat_can_be_turned_off(conjugate):
    m = conjugate[0]
    inference = jv.ADVI(model=m, random_seed=0)
    inference.khat_draws = 0
    approx = inference.fit(100, progressbar=False)
    assert approx.khat is None
    assert "khat" not in approx.sample(10, random_seed=0).posterior.attrs


def test_khat_on_big_data_is_chunked_over_draws_and_bounded(monkeypatch):
    rng = np.random.default_rng(4)
    y = rng.normal(1.0, 2.0, size=(2000, 5)).astype(np.float32)
    with jv.Model() as m:
        mu = jv.Normal("mu", 0.0, 10.0, shape=5)
        jv.Normal("y", mu, 2.0, observed=y)
    approx = jv.fit(500, model=m, random_seed=0, progressbar=False)
    assert diagnostics.data_values(approx.cm.data) == y.size
    whole = diagnostics.approx_log_ratios(approx, 300, 7)
    monkeypatch.setattr(diagnostics, "KHAT_CHUNK_VALUES", 40 * y.size)  # 40 draws at a time (lax.map)
    assert diagnostics.draws_per_chunk(y.size, 300) == 40
    chunked = diagnostics.approx_log_ratios(approx, 300, 7)
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-5)
    np.testing.assert_array_equal(chunked[0], whole[0])
    # the budget: fewer draws on bigger data, none below KHAT_MIN_DRAWS
    monkeypatch.setattr(diagnostics, "KHAT_MAX_VALUES", 500 * y.size)
    assert diagnostics.khat_draws_for(y.size) == 500
    assert diagnostics.record_khat(approx) is not None and approx.khat_draws == 500
    monkeypatch.setattr(diagnostics, "KHAT_MAX_VALUES", 100 * y.size)
    assert diagnostics.khat_draws_for(y.size) == 0
    approx.khat = None
    assert diagnostics.record_khat(approx) is None and "budget" in approx.khat_skipped


def test_khat_is_skipped_for_minibatch_fits():
    y = np.random.default_rng(5).normal(size=5000).astype(np.float32)
    with jv.Model() as m:
        mu = jv.Normal("mu", 0.0, 10.0)
        jv.Normal("y", mu, 1.0, observed=jv.Minibatch(y, batch_size=100), total_size=len(y))
    approx = jv.fit(200, model=m, random_seed=0, progressbar=False)
    assert approx.khat is None and "minibatch" in approx.khat_skipped


def test_gpd_fit_on_nearly_equal_exceedances_matches_arviz_without_an_overflow_warning():
    """Exceedances equal to 1e-9 (a q that is almost exact in the tail): most candidate b's profile
    log-likelihoods are far below the best, their exp overflowed (a RuntimeWarning users saw on the demo's
    mixture); they get weight 0, as in ArviZ's fit."""
    import warnings

    from arviz.stats.stats import _gpdfit

    from jaxvi.results.diagnostics import _gpd_fit

    x = np.sort(1 + 1e-9 * np.random.default_rng(0).uniform(size=200))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        k, sigma = _gpd_fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        k_ref, sigma_ref = _gpdfit(x)
    assert k == pytest.approx(float(k_ref), rel=1e-9) and sigma == pytest.approx(float(sigma_ref), rel=1e-9)
