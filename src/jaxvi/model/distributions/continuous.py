"""Continuous scalar distributions, with PyMC's names, parameterisations and defaults."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as npd
from numpyro.distributions import constraints as C
from numpyro.distributions.util import promote_shapes, validate_sample

from jaxvi.model.nodes import Node
from jaxvi.model.distributions.base import Continuous

__all__ = [
    "Normal", "HalfNormal", "Cauchy", "HalfCauchy", "StudentT", "HalfStudentT", "Laplace", "Logistic",
    "LogNormal", "Exponential", "Gamma", "InverseGamma", "Beta", "Uniform", "Flat", "HalfFlat",
    "TruncatedNormal", "Weibull", "ChiSquared", "SkewNormal",
]


def _one_of(what: dict, default=None):
    """The single non-None entry of ``what`` (name -> value), or ``default`` when all are None."""
    given = {k: v for k, v in what.items() if v is not None}
    if len(given) > 1:
        raise ValueError(f"give only one of {', '.join(what)} (got {', '.join(given)})")
    if not given:
        if default is None:
            raise ValueError(f"give one of {', '.join(what)}")
        return None, default
    return next(iter(given.items()))


def _constant(*values) -> bool:
    """Whether all of ``values`` are known now (not model nodes), so cross-parameter checks can run."""
    return not any(isinstance(v, Node) for v in values)


def _check_below(lower, upper, names=("lower", "upper")):
    """Constant bounds must be ordered (a reversed interval gives NaN densities, not an error)."""
    if lower is not None and upper is not None and _constant(lower, upper):
        if not np.all(np.asarray(lower, dtype=np.float64) < np.asarray(upper, dtype=np.float64)):
            raise ValueError(f"parameter {names[0]} must be below {names[1]}, got {lower!r} and {upper!r}")


def _bound(value, name, sign):
    """A truncation bound: None for no bound (None or a constant +-inf, as PyMC allows)."""
    if value is None or not _constant(value):
        return value
    arr = np.asarray(value, dtype=np.float64)
    if np.all(arr == sign * np.inf):
        return None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"parameter {name} must be finite (or {'-' if sign < 0 else ''}inf for no bound), "
                         f"got {value!r}")
    return value


def _sigma(sigma=None, tau=None, default=1.0, alt="tau"):
    """sigma from sigma or a precision (tau / lam)."""
    name, value = _one_of({"sigma": sigma, alt: tau}, default=default)
    return value if name in (None, "sigma") else value ** -0.5


class Normal(Continuous):
    """Normal(mu=0, sigma=1) or with precision ``tau``."""

    arg_checks = {"sigma": C.positive, "tau": C.positive, "mu": C.real}

    @staticmethod
    def parameterize(mu=0.0, sigma=None, tau=None):
        return {"loc": mu, "scale": _sigma(sigma, tau)}

    @staticmethod
    def numpyro(loc, scale):
        return npd.Normal(loc, scale)


class HalfNormal(Continuous):
    """HalfNormal(sigma=1) (or ``tau``) on x >= 0."""

    arg_checks = {"sigma": C.positive, "tau": C.positive}

    @staticmethod
    def parameterize(sigma=None, tau=None):
        return {"scale": _sigma(sigma, tau)}

    @staticmethod
    def numpyro(scale):
        return npd.HalfNormal(scale)


class Cauchy(Continuous):
    """Cauchy(alpha, beta): location alpha, scale beta."""

    arg_checks = {"alpha": C.real, "beta": C.positive}

    @staticmethod
    def parameterize(alpha, beta):
        return {"loc": alpha, "scale": beta}

    @staticmethod
    def numpyro(loc, scale):
        return npd.Cauchy(loc, scale)

    @staticmethod
    def support_point(d):
        return d.loc


class HalfCauchy(Continuous):
    """HalfCauchy(beta) on x >= 0."""

    arg_checks = {"beta": C.positive}

    @staticmethod
    def parameterize(beta):
        return {"scale": beta}

    @staticmethod
    def numpyro(scale):
        return npd.HalfCauchy(scale)

    @staticmethod
    def support_point(d):
        return d.scale


class StudentT(Continuous):
    """StudentT(nu, mu=0, sigma=1) (or precision ``lam``)."""

    arg_checks = {"nu": C.positive, "mu": C.real, "sigma": C.positive, "lam": C.positive}

    @staticmethod
    def parameterize(nu, mu=0.0, sigma=None, lam=None):
        return {"df": nu, "loc": mu, "scale": _sigma(sigma, lam, alt="lam")}

    @staticmethod
    def numpyro(df, loc, scale):
        return npd.StudentT(df, loc, scale)

    @staticmethod
    def support_point(d):
        return d.loc


class HalfStudentT(Continuous):
    """HalfStudentT(nu=1, sigma=1) (or ``lam``) on x >= 0."""

    arg_checks = {"nu": C.positive, "sigma": C.positive, "lam": C.positive}

    @staticmethod
    def parameterize(nu=1.0, sigma=None, lam=None):
        return {"df": nu, "scale": _sigma(sigma, lam, alt="lam")}

    @staticmethod
    def numpyro(df, scale):
        return npd.FoldedDistribution(npd.StudentT(df, jnp.zeros_like(scale), scale))

    @staticmethod
    def support_point(d):
        return d.base_dist.scale


class Laplace(Continuous):
    """Laplace(mu, b)."""

    arg_checks = {"mu": C.real, "b": C.positive}

    @staticmethod
    def parameterize(mu, b):
        return {"loc": mu, "scale": b}

    @staticmethod
    def numpyro(loc, scale):
        return npd.Laplace(loc, scale)


class Logistic(Continuous):
    """Logistic(mu=0, s=1)."""

    arg_checks = {"mu": C.real, "s": C.positive}

    @staticmethod
    def parameterize(mu=0.0, s=1.0):
        return {"loc": mu, "scale": s}

    @staticmethod
    def numpyro(loc, scale):
        return npd.Logistic(loc, scale)


class LogNormal(Continuous):
    """LogNormal(mu=0, sigma=1) (or ``tau``): log(x) ~ Normal(mu, sigma)."""

    arg_checks = {"mu": C.real, "sigma": C.positive, "tau": C.positive}

    @staticmethod
    def parameterize(mu=0.0, sigma=None, tau=None):
        return {"loc": mu, "scale": _sigma(sigma, tau)}

    @staticmethod
    def numpyro(loc, scale):
        return npd.LogNormal(loc, scale)


class Exponential(Continuous):
    """Exponential(lam) with rate ``lam`` (or ``scale`` = 1/lam)."""

    arg_checks = {"lam": C.positive, "scale": C.positive}

    @staticmethod
    def parameterize(lam=None, scale=None):
        name, value = _one_of({"lam": lam, "scale": scale}, default=1.0)
        return {"rate": 1.0 / value if name == "scale" else value}

    @staticmethod
    def numpyro(rate):
        return npd.Exponential(rate)


class Gamma(Continuous):
    """Gamma(alpha, beta) with shape alpha and rate beta, or Gamma(mu=, sigma=)."""

    arg_checks = {"alpha": C.positive, "beta": C.positive, "mu": C.positive, "sigma": C.positive}

    @staticmethod
    def parameterize(alpha=None, beta=None, mu=None, sigma=None):
        if mu is not None or sigma is not None:
            if alpha is not None or beta is not None or mu is None or sigma is None:
                raise ValueError("give either alpha and beta, or mu and sigma")
            return {"concentration": mu**2 / sigma**2, "rate": mu / sigma**2}
        if alpha is None or beta is None:
            raise ValueError("give either alpha and beta, or mu and sigma")
        return {"concentration": alpha, "rate": beta}

    @staticmethod
    def numpyro(concentration, rate):
        return npd.Gamma(concentration, rate)


class InverseGamma(Continuous):
    """InverseGamma(alpha, beta) with shape alpha and scale beta, or InverseGamma(mu=, sigma=)."""

    arg_checks = {"alpha": C.positive, "beta": C.positive, "mu": C.positive, "sigma": C.positive}

    @staticmethod
    def parameterize(alpha=None, beta=None, mu=None, sigma=None):
        if mu is not None or sigma is not None:
            if alpha is not None or beta is not None or mu is None or sigma is None:
                raise ValueError("give either alpha and beta, or mu and sigma")
            alpha = mu**2 / sigma**2 + 2.0
            return {"concentration": alpha, "rate": mu * (alpha - 1.0)}
        if alpha is None or beta is None:
            raise ValueError("give either alpha and beta, or mu and sigma")
        return {"concentration": alpha, "rate": beta}

    @staticmethod
    def numpyro(concentration, rate):
        return npd.InverseGamma(concentration, rate)


class Beta(Continuous):
    """Beta(alpha, beta), or Beta(mu=, sigma=), or Beta(mu=, nu=) with nu = alpha + beta."""

    arg_checks = {"alpha": C.positive, "beta": C.positive, "mu": C.unit_interval, "sigma": C.positive,
                  "nu": C.positive}

    @staticmethod
    def parameterize(alpha=None, beta=None, mu=None, sigma=None, nu=None):
        if alpha is not None and beta is not None and mu is None and sigma is None and nu is None:
            return {"concentration1": alpha, "concentration0": beta}
        if mu is not None and (sigma is None) != (nu is None) and alpha is None and beta is None:
            if sigma is not None and _constant(mu, sigma):
                m = np.asarray(mu, dtype=np.float64)
                if not np.all(np.asarray(sigma, dtype=np.float64) ** 2 < m * (1.0 - m)):
                    raise ValueError(f"parameter sigma must be below sqrt(mu * (1 - mu)), got sigma={sigma!r}, "
                                     f"mu={mu!r}")
            kappa = mu * (1.0 - mu) / sigma**2 - 1.0 if sigma is not None else nu
            return {"concentration1": mu * kappa, "concentration0": (1.0 - mu) * kappa}
        raise ValueError("give alpha and beta, or mu and sigma, or mu and nu")

    @staticmethod
    def numpyro(concentration1, concentration0):
        return npd.Beta(concentration1, concentration0)


class Uniform(Continuous):
    """Uniform(lower=0, upper=1)."""

    arg_checks = {"lower": C.real, "upper": C.real}

    @staticmethod
    def parameterize(lower=0.0, upper=1.0):
        _check_below(lower, upper)
        return {"low": lower, "high": upper}

    @staticmethod
    def numpyro(low, high):
        return npd.Uniform(low, high)


class Flat(Continuous):
    """The improper uniform density on the real line (log-density 0)."""

    @staticmethod
    def parameterize():
        return {}

    @staticmethod
    def numpyro():
        return npd.ImproperUniform(C.real, (), ())


class HalfFlat(Continuous):
    """The improper uniform density on the positive reals (log-density 0)."""

    @staticmethod
    def parameterize():
        return {}

    @staticmethod
    def numpyro():
        return npd.ImproperUniform(C.positive, (), ())


class TruncatedNormal(Continuous):
    """TruncatedNormal(mu=0, sigma=1 (or tau), lower=None, upper=None)."""

    arg_checks = {"mu": C.real, "sigma": C.positive, "tau": C.positive}

    @staticmethod
    def parameterize(mu=0.0, sigma=None, tau=None, lower=None, upper=None):
        lower, upper = _bound(lower, "lower", -1), _bound(upper, "upper", 1)
        _check_below(lower, upper)
        return {"loc": mu, "scale": _sigma(sigma, tau), "low": lower, "high": upper}

    @staticmethod
    def numpyro(loc, scale, low=None, high=None):
        base = npd.Normal(loc, scale)
        if low is None and high is None:
            return base
        if high is None:
            return _LeftTruncatedNormal(base, low=low)
        if low is None:
            return _RightTruncatedNormal(base, high=high)
        return _TwoSidedTruncatedNormal(base, low=low, high=high)


# numpyro's truncated normals take the log of a difference of CDFs, which is -inf (so the log-density
# +inf) once the interval lies ~8 sigma into the upper tail (~38 sigma for one-sided truncation);
# these normalise with log_ndtr in the tail that keeps the precision, as PyMC does.
class _LeftTruncatedNormal(npd.LeftTruncatedDistribution):
    @validate_sample
    def log_prob(self, value):
        d = self.base_dist
        return d.log_prob(value) - jax.scipy.special.log_ndtr((d.loc - self.low) / d.scale)


class _RightTruncatedNormal(npd.RightTruncatedDistribution):
    @validate_sample
    def log_prob(self, value):
        d = self.base_dist
        return d.log_prob(value) - jax.scipy.special.log_ndtr((self.high - d.loc) / d.scale)


class _TwoSidedTruncatedNormal(npd.TwoSidedTruncatedDistribution):
    @validate_sample
    def log_prob(self, value):
        d = self.base_dist
        a, b = (self.low - d.loc) / d.scale, (self.high - d.loc) / d.scale
        upper = a > 0  # Phi(b) - Phi(a) = Phi(-a) - Phi(-b): work in the lower tail
        log_hi = jax.scipy.special.log_ndtr(jnp.where(upper, -a, b))
        log_lo = jax.scipy.special.log_ndtr(jnp.where(upper, -b, a))
        return d.log_prob(value) - (log_hi + jnp.log(-jnp.expm1(log_lo - log_hi)))


class Weibull(Continuous):
    """Weibull(alpha, beta): shape alpha, scale beta."""

    arg_checks = {"alpha": C.positive, "beta": C.positive}

    @staticmethod
    def parameterize(alpha, beta):
        return {"scale": beta, "concentration": alpha}

    @staticmethod
    def numpyro(scale, concentration):
        return npd.Weibull(scale, concentration)


class ChiSquared(Continuous):
    """ChiSquared(nu) with nu degrees of freedom."""

    arg_checks = {"nu": C.positive}

    @staticmethod
    def parameterize(nu):
        return {"df": nu}

    @staticmethod
    def numpyro(df):
        return npd.Chi2(df)


class _SkewNormal(npd.Distribution):
    arg_constraints = {"loc": C.real, "scale": C.positive, "alpha": C.real}
    support = C.real
    reparametrized_params = ["loc", "scale", "alpha"]

    def __init__(self, loc=0.0, scale=1.0, alpha=0.0, *, validate_args=None):
        self.loc, self.scale, self.alpha = promote_shapes(loc, scale, alpha)
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(loc), jnp.shape(scale), jnp.shape(alpha))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return (jnp.log(2.0) + jax.scipy.stats.norm.logpdf(z) - jnp.log(self.scale)
                + jax.scipy.special.log_ndtr(self.alpha * z))

    def sample(self, key, sample_shape=()):
        shape = sample_shape + self.batch_shape
        k1, k2 = jax.random.split(key)
        u0 = jax.random.normal(k1, shape)
        v = jax.random.normal(k2, shape)
        delta = self.alpha / jnp.sqrt(1.0 + self.alpha**2)
        u1 = delta * u0 + jnp.sqrt(1.0 - delta**2) * v
        return self.loc + self.scale * jnp.where(u0 >= 0, u1, -u1)

    @property
    def mean(self):
        delta = self.alpha / jnp.sqrt(1.0 + self.alpha**2)
        return self.loc + self.scale * delta * jnp.sqrt(2.0 / jnp.pi)


class SkewNormal(Continuous):
    """SkewNormal(mu=0, sigma=1 (or tau), alpha=0)."""

    arg_checks = {"mu": C.real, "sigma": C.positive, "tau": C.positive, "alpha": C.real}

    @staticmethod
    def parameterize(mu=0.0, sigma=None, tau=None, alpha=1.0):
        return {"loc": mu, "scale": _sigma(sigma, tau), "alpha": alpha}

    @staticmethod
    def numpyro(loc, scale, alpha):
        return _SkewNormal(loc, scale, alpha)
