"""Callbacks replayed after fused chunks give what calling them after every step gives.

The reference is ``Inference.replay_callbacks = False``: the fit is cut into one-step chunks and
each callback is called live in between (the engine's old way); and, independently, a Tracker's
records are checked against values recomputed from a plain per-step fit's parameters.
"""

import logging
import subprocess
import sys

import numpy as np
import pytest

import jaxvi as jv


@pytest.fixture(scope="module")
def model():
    data = np.random.default_rng(0).normal(1.0, 2.0, size=50)
    with jv.Model() as m:
        mu = jv.Normal("mu", 0, 10)
        sd = jv.HalfNormal("sd", 5)
        jv.Normal("y", mu, sd, observed=data)
    return m


def fit_with(model, replay, make_callbacks, n=3000, method=jv.ADVI, **kwargs):
    inference = method(model=model, random_seed=4)
    inference.replay_callbacks = replay
    inference.khat_draws = 0
    callbacks = make_callbacks(inference.approx)
    inference.fit(n, callbacks=callbacks, progressbar=False, **kwargs)
    return inference, callbacks


def tracker_and_stop(stop_at, seen):
    def make(approx):
        tracker = jv.callbacks.Tracker(mean=approx.mean.eval, std=approx.std, sq=lambda: approx.mean.eval() ** 2)

        def stopper(approx, hist, i):
            seen.append((i, len(hist), float(hist[-1])))
            if i == stop_at:
                raise StopIteration(f"stop at {i}")

        after = jv.callbacks.Tracker(mean=approx.mean.eval)  # listed after the stopper: not called at stop_at
        return [tracker, stopper, after]

    return make


@pytest.mark.parametrize("stop_at", [1234, 0, 2999])
def test_replay_matches_per_step_calls_and_stops_at_the_same_step(model, stop_at):
    seen_replay, seen_live = [], []
    a, (ta, _, aa) = fit_with(model, True, tracker_and_stop(stop_at, seen_replay))
    b, (tb, _, ab) = fit_with(model, False, tracker_and_stop(stop_at, seen_live))
    assert len(a.hist) == stop_at + 1 == len(b.hist)
    np.testing.assert_array_equal(a.hist, b.hist)
    assert seen_replay == seen_live  # same steps, each seeing the history up to its own step
    assert [i for i, _, _ in seen_replay] == list(range(stop_at + 1))
    assert all(n == i + 1 for i, n, _ in seen_replay)
    for name in ("mean", "std", "sq"):
        assert len(ta[name]) == stop_at + 1
        np.testing.assert_array_equal(np.stack(ta[name]), np.stack(tb[name]))
    assert len(aa["mean"]) == stop_at == len(ab["mean"])
    np.testing.assert_array_equal(a.approx.mean, b.approx.mean)  # the state of step stop_at exactly
    np.testing.assert_array_equal(a.approx.std, b.approx.std)
    a.refine(200, progressbar=False)  # and the optimizer state and key too: continuing gives the same bits
    b.refine(200, progressbar=False)
    np.testing.assert_array_equal(a.hist, b.hist)


def test_tracker_records_equal_values_recomputed_from_a_plain_fit(model):
    # independent reference: fit k steps from scratch (no callbacks) and read its mean and std
    # (a named optimizer: the default recipe's learning rate decays over the fit's own n)
    a, (tracker, _, _) = fit_with(model, True, tracker_and_stop(-1, []), n=40, obj_optimizer=jv.adagrad_window())
    for k in (1, 7, 40):
        plain = jv.ADVI(model=model, random_seed=4)
        plain.khat_draws = 0
        plain.fit(k, progressbar=False, obj_optimizer=jv.adagrad_window())
        np.testing.assert_array_equal(tracker["mean"][k - 1], np.asarray(plain.approx.mean))
        np.testing.assert_allclose(tracker["std"][k - 1], np.asarray(plain.approx.std), rtol=1e-6)
        np.testing.assert_array_equal(a.hist[:k], plain.hist)


def test_every_and_parameter_convergence_stop_at_the_same_step(model):
    def make(approx):
        return [jv.callbacks.CheckParametersConvergence(every=50, tolerance=0.05, diff="absolute"),
                jv.callbacks.Tracker(every=10, mean=approx.mean.eval)]

    a, (_, ta) = fit_with(model, True, make, n=20_000, obj_optimizer=jv.adam(learning_rate=0.05))
    b, (_, tb) = fit_with(model, False, make, n=20_000, obj_optimizer=jv.adam(learning_rate=0.05))
    assert 0 < len(a.hist) < 20_000 and (len(a.hist) - 1) % 50 == 0
    np.testing.assert_array_equal(a.hist, b.hist)
    # the stop falls on a multiple of 10, where the Tracker (listed after the stopper) is not called
    assert len(ta["mean"]) == (len(a.hist) - 1) // 10
    np.testing.assert_array_equal(np.stack(ta["mean"]), np.stack(tb["mean"]))


