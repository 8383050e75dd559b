"""Multivariate distributions: MvNormal, Dirichlet, LKJCholeskyCov."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as npd
from numpyro.distributions import constraints as C

from jaxvi.model.nodes import Node, lift
from jaxvi.model.context import Deterministic
from jaxvi.model.transforms import PackedCholesky, cholesky_cov_packed, diag_indices
from jaxvi.model.distributions.base import Continuous, DistSpec, Static

__all__ = ["MvNormal", "Dirichlet", "LKJCholeskyCov", "expand_packed_triangular"]


class MvNormal(Continuous):
    """MvNormal(mu, cov=) or with ``chol=`` (lower Cholesky factor of cov) or precision ``tau=``."""

    arg_checks = {"mu": C.real, "cov": C.positive_definite, "tau": C.positive_definite}

    @staticmethod
    def parameterize(mu, cov=None, tau=None, chol=None, lower=True):
        given = {k: v for k, v in {"cov": cov, "tau": tau, "chol": chol}.items() if v is not None}
        if len(given) != 1:
            raise ValueError("give exactly one of cov, tau, chol")
        if chol is not None and not isinstance(chol, Node):  # checked here: it may be an upper factor
            given_chol, chol = chol, np.asarray(chol, dtype=np.float64)
            chol = chol if lower else np.swapaxes(chol, -1, -2)
            if not (np.all(np.isfinite(chol)) and np.all(np.asarray(C.lower_cholesky(jnp.asarray(chol))))):
                raise ValueError(f"parameter chol must be a {'lower' if lower else 'upper'}-triangular Cholesky "
                                 f"factor with a positive diagonal, got {given_chol!r}")
        elif chol is not None and not lower:  # an upper factor: transpose its last two axes
            chol = chol.mT
        elif chol is None and not isinstance(cov if cov is not None else tau, Node):
            # a constant cov or tau: factor it once here (float64), not at every step of the fit
            m = np.asarray(cov if cov is not None else tau, dtype=np.float64)
            chol = np.linalg.cholesky(m if cov is not None else np.linalg.inv(m))
            cov = tau = None
        return {"loc": mu, "covariance_matrix": cov, "precision_matrix": tau, "scale_tril": chol}

    @staticmethod
    def numpyro(loc, covariance_matrix=None, precision_matrix=None, scale_tril=None):
        return npd.MultivariateNormal(loc, covariance_matrix=covariance_matrix,
                                      precision_matrix=precision_matrix, scale_tril=scale_tril)


class Dirichlet(Continuous):
    """Dirichlet(a) over the simplex of the last axis."""

    arg_checks = {"a": C.positive}

    @staticmethod
    def parameterize(a):
        return {"concentration": a}

    @staticmethod
    def numpyro(concentration):
        return npd.Dirichlet(concentration)


def _unpack(n, packed):
    return PackedCholesky(n, positive=None)(packed)


expand_packed_triangular = lift(lambda n, packed, lower=True: _unpack(n, packed) if lower
                                else jnp.swapaxes(_unpack(n, packed), -1, -2), label="expand_packed_triangular")


class _LKJCholeskyCovPacked(npd.Distribution):
    """Density of the packed Cholesky factor L = diag(sd) @ L_corr, sd ~ sd_dist, L_corr ~ LKJ(eta)."""

    def __init__(self, eta, n, sd_dist, *, validate_args=None):
        self.eta, self.n, self.sd_dist = eta, int(n), sd_dist
        super().__init__(batch_shape=jnp.shape(eta), event_shape=(self.n * (self.n + 1) // 2,),
                         validate_args=validate_args)

    @C.dependent_property(is_discrete=False, event_dim=1)
    def support(self):
        return cholesky_cov_packed(self.n)

    def log_prob(self, value):
        n = self.n
        chol = _unpack(n, value)
        sd = jnp.sqrt(jnp.sum(chol**2, axis=-1))
        corr_chol = chol / sd[..., :, None]
        corr_diag = value[..., diag_indices(n)] / sd
        lkj = npd.LKJCholesky(n, self.eta).log_prob(corr_chol)
        # |d L / d(sd, off-diagonal of L_corr)| = prod_i sd_i^i / corr_diag_i
        log_inv_jac = jnp.sum(jnp.log(corr_diag) - jnp.arange(n) * jnp.log(sd), axis=-1)
        return lkj + jnp.sum(self.sd_dist.log_prob(sd), axis=-1) + log_inv_jac

    def sample(self, key, sample_shape=()):
        import jax

        k1, k2 = jax.random.split(key)
        corr = npd.LKJCholesky(self.n, self.eta).sample(k1, sample_shape + self.batch_shape)
        sd = self.sd_dist.sample(k2, sample_shape + self.batch_shape)
        sd = jnp.broadcast_to(sd, sample_shape + self.batch_shape + (self.n,))
        return PackedCholesky(self.n, positive=None).inv(corr * sd[..., :, None])


class _LKJCholeskyCovSpec(Continuous):
    @staticmethod
    def parameterize(eta, n, sd_dist):
        return {"eta": eta, "n": Static(int(n)), "sd_dist": sd_dist}

    @staticmethod
    def numpyro(eta, n, sd_dist):
        sd = sd_dist.expand((n,)) if tuple(sd_dist.batch_shape) != (n,) else sd_dist
        return _LKJCholeskyCovPacked(eta, n, sd)


class LKJCholeskyCov:
    """Cholesky factor of a covariance matrix with LKJ(eta) correlations and ``sd_dist`` scales.

    ``chol, corr, stds = jv.LKJCholeskyCov("chol", eta=2, n=3, sd_dist=jv.Exponential.dist(1))``;
    with ``compute_corr=False`` the packed lower triangle is returned (as in PyMC).
    """

    arg_checks = {"eta": C.positive}

    def __new__(cls, name, eta, n, sd_dist, *, compute_corr=True, store_in_trace=True, model=None, **kwargs):
        if not isinstance(sd_dist, DistSpec):
            raise TypeError(f"LKJCholeskyCov {name!r}: sd_dist must be an unnamed distribution such as "
                            "jv.Exponential.dist(1.0)")
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"LKJCholeskyCov {name!r}: n must be a positive integer, got {n!r}")
        if not isinstance(eta, Node) and not np.all(np.asarray(eta) > 0):
            raise ValueError(f"LKJCholeskyCov {name!r}: parameter eta must be positive, got {eta!r}")
        packed = _LKJCholeskyCovSpec(name, eta=eta, n=n, sd_dist=sd_dist, model=model, **kwargs)
        if not compute_corr:
            return packed
        chol = expand_packed_triangular(int(n), packed)
        stds = jnp_sqrt_rowsum(chol)
        corr_chol = chol / stds[..., :, None]
        corr = corr_chol @ corr_chol.mT
        if store_in_trace:
            corr = Deterministic(f"{name}_corr", corr, model=model)
            stds = Deterministic(f"{name}_stds", stds, model=model)
        return chol, corr, stds

    @classmethod
    def dist(cls, eta, n, sd_dist, **kwargs):
        return _LKJCholeskyCovSpec.dist(eta=eta, n=n, sd_dist=sd_dist, **kwargs)


jnp_sqrt_rowsum = lift(lambda chol: jnp.sqrt(jnp.sum(chol**2, axis=-1)), label="row_norms")
