"""Variational families (floor 2): pure functions over parameter pytrees.

A family is a stateless object whose methods are pure functions of a params pytree:

* ``init(mean, sigma=None) -> params``: start at ``mean`` with per-coordinate scale ``sigma``
  (the family's own default when None);
* ``sample(params, key, n) -> z[n, d]`` (reparameterised, differentiable in params);
* ``log_prob(params, z) -> logq[...]`` and ``sample_and_log_prob(params, key, n)``;
* ``mean(params)``, ``std(params)``, ``cov(params)`` on the flat unconstrained space;
* ``coordinate_finite(params) -> bool[d]``: which coordinates still have finite parameters
  (used to name the variable whose parameters went bad).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["MeanFieldFamily", "FullRankFamily", "softplus_inverse", "FAMILIES"]

_LOG_2PI = float(np.log(2 * np.pi))


def softplus_inverse(x):
    """rho such that softplus(rho) = x (stable for large x)."""
    x = jnp.asarray(x)
    return x + jnp.log(-jnp.expm1(-x))


class MeanFieldFamily:
    """Independent normals: ``mu`` and ``rho`` with std = softplus(rho) (PyMC's MeanField)."""

    name = "mean_field"
    param_names = ("mu", "rho")

    @staticmethod
    def init(mean, sigma=None):
        mean = jnp.asarray(mean)
        rho = jnp.zeros_like(mean) if sigma is None else softplus_inverse(jnp.broadcast_to(sigma, mean.shape))
        return {"mu": mean, "rho": rho.astype(mean.dtype)}

    @staticmethod
    def std(params):
        return jax.nn.softplus(params["rho"])

    @staticmethod
    def mean(params):
        return params["mu"]

    @classmethod
    def cov(cls, params):
        return jnp.diag(cls.std(params) ** 2)

    @classmethod
    def sample(cls, params, key, n):
        eps = jax.random.normal(key, (n,) + params["mu"].shape, params["mu"].dtype)
        return params["mu"] + cls.std(params) * eps

    @classmethod
    def log_prob(cls, params, z):
        std = cls.std(params)
        r = (z - params["mu"]) / std
        return -0.5 * jnp.sum(r**2 + _LOG_2PI, axis=-1) - jnp.sum(jnp.log(std))

    @classmethod
    def sample_and_log_prob(cls, params, key, n):
        z = cls.sample(params, key, n)
        return z, cls.log_prob(params, z)

    @classmethod
    def entropy(cls, params):
        std = cls.std(params)
        return 0.5 * std.shape[-1] * (1.0 + _LOG_2PI) + jnp.sum(jnp.log(std))

    @staticmethod
    def coordinate_finite(params):
        return jnp.isfinite(params["mu"]) & jnp.isfinite(params["rho"])


def _tril_size(d: int) -> int:
    return d * (d + 1) // 2


def _dim_from_packed(m: int) -> int:
    d = int((np.sqrt(8 * m + 1) - 1) / 2)
    return d


class FullRankFamily:
    """A multivariate normal: ``mu`` and a packed lower-triangular ``L_tril`` (softplus diagonal)."""

    name = "full_rank"
    param_names = ("mu", "L_tril")

    @staticmethod
    def init(mean, sigma=None):
        mean = jnp.asarray(mean)
        d = mean.shape[-1]
        sigma = jnp.ones(d, mean.dtype) if sigma is None else jnp.broadcast_to(sigma, (d,)).astype(mean.dtype)
        rows, cols = np.tril_indices(d)
        packed = jnp.zeros(_tril_size(d), mean.dtype)
        packed = packed.at[np.flatnonzero(rows == cols)].set(softplus_inverse(sigma))
        return {"mu": mean, "L_tril": packed}

    @staticmethod
    def L(params):
        d = params["mu"].shape[-1]
        rows, cols = np.tril_indices(d)
        raw = jnp.zeros((d, d), params["L_tril"].dtype).at[rows, cols].set(params["L_tril"])
        diag = jnp.diagonal(raw)
        return raw - jnp.diag(diag) + jnp.diag(jax.nn.softplus(diag))

    @staticmethod
    def mean(params):
        return params["mu"]

    @classmethod
    def cov(cls, params):
        L = cls.L(params)
        return L @ L.T

    @classmethod
    def std(cls, params):
        return jnp.sqrt(jnp.sum(cls.L(params) ** 2, axis=-1))

    @classmethod
    def sample(cls, params, key, n):
        eps = jax.random.normal(key, (n,) + params["mu"].shape, params["mu"].dtype)
        return params["mu"] + eps @ cls.L(params).T

    @classmethod
    def log_prob(cls, params, z):
        L = cls.L(params)
        r = jax.scipy.linalg.solve_triangular(L, (z - params["mu"]).T, lower=True).T
        return -0.5 * jnp.sum(r**2 + _LOG_2PI, axis=-1) - jnp.sum(jnp.log(jnp.diagonal(L)))

    @classmethod
    def sample_and_log_prob(cls, params, key, n):
        L = cls.L(params)
        eps = jax.random.normal(key, (n,) + params["mu"].shape, params["mu"].dtype)
        z = params["mu"] + eps @ L.T
        logq = -0.5 * jnp.sum(eps**2 + _LOG_2PI, axis=-1) - jnp.sum(jnp.log(jnp.diagonal(L)))
        return z, logq

    @classmethod
    def entropy(cls, params):
        d = params["mu"].shape[-1]
        return 0.5 * d * (1.0 + _LOG_2PI) + jnp.sum(jnp.log(jnp.diagonal(cls.L(params))))

    @staticmethod
    def coordinate_finite(params):
        d = params["mu"].shape[-1]
        rows, cols = np.tril_indices(d)
        bad = ~jnp.isfinite(params["L_tril"])
        row_bad = jnp.zeros(d, bool).at[rows].max(bad).at[cols].max(bad)
        return jnp.isfinite(params["mu"]) & ~row_bad


FAMILIES = {
    "mean_field": MeanFieldFamily, "mf": MeanFieldFamily, "advi": MeanFieldFamily,
    "full_rank": FullRankFamily, "fr": FullRankFamily, "fullrank": FullRankFamily,
}
