"""DADVI: deterministic ADVI with linear-response covariances (floor 2, pure numerics).

Giordano, Ingram & Broderick (2024), "Black Box Variational Inference with a Deterministic
Objective: Faster, More Accurate, and Even More Accurate than Before": fix ``M`` draws of standard
normal noise eps_1..eps_M once, so that the -ELBO estimate

    KL_hat(eta) = 1/M sum_m [log q(T(eta, eps_m)) - log p(T(eta, eps_m))]

is an ordinary deterministic function of the variational parameters eta; minimise it with a
second-order method (L-BFGS with a zoom line search, optax); then correct the covariance of the
mean-field family by linear response (LRVB):

    Cov_LR(theta) = J H^{-1} J^T,   H = d^2 KL_hat / d eta^2,   J = d E_q[theta] / d eta

at the optimum (for the normal families J picks the mean block, so Cov_LR is that block of H^{-1}).
On a Gaussian posterior with precision Lambda the mean block of H is Lambda itself, so the
linear-response covariance is the true covariance even though q is mean-field.

Everything works on the flat vector of the family's parameters (``jax.flatten_util``); the optimum,
its history and the counts come back in a ``DADVIResult``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

__all__ = ["DEFAULT_DRAWS", "DADVIResult", "LBFGSResult", "fixed_draws", "dadvi_objective", "minimize_lbfgs",
           "lr_covariance", "make_dadvi", "dadvi", "finish"]

#: Fixed draws M (the paper's and pymc-extras' default).
DEFAULT_DRAWS = 30


class LBFGSResult(NamedTuple):
    x: jax.Array  #: the last iterate (flat)
    value: jax.Array  #: objective there
    grad_norm: jax.Array  #: its gradient's max-norm relative to max(1, |value|)
    hist: jax.Array  #: objective per iteration (first ``n_iter`` entries are filled)
    n_iter: jax.Array
    n_grad_evals: jax.Array  #: value-and-gradient evaluations, line-search trials included


class DADVIResult(NamedTuple):
    params: dict  #: the family's parameters at the optimum
    value: float  #: the deterministic -ELBO there
    hist: jax.Array  #: -ELBO per L-BFGS iteration
    n_iter: int
    n_grad_evals: int  #: gradient evaluations of the optimisation (the Hessian is extra: 2 * n_params HVPs)
    grad_norm: float
    converged: bool  #: the relative gradient max-norm fell below ``gtol`` or the objective reached its precision floor
    lr_cov: jax.Array | None  #: the linear-response covariance of the flat unconstrained vector
    hessian_pd: bool | None  #: whether the objective's Hessian was positive definite at the optimum


def fixed_draws(key, n_draws: int, dim: int, dtype=jnp.float32, whiten: bool = True):
    """The ``n_draws`` x ``dim`` standard-normal noise that stays fixed for the whole optimisation.

    ``whiten=True`` moment-matches them: centred, and with identity sample covariance when
    ``n_draws > dim`` (else unit sample variance per coordinate).  With sample mean 0 and
    covariance I the fixed-draw objective of a normal family on a Gaussian posterior equals the exact
    -ELBO up to a constant, so DADVI's optimum and linear-response covariance are exact there;
    plain draws (the paper's) leave an O(1/sqrt(M)) error in the means.
    """
    eps = jax.random.normal(key, (int(n_draws), int(dim)), dtype)
    if whiten and n_draws > 1:
        eps = eps - eps.mean(axis=0)
        if n_draws > dim:
            chol = jnp.linalg.cholesky(eps.T @ eps / n_draws)
            eps = jax.scipy.linalg.solve_triangular(chol, eps.T, lower=True).T
        else:
            eps = eps / jnp.sqrt(jnp.mean(eps**2, axis=0))
    return eps


def dadvi_objective(family, logp: Callable, eps) -> Callable:
    """The deterministic -ELBO of ``family`` (a reparameterised one) at fixed noise ``eps[M, k]``:
    a function of the family's parameter pytree.  Non-finite log-densities count as +inf."""

    def objective(params):
        z, logq = family.transform(params, eps)
        lp = jax.vmap(logp)(z)
        kl = jnp.mean(logq - lp)
        return jnp.where(jnp.isfinite(kl), kl, jnp.inf)

    return objective


def minimize_lbfgs(f: Callable, x0, max_iters: int = 1000, gtol: float = 1e-6, memory_size: int = 10,
                   max_linesearch_steps: int = 30) -> LBFGSResult:
    """Minimise ``f`` (flat vector -> scalar) by L-BFGS with a zoom line search (optax), in one
    ``while_loop``.  Stops when the gradient's max-norm is below ``gtol * max(1, |f|)``, when an
    iteration lowers ``f`` by less than a few float epsilons of it (the precision floor), or after
    ``max_iters``."""
    opt = optax.lbfgs(memory_size=memory_size,
                      linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=max_linesearch_steps))
    value_and_grad = optax.value_and_grad_from_state(f)
    v0, g0 = jax.value_and_grad(f)(x0)
    hist = jnp.full((max_iters,), jnp.nan, v0.dtype)

    ftol = 10 * jnp.finfo(v0.dtype).eps

    def cond(c):
        _, _, i, hist, g, v, _ = c
        prev = jnp.where(i > 1, hist[jnp.maximum(i - 2, 0)], jnp.inf)
        stalled = (i > 1) & (prev - v <= ftol * jnp.maximum(1.0, jnp.abs(v)))
        return (i < max_iters) & (jnp.max(jnp.abs(g)) > gtol * jnp.maximum(1.0, jnp.abs(v))) & ~stalled

    def body(c):
        x, state, i, hist, _, _, evals = c
        value, grad = value_and_grad(x, state=state)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
        x = optax.apply_updates(x, updates)
        new_value = optax.tree_utils.tree_get(state, "value")
        new_grad = optax.tree_utils.tree_get(state, "grad")
        steps = optax.tree_utils.tree_get(state, "num_linesearch_steps")
        return x, state, i + 1, hist.at[i].set(new_value), new_grad, new_value, evals + steps

    init = (x0, opt.init(x0), jnp.asarray(0), hist, g0, v0, jnp.asarray(1))
    x, _, n, hist, g, v, evals = jax.lax.while_loop(cond, body, init)
    return LBFGSResult(x, v, jnp.max(jnp.abs(g)) / jnp.maximum(1.0, jnp.abs(v)), hist, n, evals)


