"""Tests for jaxvi.optimizers against independent NumPy re-implementations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest


from jaxvi.vi import optimizers as opt  # noqa: E402

N_STEPS = 5
SHAPES = {"a": (3,), "b": (2, 2)}


# ---------------------------------------------------------------------------
# NumPy reference rules (per leaf, float64)
# ---------------------------------------------------------------------------


class NpRule:
    """Plain NumPy version of an update rule acting on one array."""

    def __init__(self, name, **hp):
        self.name = name
        self.hp = hp

    def init(self, x):
        z = np.zeros_like(x)
        if self.name == "adagrad_window":
            return {"buf": np.zeros(x.shape + (self.hp["n_win"],)), "i": 0}
        return {"s1": z.copy(), "s2": z.copy(), "t": 0}

    def step(self, g, st, lr):
        hp, n = self.hp, self.name
        if n == "sgd":
            return -lr * g
        if n == "momentum":
            st["s1"] = hp["momentum"] * st["s1"] - lr * g
            return st["s1"].copy()
        if n == "nesterov_momentum":
            st["s1"] = hp["momentum"] * st["s1"] - lr * g
            return hp["momentum"] * st["s1"] - lr * g
        if n == "adagrad":
            st["s1"] = st["s1"] + g**2
            return -lr * g / np.sqrt(st["s1"] + hp["epsilon"])
        if n == "adagrad_window":
            st["buf"][..., st["i"]] = g**2
            st["i"] = (st["i"] + 1) % hp["n_win"]
            total = st["buf"].sum(axis=-1)
            return -lr * g / np.sqrt(total + hp["epsilon"])
        if n == "adadelta":
            rho, eps = hp["rho"], hp["epsilon"]
            st["s1"] = rho * st["s1"] + (1 - rho) * g**2
            stp = g * np.sqrt(st["s2"] + eps) / np.sqrt(st["s1"] + eps)
            st["s2"] = rho * st["s2"] + (1 - rho) * stp**2
            return -lr * stp
        if n == "rmsprop":
            rho = hp["rho"]
            st["s1"] = rho * st["s1"] + (1 - rho) * g**2
            return -lr * g / np.sqrt(st["s1"] + hp["epsilon"])
        if n == "adam":
            b1, b2 = hp["beta1"], hp["beta2"]
            st["t"] += 1
            t = st["t"]
            a_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
            st["s1"] = b1 * st["s1"] + (1 - b1) * g
            st["s2"] = b2 * st["s2"] + (1 - b2) * g**2
            return -a_t * st["s1"] / (np.sqrt(st["s2"]) + hp["epsilon"])
        if n == "adamax":
            b1, b2 = hp["beta1"], hp["beta2"]
            st["t"] += 1
            t = st["t"]
            a_t = lr / (1 - b1**t)
            st["s1"] = b1 * st["s1"] + (1 - b1) * g
            st["s2"] = np.maximum(b2 * st["s2"], np.abs(g))
            return -a_t * st["s1"] / (st["s2"] + hp["epsilon"])
        raise AssertionError(n)


# PyMC defaults, written out independently of the module under test.
PYMC_DEFAULTS = {
    "sgd": dict(learning_rate=1e-3),
    "momentum": dict(learning_rate=1e-3, momentum=0.9),
    "nesterov_momentum": dict(learning_rate=1e-3, momentum=0.9),
    "adagrad": dict(learning_rate=1.0, epsilon=1e-6),
    "adagrad_window": dict(learning_rate=1e-3, epsilon=0.1, n_win=10),
    "adadelta": dict(learning_rate=1.0, rho=0.95, epsilon=1e-6),
    "rmsprop": dict(learning_rate=1e-3, rho=0.9, epsilon=1e-6),
    "adam": dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8),
    "adamax": dict(learning_rate=2e-3, beta1=0.9, beta2=0.999, epsilon=1e-8),
}

# Non-default hyper-parameters, to catch swapped / ignored arguments.
CUSTOM = {
    "sgd": dict(learning_rate=0.3),
    "momentum": dict(learning_rate=0.2, momentum=0.7),
    "nesterov_momentum": dict(learning_rate=0.2, momentum=0.6),
    "adagrad": dict(learning_rate=0.5, epsilon=1e-3),
    "adagrad_window": dict(learning_rate=0.4, epsilon=0.05, n_win=3),  # wraps in 5 steps
    "adadelta": dict(learning_rate=0.8, rho=0.8, epsilon=1e-2),
    "rmsprop": dict(learning_rate=0.1, rho=0.7, epsilon=1e-4),
    "adam": dict(learning_rate=0.1, beta1=0.8, beta2=0.95, epsilon=1e-4),
    "adamax": dict(learning_rate=0.1, beta1=0.7, beta2=0.9, epsilon=1e-4),
}

NAMES = list(PYMC_DEFAULTS)


def _split(hp):
    hp = dict(hp)
    lr = hp.pop("learning_rate")
    return lr, hp


def _noise(seed=0):
    rng = np.random.default_rng(seed)
    return [{k: rng.normal(size=s) * 2.0 for k, s in SHAPES.items()} for _ in range(N_STEPS)]


def _init_params(seed=1):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=s) for k, s in SHAPES.items()}


def _grad(params, noise):
    """Gradient of 0.5*||x||^2 - <noise, x>: depends on the current params."""
    return {k: params[k] - noise[k] for k in params}


def np_run(name, hp, lrs=None, n_steps=N_STEPS):
    lr, rest = _split(hp)
    lrs = [lr] * n_steps if lrs is None else lrs
    rule = NpRule(name, **rest)
    params = _init_params()
    states = {k: rule.init(v) for k, v in params.items()}
    for k_step, noise in enumerate(_noise()[:n_steps]):
        g = _grad(params, noise)
        params = {k: params[k] + rule.step(g[k], states[k], lrs[k_step]) for k in params}
    return params


def jax_run(tx, dtype=jnp.float64, n_steps=N_STEPS, jit=False):
    params = {k: jnp.asarray(v, dtype) for k, v in _init_params().items()}
    state = tx.init(params)

    def step(params, state, noise):
        g = _grad(params, noise)
        updates, state = tx.update(g, state, params)
        return optax.apply_updates(params, updates), state, updates

    if jit:
        step = jax.jit(step)
    for noise in _noise()[:n_steps]:
        noise = {k: jnp.asarray(v, dtype) for k, v in noise.items()}
        params, state, _ = step(params, state, noise)
    return params, state


def assert_tree_close(actual, expected, rtol=1e-6, atol=1e-12):
    assert set(actual) == set(expected)
    for k in expected:
        np.testing.assert_allclose(np.asarray(actual[k]), expected[k], rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# numerical agreement with the reference rules
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_defaults_match_pymc_and_reference(name):
    with jax.enable_x64(True):
        tx = getattr(opt, name)()
        params, _ = jax_run(tx)
        expected = np_run(name, PYMC_DEFAULTS[name])
        assert_tree_close(params, expected)
        # the update actually moved the parameters
        start = _init_params()
        assert any(not np.allclose(expected[k], start[k]) for k in start)


@pytest.mark.parametrize("name", NAMES)
def test_custom_hyperparameters_match_reference(name):
    with jax.enable_x64(True):
        tx = getattr(opt, name)(**CUSTOM[name])
        params, _ = jax_run(tx)
        assert_tree_close(params, np_run(name, CUSTOM[name]))
        # and differ from the defaults (arguments are not ignored)
        other = np_run(name, PYMC_DEFAULTS[name])
        assert not np.allclose(np.asarray(params["b"]), other["b"], rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_positional_learning_rate(name):
    with jax.enable_x64(True):
        tx = getattr(opt, name)(CUSTOM[name]["learning_rate"])
        params, _ = jax_run(tx)
        hp = dict(PYMC_DEFAULTS[name], learning_rate=CUSTOM[name]["learning_rate"])
        assert_tree_close(params, np_run(name, hp))


@pytest.mark.parametrize("name", NAMES)
def test_schedule_learning_rate(name):
    init = CUSTOM[name]["learning_rate"]
    lrs = [init * 0.5**k for k in range(N_STEPS)]
    with jax.enable_x64(True):
        # a float64 init value keeps optax's schedule itself in float64
        schedule = optax.exponential_decay(
            init_value=jnp.float64(init), transition_steps=1, decay_rate=0.5
        )
        hp = dict(CUSTOM[name])
        hp["learning_rate"] = schedule
        tx = getattr(opt, name)(**hp)
        params, _ = jax_run(tx, jit=True)
        expected = np_run(name, CUSTOM[name], lrs=lrs)
        assert_tree_close(params, expected)
        # a constant learning rate gives something else
        assert not np.allclose(np.asarray(params["a"]), np_run(name, CUSTOM[name])["a"])


def test_apply_momentum_wrappers():
    lr, mom = 0.1, 0.8
    with jax.enable_x64(True):
        p1, _ = jax_run(opt.apply_momentum(opt.sgd(lr), momentum=mom))
        assert_tree_close(p1, np_run("momentum", dict(learning_rate=lr, momentum=mom)))
        p2, _ = jax_run(opt.apply_nesterov_momentum(opt.sgd(lr), momentum=mom))
        assert_tree_close(p2, np_run("nesterov_momentum", dict(learning_rate=lr, momentum=mom)))
        # default momentum is 0.9
        p3, _ = jax_run(opt.apply_momentum(opt.sgd(lr)))
        assert_tree_close(p3, np_run("momentum", dict(learning_rate=lr, momentum=0.9)))


def test_apply_momentum_on_other_transformation():
    """Momentum applied on adagrad's updates, checked against NumPy."""
    lr, eps, mom = 0.5, 1e-3, 0.7
    params = _init_params()
    inner = NpRule("adagrad", epsilon=eps)
    st = {k: inner.init(v) for k, v in params.items()}
    vel = {k: np.zeros_like(v) for k, v in params.items()}
    for noise in _noise():
        g = _grad(params, noise)
        for k in params:
            u = inner.step(g[k], st[k], lr)
            vel[k] = mom * vel[k] + u
            params[k] = params[k] + mom * vel[k] + u
    with jax.enable_x64(True):
        got, _ = jax_run(opt.apply_nesterov_momentum(opt.adagrad(lr, epsilon=eps), momentum=mom))
        assert_tree_close(got, params)


