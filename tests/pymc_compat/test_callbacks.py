"""Port of PyMC's tests/variational/test_callbacks.py (CheckParametersConvergence, Tracker)."""

import time

import numpy as np
import pytest

import jaxvi as jv
from jaxvi.variational.callbacks import CheckParametersConvergence, Tracker


class _Approx:
    """Anything with ``params`` (a sequence of arrays) will do, as in PyMC's test."""

    def __init__(self, *params):
        self.params = tuple(np.asarray(p, dtype=float) for p in params)


@pytest.mark.parametrize("diff", ["relative", "absolute"])
@pytest.mark.parametrize("ord", [1, 2, np.inf])
def test_callbacks_convergence(diff, ord):
    cb = CheckParametersConvergence(every=1, diff=diff, ord=ord)
    approx = _Approx([1, 2, 3])
    with pytest.raises(StopIteration):
        cb(approx, None, 1)
        cb(approx, None, 10)


@pytest.mark.parametrize("diff", ["relative", "absolute"])
def test_callbacks_convergence_does_not_stop_while_moving(diff):
    """The converse, not in PyMC: parameters that move by more than the tolerance keep the fit going."""
    cb = CheckParametersConvergence(every=1, diff=diff, tolerance=1e-3)
    cb(_Approx([1.0, 2.0, 3.0]), None, 1)
    cb(_Approx([1.5, 2.0, 3.0]), None, 2)  # a change of 0.5 (relative 0.5): no stop


def test_tracker_callback():
    tracker = Tracker(ints=lambda *t: t[-1], ints2=lambda ap, h, j: j, time=time.time)
    for i in range(10):
        tracker(None, None, i)
    assert {"time", "ints", "ints2"} <= set(tracker.hist)
    assert len(tracker["ints"]) == len(tracker["ints2"]) == len(tracker["time"]) == 10
    assert tracker["ints"] == tracker["ints2"] == list(range(10))
    tracker = Tracker(bad=lambda t: t)  # bad signature
    with pytest.raises(TypeError):
        tracker(None, None, 1)


def test_tracker_in_a_fit_records_mean_and_a_raising_callable():
    """Tracker(mean=approx.mean) re-reads the mean each step; a callable that raises for the
    no-argument form (here a KeyError) is retried with (approx, hist, i), as PyMC catches any exception."""
    data = np.random.default_rng(0).normal(2.0, 1.0, size=50)
    with jv.Model():
        mu = jv.Normal("mu", 0, 10)
        jv.Normal("y", mu, 1.0, observed=data)
        advi = jv.ADVI(random_seed=1)

        def step_from_args(*args):
            if not args:
                raise KeyError("needs args")
            return args[-1]

        tracker = Tracker(mean=advi.approx.mean, step=step_from_args)
        advi.fit(200, callbacks=[tracker], obj_optimizer=jv.adam(learning_rate=0.1), progressbar=False)
    assert len(tracker["mean"]) == 200 and tracker["step"] == list(range(200))
    np.testing.assert_allclose(tracker["mean"][-1], np.asarray(advi.approx.mean), rtol=1e-6)
    assert not np.allclose(tracker["mean"][0], tracker["mean"][-1])
