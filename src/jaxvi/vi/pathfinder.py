"""Pathfinder (Zhang, Carpenter, Gelman, Vehtari 2022): variational inference along an L-BFGS path.

The numerics are pure functions:

* ``single_path(logp, x0, key, ...)`` runs L-BFGS on -log p in unconstrained space as one
  ``lax.while_loop``.  Every accepted iterate updates the paper's inverse-Hessian estimate -- a
  diagonal (Gilbert & Lemarechal 1989) plus the compact BFGS low-rank correction (Byrd, Nocedal,
  Schnabel 1994) from the last ``history_size`` position/gradient differences that satisfy the
  curvature condition -- builds the normal N(x + Sigma grad log p, Sigma) there, and estimates
  its ELBO with ``num_elbo_draws`` draws (common random numbers across iterates); the best one
  is kept and ``num_draws`` draws are taken from it.  The same Sigma gives the next search
  direction (L-BFGS with a diagonal initial matrix), tried from the unit step with Armijo
  backtracking that rejects non-finite values; a path with no finite improving step ends at its
  last good iterate.
* ``BFGSNormalFamily``: that normal as a family (params ``mu``, ``alpha``, ``Q``, ``L``:
  Sigma = A^1/2 (I + Q (L L^T - I) Q^T) A^1/2 with A = diag(alpha)), so the single-path result is
  an approximation with a density like any other (k-hat, importance resampling, NUTS hand-off).
* Multi-path: ``num_paths`` paths from jittered starts run vmapped in one compiled program; their
  draws are pooled and resampled with Pareto-smoothed importance weights into an ``Empirical``.

``jaxvi.variational.inference.Pathfinder`` is the thin Inference-like class behind ``jv.fit(method="pathfinder")``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dataclasses import dataclass
from typing import ClassVar

from jaxvi.vi.families import _LOG_2PI
from jaxvi.vi.objectives import log_ratio

__all__ = ["BFGSNormalFamily", "single_path", "pooled_draws", "bfgs_normal_params", "diagonal_update", "STATUS"]


# -- the normal approximation built from an L-BFGS history --------------------------------------------
@dataclass(frozen=True)
class BFGSNormalFamily:
    """N(mu, Sigma) with Sigma = A^1/2 C C^T A^1/2, C = I + Q (L - I) Q^T, A = diag(alpha).

    ``Q`` (d, r) has orthonormal columns and ``L`` (r, r) is lower triangular, so draws, log q,
    std and entropy cost O(d r) (``cov`` forms the d x d matrix).  Not meant for gradient fitting:
    it is what Pathfinder builds from the inverse-Hessian estimate.
    """

    name: ClassVar[str] = "pathfinder"
    param_names: ClassVar[tuple] = ("mu", "alpha", "Q", "L")
    has_density: ClassVar[bool] = True
    reparameterized: ClassVar[bool] = False  # sampled from a key (not fitted by the engine)

    @staticmethod
    def mean(params):
        return params["mu"]

    @staticmethod
    def _apply_c(params, u):
        q, lc = params["Q"], params["L"]
        qu = u @ q
        return u + (qu @ lc.T - qu) @ q.T

    @classmethod
    def sample(cls, params, key, n):
        return cls.sample_and_log_prob(params, key, n)[0]

    @staticmethod
    def _logdet(params):
        return jnp.sum(jnp.log(params["alpha"])) + 2 * jnp.sum(jnp.log(jnp.abs(jnp.diagonal(params["L"]))))

    @classmethod
    def log_prob(cls, params, z):
        q, lc = params["Q"], params["L"]
        v = (z - params["mu"]) / jnp.sqrt(params["alpha"])
        qv = v @ q
        w = jax.scipy.linalg.solve_triangular(lc, qv.reshape(-1, qv.shape[-1]).T, lower=True).T.reshape(qv.shape)
        u = v + (w - qv) @ q.T  # C^{-1} v
        d = params["mu"].shape[-1]
        return -0.5 * (jnp.sum(u**2, axis=-1) + cls._logdet(params) + d * _LOG_2PI)

    @classmethod
    def sample_and_log_prob(cls, params, key, n):
        u = jax.random.normal(key, (n, params["mu"].shape[-1]), params["mu"].dtype)
        return _draws_from_noise(params, u)

    @staticmethod
    def _inner(params):
        lc = params["L"]
        return lc @ lc.T - jnp.eye(lc.shape[0], dtype=lc.dtype)

    @classmethod
    def std(cls, params):
        q = params["Q"]
        return jnp.sqrt(params["alpha"] * (1 + jnp.sum((q @ cls._inner(params)) * q, axis=-1)))

    @classmethod
    def cov(cls, params):
        q, a = params["Q"], jnp.sqrt(params["alpha"])
        inner = jnp.eye(q.shape[0], dtype=q.dtype) + q @ cls._inner(params) @ q.T
        return a[:, None] * inner * a[None, :]

    @classmethod
    def entropy(cls, params):
        d = params["mu"].shape[-1]
        return 0.5 * (d * (1.0 + _LOG_2PI) + cls._logdet(params))

    @staticmethod
    def coordinate_finite(params):
        return (jnp.isfinite(params["mu"]) & jnp.isfinite(params["alpha"])
                & jnp.all(jnp.isfinite(params["Q"]), axis=-1))


def diagonal_update(alpha, s, y):
    """The paper's diagonal inverse-Hessian update (Gilbert & Lemarechal 1989) for step s, gradient change y."""
    a = y @ (alpha * y)
    b = y @ s
    c = s @ (s / alpha)
    return 1.0 / (a / (b * alpha) + y**2 / b - a * s**2 / (b * c * alpha**2))


