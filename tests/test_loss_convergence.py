"""CheckLossConvergence (host callback) and fit(stop_on_convergence=True) (inside the compiled loop)."""

import numpy as np
import pytest

import jaxvi as jv
from jaxvi.variational.callbacks import loss_plateau


def _ar1(rng, n, phi=0.9):
    e = rng.normal(size=n)
    x = np.empty(n)
    x[0] = e[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


def test_plateau_test_is_calibrated_under_autocorrelated_noise():
    rng = np.random.default_rng(0)
    w = 500
    flat = [bool(loss_plateau(*np.split(100 + _ar1(rng, 2 * w), 2), tolerance=1.0)) for _ in range(200)]
    # a steady decrease of 0.02 per step (10 per window) under the same noise must not stop
    trend = [bool(loss_plateau(*np.split(100 - 0.02 * np.arange(2 * w) + _ar1(rng, 2 * w), 2), tolerance=1.0))
             for _ in range(200)]
    assert np.mean(flat) > 0.9
    assert np.mean(trend) < 0.1
    # a per-step standard error (ignoring the autocorrelation) would call far fewer plateaus
    naive = []
    for _ in range(200):
        a, b = np.split(_ar1(rng, 2 * w), 2)
        naive.append(a.mean() - b.mean() < 2 * np.sqrt((a.var() + b.var()) / w))
    assert np.mean(naive) < np.mean(flat) - 0.2
    # and a decrease that is noise-level but large relative to the loss keeps going
    assert not bool(loss_plateau(np.full(500, 10.0), np.full(500, 9.0) + rng.normal(0, 5, 500), tolerance=1e-3))




def test_callback_and_in_loop_rule_stop_at_the_same_step_near_the_posterior(conjugate):
    m, mean, sd, _ = conjugate
    kw = dict(model=m, random_seed=1, progressbar=False, obj_optimizer=jv.adam(learning_rate=0.01))
    host = jv.fit(50_000, callbacks=[jv.callbacks.CheckLossConvergence(every=100, window=500)], **kw)
    loop = jv.fit(50_000, stop_on_convergence={"every": 100, "window": 500}, **kw)
    assert 1000 <= len(loop.hist) < 50_000
    assert abs(len(loop.hist) - len(host.hist)) <= 100
    assert abs(float(loop.mean[0]) - mean) < 0.3 * sd
    assert float(loop.std[0]) == pytest.approx(sd, rel=0.3)
    assert loop.khat is not None  # the post-fit diagnostics run after a convergence stop too
    with pytest.raises(ValueError, match="window"):
        jv.callbacks.CheckLossConvergence(window=5)
    with pytest.raises(TypeError, match="stop_on_convergence"):
        jv.fit(10, stop_on_convergence="yes", **kw)
