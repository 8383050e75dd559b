"""Gaussian starting points for the normal families: ``start="laplace"`` / ``start="pathfinder"``.

ADVI from PyMC's default start (the model's initial point, unit sd) has to travel to the posterior
with steps of about the learning rate per coordinate; on badly scaled or strongly correlated
posteriors (parameters in dollars, correlations of -0.99998) no fixed schedule gets there.  A
better start solves it where it arises:

* ``pathfinder_normal(logp, x0, key)``: one Pathfinder path (``jaxvi.pathfinder.single_path``, L-BFGS
  with the normals along the path scored by their ELBO) from ``x0``; the best normal's mean and
  dense covariance.  Robust where no mode exists (a funnel): the ELBO, not log p, picks the point.
* ``laplace_normal(logp, x0, key)``: the same path, then Newton steps with the exact Hessian from its
  last iterate to the mode, and the Laplace normal N(mode, H^-1) there when Newton converged to a point
  with a positive definite Hessian; where there is no mode (a funnel's neck, a boundary) Pathfinder's
  normal is returned instead.
* ``family_params(family, mean, cov)``: the parameters of a MeanField (sd 1 / sqrt(diag(cov^-1)), the
  mean-field normal closest to N(mean, cov) in KL(q || p)), FullRank (Cholesky factor), LowRank
  (leading eigenvectors plus the residual diagonal) or any family with ``init(mean, sigma)``.

All of them are pure functions of a log density on the flat unconstrained vector.
``Approximation(start="laplace")`` (hence ``jv.fit(method=..., start="laplace")`` and
``ADVI(start="laplace")``) calls ``start_params``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.model.transforms import PackedCholesky, softplus_inverse, tril_indices
from jaxvi.vi.families import FullRankFamily, LowRankFamily, MeanFieldFamily

__all__ = ["START_METHODS", "default_steps", "DEFAULT_STEPS", "pathfinder_normal", "laplace_normal", "newton_mode", "gaussian_elbo", "mode_search",
           "family_params", "start_params", "DecaySchedule", "default_recipe"]

#: The string values ``start=`` accepts ("auto": the mode search a fit with no start and no optimizer uses).
START_METHODS = ("auto", "laplace", "pathfinder")


def pathfinder_normal(logp, x0, key, *, max_iters: int = 1000, history_size: int = 6, num_elbo_draws: int = 25):
    """(mean, cov, info) of the best normal along one Pathfinder path from ``x0``."""
    from jaxvi.vi.pathfinder import BFGSNormalFamily, single_path

    out = single_path(logp, x0, key, max_iters=max_iters, history_size=history_size,
                      num_elbo_draws=num_elbo_draws, num_draws=1)
    params = out["params"]
    info = {"n_grad_evals": out["n_grad_evals"], "n_iters": out["n_iters"], "elbo": out["best_elbo"],
            "last": out["x"]}
    return params["mu"], BFGSNormalFamily.cov(params), info


def newton_mode(logp, x, *, max_steps: int = 20, max_halvings: int = 30):
    """Newton's method on -log p from ``x`` with the exact Hessian and step halving.

    Returns (x, precision = -Hessian of log p at x, ok, n_steps, decrement): ``ok`` is False when the
    precision is not positive definite or not finite there; ``decrement`` = g^T H^-1 g (scale-free; about 0
    at a mode, inf when not ok).  Stops at the first step that does not improve.
    """
    f = lambda z: -logp(z)  # noqa: E731
    hess = jax.hessian(f)

    def newton_step(x):
        v, g = jax.value_and_grad(f)(x)
        h = hess(x)
        chol = jnp.linalg.cholesky(h)
        pd = jnp.all(jnp.isfinite(chol))
        step = jax.scipy.linalg.cho_solve((chol, True), g)
        return v, step, h, pd & jnp.all(jnp.isfinite(step))

    def cond(c):
        return c["go"] & (c["k"] < max_steps)

    def body(c):
        x, v = c["x"], c["v"]
        _, step, _, ok = newton_step(x)

        def halve(s):
            t, _ = s
            return t * 0.5, jnp.nan_to_num(f(x - t * 0.5 * step), nan=jnp.inf)

        t, v_new = jax.lax.while_loop(lambda s: (s[1] > v) & (s[0] > 2.0**-max_halvings), halve,
                                      (jnp.asarray(1.0, x.dtype), jnp.nan_to_num(f(x - step), nan=jnp.inf)))
        improve = ok & (v_new <= v) & jnp.isfinite(v_new)
        x_new = jnp.where(improve, x - t * step, x)
        rel = jnp.abs(v - v_new) / jnp.maximum(jnp.abs(v), 1.0)
        return dict(x=x_new, v=jnp.where(improve, v_new, v), k=c["k"] + 1, go=improve & (rel > 1e-12))

    v0 = f(x)
    out = jax.lax.while_loop(cond, body, dict(x=x, v=v0, k=jnp.zeros((), jnp.int32), go=jnp.isfinite(v0)))
    _, step, h, ok = newton_step(out["x"])
    g = jax.grad(f)(out["x"])
    decrement = jnp.where(ok, g @ step, jnp.inf)  # g^T H^-1 g: half the predicted gain of one more step
    return out["x"], h, ok, out["k"], decrement


def gaussian_elbo(logp, mean, chol, u):
    """ELBO of N(mean, chol chol^T) from standard-normal draws ``u`` (n, d); -inf if not finite."""
    z = mean + u @ chol.T
    logq = -0.5 * jnp.sum(u**2, axis=-1) - jnp.sum(jnp.log(jnp.abs(jnp.diagonal(chol)))) \
        - 0.5 * mean.shape[-1] * jnp.log(2 * jnp.pi)
    lr = jax.vmap(logp)(z) - logq
    elbo = jnp.mean(lr)
    return jnp.where(jnp.isfinite(elbo), elbo, -jnp.inf)


def laplace_normal(logp, x0, key, *, max_iters: int = 1000, history_size: int = 6, num_elbo_draws: int = 100,
                   max_newton_steps: int = 20):
    """(mean, cov, info): the Laplace normal at the mode if there is one, else Pathfinder's normal.

    The mode is found by Newton's method (exact Hessian) from the last iterate of one Pathfinder path
    (L-BFGS from ``x0``).  ``info["laplace"]`` says whether the Laplace normal was used (the two ELBO
    estimates are recorded too); ``info["n_grad_evals"]`` counts gradient evaluations, a Hessian as d of them.
    """
    k_path, k_elbo = jax.random.split(key)
    m_pf, cov_pf, info = pathfinder_normal(logp, x0, k_path, max_iters=max_iters, history_size=history_size)
    d = x0.shape[-1]
    u = jax.random.normal(k_elbo, (num_elbo_draws, d), x0.dtype)
    # Newton from the last L-BFGS iterate (next to the mode when there is one; the best normal's mean can
    # sit where log p is not concave, and Newton needs a positive definite Hessian)
    mode, cov_lap, ok, steps, decrement, elbo_lap = _laplace_at(logp, info.pop("last"), u, max_newton_steps)
    elbo_pf = gaussian_elbo(logp, m_pf, jnp.linalg.cholesky(cov_pf), u)
    # a mode (positive definite Hessian, Newton converged) gives the Laplace normal; no mode (a funnel's
    # neck, a boundary) or a non-finite ELBO there: Pathfinder's normal.  The ELBOs are not compared: the
    # exclusive KL prefers an under-dispersed normal, which is the worse start for ADVI
    use_lap = ok & (decrement < 1e-6) & jnp.isfinite(elbo_lap)
    mean = jnp.where(use_lap, mode, m_pf)
    cov = jnp.where(use_lap, cov_lap, cov_pf)
    n_grad = info["n_grad_evals"] + (steps + 1) * (d + 2) + 2 * num_elbo_draws
    return mean, cov, {"n_grad_evals": n_grad, "pathfinder_iters": info["n_iters"], "newton_steps": steps,
                       "laplace": use_lap, "newton_decrement": decrement, "elbo_laplace": elbo_lap,
                       "elbo_pathfinder": elbo_pf}


def _laplace_at(logp, x, u, max_newton_steps):
    """(mode, cov, ok, steps, decrement, elbo) of the Laplace normal after Newton from ``x``."""
    d = x.shape[-1]
    mode, prec, ok, steps, decrement = newton_mode(logp, x, max_steps=max_newton_steps)
    eye = jnp.eye(d, dtype=x.dtype)
    cov = jnp.linalg.inv(jnp.where(ok, prec, eye))
    cov = 0.5 * (cov + cov.T)
    chol = jnp.linalg.cholesky(cov)
    ok = ok & jnp.all(jnp.isfinite(chol))
    elbo = jnp.where(ok, gaussian_elbo(logp, mode, jnp.where(ok, chol, eye), u), -jnp.inf)
    return mode, cov, ok, steps, decrement, elbo


def mode_search(logp, x0s, key, *, max_iters: int = 1000, history_size: int = 6, num_elbo_draws: int = 25,
                elbo_draws: int = 64, max_newton_steps: int = 20, laplace_slack: float = 2.0):
    """A robust Gaussian start (pure; jit-able): Pathfinder paths from each row of ``x0s``, compared.

    Every path (L-BFGS from one dispersed start, its best normal by ELBO) is scored again with the same
    ``elbo_draws`` common draws; Newton with the exact Hessian runs from the last iterate of the best path.
    The Laplace normal N(mode, H^-1) is used when Newton reached a mode with a positive definite Hessian
    and its ELBO is within ``laplace_slack`` nats of the best path normal's (a "mode" deep in a funnel's
    neck fails that test); else the best path's normal -- with unit sds when no path converged either
    (``info["fallback"]``: no mode, as in a funnel).  Returns (mean, cov, info): ``info`` has each
    path's ELBO, status and the distance of its last iterate
    from the best path's (per coordinate, in the chosen sds: ``path_offsets``), so the caller can tell
    agreeing paths from other modes.
    """
    from jaxvi.vi.pathfinder import BFGSNormalFamily, single_path

    n_paths, d = x0s.shape
    k_paths, k_elbo = jax.random.split(key)
    u = jax.random.normal(k_elbo, (elbo_draws, d), x0s.dtype)
    eye = jnp.eye(d, dtype=x0s.dtype)

    def one_path(args):
        x0, k = args
        out = single_path(logp, x0, k, max_iters=max_iters, history_size=history_size,
                          num_elbo_draws=num_elbo_draws, num_draws=1)
        mean, cov = out["params"]["mu"], BFGSNormalFamily.cov(out["params"])
        chol = jnp.linalg.cholesky(cov)
        finite = jnp.all(jnp.isfinite(chol)) & jnp.all(jnp.isfinite(mean))
        elbo = gaussian_elbo(logp, jnp.where(finite, mean, 0.0), jnp.where(finite, chol, eye), u)
        return {"mean": mean, "cov": cov, "elbo": jnp.where(finite, elbo, -jnp.inf), "x": out["x"],
                "status": out["status"], "n_iters": out["n_iters"], "n_grad_evals": out["n_grad_evals"]}

    # one path after the other (lax.map compiles the path once; a vmap of the L-BFGS loops compiles ~2x
    # longer and runs every path for as long as the longest)
    out = jax.lax.map(one_path, (x0s, jax.random.split(k_paths, n_paths)))
    means, covs, elbos = out["mean"], out["cov"], out["elbo"]
    best = jnp.argmax(elbos)
    mode, cov_lap, ok, steps, decrement, elbo_lap = _laplace_at(logp, out["x"][best], u, max_newton_steps)
    use_lap = ok & (decrement < 1e-6) & jnp.isfinite(elbo_lap) & (elbo_lap >= elbos[best] - laplace_slack)
    # no mode at all (no Laplace normal and no path converged: a funnel, whose log density rises without
    # bound into its neck, where the path normals collapse): the best path normal's mean with unit sds
    fallback = ~use_lap & ~jnp.any((out["status"] == 1) | (out["status"] == 2))
    mean = jnp.where(use_lap, mode, means[best])
    cov = jnp.where(use_lap, cov_lap, jnp.where(fallback, jnp.eye(d, dtype=x0s.dtype), covs[best]))
    sd = jnp.sqrt(jnp.diagonal(jnp.where(fallback, covs[best], cov)))
    offsets = jnp.abs(out["x"] - out["x"][best]) / sd  # where each path ended, from the best path's end
    n_grad = jnp.sum(out["n_grad_evals"]) + (steps + 1) * (d + 2) + elbo_draws * (n_paths + 1)
    return mean, cov, {"n_grad_evals": n_grad, "laplace": use_lap, "fallback": fallback, "newton_steps": steps,
                       "newton_decrement": decrement, "elbo": jnp.where(use_lap, elbo_lap, elbos[best]),
                       "elbo_laplace": elbo_lap, "best_path": best, "path_elbos": elbos,
                       "path_status": out["status"], "path_iters": out["n_iters"], "path_offsets": offsets}


def family_params(family, mean, cov):
    """Parameters of ``family`` for the normal N(mean, cov) (the closest member for restricted families)."""
    mean = jnp.asarray(mean)
    cov = jnp.asarray(cov, mean.dtype)
    d = mean.shape[-1]
    if isinstance(family, FullRankFamily):
        return {"mu": mean, "L_tril": PackedCholesky(d).inv(jnp.linalg.cholesky(cov))}
    if isinstance(family, LowRankFamily):
        k = family.init(mean)["W"].shape[-1]
        lam, vec = jnp.linalg.eigh(cov)  # ascending
        lam_k, vec_k = lam[::-1][:k], vec[:, ::-1][:, :k]
        rest = lam[::-1][k] if k < d else jnp.asarray(0.0, mean.dtype)
        W = vec_k * jnp.sqrt(jnp.maximum(lam_k - rest, 0.0))
        diag = jnp.diagonal(cov) - jnp.sum(W**2, axis=-1)
        floor = 1e-3 * jnp.diagonal(cov)
        s = jnp.sqrt(jnp.maximum(diag, floor))
        return {"mu": mean, "rho": softplus_inverse(s), "W": W}
    # mean-field and any other family with init(mean, sigma): the KL(q || p)-closest diagonal
    sigma = 1.0 / jnp.sqrt(jnp.diagonal(jnp.linalg.inv(cov)))
    if isinstance(family, MeanFieldFamily):
        return MeanFieldFamily.init(mean, sigma)
    return family.init(mean, sigma)


def start_params(approx, start: str, start_sigma=None, key=None, x0s=None):
    """Initial variational parameters of ``approx`` (an Approximation) from ``start`` in START_METHODS.

    ``start="auto"`` runs :func:`mode_search` from the rows of ``x0s`` (dispersed starting points), in
    float64 whatever the model's precision (inside ``jax.enable_x64``: JAX's global setting is untouched),
    and returns the parameters in the model's dtype.  Records ``approx.start_info``: gradient
    evaluations, which normal was used, and for "auto" the per-path arrays (``approx.start_paths``).
    """
    if start not in START_METHODS:
        raise ValueError(f"start must be a dict of variable values or one of {', '.join(map(repr, START_METHODS))}, "
                         f"got {start!r}")
    if start_sigma is not None:
        raise ValueError(f"start={start!r} sets the covariance itself; start_sigma must be None")
    cm = approx.cm
    if key is None:
        from jaxvi.model.config import prng_key

        key = jax.random.fold_in(prng_key(approx._random_seed if approx._random_seed is not None else 0), 7)
    x0s = cm.initial_point()[None] if x0s is None else x0s
    with jax.enable_x64(True):  # scoped: the model is evaluated in float64 here only, whatever its own dtype
        if start == "auto":
            search = cm.cached(("start", "auto"), lambda: jax.jit(
                lambda x0s, k, batch: mode_search(lambda z: cm.logp(z, batch), x0s, k)))
        else:
            fn = laplace_normal if start == "laplace" else pathfinder_normal
            search = cm.cached(("start", start), lambda: jax.jit(
                lambda x0s, k, batch: fn(lambda z: cm.logp(z, batch), x0s[0], k)))
        mean, cov, info = jax.tree_util.tree_map(np.asarray, search(jnp.asarray(x0s, jnp.float64), key, cm.data))
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
            raise FloatingPointError(f"start={start!r}: the {start} normal is not finite (the log density is not "
                                     "finite along the L-BFGS paths from the starting points); pass a start dict instead")
        # the family's parameters from the float64 normal (a float32 Cholesky of a badly scaled one can fail);
        # a flow is built in the model's own dtype (flowjax keeps a copy of its initial values in the layers'
        # static part, which the final cast below cannot reach)
        normal = isinstance(approx.family, (FullRankFamily, LowRankFamily, MeanFieldFamily))
        dt = jnp.float64 if normal else cm.dtype
        params = family_params(approx.family, jnp.asarray(mean, dt), jnp.asarray(cov, dt))
    approx.start_sd = np.sqrt(np.diagonal(cov))  # the start normal's marginal sds (the dispersion check's)
    approx.start_info = {k: v.item() for k, v in info.items() if np.ndim(v) == 0}
    approx.start_info["method"] = start
    approx.start_paths = {k: v for k, v in info.items() if np.ndim(v) > 0} or None
    return jax.tree_util.tree_map(
        lambda v: jnp.asarray(v, cm.dtype) if jnp.issubdtype(v.dtype, jnp.floating) else v, params)


def parameter_scales(family, params):
    """Per-parameter step scales for a normal family started at ``params``: the coordinate sds, at most 1.

    ``mu`` and the off-diagonal entries of a Cholesky factor or low-rank factor ``W`` move on the scale
    of their coordinate's sd; softplus-parameterised scales (``rho``, the Cholesky diagonal) on a log-like
    scale of 1.  Used by ``scaled_optimizer``.
    """
    sd = jnp.minimum(jnp.asarray(family.std(params)), 1.0)  # shrink steps for small scales, never enlarge them
    out = {}
    for k, v in params.items():
        if k == "mu":
            out[k] = sd
        elif k == "L_tril":
            d = sd.shape[-1]
            rows, cols = tril_indices(d)
            out[k] = jnp.where(jnp.asarray(rows == cols), 1.0, sd[rows]).astype(v.dtype)
        elif k == "W":
            out[k] = jnp.broadcast_to(sd[:, None], v.shape).astype(v.dtype)
        else:
            out[k] = jnp.ones_like(v)
    return out


def scaled_optimizer(optimizer, approx):
    """``optimizer`` (an optax transformation) with its updates multiplied by the start's parameter scales.

    Adam-type optimizers move every parameter by about the learning rate per step whatever its scale;
    after ``start="laplace"`` the approximation already knows each coordinate's sd, so scaling the
    updates by it (capped at 1: a wide start must not make the steps larger than the optimizer's own) lets
    one learning rate serve parameters on scales from 1e-5 to 1 and more (the start has already put the
    large-scale ones in place).  ``approx`` must be a normal-family approximation.
    """
    import optax

    from jaxvi.vi.optimizers import Optimizer

    family = approx.family

    def init(params):  # the start's scales, read off the parameters the fit starts from
        return parameter_scales(family, params)

    def update(updates, scales, params=None):
        return jax.tree_util.tree_map(lambda u, s: u * s, updates, scales), scales

    both = optax.chain(optimizer, optax.GradientTransformation(init, update))
    return Optimizer(both.init, both.update, ("scaled_by_start", optimizer, family))


#: The families whose parameters ``parameter_scales`` knows how to scale.
SCALED_FAMILIES = ("mean_field", "full_rank", "low_rank")

#: The default recipe's Adam learning rate at the start, by the kind of start (in units of the start's sds
#: for the normal families): the closer the start, the smaller the steps.  From a Laplace normal 0.02
#: shook a 26-parameter regression with correlations near -1 off its mode (1.9 sd mean error after 10,000
#: steps, 0.04 at 0.005); from the unit-sd fallback the fit has a long way to go.
LR_INIT = {"laplace": 0.005, "pathfinder": 0.01, "fallback": 0.02}
#: A flow's layers (unscaled steps) have to learn the shape from the identity: 0.02 whatever the start
#: (a banana: k-hat 0.43 at 0.02, 0.5-0.7 at 0.005).
LR_INIT_FLOW = 0.02
#: It decays exponentially to LR_DECAY times that at the fit's end; the last AVERAGE_TAIL of the iterates
#: are averaged.
LR_DECAY, AVERAGE_TAIL = 0.01, 0.2


def start_kind(info) -> str:
    """"laplace", "pathfinder" (a path's normal) or "fallback" (unit sds: no mode) for a ``start_info``."""
    return "fallback" if info.get("fallback") else ("laplace" if info.get("laplace") else "pathfinder")


#: ``fit()`` without ``n`` runs PyMC's 10,000 steps, or, for a normal family on the default recipe,
#: 10,000 per ``DEFAULT_STEPS_PER`` variational parameters (rounded up), at most ``DEFAULT_STEPS_MAX``:
#: the decaying learning rate freezes a fit that needs more (no loss left falling for the convergence check
#: to see), as on an 89-dimensional full-rank fit (4094 parameters) that met the target with 40,000 steps
#: and missed it by 0.2-0.4 sd with 10,000.
DEFAULT_STEPS, DEFAULT_STEPS_PER, DEFAULT_STEPS_MAX = 10_000, 1000, 50_000


def default_steps(approx) -> int:
    """The ``n`` of a ``fit()`` given none (see ``DEFAULT_STEPS_PER``)."""
    if not getattr(approx, "start_info", None) or approx.family.name not in SCALED_FAMILIES:
        return DEFAULT_STEPS
    size = sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(approx.vparams))
    return int(min(DEFAULT_STEPS_MAX, DEFAULT_STEPS * max(1, -(-size // DEFAULT_STEPS_PER))))


def default_recipe(approx, n: int):
    """What ``fit`` uses when no optimizer is given, after a fitted start (``start="auto"``, the start of a
    fit with neither start nor optimizer, or ``"laplace"``/``"pathfinder"``): Adam with a learning rate
    decaying over the fit's ``n`` steps, its updates scaled by the start's sds for the normal families
    (``scaled_optimizer``), and the iterates averaged over the last ``AVERAGE_TAIL`` of the steps
    (``polyak_averaging``).  Returns None when ``approx`` has no fitted start: the caller uses PyMC's
    default (``adagrad_window``) then.
    """
    from jaxvi.vi.optimizers import ExponentialDecay, adam, polyak_averaging

    if not getattr(approx, "start_info", None):
        return None
    scaled = approx.family.name in SCALED_FAMILIES
    lr = LR_INIT[start_kind(approx.start_info)] if scaled else LR_INIT_FLOW
    opt = adam(learning_rate=ExponentialDecay(lr, max(int(n), 1), lr * LR_DECAY))
    if scaled:
        opt = scaled_optimizer(opt, approx)
    return polyak_averaging(opt, int(n), AVERAGE_TAIL) if n >= 10 else opt
