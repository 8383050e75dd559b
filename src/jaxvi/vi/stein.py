"""Stein variational gradients (floor 2): kernels, the Stein direction and its objective.

SVGD (Liu & Wang 2016) moves particles ``x_1..x_n`` along

    phi(x_i) = 1/n sum_j [ k(x_j, x_i) grad log p(x_j) / temperature + grad_{x_j} k(x_j, x_i) ],

the direction of steepest descent of KL(q || p) in the unit ball of the kernel's RKHS.
Amortized SVGD (Feng, Wang & Liu 2017) pushes the same direction, computed at draws of a
parametric approximation, back onto its parameters through the reparameterisation.

Everything here is a pure function of arrays; ``implicit_objective`` packages the direction as
an ordinary ``(params, key, batch) -> loss`` objective whose *gradient* is ``-phi`` (so any
optax optimizer moves along it) and whose *value* is a loss worth recording: the
kernelized Stein discrepancy of the particles, or the -ELBO when the family has a density.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.vi.families import ParticlesFamily
from jaxvi.vi.objectives import Objective, pass_key

__all__ = ["rbf", "median_sq_distance", "stein_direction", "kernelized_stein_discrepancy",
           "implicit_objective", "importance_resampled_start", "KERNELS", "ESTIMATORS", "get_kernel", "get_estimator"]

_MEDIAN_PAIRS = 16  # pairs per particle used to estimate the median distance when n is large


def _sq_distances(x):
    sq = jnp.sum(x**2, axis=-1)
    return jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)


def median_sq_distance(x, sq=None):
    """Median squared distance between particles (the median heuristic's statistic).

    Up to 64 particles it is the exact median over all pairs (diagonal included, as PyMC);
    beyond that, the median over ``n * 16`` pairs (each particle with 16 others spread over the
    index range): sorting all n^2 distances would cost more than the rest of the step.
    """
    n = x.shape[0]
    if sq is None:
        sq = _sq_distances(x)
    if n <= 64:
        return jnp.median(sq)
    shifts = np.unique(np.linspace(1, n - 1, _MEDIAN_PAIRS).astype(int))
    rows = np.repeat(np.arange(n), len(shifts))
    cols = (rows + np.tile(shifts, n)) % n
    return jnp.median(sq[rows, cols])


def rbf(x, bandwidth=None):
    """RBF kernel ``k(x, y) = exp(-|x - y|^2 / h)`` with the median heuristic h = med / log(n + 1).

    Returns ``(K[n, n], dK[n, d], h)`` where ``dK_i = sum_j grad_{x_j} k(x_j, x_i)`` (the
    repulsive term of SVGD).  ``bandwidth`` fixes h instead of the heuristic.
    """
    n = x.shape[0]
    sq = _sq_distances(x)
    if bandwidth is None:
        h = median_sq_distance(x, sq) / jnp.log(n + 1.0)
        h = jnp.where(h > 0, h, 1.0)  # all particles at one point: any positive width will do
    else:
        h = jnp.asarray(bandwidth, x.dtype)
    h = jax.lax.stop_gradient(h)
    K = jnp.exp(-sq / h)
    dK = (x * jnp.sum(K, axis=1, keepdims=True) - K @ x) * (2.0 / h)
    return K, dK, h


def stein_direction(x, score, kernel: Callable = rbf, temperature: float = 1.0):
    """The SVGD direction ``phi[n, d]`` at particles ``x`` with ``score = grad log p(x)``."""
    K, dK, _ = kernel(x)
    return (K @ score / temperature + dK) / x.shape[0]


def kernelized_stein_discrepancy(x, score, kernel: Callable = rbf, temperature: float = 1.0):
    """The kernelized Stein discrepancy (V-statistic, RBF kernel) of particles ``x``.

    KSD^2 = 1/n^2 sum_ij u(x_i, x_j) with the Stein kernel u of the RBF kernel; it is zero
    exactly when the particles' empirical measure is invariant under the Stein operator of p.
    """
    n, d = x.shape
    K, _, h = kernel(x)
    s = score / temperature
    sx = jnp.sum(s * x, axis=1)
    diff_sq = _sq_distances(x)
    # u_ij / K_ij = s_i.s_j + 2/h (s_i - s_j).(x_i - x_j) + 2d/h - 4|x_i - x_j|^2 / h^2
    cross = (sx[:, None] - s @ x.T) - (x @ s.T - sx[None, :])
    u = K * (s @ s.T + (2.0 / h) * cross + 2.0 * d / h - 4.0 * diff_sq / h**2)
    return jnp.sqrt(jnp.maximum(jnp.sum(u) / n**2, 0.0))


KERNELS = {"rbf": rbf}
ESTIMATORS = {"svgd": stein_direction, "stein": stein_direction}


def _lookup(table: dict, value, what: str, signature: str):
    """A callable as given, or the named entry of ``table`` (an error lists the valid names)."""
    if callable(value):
        return value
    try:
        return table[str(value).lower()]
    except KeyError:
        raise ValueError(f"unknown {what} {value!r}; valid {what}s: {', '.join(table)} "
                         f"or a function {signature}") from None


def get_kernel(kernel):
    return _lookup(KERNELS, kernel, "kernel", "x[n, d] -> (K[n, n], dK[n, d], bandwidth)")


def get_estimator(estimator):
    return _lookup(ESTIMATORS, estimator, "estimator", "(x, score, kernel, temperature) -> phi")


def implicit_objective(family, logp: Callable, n_draws: int, estimator: Callable = stein_direction,
                       kernel: Callable = rbf, temperature: float = 1.0):
    """An objective whose gradient with respect to ``family``'s parameters is minus the Stein
    direction pushed through the family's draws.

    For particles (a family with ``particles_of``) the draws *are* the parameters, so optax
    moves each particle by ``lr * phi`` (SVGD).  For a parametric family, ``n_draws``
    reparameterised draws carry the direction back to the parameters (amortized SVGD).
    The value is the KSD of the draws for particles, the -ELBO estimate otherwise.
    """
    score_and_logp = jax.vmap(jax.value_and_grad(logp), in_axes=(0, None))
    has_density = family.has_density
    particles = family.particles_of if isinstance(family, ParticlesFamily) else None

    def loss(params, key, batch):
        if particles is not None:
            z, logq = particles(params), None
        elif has_density:
            z, logq = family.sample_and_log_prob(params, key, n_draws)
        else:
            z, logq = family.sample(params, key, n_draws), None
        x = jax.lax.stop_gradient(z)
        logp_x, score = score_and_logp(x, batch)
        phi = jax.lax.stop_gradient(estimator(x, score, kernel, temperature))
        surrogate = -jnp.sum(phi * z) / (1 if particles is not None else z.shape[0])
        if logq is None:
            report = kernelized_stein_discrepancy(x, score, kernel, temperature)
        else:
            report = jnp.mean(jax.lax.stop_gradient(logq) - logp_x)
        report = jax.lax.stop_gradient(report)
        return surrogate + (report - jax.lax.stop_gradient(surrogate))

    return Objective(pass_key, loss, predrawn=False)


def importance_resampled_start(key, logp: Callable, batch, center, jitter: float, n: int, oversample: int = 10,
                               min_ess_fraction: float = 0.1):
    """Starting particles: ``n * oversample`` draws from N(center, jitter^2) resampled by p/q.

    SVGD keeps each particle in the basin it starts in, so particles jittered around one point
    split between modes by basin size, not by posterior mass (PyMC's SVGD puts ~40% of the
    particles in the 20% mode of the seed mixture).  Systematic importance resampling of the
    jittered draws starts them with the right mode weights; a little noise (1% of ``jitter``)
    separates duplicates, which the kernel's repulsion then spreads.  When the importance
    weights are degenerate (effective sample size below ``min_ess_fraction * n``, as in high
    dimension) the plain jittered draws are kept.  Returns ``(particles[n, d], ess, resampled)``.
    """
    center = jnp.asarray(center)
    d = center.shape[-1]
    k_draw, k_pick, k_noise = jax.random.split(key, 3)
    m = n * oversample
    eps = jax.random.normal(k_draw, (m, d), center.dtype)
    cand = center + jitter * eps
    log_q0 = -0.5 * jnp.sum(eps**2, axis=-1)  # up to a constant, which the normalisation drops
    log_w = jax.vmap(logp, in_axes=(0, None))(cand, batch) - log_q0
    log_w = jnp.where(jnp.isfinite(log_w), log_w, -jnp.inf)
    w = jax.nn.softmax(log_w)
    ess = 1.0 / jnp.sum(w**2)
    u = (jax.random.uniform(k_pick, (), center.dtype) + jnp.arange(n, dtype=center.dtype)) / n
    idx = jnp.clip(jnp.searchsorted(jnp.cumsum(w), u), 0, m - 1)
    picked = cand[idx] + 0.01 * jitter * jax.random.normal(k_noise, (n, d), center.dtype)
    resampled = jnp.isfinite(ess) & (ess >= min_ess_fraction * n)
    return jnp.where(resampled, picked, cand[:n]), ess, resampled