def test_apply_momentum_without_transformation():
    with jax.enable_x64(True):
        tx = opt.apply_momentum(momentum=0.5)
        ntx = opt.apply_nesterov_momentum(momentum=0.5)
        u = {"a": jnp.array([1.0, 2.0, 3.0]), "b": jnp.ones((2, 2))}
        s, ns = tx.init(u), ntx.init(u)
        out1, s = tx.update(u, s)
        out2, s = tx.update(u, s)
        np.testing.assert_allclose(out1["a"], [1.0, 2.0, 3.0])
        np.testing.assert_allclose(out2["a"], [1.5, 3.0, 4.5])  # 0.5*v + u
        n1, ns = ntx.update(u, ns)
        n2, ns = ntx.update(u, ns)
        np.testing.assert_allclose(n1["a"], [1.5, 3.0, 4.5])  # v=u; 0.5*v+u
        np.testing.assert_allclose(n2["b"], np.full((2, 2), 0.5 * 1.5 + 1.0))


# ---------------------------------------------------------------------------
# dtypes, jit, scan
# ---------------------------------------------------------------------------


def _all_variants():
    out = []
    for n in NAMES:
        out.append((n, lambda n=n: getattr(opt, n)(**CUSTOM[n])))
    out.append(("apply_momentum", lambda: opt.apply_momentum(opt.rmsprop(0.1))))
    out.append(("apply_nesterov", lambda: opt.apply_nesterov_momentum(opt.adam(0.1))))
    out.append(("norm_constraint", lambda: optax.chain(opt.norm_constraint(0.5), opt.sgd(0.1))))
    out.append(("total_norm", lambda: optax.chain(opt.total_norm_constraint(0.5), opt.sgd(0.1))))
    out.append(("clip", lambda: opt.with_grad_norm_clip(opt.adagrad_window(0.1), 1.0)))
    out.append(
        (
            "schedule",
            lambda: opt.adam(optax.exponential_decay(0.1, transition_steps=2, decay_rate=0.3)),
        )
    )
    return out


