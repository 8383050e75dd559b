"""Pathfinder: the inverse-Hessian normal against dense BFGS, fits against analytic posteriors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import warnings
from scipy import stats

import jaxvi as jv
from jaxvi.vi.pathfinder import BFGSNormalFamily, bfgs_normal_params, diagonal_update




def test_bfgs_normal_matches_dense_bfgs_and_scipy(x64):
    rng = np.random.default_rng(0)
    d, J = 5, 3
    A = rng.normal(size=(d, d))
    hess = A @ A.T + d * np.eye(d)  # -log p = 0.5 x^T hess x: gradient differences y = hess s
    alpha = rng.uniform(0.5, 2.0, d)
    S = rng.normal(size=(J, d))
    Y = S @ hess
    a = jnp.asarray(alpha)
    for s, y in zip(S, Y):  # the diagonal estimate stays positive on a convex quadratic
        a = diagonal_update(a, jnp.asarray(s), jnp.asarray(y))
    assert np.all(np.asarray(a) > 0)
    # dense BFGS inverse-Hessian updates from H0 = diag(alpha), pair by pair
    H = np.diag(alpha)
    for s, y in zip(S, Y):
        rho = 1 / (y @ s)
        V = np.eye(d) - rho * np.outer(s, y)
        H = V @ H @ V.T + rho * np.outer(s, s)
    x, g = rng.normal(size=d), rng.normal(size=d)
    # one empty slot (J + 1 slots, the oldest unused) must drop out
    Sj = np.vstack([np.zeros(d), S])
    Yj = np.vstack([np.zeros(d), Y])
    filled = np.array([False] + [True] * J)
    params = bfgs_normal_params(jnp.asarray(x), jnp.asarray(g), jnp.asarray(alpha), jnp.asarray(Sj),
                                jnp.asarray(Yj), jnp.asarray(filled))
    np.testing.assert_allclose(BFGSNormalFamily.cov(params), H, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(params["mu"], x + H @ g, rtol=1e-8)
    np.testing.assert_allclose(BFGSNormalFamily.std(params), np.sqrt(np.diag(H)), rtol=1e-8)
    ref = stats.multivariate_normal(np.asarray(params["mu"]), H)
    z = rng.normal(size=(4, d))
    np.testing.assert_allclose(BFGSNormalFamily.log_prob(params, jnp.asarray(z)), ref.logpdf(z), rtol=1e-8)
    np.testing.assert_allclose(BFGSNormalFamily.entropy(params), ref.entropy(), rtol=1e-8)
    draws, logq = BFGSNormalFamily.sample_and_log_prob(params, jax.random.key(0), 100_000)
    np.testing.assert_allclose(np.cov(np.asarray(draws).T), H, atol=0.03 * np.abs(H).max())
    np.testing.assert_allclose(logq[:3], ref.logpdf(np.asarray(draws[:3])), rtol=1e-8)


def test_multipath_fit_recovers_gaussian_posterior_with_few_gradients(regression):
    m, mean, cov = regression
    approx = jv.fit(method="pathfinder", model=m, random_seed=0, progressbar=False)
    assert isinstance(approx, jv.Empirical) and approx.size == 4000
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_array_less(np.abs(np.asarray(approx.mean) - mean), 0.1 * sd)
    np.testing.assert_allclose(np.asarray(approx.std), sd, rtol=0.1)
    corr = np.corrcoef(np.asarray(approx.histogram).T)[0, 1]
    assert corr == pytest.approx(cov[0, 1] / (sd[0] * sd[1]), abs=0.05)
    pf = approx.pathfinder
    assert 4 <= approx.n_grad_evals == pf.n_grad_evals < 200  # ADVI takes ~10^4 gradient steps here
    assert approx.khat < 0.5 and np.all(np.isfinite(approx.hist)) and approx.hist[-1] < approx.hist[0]
    idata = approx.sample(200, random_seed=1)
    assert idata.posterior["a"].shape == (1, 200)
    ab = approx.sample_node(m["a"] + m["b"], size=50)
    assert ab.shape == (50,) and np.all(np.isfinite(ab))


def test_single_path_is_a_normal_with_density_and_survives_overflowing_steps(x64):
    """Gamma-Poisson: the first unit L-BFGS step from a jittered start overflows exp(); the
    backtracking line search rejects it.  The posterior of the rate is Gamma(2 + sum y, 1 + n)."""
    y = np.random.default_rng(0).poisson(200.0, size=50)
    with jv.Model() as m:
        lam = jv.Gamma("lam", alpha=2.0, beta=1.0)
        jv.Poisson("y", lam, observed=y)
        approx = jv.fit(method="pathfinder", inf_kwargs={"num_paths": 1}, random_seed=2)
    assert isinstance(approx, jv.variational.approximations.PathfinderApproximation)
    post = stats.gamma(2.0 + y.sum(), scale=1 / (1.0 + len(y)))
    draws = approx.sample(4000, random_seed=0).posterior["lam"].values.ravel()
    # one path picks its iterate by a 25-draw ELBO estimate: within half a posterior sd
    assert draws.mean() == pytest.approx(post.mean(), abs=0.5 * post.std())
    assert draws.std() == pytest.approx(post.std(), rel=0.1)
    assert approx.khat < 0.5
    z = approx.sample_flat(3, random_seed=1)
    assert np.all(np.isfinite(approx.logq(z)))
    assert approx.pathfinder.status[0].startswith(("converged", "stopped"))


def test_badly_scaled_regression_falls_back_to_steepest_descent(x64):
    """Regression on the scale of IQ scores from beta = 0 (log p about -3e5, gradients about 6e5): after the
    first step the quasi-Newton direction has no acceptable step; the path used to stop there (2 iterations,
    far from the mode).  The steepest-descent retry lets L-BFGS go on to the posterior."""
    from jaxvi.vi.pathfinder import single_path

    rng = np.random.default_rng(0)
    x = rng.normal(100, 15, size=400)
    y = 26 + 0.6 * x + rng.normal(0, 18, size=400)
    with jv.Model() as m:
        b = jv.Normal("b", 0, 100, shape=2)
        s = jv.HalfNormal("s", 50)
        jv.Normal("y", b[0] + b[1] * x, s, observed=y)
    cm = m.compile()
    out = jax.jit(lambda x0: single_path(lambda z: cm.logp(z, cm.data), x0, jax.random.key(0)))(cm.initial_point())
    X = np.column_stack([np.ones_like(x), x])
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    resid = y - X @ beta
    sd = np.sqrt(np.diag(np.linalg.inv(X.T @ X))) * resid.std()
    assert int(out["n_iters"]) > 5
    assert np.all(np.abs(np.asarray(out["params"]["mu"][:2]) - beta) < 0.2 * sd)
    assert out["params"]["mu"][2] == pytest.approx(np.log(resid.std()), abs=0.05)


def test_rejittered_starts_and_walls(x64):
    """A Potential walls off x > 2 (log p = -inf): starts there are re-jittered, steps into the wall rejected."""
    with jv.Model() as m:
        x = jv.Normal("x", 0.0, 1.0)
        jv.Potential("wall", jv.math.where(x > 2.0, -np.inf, 0.0))
    pf = jv.Pathfinder(model=m, random_seed=0, num_paths=4, init_jitter=4.0)
    approx = pf.fit()
    draws = np.asarray(approx.histogram)[:, 0]
    assert np.all(draws <= 2.0)
    ref = stats.truncnorm(-np.inf, 2.0)
    assert draws.mean() == pytest.approx(ref.mean(), abs=0.1)
    assert draws.std() == pytest.approx(ref.std(), rel=0.15)
    with pytest.raises(ValueError, match="num_paths must be a positive integer"):
        jv.Pathfinder(model=m, num_paths=0)
    with pytest.raises(ValueError, match="tail_draws must be a non-negative integer, got -1"):
        jv.Pathfinder(model=m, tail_draws=-1)
    with pytest.raises(ValueError, match="tail_df must be a positive number, got 0"):
        jv.Pathfinder(model=m, tail_df=0)
    with pytest.raises(ValueError, match="pooling must be 'mixture' or 'own', got 'stan'"):
        jv.Pathfinder(model=m, pooling="stan")
    with pytest.raises(ValueError, match="pass tail_draws=0"):
        jv.Pathfinder(model=m, pooling="own")


def test_default_history_recovers_an_ill_conditioned_normal_that_six_pairs_miss():
    """A 12-dimensional normal with covariance eigenvalues 0.01..10 in a random basis: the paper's 6 L-BFGS
    pairs leave the paths' covariances wrong (with Stan's 4 paths x 1000 draws and no t draws: k-hat > 0.7,
    sds 0.4-0.9 of the truth, a warning), the default history (50 pairs at this size) gets the analytic
    moments."""
    from jaxvi.variational.inference import default_history_size

    assert default_history_size(12) == 50 and default_history_size(1000) == 20 and default_history_size(10_000) == 6
    rng = np.random.default_rng(3)
    d = 12
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    cov = (basis * np.logspace(-2, 1, d)) @ basis.T
    mu = rng.normal(size=d)
    sd = np.sqrt(np.diag(cov))
    with jv.Model() as m:
        jv.MvNormal("x", mu=mu, cov=cov)
    with pytest.warns(jv.diagnostics.KhatWarning):
        six = jv.fit(method="pathfinder", model=m, random_seed=0, inf_kwargs={"history_size": 6, "num_paths": 4,
                                                                        "draws_per_path": 1000, "tail_draws": 0})
    x6 = six.sample(4000, random_seed=1).posterior["x"].values.reshape(-1, d)
    assert six.khat > 0.7 and np.min(x6.std(0) / sd) < 0.8
    with warnings.catch_warnings():
        warnings.simplefilter("error", jv.diagnostics.FitWarning)
        approx = jv.fit(method="pathfinder", model=m, random_seed=0)
    x = approx.sample(4000, random_seed=1).posterior["x"].values.reshape(-1, d)
    assert approx.pathfinder.options["history_size"] == 50 and approx.khat < 0.5
    np.testing.assert_array_less(np.abs(x.mean(0) - mu) / sd, 0.1)
    np.testing.assert_allclose(x.std(0) / sd, 1.0, atol=0.08)


def test_pooled_draws_weigh_against_the_normal_and_t_mixture_scipy_computes(x64):
    """The pooled log ratios are log p - log q_mix, q_mix the equal-draw mixture of every path's normal and
    Student-t (scipy's multivariate_normal / multivariate_t as the reference); a path without a finite ELBO
    adds nothing."""
    from jaxvi.vi.pathfinder import pooled_draws

    rng = np.random.default_rng(1)
    d, r, m, n_t, df = 3, 2, 5, 4, 5.0
    params, covs = [], []
    for _ in range(3):
        q, _ = np.linalg.qr(rng.normal(size=(d, r)))
        lc = np.tril(rng.normal(size=(r, r)) * 0.3) + np.eye(r)
        p = {"mu": rng.normal(size=d), "alpha": rng.uniform(0.5, 2.0, d), "Q": q, "L": lc}
        params.append(p)
        covs.append(np.asarray(BFGSNormalFamily.cov(jax.tree_util.tree_map(jnp.asarray, p))))
    stack = {k: jnp.asarray(np.stack([p[k] for p in params])) for k in params[0]}
    draws = jnp.asarray(rng.normal(size=(3, m, d)))
    logp = lambda z: -0.5 * jnp.sum(z**2) - 0.3 * jnp.sum(z)  # noqa: E731
    lq_own = jax.vmap(BFGSNormalFamily.log_prob)(stack, draws)
    paths = {"params": stack, "draws": draws, "log_ratios": jax.vmap(jax.vmap(logp))(draws) - lq_own,
             "best_elbo": jnp.asarray([-1.0, -2.0, -jnp.inf])}  # the third path failed
    z, lr = pooled_draws(logp, paths, jax.random.PRNGKey(0), tail_draws=n_t, tail_df=df)
    z, lr = np.asarray(z), np.asarray(lr)
    assert z.shape == (3 * (m + n_t), d)
    ok = np.isfinite(lr)
    # the failed path's normal and t draws have zero weight; everything else is finite
    failed = np.zeros(len(lr), bool)
    failed[2 * m:3 * m] = True
    failed[3 * m + 2 * n_t:] = True
    np.testing.assert_array_equal(ok, ~failed)
    mix = sum(m * stats.multivariate_normal(p["mu"], c).pdf(z[ok]) + n_t * stats.multivariate_t(p["mu"], c, df=df).pdf(z[ok])
              for p, c in zip(params[:2], covs[:2])) / (2 * (m + n_t))
    ref = np.array([float(logp(jnp.asarray(x))) for x in z[ok]]) - np.log(mix)
    np.testing.assert_allclose(lr[ok], ref, rtol=1e-9, atol=1e-9)


def test_student_t_draws_recover_a_heavy_tailed_posterior_that_stan_pooling_narrows():
    """A Student-t(3) posterior (analytic sd sqrt(3), 95% quantile 2.353): each path's normal at the mode is too
    light-tailed.  Stan's pooling (4 paths x 1000 draws, own weights) resamples draws about 20% too narrow and
    warns; the defaults' Student-t draws and mixture weights get the sd and the tail quantile."""
    with jv.Model() as m:
        jv.StudentT("x", nu=3.0, mu=0.0, sigma=1.0)
    with pytest.warns(jv.diagnostics.FitWarning):
        stan = jv.fit(method="pathfinder", model=m, random_seed=0,
                      inf_kwargs={"num_paths": 4, "draws_per_path": 1000, "tail_draws": 0, "pooling": "own"})
    xs = stan.sample(4000, random_seed=1).posterior["x"].values.ravel()
    approx = jv.fit(method="pathfinder", model=m, random_seed=0)
    x = approx.sample(4000, random_seed=1).posterior["x"].values.ravel()
    sd, q95 = np.sqrt(3.0), stats.t(3).ppf(0.95)
    assert xs.std() < 0.85 * sd
    assert approx.khat < 0.5 and abs(x.mean()) < 0.1 * sd
    assert x.std() == pytest.approx(sd, rel=0.1)
    assert np.quantile(np.abs(x), 0.9) == pytest.approx(q95, rel=0.05)
