"""The "limit": a hand-fused ``jax.lax.scan`` of the same ADVI step, written directly in JAX.

For each case the log-density on the unconstrained space (log-Jacobians included) is written by
hand in ``jax.numpy``; one step takes eps ~ N(0, I) (all n draws are generated up front,
inside the same jitted function, as they do not depend on the parameters), sets z = mu + L eps
(mean-field: L = diag(softplus(rho)); full-rank: lower-triangular with a softplus diagonal, as
jaxvi), takes the gradient of the one-sample -ELBO ``log q(z) - log p(z)`` and applies PyMC's ``adagrad_window``
(``optim.py``, optax).  The whole n-step fit is one jitted scan: nothing else runs per step, so
its warm time is what the step costs on this machine.  Same start as PyMC/jaxvi (the model's
initial point, sigma log 2 / 1), float32.  Runs in the jaxvi venv (jax + optax only).

SVGD (``method="svgd"``): the particles' update x += lr * phi(x), phi the Stein direction with
the RBF kernel and the median heuristic (h = med / log(n + 1), the median over 16 pairs per
particle as jaxvi's), plain SGD, the particles started at the initial point + N(0, 1) (PyMC's
jittered start), all n steps one scan.  ``extra`` also times it with the kernelized Stein
discrepancy computed every step (what jaxvi records as SVGD's loss).
"""

from __future__ import annotations

import math
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import cases
from optim import adagrad_window

LABEL = "limit (hand-fused JAX)"
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def versions() -> dict:
    import optax

    return {"jax": jax.__version__, "optax": optax.__version__}