def lr_covariance(f: Callable, mean_of: Callable, x):
    """The linear-response covariance J H^{-1} J^T of ``mean_of(x)`` (the family's mean as a function
    of the flat parameters) at the optimum ``x`` of ``f``, and whether the Hessian H was positive
    definite (when it is not, the covariance is NaN)."""
    h = jax.hessian(f)(x)
    h = 0.5 * (h + h.T)
    jac = jax.jacobian(mean_of)(x)  # [d, n_params]
    chol = jnp.linalg.cholesky(h)
    pd = jnp.all(jnp.isfinite(chol))
    sol = jax.scipy.linalg.cho_solve((chol, True), jac.T)
    cov = jac @ sol
    return 0.5 * (cov + cov.T), pd


def make_dadvi(family, logp: Callable, n_draws: int = DEFAULT_DRAWS, max_iters: int = 1000, gtol: float = 1e-6,
               linear_response: bool = True, whiten: bool = True) -> Callable:
    """A jittable ``run(params0, key, batch) -> DADVIResult`` fitting ``family`` by DADVI to
    ``logp(z, batch)``: ``n_draws`` fixed draws from ``key`` (``fixed_draws``), L-BFGS to the optimum of
    the deterministic -ELBO, then (``linear_response``) the LRVB covariance (None otherwise)."""

    def run(params0, key, batch):
        flat0, unravel = ravel_pytree(params0)
        eps = fixed_draws(key, n_draws, family.noise_dim(params0), flat0.dtype, whiten)
        objective = dadvi_objective(family, lambda z: logp(z, batch), eps)

        def f(x):
            return objective(unravel(x))

        res = minimize_lbfgs(f, flat0, int(max_iters), float(gtol))
        cov = pd = None
        if linear_response:
            cov, pd = lr_covariance(f, lambda x: family.mean(unravel(x)), res.x)
        return DADVIResult(unravel(res.x), res.value, res.hist, res.n_iter, res.n_grad_evals, res.grad_norm,
                           res.n_iter < max_iters, cov, pd)

    return run


def dadvi(family, logp: Callable, params0, key, n_draws: int = DEFAULT_DRAWS, max_iters: int = 1000,
          gtol: float = 1e-6, linear_response: bool = True, whiten: bool = True, batch=None) -> DADVIResult:
    """``make_dadvi`` compiled and run once, with host numbers (``hist`` cut to the iterations run);
    ``logp(z)`` when ``batch`` is None, else ``logp(z, batch)``."""
    lp = (lambda z, _: logp(z)) if batch is None else logp
    run = jax.jit(make_dadvi(family, lp, n_draws, max_iters, gtol, linear_response, whiten))
    return finish(run(params0, key, batch))


def finish(res: DADVIResult) -> DADVIResult:
    """A ``DADVIResult`` from the device with host numbers and ``hist`` cut to the iterations run."""
    n = int(res.n_iter)
    return res._replace(value=float(res.value), hist=res.hist[:n], n_iter=n, n_grad_evals=int(res.n_grad_evals),
                        grad_norm=float(res.grad_norm), converged=bool(res.converged),
                        hessian_pd=None if res.hessian_pd is None else bool(res.hessian_pd))
