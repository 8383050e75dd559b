"""Discrete distributions (observed only in jaxvi), with PyMC's parameterisations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as npd
from numpyro.distributions import constraints as C
from numpyro.distributions.util import promote_shapes

from jaxvi.model.distributions.base import Discrete
from jaxvi.model.distributions.continuous import _one_of

__all__ = ["Bernoulli", "Binomial", "BetaBinomial", "Poisson", "NegativeBinomial", "Categorical", "Geometric",
           "DiscreteUniform"]


def _probs_or_logits(p, logit_p) -> dict:
    """PyMC's p= / logit_p= choice as numpyro's probs / logits arguments."""
    name, value = _one_of({"p": p, "logit_p": logit_p})
    return {"probs": value if name == "p" else None, "logits": value if name != "p" else None}


class Bernoulli(Discrete):
    """Bernoulli(p) or Bernoulli(logit_p=)."""

    arg_checks = {"p": C.unit_interval, "logit_p": C.real}

    @staticmethod
    def parameterize(p=None, logit_p=None):
        return _probs_or_logits(p, logit_p)

    @staticmethod
    def numpyro(probs=None, logits=None):
        return npd.BernoulliProbs(probs) if probs is not None else npd.BernoulliLogits(logits)


class Binomial(Discrete):
    """Binomial(n, p) or Binomial(n, logit_p=)."""

    arg_checks = {"n": C.nonnegative_integer, "p": C.unit_interval, "logit_p": C.real}

    @staticmethod
    def parameterize(n, p=None, logit_p=None):
        return {"total_count": n, **_probs_or_logits(p, logit_p)}

    @staticmethod
    def numpyro(total_count, probs=None, logits=None):
        if probs is not None:
            return npd.BinomialProbs(probs, total_count)
        return npd.BinomialLogits(logits, total_count)


class BetaBinomial(Discrete):
    """BetaBinomial(alpha, beta, n)."""

    arg_checks = {"alpha": C.positive, "beta": C.positive, "n": C.nonnegative_integer}

    @staticmethod
    def parameterize(alpha, beta, n):
        return {"concentration1": alpha, "concentration0": beta, "total_count": n}

    @staticmethod
    def numpyro(concentration1, concentration0, total_count):
        return npd.BetaBinomial(concentration1, concentration0, total_count)


class Poisson(Discrete):
    """Poisson(mu) with mean mu."""

    arg_checks = {"mu": C.nonnegative}

    @staticmethod
    def parameterize(mu):
        return {"rate": mu}

    @staticmethod
    def numpyro(rate):
        return npd.Poisson(rate)


class NegativeBinomial(Discrete):
    """NegativeBinomial(mu, alpha) (mean, overdispersion) or NegativeBinomial(p=, n=) as in PyMC."""

    arg_checks = {"mu": C.positive, "alpha": C.positive, "p": C.unit_interval, "n": C.positive}

    @staticmethod
    def parameterize(mu=None, alpha=None, p=None, n=None):
        if mu is not None and alpha is not None and p is None and n is None:
            return {"mean": mu, "concentration": alpha}
        if p is not None and n is not None and mu is None and alpha is None:
            return {"mean": n * (1.0 - p) / p, "concentration": n}
        raise ValueError("give mu and alpha, or p and n")

    @staticmethod
    def numpyro(mean, concentration):
        return npd.NegativeBinomial2(mean, concentration)


class Categorical(Discrete):
    """Categorical(p) over 0..K-1 (p normalised along its last axis) or Categorical(logit_p=)."""

    arg_checks = {"p": C.nonnegative, "logit_p": C.real}

    @staticmethod
    def parameterize(p=None, logit_p=None):
        return _probs_or_logits(p, logit_p)

    @staticmethod
    def numpyro(probs=None, logits=None):
        if probs is not None:
            return npd.CategoricalProbs(probs / jnp.sum(probs, axis=-1, keepdims=True))
        return npd.CategoricalLogits(logits)


class _Geometric1(npd.Distribution):
    """Number of trials up to and including the first success (support 1, 2, ...)."""

    arg_constraints = {"probs": C.unit_interval}
    support = C.positive_integer

    def __init__(self, probs, *, validate_args=None):
        self.probs = probs
        super().__init__(batch_shape=jnp.shape(probs), validate_args=validate_args)

    def log_prob(self, value):
        return jnp.log(self.probs) + (value - 1) * jnp.log1p(-self.probs)

    def sample(self, key, sample_shape=()):
        return npd.GeometricProbs(self.probs).sample(key, sample_shape) + 1

    @property
    def mean(self):
        return 1.0 / self.probs


class Geometric(Discrete):
    """Geometric(p): trials until the first success, support 1, 2, ... (PyMC's convention)."""

    arg_checks = {"p": C.unit_interval}

    @staticmethod
    def parameterize(p):
        return {"probs": p}

    @staticmethod
    def numpyro(probs):
        return _Geometric1(probs)


class DiscreteUniform(Discrete):
    """DiscreteUniform(lower, upper), both inclusive."""

    @staticmethod
    def parameterize(lower, upper):
        return {"low": lower, "high": upper}

    @staticmethod
    def numpyro(low, high):
        low, high = promote_shapes(low, high)
        return npd.DiscreteUniform(low, high)


del jax