def bfgs_normal_params(x, grad_logp, alpha, S, Y, filled):
    """The normal at iterate ``x``: Sigma = diag(alpha) + beta gamma beta^T, mu = x + Sigma grad_logp.

    ``S``, ``Y`` (J, d) hold the last J (s, y) pairs oldest first, ``filled`` (J,) marks the slots
    in use (empty slots are zero rows and drop out).  Returns BFGSNormalFamily params.
    """
    J = S.shape[0]
    eye = jnp.eye(J, dtype=x.dtype)
    SY = S @ Y.T
    R = jnp.triu(SY) + jnp.diag(jnp.where(filled, 0.0, 1.0).astype(x.dtype))  # empty slots: identity
    Rinv = jax.scipy.linalg.solve_triangular(R, eye, lower=False)
    E = jnp.diag(jnp.diagonal(SY))
    YAY = (Y * alpha) @ Y.T
    gamma = jnp.block([[jnp.zeros((J, J), x.dtype), -Rinv], [-Rinv.T, Rinv.T @ (E + YAY) @ Rinv]])
    beta = jnp.concatenate([(alpha * Y).T, S.T], axis=1)  # (d, 2J)
    mu = x + alpha * grad_logp + beta @ (gamma @ (beta.T @ grad_logp))
    Q, Rq = jnp.linalg.qr(beta / jnp.sqrt(alpha)[:, None])
    r = Rq.shape[0]
    L = jnp.linalg.cholesky(jnp.eye(r, dtype=x.dtype) + Rq @ gamma @ Rq.T)
    return {"mu": mu, "alpha": alpha, "Q": Q, "L": L}


def _draws_from_noise(params, u):
    """Draws and log q for standard-normal noise ``u`` (n, d)."""
    d = params["mu"].shape[-1]
    z = params["mu"] + jnp.sqrt(params["alpha"]) * BFGSNormalFamily._apply_c(params, u)
    return z, -0.5 * (jnp.sum(u**2, axis=-1) + BFGSNormalFamily._logdet(params) + d * _LOG_2PI)


def _log_ratios(logp, params, u):
    z, logq = _draws_from_noise(params, u)
    return z, log_ratio(jax.vmap(logp)(z), logq)


#: Why a path stopped (``Pathfinder.status``).
STATUS = ("running", "converged (relative change of log p)", "converged (gradient)", "max_iters reached",
          "stopped: no finite improving step (converged, or a non-finite log p / failed line search)")