VARIANTS = _all_variants()


FLOAT32_CASES = [(lbl, mk, True) for lbl, mk in VARIANTS] + [
    (lbl, mk, False) for lbl, mk in VARIANTS if lbl in ("adagrad_window", "schedule", "adam")
]


@pytest.mark.parametrize(
    "label,make,x64", FLOAT32_CASES, ids=[f"{c[0]}-x64={c[2]}" for c in FLOAT32_CASES]
)
def test_float32_leaves_stay_float32(label, make, x64):
    # x64=True is the demanding case: float64 scalars / schedules must not
    # promote float32 leaves.
    with jax.enable_x64(x64):
        tx = make()
        params, state = jax_run(tx, dtype=jnp.float32)
        for v in jax.tree_util.tree_leaves(params):
            assert v.dtype == jnp.float32, label
            assert np.all(np.isfinite(np.asarray(v)))
        init_state = tx.init({k: jnp.asarray(v, jnp.float32) for k, v in _init_params().items()})
        init_dtypes = [jnp.result_type(x) for x in jax.tree_util.tree_leaves(init_state)]
        final_dtypes = [jnp.result_type(x) for x in jax.tree_util.tree_leaves(state)]
        assert init_dtypes == final_dtypes
        assert all(d != jnp.float64 for d in final_dtypes)


