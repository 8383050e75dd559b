"""Variational families (floor 2): pure functions over parameter pytrees.

A family is a hashable, frozen value (a frozen dataclass: equal configurations are equal, so
compiled programs keyed by a family are shared) whose methods are pure functions of a params
pytree; :class:`Family` is the protocol they follow:

* ``init(mean, sigma=None) -> params``: start at ``mean`` with per-coordinate scale ``sigma``
  (the family's own default when None);
* ``sample(params, key, n) -> z[n, d]`` (reparameterised, differentiable in params);
* ``log_prob(params, z) -> logq[...]`` and ``sample_and_log_prob(params, key, n)``;
* for the reparameterised Gaussian-based families, ``noise_dim(params) -> k`` and
  ``transform(params, eps[n, k]) -> (z, logq)`` with ``eps`` standard normal:
  ``sample_and_log_prob(params, key, n) == transform(params, normal(key, (n, k)))``, so the
  engine can draw the noise of many steps in one vectorised call;
* ``mean(params)``, ``std(params)``, ``cov(params)`` on the flat unconstrained space;
* ``coordinate_finite(params) -> bool[d]``: which coordinates still have finite parameters
  (used to name the variable whose parameters went bad).

``has_density`` says whether ``log_prob`` is defined (not for particles); ``reparameterized`` whether
``noise_dim``/``transform`` are (then the engine pre-draws the noise of many steps at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.model.transforms import PackedCholesky, softplus_inverse, tril_indices

__all__ = ["Family", "MeanFieldFamily", "FullRankFamily", "ParticlesFamily", "GroupedFamily", "LowRankFamily",
           "softplus_inverse", "standard_normal_log_prob", "FAMILIES"]

_LOG_2PI = float(np.log(2 * np.pi))


@runtime_checkable
class Family(Protocol):
    """What every variational family offers (see the module docstring); members are frozen, hashable values."""

    name: str
    has_density: bool
    reparameterized: bool

    def init(self, mean, sigma=None) -> Any: ...

    def sample(self, params, key, n): ...

    def sample_and_log_prob(self, params, key, n): ...

    def log_prob(self, params, z): ...

    def mean(self, params): ...

    def std(self, params): ...

    def cov(self, params): ...

    def coordinate_finite(self, params): ...


class _NormalNoise:
    """Shared by the reparameterised normal families: draws are ``transform(params, eps)`` of standard
    normal noise ``eps`` of ``noise_dim(params)`` coordinates, and the mean is ``mu``."""

    has_density: ClassVar[bool] = True
    reparameterized: ClassVar[bool] = True

    @staticmethod
    def mean(params):
        return params["mu"]

    @staticmethod
    def noise_dim(params):
        return params["mu"].shape[-1]

    def sample_and_log_prob(self, params, key, n):
        return self.transform(params, _standard_normal(params, key, n, self.noise_dim(params)))

    def sample(self, params, key, n):
        return self.sample_and_log_prob(params, key, n)[0]


@dataclass(frozen=True)
class MeanFieldFamily(_NormalNoise):
    """Independent normals: ``mu`` and ``rho`` with std = softplus(rho) (PyMC's MeanField)."""

    name: ClassVar[str] = "mean_field"
    param_names: ClassVar[tuple] = ("mu", "rho")

    @staticmethod
    def init(mean, sigma=None):
        mean = jnp.asarray(mean)
        rho = jnp.zeros_like(mean) if sigma is None else softplus_inverse(jnp.broadcast_to(sigma, mean.shape))
        return {"mu": mean, "rho": rho.astype(mean.dtype)}

    @staticmethod
    def std(params):
        return jax.nn.softplus(params["rho"])

    @classmethod
    def cov(cls, params):
        return jnp.diag(cls.std(params) ** 2)

    @classmethod
    def transform(cls, params, eps):
        std = cls.std(params)
        return params["mu"] + std * eps, standard_normal_log_prob(eps) - jnp.sum(jnp.log(std))

    @classmethod
    def log_prob(cls, params, z):
        std = cls.std(params)
        r = (z - params["mu"]) / std
        return -0.5 * jnp.sum(r**2 + _LOG_2PI, axis=-1) - jnp.sum(jnp.log(std))

    @classmethod
    def entropy(cls, params):
        std = cls.std(params)
        return 0.5 * std.shape[-1] * (1.0 + _LOG_2PI) + jnp.sum(jnp.log(std))

    @staticmethod
    def coordinate_finite(params):
        return jnp.isfinite(params["mu"]) & jnp.isfinite(params["rho"])


def standard_normal_log_prob(eps):
    """log N(eps; 0, I) summed over the last axis."""
    return -0.5 * jnp.sum(eps**2 + _LOG_2PI, axis=-1)


def _standard_normal(params, key, n, k):
    """``n`` standard-normal noise vectors of length ``k`` in the dtype of ``params["mu"]``."""
    return jax.random.normal(key, (n, k), params["mu"].dtype)


def _start(mean, sigma):
    """``mean`` as an array and ``sigma`` as one scale per coordinate of it (1 when None)."""
    mean = jnp.asarray(mean)
    d = mean.shape[-1]
    return mean, jnp.ones(d, mean.dtype) if sigma is None else jnp.broadcast_to(sigma, (d,)).astype(mean.dtype)


@dataclass(frozen=True)
class FullRankFamily(_NormalNoise):
    """A multivariate normal: ``mu`` and a packed lower-triangular ``L_tril`` (softplus diagonal)."""

    name: ClassVar[str] = "full_rank"
    param_names: ClassVar[tuple] = ("mu", "L_tril")

    @staticmethod
    def init(mean, sigma=None):
        mean, sigma = _start(mean, sigma)
        return {"mu": mean, "L_tril": PackedCholesky(mean.shape[-1]).inv(jnp.diag(sigma))}

    #: Where the packed Cholesky factor switches to row-slice unpacking (``PackedCholesky``'s).
    SLICE_UNPACK_FROM: ClassVar[int] = PackedCholesky.SLICE_UNPACK_FROM

    @staticmethod
    def L(params):
        """The Cholesky factor: ``L_tril`` through the one packed-triangle transform (softplus diagonal)."""
        return PackedCholesky(params["mu"].shape[-1])(params["L_tril"])

    @classmethod
    def cov(cls, params):
        L = cls.L(params)
        return L @ L.T

    @classmethod
    def std(cls, params):
        return jnp.sqrt(jnp.sum(cls.L(params) ** 2, axis=-1))

    @classmethod
    def transform(cls, params, eps):
        L = cls.L(params)
        return params["mu"] + eps @ L.T, standard_normal_log_prob(eps) - jnp.sum(jnp.log(jnp.diagonal(L)))

    @classmethod
    def log_prob(cls, params, z):
        L = cls.L(params)
        r = jax.scipy.linalg.solve_triangular(L, (z - params["mu"]).T, lower=True).T
        return -0.5 * jnp.sum(r**2 + _LOG_2PI, axis=-1) - jnp.sum(jnp.log(jnp.diagonal(L)))

    @classmethod
    def entropy(cls, params):
        d = params["mu"].shape[-1]
        return 0.5 * d * (1.0 + _LOG_2PI) + jnp.sum(jnp.log(jnp.diagonal(cls.L(params))))

    @staticmethod
    def coordinate_finite(params):
        d = params["mu"].shape[-1]
        rows, cols = tril_indices(d)
        bad = ~jnp.isfinite(params["L_tril"])
        row_bad = jnp.zeros(d, bool).at[rows].max(bad).at[cols].max(bad)
        return jnp.isfinite(params["mu"]) & ~row_bad


#: Rank of ``LowRankFamily()`` when none is given: min(d, DEFAULT_RANK).
DEFAULT_RANK = 5


@dataclass(frozen=True)
class LowRankFamily(_NormalNoise):
    """Low-rank plus diagonal normal: cov = diag(s**2) + W W^T, s = softplus(rho), W of shape (d, k).

    Sampling is z = mu + s * e1 + W e2 (e1 ~ N(0, I_d), e2 ~ N(0, I_k)); ``log_prob`` uses the
    Woodbury identity and the matrix-determinant lemma through the k x k capacitance matrix
    C = I_k + W^T diag(s**-2) W, so every operation costs O(d k^2) and no d x d matrix is formed
    (``cov`` excepted).  ``LowRankFamily(rank=k)``; ``rank=None`` uses min(d, DEFAULT_RANK).
    ``init`` starts W at a small fixed pseudo-random factor (W = 0 is a saddle of the ELBO) with
    the diagonal shrunk so that the starting std is exactly ``sigma``.
    """

    rank: int | None = None
    name: ClassVar[str] = "low_rank"
    param_names: ClassVar[tuple] = ("mu", "rho", "W")

    def __post_init__(self):
        rank = self.rank
        if rank is not None and (isinstance(rank, bool) or int(rank) != rank or int(rank) < 1):
            raise ValueError(f"LowRankFamily: rank must be a positive integer, got {rank!r}")
        object.__setattr__(self, "rank", None if rank is None else int(rank))

    def init(self, mean, sigma=None):
        mean, sigma = _start(mean, sigma)
        d = mean.shape[-1]
        k = min(d, DEFAULT_RANK) if self.rank is None else self.rank
        raw = jnp.asarray(np.random.default_rng(0).normal(size=(d, k)), mean.dtype)
        w = 0.1 * sigma[:, None] * raw / jnp.linalg.norm(raw, axis=-1, keepdims=True)  # row norm 0.1 sigma
        return {"mu": mean, "rho": softplus_inverse(jnp.sqrt(0.99) * sigma), "W": w}

    @staticmethod
    def diag_std(params):
        return jax.nn.softplus(params["rho"])

    @classmethod
    def std(cls, params):
        return jnp.sqrt(cls.diag_std(params) ** 2 + jnp.sum(params["W"] ** 2, axis=-1))

    @classmethod
    def cov(cls, params):
        w = params["W"]
        return jnp.diag(cls.diag_std(params) ** 2) + w @ w.T

    @staticmethod
    def noise_dim(params):
        d, k = params["W"].shape
        return d + k

    @classmethod
    def _push(cls, params, eps):
        d = params["W"].shape[0]
        return params["mu"] + cls.diag_std(params) * eps[..., :d] + eps[..., d:] @ params["W"].T

    @classmethod
    def transform(cls, params, eps):
        z = cls._push(params, eps)
        return z, cls.log_prob(params, z)

    @classmethod
    def sample(cls, params, key, n):
        return cls._push(params, _standard_normal(params, key, n, cls.noise_dim(params)))

    @classmethod
    def _capacitance_chol(cls, params):
        s = cls.diag_std(params)
        u = params["W"] / s[:, None]  # D^{-1/2} W
        k = u.shape[-1]
        return s, u, jnp.linalg.cholesky(jnp.eye(k, dtype=u.dtype) + u.T @ u)

    @classmethod
    def log_prob(cls, params, z):
        s, u, lc = cls._capacitance_chol(params)
        r = (z - params["mu"]) / s  # D^{-1/2} (z - mu)
        ru = r @ u
        v = jax.scipy.linalg.solve_triangular(lc, ru.reshape(-1, ru.shape[-1]).T, lower=True).T.reshape(ru.shape)
        maha = jnp.sum(r**2, axis=-1) - jnp.sum(v**2, axis=-1)
        logdet = 2 * jnp.sum(jnp.log(s)) + 2 * jnp.sum(jnp.log(jnp.diagonal(lc)))
        return -0.5 * (maha + logdet + s.shape[-1] * _LOG_2PI)

    @classmethod
    def entropy(cls, params):
        s, _, lc = cls._capacitance_chol(params)
        return 0.5 * s.shape[-1] * (1.0 + _LOG_2PI) + jnp.sum(jnp.log(s)) + jnp.sum(jnp.log(jnp.diagonal(lc)))

    @staticmethod
    def coordinate_finite(params):
        return jnp.isfinite(params["mu"]) & jnp.isfinite(params["rho"]) & jnp.all(jnp.isfinite(params["W"]), axis=-1)


@dataclass(frozen=True)
class ParticlesFamily:
    """A set of particles ``particles[n, d]`` (the Empirical approximation; SVGD moves them).

    Draws pick particles uniformly with replacement; there is no density (``has_density`` is
    False), so KLqp cannot fit it, but Stein methods can.
    """

    name: ClassVar[str] = "empirical"
    param_names: ClassVar[tuple] = ("particles",)
    has_density: ClassVar[bool] = False
    reparameterized: ClassVar[bool] = False

    @staticmethod
    def init(particles, sigma=None):
        return {"particles": jnp.asarray(particles)}

    @staticmethod
    def particles_of(params):
        return params["particles"]

    @staticmethod
    def mean(params):
        return jnp.mean(params["particles"], axis=0)

    @staticmethod
    def std(params):
        return jnp.std(params["particles"], axis=0)

    @staticmethod
    def cov(params):
        x = params["particles"]
        return jnp.atleast_2d(jnp.cov(x, rowvar=False, ddof=0 if x.shape[0] < 2 else 1))

    @staticmethod
    def sample(params, key, n):
        x = params["particles"]
        return x[jax.random.randint(key, (n,), 0, x.shape[0])]

    @staticmethod
    def log_prob(params, z):
        raise TypeError("an Empirical approximation (particles) has no density: log q is not defined")

    @staticmethod
    def coordinate_finite(params):
        return jnp.all(jnp.isfinite(params["particles"]), axis=0)


@dataclass(frozen=True)
class GroupedFamily:
    """Independent families on disjoint blocks of the flat vector (PyMC's ``Group``s).

    ``GroupedFamily.of([(indices, family), ...])``; params are ``{"groups": [params per part]}``.
    """

    blocks: tuple  # (flat indices of the block as a tuple of ints, ...)
    families: tuple
    param_names: ClassVar[tuple] = ("groups",)

    @classmethod
    def of(cls, parts) -> "GroupedFamily":
        return cls(tuple(tuple(int(i) for i in np.asarray(idx).ravel()) for idx, _ in parts),
                   tuple(family for _, family in parts))

    @cached_property
    def indices(self) -> list[np.ndarray]:
        return [np.asarray(b, dtype=np.int64) for b in self.blocks]

    @property
    def size(self) -> int:
        return int(sum(len(b) for b in self.blocks))

    @property
    def name(self) -> str:
        return "+".join(f.name for f in self.families)

    @property
    def has_density(self) -> bool:
        return all(f.has_density for f in self.families)

    @property
    def reparameterized(self) -> bool:  # a part without noise (particles): key-driven sampling only
        return all(f.reparameterized for f in self.families)

    def _noise_splits(self, params):
        return np.cumsum([f.noise_dim(p) for f, p in zip(self.families, params["groups"])])[:-1]

    def noise_dim(self, params):
        return int(sum(f.noise_dim(p) for f, p in zip(self.families, params["groups"])))

    def transform(self, params, eps):
        zs, logq = [], 0.0
        for f, p, e in zip(self.families, params["groups"], jnp.split(eps, self._noise_splits(params), axis=-1)):
            z, lq = f.transform(p, e)
            zs.append(z)
            logq = logq + lq
        return self._scatter(zs, eps.shape[:-1]), logq

    def init(self, mean, sigma=None):
        return {"groups": [f.init(mean[..., i], None if sigma is None else jnp.asarray(sigma)[..., i])
                           for i, f in zip(self.indices, self.families)]}

    def _scatter(self, parts, lead=()):
        out = jnp.zeros(lead + (self.size,), parts[0].dtype)
        for i, x in zip(self.indices, parts):
            out = out.at[..., i].set(x)
        return out

    def sample_and_log_prob(self, params, key, n):
        keys = jax.random.split(key, len(self.families))
        zs, logq = [], 0.0
        for f, p, k in zip(self.families, params["groups"], keys):
            z, lq = f.sample_and_log_prob(p, k, n)
            zs.append(z)
            logq = logq + lq
        return self._scatter(zs, (n,)), logq

    def sample(self, params, key, n):
        keys = jax.random.split(key, len(self.families))
        return self._scatter([f.sample(p, k, n) for f, p, k in zip(self.families, params["groups"], keys)], (n,))

    def log_prob(self, params, z):
        return sum(f.log_prob(p, z[..., i]) for f, p, i in zip(self.families, params["groups"], self.indices))

    def mean(self, params):
        return self._scatter([f.mean(p) for f, p in zip(self.families, params["groups"])])

    def std(self, params):
        return self._scatter([f.std(p) for f, p in zip(self.families, params["groups"])])

    def cov(self, params):
        out = None
        for i, f, p in zip(self.indices, self.families, params["groups"]):
            c = f.cov(p)
            out = jnp.zeros((self.size, self.size), c.dtype) if out is None else out
            out = out.at[np.ix_(i, i)].set(c)
        return out

    def coordinate_finite(self, params):
        parts = [f.coordinate_finite(p) for f, p in zip(self.families, params["groups"])]
        out = jnp.zeros(self.size, bool)
        for i, x in zip(self.indices, parts):
            out = out.at[i].set(x)
        return out

    def __repr__(self):
        return f"GroupedFamily({self.name})"


FAMILIES = {
    "mean_field": MeanFieldFamily(), "mf": MeanFieldFamily(), "advi": MeanFieldFamily(),
    "full_rank": FullRankFamily(), "fr": FullRankFamily(), "fullrank": FullRankFamily(),
    "low_rank": LowRankFamily(), "lr": LowRankFamily(), "lowrank": LowRankFamily(),
    "empirical": ParticlesFamily(), "histogram": ParticlesFamily(),
}