def _backtrack(fg, x, f, g, direction, max_steps: int, c1: float = 1e-4):
    """Armijo backtracking from a unit step (halving), rejecting non-finite values/gradients.

    Returns (x_new, f_new, g_new, evaluations, found)."""
    slope = g @ direction

    def cond(c):
        t, _, f_new, g_new, n = c
        good = jnp.isfinite(f_new) & jnp.all(jnp.isfinite(g_new)) & (f_new <= f + c1 * t * slope)
        return (n < max_steps) & ~good

    def body(c):
        t, _, _, _, n = c
        t = jnp.where(n > 0, 0.5 * t, t)
        x_new = x + t * direction
        f_new, g_new = fg(x_new)
        return t, x_new, f_new, g_new, n + 1

    init = (jnp.ones((), x.dtype), x, jnp.asarray(jnp.inf, f.dtype), jnp.full_like(g, jnp.nan), jnp.zeros((), jnp.int32))
    t, x_new, f_new, g_new, n = jax.lax.while_loop(cond, body, init)
    found = jnp.isfinite(f_new) & jnp.all(jnp.isfinite(g_new)) & (f_new <= f + c1 * t * slope)
    return x_new, f_new, g_new, n, found


def single_path(logp, x0, key, *, max_iters: int = 1000, history_size: int = 6, num_elbo_draws: int = 25,
                num_draws: int = 1000, rel_tol: float | None = None, grad_tol: float = 1e-8,
                max_linesearch_steps: int = 30):
    """One Pathfinder path from ``x0`` (pure; jit/vmap-able over ``x0`` and ``key``).

    L-BFGS on -log p keeps the last ``history_size`` (s, y) pairs with positive curvature; with
    the diagonal estimate they give the inverse Hessian H (compact form, diagonal initial matrix
    as Gilbert & Lemarechal propose), hence both the normal N(x - H grad f, H) at each iterate
    (its ELBO is estimated with ``num_elbo_draws`` common random draws) and the next search
    direction -H grad f, tried from the unit step with Armijo backtracking that also rejects
    non-finite values.  Returns a dict: ``params`` (BFGSNormalFamily params
    of the best iterate), ``elbos`` (max_iters + 1, -inf past the end), ``best``, ``best_elbo``,
    ``n_iters``, ``n_grad_evals``, ``status`` (index into STATUS), ``draws`` (num_draws, d) from
    the best normal and their ``log_ratios`` log p - log q, and ``x``, the last L-BFGS iterate.
    """
    dtype = x0.dtype
    d = x0.shape[-1]
    rel_tol = 10 * float(jnp.finfo(dtype).eps) if rel_tol is None else rel_tol
    curvature_eps = float(jnp.finfo(dtype).eps)

    def fg(x):
        v, g = jax.value_and_grad(lambda z: -logp(z))(x)
        return jnp.where(jnp.isnan(v), jnp.inf, v), g

    f0, g0 = fg(x0)
    J = history_size
    S0 = jnp.zeros((J, d), dtype)
    k_elbo, k_draws = jax.random.split(key)
    u_elbo = jax.random.normal(k_elbo, (num_elbo_draws, d), dtype)  # common random numbers for all iterates
    params0 = {"mu": x0 - g0, "alpha": jnp.ones(d, dtype), "Q": jnp.eye(d, min(d, 2 * J), dtype=dtype),
               "L": jnp.eye(min(d, 2 * J), dtype=dtype)}
    ok0 = jnp.isfinite(f0) & jnp.all(jnp.isfinite(g0))
    carry0 = dict(it=jnp.zeros((), jnp.int32), x=x0, f=f0, g=g0, params=params0, S=S0, Y=S0,
                  filled=jnp.zeros(J, bool), best_params=params0, best_elbo=jnp.asarray(-jnp.inf, dtype),
                  best=jnp.zeros((), jnp.int32), elbos=jnp.full(max_iters + 1, -jnp.inf, dtype),
                  evals=jnp.ones((), jnp.int32), status=jnp.where(ok0, 0, 4).astype(jnp.int32))

    def cond(c):
        return c["status"] == 0

    def body(c):
        x, f, g = c["x"], c["f"], c["g"]
        # the quasi-Newton direction -H grad f is the current normal's mean minus x
        direction = c["params"]["mu"] - x
        direction = jnp.where(g @ direction < 0, direction, -g)  # not a descent direction: steepest descent
        x_new, f_new, g_new, n_evals, accept = _backtrack(fg, x, f, g, direction, max_linesearch_steps)
        # a quasi-Newton direction with no acceptable step (a poor inverse-Hessian estimate far from the
        # mode, e.g. regressions on the scale of thousands): retry along steepest descent from a unit-length step
        sd_dir = -g / jnp.maximum(jnp.linalg.norm(g), jnp.finfo(dtype).tiny)
        x_new, f_new, g_new, n_sd, accept = jax.lax.cond(
            accept, lambda: (x_new, f_new, g_new, jnp.zeros((), jnp.int32), accept),
            lambda: _backtrack(fg, x, f, g, sd_dir, 2 * max_linesearch_steps))
        n_evals = n_evals + n_sd
        it = c["it"] + 1
        # the inverse-Hessian estimate: diagonal + the last J (s, y) pairs with positive curvature
        s, y = x_new - x, g_new - g
        curv = accept & (s @ y > curvature_eps * (y @ y))
        alpha_old = c["params"]["alpha"]
        alpha = jnp.where(curv, diagonal_update(alpha_old, s, y), alpha_old)
        alpha = jnp.where(jnp.all(jnp.isfinite(alpha) & (alpha > 0)), alpha, alpha_old)
        roll = lambda a, v: jnp.where(curv, jnp.concatenate([a[1:], v[None]]), a)  # noqa: E731
        S, Y, filled = roll(c["S"], s), roll(c["Y"], y), roll(c["filled"], jnp.asarray(True))
        params = bfgs_normal_params(x_new, -g_new, alpha, S, Y, filled)
        elbo = jnp.mean(_log_ratios(logp, params, u_elbo)[1])
        elbo = jnp.where(accept & jnp.isfinite(elbo), elbo, -jnp.inf)
        better = elbo > c["best_elbo"]
        pick = lambda new, old: jnp.where(better, new, old)  # noqa: E731
        rel = jnp.abs(f - f_new) / jnp.maximum(jnp.maximum(jnp.abs(f), jnp.abs(f_new)), 1.0)
        status = jnp.select([~accept, rel < rel_tol, jnp.max(jnp.abs(g_new)) < grad_tol, it >= max_iters],
                            [4, 1, 2, 3], 0).astype(jnp.int32)
        keep = lambda new, old: jnp.where(accept, new, old)  # noqa: E731
        return dict(it=jnp.where(accept, it, c["it"]), x=keep(x_new, x), f=keep(f_new, f), g=keep(g_new, g),
                    params=jax.tree_util.tree_map(keep, params, c["params"]), S=S, Y=Y, filled=filled,
                    best_params=jax.tree_util.tree_map(pick, params, c["best_params"]),
                    best_elbo=jnp.maximum(elbo, c["best_elbo"]), best=jnp.where(better, it, c["best"]),
                    elbos=c["elbos"].at[it].set(elbo), evals=c["evals"] + n_evals, status=status)

    out = jax.lax.while_loop(cond, body, carry0)
    params = out["best_params"]
    draws, lr = _log_ratios(logp, params, jax.random.normal(k_draws, (num_draws, d), dtype))
    lr = jnp.where(jnp.isfinite(out["best_elbo"]), lr, -jnp.inf)
    return {"params": params, "elbos": out["elbos"], "best": out["best"], "best_elbo": out["best_elbo"],
            "n_iters": out["it"], "n_grad_evals": out["evals"], "status": out["status"], "draws": draws,
            "log_ratios": lr, "x": out["x"]}