@pytest.mark.parametrize("label,make", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_jit_and_scan_match_eager(label, make):
    with jax.enable_x64(True):
        tx = make()
        eager, _ = jax_run(tx)

        params0 = {k: jnp.asarray(v) for k, v in _init_params().items()}
        noises = {k: jnp.stack([jnp.asarray(n[k]) for n in _noise()]) for k in SHAPES}

        def body(carry, noise):
            params, state = carry
            updates, state = tx.update(_grad(params, noise), state, params)
            return (optax.apply_updates(params, updates), state), None

        @jax.jit
        def run(params):
            (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), noises)
            return params

        scanned = run(params0)
        assert_tree_close(scanned, {k: np.asarray(v) for k, v in eager.items()}, rtol=1e-10)


def test_reference_defaults_under_jit_scan_float64():
    """Scan result for adagrad_window (the PyMC default) equals the NumPy rule."""
    with jax.enable_x64(True):
        tx = opt.adagrad_window(learning_rate=0.2, n_win=2)
        noises = {k: jnp.stack([jnp.asarray(n[k]) for n in _noise()]) for k in SHAPES}

        def body(carry, noise):
            params, state = carry
            updates, state = tx.update(_grad(params, noise), state, params)
            return (optax.apply_updates(params, updates), state), state.index

        params0 = {k: jnp.asarray(v) for k, v in _init_params().items()}
        (params, state), idx = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), noises))(
            params0
        )
        assert_tree_close(params, np_run("adagrad_window", dict(learning_rate=0.2, epsilon=0.1, n_win=2)))
        np.testing.assert_array_equal(np.asarray(idx), [1, 0, 1, 0, 1])
        assert state.index.dtype == jnp.int32
        assert state.accu["b"].shape == (2, 2, 2)


# ---------------------------------------------------------------------------
# adagrad_window forgets
# ---------------------------------------------------------------------------


def test_adagrad_window_forgets_large_gradients():
    lr, eps, n_win = 1.0, 0.1, 4
    tx = opt.adagrad_window(learning_rate=lr, epsilon=eps, n_win=n_win)
    full = opt.adagrad(learning_rate=lr, epsilon=eps)
    params = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
    big = jax.tree_util.tree_map(lambda x: jnp.full_like(x, 1000.0), params)
    small = jax.tree_util.tree_map(lambda x: jnp.full_like(x, 0.5), params)
    s, fs = tx.init(params), full.init(params)
    update = jax.jit(tx.update)
    for _ in range(n_win + 3):
        _, s = update(big, s)
        _, fs = full.update(big, fs)
    steps = []
    for _ in range(n_win):
        u, s = update(small, s)
        fu, fs = full.update(small, fs)
        steps.append(float(-u["a"][0]))
    recovered = lr * 0.5 / np.sqrt(n_win * 0.25 + eps)
    # while a large gradient is still in the window the step is tiny
    assert steps[0] < 0.01 * recovered
    assert steps[n_win - 2] < 0.01 * recovered
    # once the window has slid past all large gradients the step recovers exactly
    np.testing.assert_allclose(steps[n_win - 1], recovered, rtol=1e-6)
    # and stays there
    u, s = update(small, s)
    np.testing.assert_allclose(float(-u["b"][1, 1]), recovered, rtol=1e-6)
    # plain adagrad never forgets
    assert float(-fu["a"][0]) < 0.01 * recovered


