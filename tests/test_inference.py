"""ADVI and full-rank ADVI end to end, against analytic posteriors."""

import arviz as az
import jax
import matplotlib
import numpy as np
import optax
import pytest

import jaxvi as jv
from jaxvi.faces.demo import mixture_model, mvnormal_model

matplotlib.use("Agg")






@pytest.fixture(scope="module")
def mvnormal():
    return mvnormal_model()


@pytest.fixture(scope="module")
def mixture():
    return mixture_model()


def test_meanfield_recovers_conjugate_posterior(conjugate):
    m, mean, sd, _ = conjugate
    # the final iterate of a stochastic optimiser jitters around the optimum: average 20 draws per step
    approx = jv.fit(20000, model=m, random_seed=1, progressbar=False, obj_n_mc=20)
    draws = approx.sample(20000, random_seed=2).posterior["mu"].values.ravel()
    assert abs(draws.mean() - mean) < 0.05 * sd
    assert abs(draws.std() / sd - 1) < 0.1
    assert abs(float(approx.mean[0]) - mean) < 0.05 * sd
    assert abs(float(approx.std[0]) / sd - 1) < 0.1


def test_fullrank_recovers_correlated_posterior(regression):
    m, mean, cov = regression
    schedule = optax.cosine_decay_schedule(0.02, 20000, alpha=0.01)  # learning rates may be schedules
    approx = jv.fit(20000, method="fullrank_advi", model=m, random_seed=3, progressbar=False,
                    obj_optimizer=jv.adam(learning_rate=schedule))
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_array_less(np.abs(np.asarray(approx.mean) - mean), 0.05 * sd)
    np.testing.assert_allclose(np.sqrt(np.diag(approx.cov)), sd, rtol=0.1)
    corr = approx.cov[0, 1] / np.sqrt(approx.cov[0, 0] * approx.cov[1, 1])
    assert corr == pytest.approx(cov[0, 1] / (sd[0] * sd[1]), abs=0.05)
    assert approx.L_chol.shape == (2, 2)


def test_fullrank_recovers_correlation_meanfield_does_not(mvnormal):
    with mvnormal:  # adam converges faster than the default adagrad_window on this target
        mf = jv.fit(20000, random_seed=0, progressbar=False, obj_optimizer=jv.adam(learning_rate=0.01))
        fr = jv.fit(20000, method="fullrank_advi", random_seed=0, progressbar=False)
    corr = lambda a: np.corrcoef(a.sample(5000, random_seed=1).posterior["density"].values.reshape(-1, 2).T)[0, 1]  # noqa: E731
    assert corr(fr) == pytest.approx(0.8, abs=0.05)
    assert abs(corr(mf)) < 0.05
    # mean-field's best fit has sd sqrt(1 - 0.8^2) = 0.6 per coordinate
    np.testing.assert_allclose(mf.std, 0.6, rtol=0.1)


def test_convergence_callback_stops_early_and_keeps_history(mixture):
    cb = jv.callbacks.CheckParametersConvergence(diff="absolute", every=100)
    with mixture:
        approx = jv.fit(10000, callbacks=[cb], random_seed=1, progressbar=False)
    assert 100 < len(approx.hist) < 10000
    assert (len(approx.hist) - 1) % 100 == 0
    assert np.all(np.isfinite(approx.hist))


def test_tracker_records_and_refine_extends_history(mixture):
    with mixture:
        advi = jv.ADVI(random_seed=2)
    tracker = jv.callbacks.Tracker(mean=advi.approx.mean, std=advi.approx.std.eval,
                                   step=lambda approx, hist, i: i)
    # PyMC's optimizer (with none, the default recipe starts at the mode: the mean hardly moves)
    advi.fit(300, callbacks=[tracker], progressbar=False, obj_optimizer=jv.adagrad_window())
    assert len(tracker["mean"]) == 300 and tracker["step"][:3] == [0, 1, 2]
    assert not np.allclose(tracker["mean"][0], tracker["mean"][-1])
    np.testing.assert_allclose(tracker["mean"][-1], advi.approx.mean)
    first = advi.hist.copy()
    advi.refine(200, progressbar=False)
    assert len(advi.hist) == 500 and len(advi.approx.hist) == 500
    np.testing.assert_array_equal(advi.hist[:300], first)


