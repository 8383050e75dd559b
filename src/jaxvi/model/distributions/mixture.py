"""Mixtures and random walks: Mixture, NormalMixture, GaussianRandomWalk."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpyro.distributions as npd
from numpyro.distributions import constraints as C

from jaxvi.model.distributions.base import Continuous, DistSpec, Static
from jaxvi.model.distributions.continuous import Normal, _sigma

__all__ = ["Mixture", "NormalMixture", "GaussianRandomWalk"]


class Mixture(Continuous):
    """Mixture(w, comp_dists): a list of unnamed components, or one whose last axis indexes them."""

    arg_checks = {"w": C.simplex}

    @staticmethod
    def parameterize(w, comp_dists):
        if isinstance(comp_dists, DistSpec):
            return {"probs": w, "components": comp_dists}
        comps = list(comp_dists)
        if not comps or not all(isinstance(c, DistSpec) for c in comps):
            raise TypeError("comp_dists must be unnamed distributions made with .dist(...)")
        return {"probs": w, "components": comps}

    @staticmethod
    def numpyro(probs, components):
        mixing = npd.CategoricalProbs(probs)
        if isinstance(components, list):
            return npd.MixtureGeneral(mixing, components)
        return npd.MixtureSameFamily(mixing, components)


class NormalMixture(Continuous):
    """NormalMixture(w, mu, sigma (or tau)): components along the last axis of mu/sigma."""

    arg_checks = {"w": C.simplex, "sigma": C.positive, "tau": C.positive}

    @staticmethod
    def parameterize(w, mu, sigma=None, tau=None):
        return {"probs": w, "loc": mu, "scale": _sigma(sigma, tau)}

    @staticmethod
    def numpyro(probs, loc, scale):
        loc, scale = jnp.broadcast_arrays(loc, scale)
        return npd.MixtureSameFamily(npd.CategoricalProbs(probs), npd.Normal(loc, scale))


class _GaussianRandomWalk(npd.Distribution):
    """x[0] ~ init_dist, x[t] - x[t-1] ~ Normal(mu, sigma) along the last axis (steps + 1 values)."""

    support = C.real_vector

    def __init__(self, mu, sigma, init_dist, steps, *, validate_args=None):
        self.mu, self.sigma, self.init_dist, self.steps = mu, sigma, init_dist, int(steps)
        batch = jax.lax.broadcast_shapes(jnp.shape(mu), jnp.shape(sigma), tuple(init_dist.batch_shape))
        super().__init__(batch_shape=batch, event_shape=(self.steps + 1,), validate_args=validate_args)

    def log_prob(self, value):
        first = self.init_dist.log_prob(value[..., 0])
        steps = npd.Normal(jnp.expand_dims(self.mu, -1), jnp.expand_dims(self.sigma, -1)).log_prob(jnp.diff(value, axis=-1))
        return first + jnp.sum(steps, axis=-1)

    def sample(self, key, sample_shape=()):
        k1, k2 = jax.random.split(key)
        shape = sample_shape + self.batch_shape
        x0 = jnp.broadcast_to(self.init_dist.sample(k1, sample_shape), shape)
        eps = jax.random.normal(k2, shape + (self.steps,))
        incr = jnp.expand_dims(self.mu, -1) + jnp.expand_dims(self.sigma, -1) * eps
        return jnp.concatenate([x0[..., None], x0[..., None] + jnp.cumsum(incr, axis=-1)], axis=-1)

    @property
    def mean(self):
        base = jnp.broadcast_to(self.init_dist.mean, self.batch_shape)
        return base[..., None] + jnp.expand_dims(self.mu, -1) * jnp.arange(self.steps + 1)


class GaussianRandomWalk(Continuous):
    """GaussianRandomWalk(mu=0, sigma=1, init_dist=Normal.dist(0, 100), steps=None).

    The walk has ``steps + 1`` values along its last axis; ``steps`` may be given through ``shape``.
    """

    arg_checks = {"mu": C.real, "sigma": C.positive}

    @staticmethod
    def parameterize(mu=0.0, sigma=1.0, init_dist=None, steps=None):
        if init_dist is None:
            warnings.warn("GaussianRandomWalk: init_dist not given, using Normal.dist(0, 100)", UserWarning,
                          stacklevel=4)
            init_dist = Normal.dist(0.0, 100.0)
        if not isinstance(init_dist, DistSpec):
            raise TypeError("init_dist must be an unnamed distribution such as jv.Normal.dist(0, 1)")
        return {"mu": mu, "sigma": sigma, "init_dist": init_dist, "steps": Static(steps)}

    @staticmethod
    def numpyro(mu, sigma, init_dist, steps):
        if steps is None:
            raise ValueError("GaussianRandomWalk needs steps= or a shape")
        return _GaussianRandomWalk(mu, sigma, init_dist, steps)

    @classmethod
    def _spec(cls, owner, args, kwargs, shape=None):
        if kwargs.get("steps") is None and shape is not None and len(args) < 4:
            kwargs = {**kwargs, "steps": int(shape[-1]) - 1}
        return super()._spec(owner, args, kwargs, shape=shape)