def _normal(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - jnp.log(s) - _HALF_LOG_2PI


def _halfnormal(x, s):
    return math.log(2.0) + _normal(x, 0.0, s)


class Case:
    """``logp(z)`` on the unconstrained space, ``z0`` (the initial point), and ``constrain(z)``."""

    def __init__(self, case: str):
        d = cases.data(case)
        f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
        ip = cases.INITIAL_POINT[case]
        self.case = case
        if case == "gaussian":
            data = f32(d["data"])

            def logp(z):
                mu, u = z[0], z[1]
                sd = jnp.exp(u)
                return _normal(mu, 0.0, 1.0) + _halfnormal(sd, 1.0) + u + jnp.sum(_normal(data, mu, sd))

            self.z0 = [ip["mu"], math.log(ip["sd"])]
            self.constrain = lambda z: {"mu": z[..., 0], "sd": jnp.exp(z[..., 1])}
        elif case == "mvnormal":
            cov = np.asarray(d["cov"])
            prec = f32(np.linalg.inv(cov))
            const = float(-0.5 * np.linalg.slogdet(2 * np.pi * cov)[1])
            mean = f32(d["mu"])

            def logp(z):
                r = z - mean
                return -0.5 * r @ prec @ r + const

            self.z0 = list(ip["density"])
            self.constrain = lambda z: {"density": z}
        elif case == "mixture":
            logw, mu, sg = f32(np.log(d["w"])), f32(d["mu"]), f32(d["sigma"])

            def logp(z):
                return jax.nn.logsumexp(logw + _normal(z[0], mu, sg))

            self.z0 = [ip["x"]]
            self.constrain = lambda z: {"x": z[..., 0], "x2": z[..., 0] ** 2, "sin_x": jnp.sin(z[..., 0])}
        elif case == "logistic":
            x, y = f32(d["x"]), f32(d["y"])

            def logp(z):
                mu, beta = z[0], z[1]
                theta = mu + beta * x
                return _normal(mu, 0.0, 5.0) + _normal(beta, 0.0, 5.0) + jnp.sum(y * theta - jax.nn.softplus(theta))

            self.z0 = [ip["mu"], ip["beta"]]
            self.constrain = lambda z: {"mu": z[..., 0], "beta": z[..., 1],
                                        "theta": z[..., :1] + z[..., 1:2] * x}
        elif case == "hierarchical":
            idx, y = jnp.asarray(d["idx"], jnp.int32), f32(d["y"])

            def logp(z):
                mu_mu, u, g = z[0], z[1], z[2:]
                s = jnp.exp(u)
                return (_normal(mu_mu, 0.0, 10.0) + _halfnormal(s, 5.0) + u + jnp.sum(_normal(g, mu_mu, s))
                        + jnp.sum(_normal(y, g[idx], 1.0)))

            self.z0 = [ip["mu_mu"], math.log(ip["sigma_mu"]), *ip["group_mu"]]
            self.constrain = lambda z: {"mu_mu": z[..., 0], "sigma_mu": jnp.exp(z[..., 1]), "group_mu": z[..., 2:]}
        elif case == "minibatch":
            # the data are an argument of the jitted loop (not a 160 MB constant); every step
            # gathers batch rows drawn uniformly with replacement, as jaxvi and PyMC do
            self.X = f32(d["data"])
            cols, scale = cases.MINIBATCH_COLS, cases.MINIBATCH_ROWS / cases.MINIBATCH_BATCH

            def logp(z, x):
                mu, u = z[:cols], z[cols:]
                sd = jnp.exp(u)
                return (jnp.sum(_normal(mu, 0.0, 1e5)) + jnp.sum(_halfnormal(sd, 1.0)) + jnp.sum(u)
                        + scale * jnp.sum(_normal(x, mu, sd)))

            self.z0 = [*ip["mu"], *np.log(ip["sd"])]
            self.constrain = lambda z: {"mu": z[..., :cols], "sd": jnp.exp(z[..., cols:])}
        else:
            raise KeyError(case)
        self.logp = logp
        self.z0 = jnp.asarray(np.asarray(self.z0, dtype=np.float32))
        self.dim = int(self.z0.shape[0])


def _softplus_inv(x: float) -> float:
    return float(x + math.log(-math.expm1(-x)))


def _init(c: Case, method: str):
    d = c.dim
    s0 = _softplus_inv(cases.START_SIGMA[method])
    if method == "advi":
        return {"mu": c.z0, "rho": jnp.full((d,), s0, jnp.float32)}
    return {"mu": c.z0, "L": jnp.diag(jnp.full((d,), s0, jnp.float32))}


def _scale_tril(params):
    if "rho" in params:
        return None
    raw = jnp.tril(params["L"])
    return raw - jnp.diag(jnp.diag(raw)) + jnp.diag(jax.nn.softplus(jnp.diag(raw)))


def _sample(params, eps):
    """z = mu + L eps and log q(z) (written through eps: the same function of the parameters)."""
    d = eps.shape[-1]
    if "rho" in params:
        sd = jax.nn.softplus(params["rho"])
        z = params["mu"] + sd * eps
        logdet = jnp.sum(jnp.log(sd))
    else:
        L = _scale_tril(params)
        z = params["mu"] + eps @ L.T
        logdet = jnp.sum(jnp.log(jnp.diag(L)))
    logq = -0.5 * jnp.sum(eps**2, -1) - d * _HALF_LOG_2PI - logdet
    return z, logq


@partial(jax.jit, static_argnames=("logp", "n", "rng"))
def _run(params, key, *, logp, n, rng="upfront"):
    """n steps in one scan.  rng="upfront": all eps drawn before the loop (they do not depend on
    the parameters); rng="split": the key is split inside every step; rng="foldin": step t's eps from
    ``fold_in(key, t)`` (as jaxvi draws them: reproducible however the fit is chunked), all drawn
    before the loop in one vectorised call."""
    tx = adagrad_window()
    d = params["mu"].shape[0]

    def loss_fn(p, eps):
        z, logq = _sample(p, eps)
        return logq - logp(z)

    def update(p, s, eps):
        loss, g = jax.value_and_grad(loss_fn)(p, eps)
        u, s = tx.update(g, s, p)
        return jax.tree_util.tree_map(jnp.add, p, u), s, loss

    if rng == "upfront":
        def step(carry, eps):
            p, s, loss = update(*carry, eps)
            return (p, s), loss

        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jax.random.normal(key, (n, d), jnp.float32))
    elif rng == "foldin":
        def step(carry, eps):
            p, s, loss = update(*carry, eps)
            return (p, s), loss

        eps = jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(key, t), (d,), jnp.float32))(jnp.arange(n))
        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), eps)
    else:
        def step(carry, _):
            p, s, k = carry
            k, sub = jax.random.split(k)
            p, s, loss = update(p, s, jax.random.normal(sub, (d,), jnp.float32))
            return (p, s, k), loss

        (params, _, _), losses = jax.lax.scan(step, (params, tx.init(params), key), None, length=n)
    return params, losses


@partial(jax.jit, static_argnames=("logp", "n", "batch", "rng"))
def _run_minibatch(params, key, X, *, logp, n, batch, rng="upfront"):
    """``_run`` for a log-density of (z, rows): each step takes ``batch`` random rows of ``X``.
    rng="upfront": all row indices and eps drawn before the loop; "split": inside every step."""
    tx = adagrad_window()
    d = params["mu"].shape[0]

    def update(p, s, eps, idx):
        x = jnp.take(X, idx, axis=0)

        def loss_fn(p):
            z, logq = _sample(p, eps)
            return logq - logp(z, x)

        loss, g = jax.value_and_grad(loss_fn)(p)
        u, s = tx.update(g, s, p)
        return jax.tree_util.tree_map(jnp.add, p, u), s, loss

    if rng == "upfront":
        k1, k2 = jax.random.split(key)
        eps = jax.random.normal(k1, (n, d), jnp.float32)
        idx = jax.random.randint(k2, (n, batch), 0, X.shape[0])

        def step(carry, xs):
            p, s, loss = update(*carry, *xs)
            return (p, s), loss

        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), (eps, idx))
    elif rng == "foldin":  # as jaxvi: step t's eps and rows from fold_in(key, t), drawn before the loop
        def noise(t):
            k1, k2 = jax.random.split(jax.random.fold_in(key, t))
            return jax.random.normal(k1, (d,), jnp.float32), jax.random.randint(k2, (batch,), 0, X.shape[0])

        def step(carry, xs):
            p, s, loss = update(*carry, *xs)
            return (p, s), loss

        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jax.vmap(noise)(jnp.arange(n)))
    else:
        def step(carry, _):
            p, s, k = carry
            k, k1, k2 = jax.random.split(k, 3)
            p, s, loss = update(p, s, jax.random.normal(k1, (d,), jnp.float32),
                                jax.random.randint(k2, (batch,), 0, X.shape[0]))
            return (p, s, k), loss

        (params, _, _), losses = jax.lax.scan(step, (params, tx.init(params), key), None, length=n)
    return params, losses