def test_replay_for_particles(model):
    def make(approx):
        return [jv.callbacks.Tracker(mean=approx.mean.eval, std=approx.std.eval), lambda ap, h, i: None]

    kwargs = dict(n=60, obj_optimizer=jv.sgd(learning_rate=0.01))
    svgd = lambda model, random_seed: jv.SVGD(n_particles=30, model=model, random_seed=random_seed)  # noqa: E731
    a, (ta, _) = fit_with(model, True, make, method=svgd, **kwargs)
    b, (tb, _) = fit_with(model, False, make, method=svgd, **kwargs)
    np.testing.assert_array_equal(a.hist, b.hist)
    np.testing.assert_allclose(np.stack(ta["mean"]), np.stack(tb["mean"]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.stack(ta["std"]), np.stack(tb["std"]), rtol=1e-6, atol=1e-7)


def test_a_callback_error_keeps_its_step_in_a_note(model):
    def bad(approx, hist, i):
        if i == 321:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom") as info:
        fit_with(model, True, lambda approx: [bad], n=1000)
    assert any("at step 321" in note for note in info.value.__notes__)


def test_import_adds_no_log_handler_and_a_fit_still_says_finished():
    code = ("import logging, sys\n"
            "before = {n: list(l.handlers) for n, l in logging.root.manager.loggerDict.items() if hasattr(l, 'handlers')}\n"
            "import jaxvi as jv\n"
            "real = [(n, h) for n, l in logging.root.manager.loggerDict.items() if hasattr(l, 'handlers')\n"
            "        for h in l.handlers if not isinstance(h, logging.NullHandler) and h not in before.get(n, [])]\n"
            "assert not real and not logging.root.handlers, real\n"
            "with jv.Model() as m:\n"
            "    jv.Normal('x', 0, 1)\n"
            "jv.fit(50, model=m, progressbar=False)\n"
            "assert not logging.root.handlers and not [h for h in logging.getLogger('jaxvi').handlers\n"
            "                                          if not isinstance(h, logging.NullHandler)]\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Finished [100%]: Average Loss = " in out.stderr


def test_fit_messages_go_through_logging_once_it_is_configured(model, caplog, capfd):
    with caplog.at_level(logging.INFO, logger="jaxvi"):
        jv.fit(20, model=model, progressbar=False)
    assert any("Finished [100%]: Average Loss" in r.getMessage() for r in caplog.records)
    capfd.readouterr()
    logging.getLogger("jaxvi").setLevel(logging.WARNING)
    try:
        jv.fit(20, model=model, progressbar=False)
    finally:
        logging.getLogger("jaxvi").setLevel(logging.NOTSET)
    assert "Finished" not in capfd.readouterr().err


@pytest.mark.parametrize("n_rows", [6, 3000])  # one-hot gradient / segment-sum gradient
def test_constant_integer_indexing_and_its_gradient_match_plain_jax(n_rows):
    import jax
    import jax.numpy as jnp

    from jaxvi.model.nodes import ONE_HOT_ELEMENTS, take_rows

    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(n_rows, 3)), jnp.float32)
    idx = rng.integers(-n_rows, n_rows, size=(100, 2))
    w = jnp.asarray(rng.normal(size=(100, 2, 3)), jnp.float32)
    assert (n_rows * idx.size <= ONE_HOT_ELEMENTS) == (n_rows == 6)
    fast = lambda x: jnp.sum(w * take_rows(x, np.where(idx < 0, idx + n_rows, idx))) ** 2  # noqa: E731
    plain = lambda x: jnp.sum(w * x[idx]) ** 2  # noqa: E731
    np.testing.assert_allclose(jax.grad(fast)(x), jax.grad(plain)(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.vmap(jax.grad(fast))(jnp.stack([x, 2 * x])),
                               jax.vmap(jax.grad(plain))(jnp.stack([x, 2 * x])), rtol=1e-5, atol=1e-5)
    with jv.Model():
        g = jv.Normal("g", 0, 1, shape=n_rows)
        with pytest.raises(IndexError, match="out of bounds"):
            g[np.array([0, n_rows])]


def test_progress_bar_rate_leaves_the_compile_out(monkeypatch):
    """The bar starts after the first (compiling) chunk, at the steps done, so tqdm's rate counts steps
    per second of stepping, not the compile (a first fit read 50-95 it/s for fits running at 11,000)."""
    import tqdm.auto

    made = []

    class Recording(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            made.append(kwargs.get("initial", 0))
            super().__init__(*args, **kwargs)

        def close(self):  # tqdm's __del__ closes again: record the first close only
            if not getattr(self, "_recorded", False):
                self._recorded = True
                made.append(self.n)
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    with jv.Model():
        jv.Normal("y", jv.Normal("mu", 0, 1), 1, observed=np.zeros(5))
        approx = jv.fit(3000, random_seed=3, progressbar=True, khat=False)
    assert len(made) == 2 and made[0] >= 1  # created once, after the compiling chunk's steps
    assert made[1] == len(approx.hist) == 3000  # and it counts every step
