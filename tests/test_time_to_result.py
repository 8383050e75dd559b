"""What a fresh process pays before its first result: PSIS without ArviZ, no ArviZ import in a fit."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from jaxvi import diagnostics

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def test_psis_matches_arviz_psislw():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az
    rng = np.random.default_rng(1)
    for n, df, scale in [(20, 1.5, 3.0), (100, 3.0, 1.0), (1000, 1.2, 5.0), (4000, 8.0, 0.3)]:
        lr = scale * rng.standard_t(df, size=n)
        lr[rng.integers(0, n, 3)] = -np.inf  # zero weights
        lw_ref, k_ref = az.psislw(lr.copy())
        lw, k = diagnostics.psis(lr)
        assert k == pytest.approx(float(k_ref), rel=1e-10)
        np.testing.assert_allclose(lw, lw_ref, rtol=1e-10, atol=1e-12)


def test_psis_khat_of_an_exact_pareto_tail():
    rng = np.random.default_rng(0)
    for k in (0.2, 0.6, 1.0):  # w = U**-k has a generalised-Pareto tail of shape k
        assert diagnostics.psis(-k * np.log(rng.uniform(size=40000)))[1] == pytest.approx(k, abs=0.15)


def test_a_fit_and_its_khat_do_not_import_arviz():
    code = ("import sys, jaxvi as jv\n"
            "with jv.Model():\n"
            "    jv.Normal('y', jv.Normal('mu', 0, 1), 1, observed=[0.1, -0.3, 0.5])\n"
            "    approx = jv.fit(1000, progressbar=False, random_seed=0)\n"
            "assert approx.khat is not None\n"
            "print('arviz' in sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=SRC, JAXVI_COMPILATION_CACHE="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False"


@pytest.mark.parametrize("every", [1, 7])
def test_trackers_alone_record_per_chunk_what_per_step_calls_record(every):
    """Only live-value Trackers: the replay records each chunk in one call (``Observer.record_block``);
    the reference is the per-step live calls of ``replay_callbacks = False``."""
    import jaxvi as jv

    data = np.random.default_rng(0).normal(1.0, 2.0, size=50)
    with jv.Model() as m:
        jv.Normal("y", jv.Normal("mu", 0, 10), jv.HalfNormal("sd", 5), observed=data)
    out = []
    for replay in (True, False):
        inference = jv.ADVI(model=m, random_seed=4)
        inference.replay_callbacks = replay
        inference.khat_draws = 0
        a = inference.approx
        trackers = [jv.callbacks.Tracker(every=every, mean=a.mean.eval, std=a.std),
                    jv.callbacks.Tracker(mean=a.mean)]
        assert all(t.records_blocks for t in trackers)
        inference.fit(2000, callbacks=trackers, progressbar=False)
        out.append(trackers)
    (a1, a2), (b1, b2) = out
    assert len(a1["mean"]) == len(range(0, 2000, every)) and len(a2["mean"]) == 2000
    for x, y in ((a1, b1), (a2, b2)):
        for name in x.hist:
            np.testing.assert_array_equal(np.stack(x[name]), np.stack(y[name]))