_MEDIAN_PAIRS = 16


@partial(jax.jit, static_argnames=("logp", "n", "lr", "ksd"))
def _run_svgd(x, *, logp, n, lr, ksd=False):
    """n SVGD steps on particles ``x[p, d]`` in one scan; the loss is the KSD when ``ksd``."""
    p = x.shape[0]
    shifts = np.unique(np.linspace(1, p - 1, _MEDIAN_PAIRS).astype(int))
    rows = np.repeat(np.arange(p), len(shifts))
    cols = (rows + np.tile(shifts, p)) % p
    score_fn = jax.vmap(jax.grad(logp))

    def step(x, _):
        score = score_fn(x)
        sq_norm = jnp.sum(x**2, -1)
        sq = jnp.maximum(sq_norm[:, None] + sq_norm[None, :] - 2.0 * x @ x.T, 0.0)
        h = jnp.median(sq[rows, cols]) / jnp.log(p + 1.0)
        h = jnp.where(h > 0, h, 1.0)
        K = jnp.exp(-sq / h)
        phi = (K @ score + (x * jnp.sum(K, 1, keepdims=True) - K @ x) * (2.0 / h)) / p
        loss = jnp.zeros(())
        if ksd:
            sx = jnp.sum(score * x, 1)
            cross = (sx[:, None] - score @ x.T) - (x @ score.T - sx[None, :])
            u = K * (score @ score.T + (2.0 / h) * cross + 2.0 * x.shape[1] / h - 4.0 * sq / h**2)
            loss = jnp.sqrt(jnp.maximum(jnp.sum(u) / p**2, 0.0))
        return x + lr * phi, loss

    return jax.lax.scan(step, x, None, length=n)


def _svgd_start(c: Case):
    eps = jax.random.normal(jax.random.PRNGKey(0), (cases.SVGD_PARTICLES, c.dim), jnp.float32)
    return c.z0 + eps


def _run_case(c: Case, method: str, n: int, rng: str = "upfront"):
    if method == "svgd":
        return _run_svgd(_svgd_start(c), logp=c.logp, n=n, lr=cases.SVGD_LR)
    if c.case == "minibatch":
        return _run_minibatch(_init(c, method), jax.random.PRNGKey(0), c.X, logp=c.logp, n=n,
                              batch=cases.MINIBATCH_BATCH, rng=rng)
    return _run(_init(c, method), jax.random.PRNGKey(0), logp=c.logp, n=n, rng=rng)


def build(case: str):
    return Case(case)


def fit(c: Case, case: str, method: str, n: int):
    params, losses = _run_case(c, method, n)
    losses = np.asarray(jax.block_until_ready(losses), dtype=float)
    return params, losses


def extra(c: Case, case: str, method: str, n: int) -> dict:
    """The same loop with the PRNG key split inside every step (how much of the gap is the RNG)."""
    out = {}
    if method == "svgd":
        run = lambda: _run_svgd(_svgd_start(c), logp=c.logp, n=n, lr=cases.SVGD_LR, ksd=True)  # noqa: E731
        jax.block_until_ready(run())
        t = time.perf_counter()
        jax.block_until_ready(run())
        return {"ksd_warm_s": time.perf_counter() - t}
    for rng, name in (("split", "inloop_rng"), ("foldin", "foldin_rng")):
        run = lambda: _run_case(c, method, n, rng=rng)  # noqa: E731
        t = time.perf_counter()
        jax.block_until_ready(run())
        first = time.perf_counter() - t
        t = time.perf_counter()
        _, losses = jax.block_until_ready(run())
        out.update({f"{name}_first_s": first, f"{name}_warm_s": time.perf_counter() - t,
                    f"{name}_final_loss": float(np.mean(np.asarray(losses)[-cases.LOSS_WINDOW:]))})
    return out


def draw(c: Case, params, case: str, draws: int) -> dict:
    if not isinstance(params, dict):  # SVGD: the particles are the draws
        out = jax.block_until_ready(c.constrain(params[:draws]))
        return {v: np.asarray(out[v]).mean(0).tolist() for v in cases.REPORT_VARS[case]}
    eps = jax.random.normal(jax.random.PRNGKey(1), (draws, c.dim), jnp.float32)
    z, _ = _sample(params, eps)
    out = jax.block_until_ready(c.constrain(z))
    return {v: np.asarray(out[v]).mean(0).tolist() for v in cases.REPORT_VARS[case]}