def test_refine_continues_exactly_like_one_long_fit(conjugate):
    # with a named optimizer (the default recipe's learning rate decays over the fit's own n)
    m = conjugate[0]
    one = jv.ADVI(model=m, random_seed=5)
    one.fit(700, progressbar=False, obj_optimizer=jv.adagrad_window())
    two = jv.ADVI(model=m, random_seed=5)
    two.fit(300, progressbar=False, obj_optimizer=jv.adagrad_window())
    two.refine(400, progressbar=False)
    np.testing.assert_array_equal(one.hist, two.hist)
    np.testing.assert_array_equal(one.approx.mean, two.approx.mean)


def test_numbers_do_not_depend_on_how_the_host_chunks_the_fit(conjugate):
    # a callback every 7 steps cuts the fit into 7-step chunks; step t's noise is drawn from
    # fold_in(key, t) whatever the chunk, so the losses and the result are the same bits
    m = conjugate[0]
    plain = jv.fit(2000, model=m, random_seed=3, progressbar=False)
    seen = []
    cut = jv.fit(2000, model=m, random_seed=3, progressbar=False,
                 callbacks=[lambda approx, hist, i: seen.append(i) if i % 7 == 0 else None])
    assert len(seen) > 200
    np.testing.assert_array_equal(plain.hist, cut.hist)
    np.testing.assert_array_equal(plain.mean, cut.mean)


def test_same_seed_same_numbers_and_small_n(conjugate):
    m = conjugate[0]
    a = jv.fit(1500, model=m, random_seed=7, progressbar=False)
    b = jv.fit(1500, model=m, random_seed=7, progressbar=False)
    c = jv.fit(1500, model=m, random_seed=8, progressbar=False)
    np.testing.assert_array_equal(a.hist, b.hist)
    np.testing.assert_array_equal(a.params[0], b.params[0])
    assert not np.array_equal(a.hist, c.hist)
    tiny = jv.fit(3, model=m, random_seed=1, progressbar=False)
    assert len(tiny.hist) == 3
    assert len(jv.fit(0, model=m, progressbar=False).hist) == 0


def test_interrupt_keeps_state_and_history(conjugate):
    m = conjugate[0]

    def interrupt(approx, hist, i):
        if i == 250:
            raise KeyboardInterrupt

    opt = jv.adagrad_window()  # a fixed optimizer: the default recipe's schedule depends on n
    approx = jv.fit(1000, model=m, callbacks=[interrupt], random_seed=1, progressbar=False, obj_optimizer=opt)
    assert len(approx.hist) == 251
    reference = jv.fit(251, model=m, random_seed=1, progressbar=False, obj_optimizer=opt)
    np.testing.assert_array_equal(approx.hist, reference.hist)
    np.testing.assert_array_equal(approx.mean, reference.mean)


def test_nan_names_the_variable_and_keeps_last_finite_state(conjugate):
    with jv.Model() as m:
        jv.Normal("steady", 0, 1)
        jv.HalfNormal("scale", 1)
        jv.Normal("y", 0, m["scale"], observed=[0.1, -0.2])
    advi = jv.ADVI(model=m, random_seed=0)
    with pytest.raises(FloatingPointError, match="scale"):
        advi.fit(500, obj_optimizer=jv.sgd(learning_rate=1e6), progressbar=False)
    assert np.all(np.isfinite(advi.approx.params[0])) and np.all(np.isfinite(advi.approx.params[1]))
    assert np.all(np.isfinite(advi.hist))
    advi.approx.sample(10)  # still usable