def test_adagrad_window_rejects_bad_window():
    with pytest.raises(ValueError):
        opt.adagrad_window(n_win=0)
    with pytest.raises(ValueError):
        opt.adagrad_window(n_win=2.5)


# ---------------------------------------------------------------------------
# norm constraints
# ---------------------------------------------------------------------------


def test_total_norm_constraint_bounds_global_norm():
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        tree = {k: jnp.asarray(rng.normal(size=s) * 10) for k, s in SHAPES.items()}
        tx = opt.total_norm_constraint(2.0)
        out, _ = tx.update(tree, tx.init(tree))
        norm_in = float(optax.tree.norm(tree))
        norm_out = float(optax.tree.norm(out))
        assert norm_in > 2.0
        assert norm_out <= 2.0 * (1 + 1e-9)
        np.testing.assert_allclose(norm_out, 2.0 * norm_in / (norm_in + 1e-7), rtol=1e-12)
        # direction preserved: a single global scale
        ratio = np.asarray(out["b"]) / np.asarray(tree["b"])
        np.testing.assert_allclose(ratio, ratio.flat[0])
        np.testing.assert_allclose(np.asarray(out["a"]) / np.asarray(tree["a"]), ratio.flat[0])
        # small trees are (almost) untouched
        small = jax.tree_util.tree_map(lambda x: x * 1e-3, tree)
        out_s, _ = jax.jit(tx.update)(small, tx.init(small))
        n_s = float(optax.tree.norm(small))
        for k in SHAPES:
            np.testing.assert_allclose(out_s[k], small[k] * n_s / (n_s + 1e-7), rtol=1e-12)


def test_norm_constraint_bounds_per_leaf_norms():
    with jax.enable_x64(True):
        rng = np.random.default_rng(4)
        tree = {
            "s": jnp.asarray(7.0),
            "v": jnp.asarray(rng.normal(size=5) * 10),
            "m": jnp.asarray(rng.normal(size=(4, 3)) * 10),
            "c": jnp.asarray(rng.normal(size=(2, 3, 2, 2)) * 10),
        }
        max_norm = 1.5
        tx = opt.norm_constraint(max_norm)
        out, _ = jax.jit(tx.update)(tree, tx.init(tree))
        axes = {"s": None, "v": (0,), "m": (0,), "c": (1, 2, 3)}
        for k, ax in axes.items():
            x = np.asarray(tree[k])
            n_in = np.sqrt(np.sum(x**2, axis=ax, keepdims=True))
            expected = x * np.clip(n_in, 0, max_norm) / (1e-7 + n_in)
            np.testing.assert_allclose(np.asarray(out[k]), expected, rtol=1e-12)
            n_out = np.sqrt(np.sum(np.asarray(out[k]) ** 2, axis=ax))
            assert np.all(n_out <= max_norm * (1 + 1e-9))
        # columns of a matrix are constrained separately
        m = np.asarray(tree["m"]).copy()
        m[:, 0] *= 1e-3  # first column now well below the bound
        out2, _ = tx.update({"m": jnp.asarray(m)}, optax.EmptyState())
        np.testing.assert_allclose(np.asarray(out2["m"])[:, 0], m[:, 0], rtol=1e-5)
        np.testing.assert_allclose(
            np.linalg.norm(np.asarray(out2["m"])[:, 1:], axis=0), max_norm, rtol=1e-6
        )


def test_norm_constraint_explicit_axes_and_float32():
    x = jnp.asarray(np.arange(1.0, 7.0).reshape(2, 3), jnp.float32)
    tx = opt.norm_constraint(1.0, norm_axes=(1,))
    out, _ = tx.update({"x": x}, tx.init({"x": x}))
    assert out["x"].dtype == jnp.float32
    np.testing.assert_allclose(np.linalg.norm(np.asarray(out["x"]), axis=1), 1.0, rtol=1e-5)