# -- multi-path: the pooled draws and their importance ratios -------------------------------------------
def _mahalanobis(params, z):
    """(z - mu)^T Sigma^-1 (z - mu) for rows of ``z``, with one (n, d) x (d, r) product: C^-1 v has squared
    norm |v|^2 - |Q^T v|^2 + |L^-1 Q^T v|^2, as Q has orthonormal columns."""
    v = (z - params["mu"]) / jnp.sqrt(params["alpha"])
    qv = v @ params["Q"]
    w = jax.scipy.linalg.solve_triangular(params["L"], qv.T, lower=True).T
    return jnp.sum(v**2, axis=-1) - jnp.sum(qv**2, axis=-1) + jnp.sum(w**2, axis=-1)


def _log_student_t(maha, logdet, d, df):
    """log density of the Student-t with ``df`` degrees of freedom and a normal's centre and scale."""
    return (jax.scipy.special.gammaln((df + d) / 2) - jax.scipy.special.gammaln(df / 2) - d / 2 * jnp.log(df * jnp.pi)
            - 0.5 * logdet - (df + d) / 2 * jnp.log1p(maha / df))


def pooled_draws(logp, paths, key, *, tail_draws: int = 0, tail_df: float = 5.0):
    """Every path's draws pooled, with log ratios log p - log q against the mixture they came from (pure).

    ``paths`` is ``single_path``'s output stacked over L paths (leading axis).  Each path with a
    finite ELBO adds its ``num_draws`` draws from its normal and ``tail_draws`` from a Student-t with
    ``tail_df`` degrees of freedom, the normal's centre and scale.  q is the equal-weight mixture of
    all of them: a draw's weight p/q is at most (draws in all) / (draws of one component) times its
    weight under any one component (the balance heuristic of multiple importance sampling, Veach &
    Guibas 1995; the t components are defensive importance sampling, Hesterberg 1995).  So a path
    whose normal is too narrow in some direction (a funnel, a heavy-tailed prior) no longer makes the
    weights heavy-tailed where another component covers the posterior.  Returns ``(z (N, d), log_ratios
    (N,))`` with -inf for the draws of paths without a finite ELBO and for non-finite log p.
    """
    params, draws, lr_own = paths["params"], paths["draws"], paths["log_ratios"]
    n_paths, m, d = draws.shape
    dtype = draws.dtype
    valid = jnp.isfinite(paths["best_elbo"])
    logdet = jax.vmap(BFGSNormalFamily._logdet)(params)
    # log p of the normal draws, recovered from their own ratios (-inf: a path without a finite ELBO)
    lp = jnp.where(valid[:, None], lr_own + jax.vmap(BFGSNormalFamily.log_prob)(params, draws), -jnp.inf).reshape(-1)
    z = draws.reshape(-1, d)
    if tail_draws:
        k_u, k_w = jax.random.split(key)
        u = jax.random.normal(k_u, (n_paths, tail_draws, d), dtype)
        u = u * jnp.sqrt(tail_df / jax.random.chisquare(k_w, tail_df, (n_paths, tail_draws, 1), dtype))
        zt = jax.vmap(lambda p, e: p["mu"] + jnp.sqrt(p["alpha"]) * BFGSNormalFamily._apply_c(p, e))(params, u)
        lpt = jnp.where(valid[:, None], jax.vmap(jax.vmap(logp))(zt), -jnp.inf)
        z, lp = jnp.concatenate([z, zt.reshape(-1, d)]), jnp.concatenate([lp, lpt.reshape(-1)])
    # every component's log density at every draw: (L, N), one pass over the draws per path
    maha = jax.lax.map(lambda p: _mahalanobis(p, z), params)
    comps = [-0.5 * (maha + logdet[:, None] + d * _LOG_2PI) + jnp.log(m)]
    if tail_draws:
        comps.append(_log_student_t(maha, logdet[:, None], d, tail_df) + jnp.log(tail_draws))
    lq = jnp.where(jnp.concatenate([valid] * len(comps))[:, None], jnp.concatenate(comps), -jnp.inf)
    log_mix = jax.scipy.special.logsumexp(lq, axis=0) - jnp.log(jnp.sum(valid) * (m + tail_draws))
    lr = lp - log_mix
    return z, jnp.where(jnp.isfinite(lr), lr, -jnp.inf)