def test_results_work_with_arviz_outside_the_model(regression):
    m, _, _ = regression
    approx = jv.fit(2000, model=m, random_seed=0, progressbar=False)
    idata = approx.sample(200, random_seed=1)
    assert idata.posterior["a"].shape == (1, 200)
    summary = az.summary(idata, kind="stats")
    assert set(summary.index) == {"a", "b"}
    az.plot_trace(idata)
    assert set(approx.mean_dict) == {"a", "b"}


def test_sample_node_of_any_expression(mixture):
    with mixture:
        approx = jv.fit(3000, random_seed=0, progressbar=False)
    x = mixture["x"]
    draws = approx.sample_node(x**2 + jv.math.sin(x), size=2000, random_seed=3)
    xs = approx.sample_node(x, size=2000, random_seed=3)
    np.testing.assert_allclose(draws, xs**2 + np.sin(xs), rtol=1e-5, atol=1e-6)
    assert np.shape(approx.sample_node(x)) == ()
    assert float(approx.sample_node(x, deterministic=True)) == pytest.approx(float(approx.mean[0]))
    idata = approx.sample(100)
    np.testing.assert_allclose(idata.posterior["x2"], idata.posterior["x"] ** 2, rtol=1e-6)


def test_save_load_round_trip(tmp_path, conjugate):
    m = conjugate[0]
    approx = jv.fit(500, model=m, method="fullrank_advi", random_seed=0, progressbar=False)
    path = tmp_path / "approx.npz"
    approx.save(path)
    loaded = jv.load(path, model=m)
    assert type(loaded) is type(approx)
    np.testing.assert_array_equal(loaded.hist, approx.hist)
    for p, q in zip(loaded.params, approx.params):
        np.testing.assert_array_equal(p, q)
    a = approx.sample(50, random_seed=4).posterior["mu"].values
    b = loaded.sample(50, random_seed=4).posterior["mu"].values
    np.testing.assert_array_equal(a, b)


def test_start_and_start_sigma(conjugate):
    m = conjugate[0]
    advi = jv.ADVI(model=m, start={"mu": 2.5}, start_sigma={"mu": 0.3})
    assert float(advi.approx.mean[0]) == pytest.approx(2.5)
    assert float(advi.approx.std[0]) == pytest.approx(0.3, rel=1e-5)
    assert float(jv.ADVI(model=m).approx.std[0]) == pytest.approx(np.log(2), rel=1e-5)  # PyMC's start


def test_bad_fit_arguments_are_clear(conjugate):
    m = conjugate[0]
    with pytest.raises(ValueError, match="advi"):
        jv.fit(10, method="advy", model=m)
    with pytest.raises(TypeError, match="n must"):
        jv.fit(10.5, model=m)
    with pytest.raises(KeyError, match="nope"):
        jv.fit(10, model=m, start={"nope": 1.0})
    with pytest.raises(TypeError, match="callbacks"):
        jv.fit(10, model=m, callbacks=[1])
    with pytest.raises(TypeError, match="fit"):
        jv.fit(10, model=m, n_iter=5)


def test_ctrl_c_stops_cleanly_between_chunks(conjugate):
    import os
    import signal
    import threading

    m = conjugate[0]
    timer = threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        approx = jv.fit(50_000_000, model=m, random_seed=1, progressbar=False, obj_optimizer=jv.adagrad_window())
    finally:
        timer.cancel()
    assert 0 < len(approx.hist) < 50_000_000
    assert np.all(np.isfinite(approx.hist))
    # the state is the one after exactly len(hist) steps (a named optimizer: the default recipe's schedule
    # spans the fit's n)
    again = jv.fit(len(approx.hist), model=m, random_seed=1, progressbar=False, obj_optimizer=jv.adagrad_window())
    np.testing.assert_array_equal(again.mean, approx.mean)