def test_with_grad_norm_clip():
    base = opt.sgd(1.0)
    assert opt.with_grad_norm_clip(base, None) is base
    with jax.enable_x64(True):
        tx = opt.with_grad_norm_clip(base, 0.5)
        g = {"a": jnp.array([3.0, 0.0, 4.0]), "b": jnp.zeros((2, 2))}
        u, _ = tx.update(g, tx.init(g))
        np.testing.assert_allclose(np.asarray(u["a"]), [-0.3, 0.0, -0.4], rtol=1e-12)


# ---------------------------------------------------------------------------
# get_optimizer
# ---------------------------------------------------------------------------


def test_get_optimizer_passthrough_and_names():
    tx = optax.adam(0.1)
    assert opt.get_optimizer(tx) is tx
    mine = opt.adam(0.3)
    assert opt.get_optimizer(mine) is mine
    with jax.enable_x64(True):
        for name in NAMES:
            got = opt.get_optimizer(name)
            assert isinstance(got, optax.GradientTransformation)
            params, _ = jax_run(got)
            assert_tree_close(params, np_run(name, PYMC_DEFAULTS[name]))
        params, _ = jax_run(opt.get_optimizer("Adagrad_Window"))
        assert_tree_close(params, np_run("adagrad_window", PYMC_DEFAULTS["adagrad_window"]))


def test_get_optimizer_bad_name():
    with pytest.raises(ValueError) as err:
        opt.get_optimizer("adamw_typo")
    msg = str(err.value)
    assert "adamw_typo" in msg
    for name in NAMES:
        assert name in msg


def test_get_optimizer_bad_type():
    with pytest.raises(TypeError) as err:
        opt.get_optimizer(42)
    assert "adagrad_window" in str(err.value)


def test_all_exports_exist():
    for name in opt.__all__:
        assert hasattr(opt, name), name
    for name in NAMES + ["apply_momentum", "apply_nesterov_momentum", "norm_constraint",
                         "total_norm_constraint", "get_optimizer", "with_grad_norm_clip"]:
        assert name in opt.__all__
        assert getattr(opt, name).__doc__


def test_polyak_averaging_ends_on_the_mean_of_the_tail_iterates():
    n, lr = 10, 0.1
    grads = np.random.default_rng(0).normal(size=(n + 3, 2)).astype(np.float32)
    tx = opt.polyak_averaging(opt.sgd(learning_rate=lr), n_steps=n, tail=0.4)  # the last 4 updates
    params = {"x": jnp.zeros(2, jnp.float32)}
    state = tx.init(params)
    raw, x = [], np.zeros(2, np.float32)
    step = jax.jit(tx.update)
    for i in range(n + 3):
        updates, state = step({"x": jnp.asarray(grads[i])}, state, params)
        params = optax.apply_updates(params, updates)
        x = x - lr * grads[i]  # plain SGD iterates
        raw.append(x.copy())
        if i < n - 1 or i >= n:
            # before the last update, and after it (refine), the updates are plain SGD's
            np.testing.assert_allclose(params["x"], x, rtol=1e-5, atol=1e-6)
        else:
            # the last update of the n: the mean of the iterates of updates n-4 .. n-1
            np.testing.assert_allclose(params["x"], np.mean(raw[n - 4:n], axis=0), rtol=1e-5, atol=1e-6)
            x = np.asarray(params["x"]).copy()  # SGD continues from the averaged point
    assert params["x"].dtype == jnp.float32
    assert opt.polyak_averaging.__doc__


def test_polyak_averaging_arguments():
    with pytest.raises(ValueError, match="tail"):
        opt.polyak_averaging(opt.sgd(), 10, tail=0.0)
    with pytest.raises(ValueError, match="n_steps"):
        opt.polyak_averaging(opt.sgd(), 0)
    tx = opt.polyak_averaging("adam", 5)  # an optimizer name, as everywhere
    params = jnp.ones(3)
    with pytest.raises(ValueError, match="parameters"):
        tx.update(jnp.ones(3), tx.init(params))
