"""The one transform registry: from a distribution's support to its unconstrained space.

The bijection itself comes from ``numpyro.distributions.transforms.biject_to`` (so its
log-Jacobian stays correct); this module only adds PyMC's value-variable naming
(``sd_log__``, ``p_logodds__``, ...) and the packed covariance-Cholesky space used by
``LKJCholeskyCov``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from numpyro.distributions import constraints
from numpyro.distributions.transforms import Transform, biject_to

__all__ = ["biject_to", "transform_suffix", "value_var_name", "CholeskyCovPacked", "cholesky_cov_packed"]

# PyMC's names for the transforms, by numpyro constraint type.
_SUFFIX = {
    constraints._Positive: "log",
    constraints._Nonnegative: "log",
    constraints._SoftplusPositive: "log",
    constraints._GreaterThan: "lowerbound",
    constraints._GreaterThanEq: "lowerbound",
    constraints._LessThan: "upperbound",
    constraints._LessThanEq: "upperbound",
    constraints._UnitInterval: "logodds",
    constraints._Interval: "interval",
    constraints._OpenInterval: "interval",
    constraints._Simplex: "simplex",
    constraints._OrderedVector: "ordered",
    constraints._PositiveOrderedVector: "ordered",
    constraints._CorrCholesky: "cholesky-corr",
    constraints._CorrMatrix: "corr",
    constraints._PositiveDefinite: "cholesky-cov",
}
_UNTRANSFORMED = (constraints._Real, constraints._RealVector, constraints._RealMatrix)


def _base(support):
    while isinstance(support, constraints._IndependentConstraint):
        support = support.base_constraint
    return support


def is_unconstrained(support) -> bool:
    return isinstance(_base(support), _UNTRANSFORMED)


def transform_suffix(support) -> str | None:
    """PyMC's suffix for the transform of ``support`` (None if no transform is needed)."""
    base = _base(support)
    if isinstance(base, _UNTRANSFORMED):
        return None
    for cls in type(base).__mro__:
        if cls in _SUFFIX:
            return _SUFFIX[cls]
    return type(base).__name__.strip("_").lower()


def value_var_name(name: str, support) -> str:
    suffix = transform_suffix(support)
    return name if suffix is None else f"{name}_{suffix}__"


class _CholeskyCovPacked(constraints.Constraint):
    """Packed (row-major lower triangle) Cholesky factors of covariance matrices."""

    event_dim = 1

    def __init__(self, n: int):
        self.n = int(n)

    def __call__(self, x):
        diag = x[..., diag_indices(self.n)]
        return jnp.all(diag > 0, axis=-1) & jnp.all(jnp.isfinite(x), axis=-1)

    def feasible_like(self, prototype):
        out = jnp.zeros_like(prototype)
        return out.at[..., diag_indices(self.n)].set(1.0)

    def tree_flatten(self):
        return (), ((), {"n": self.n})


cholesky_cov_packed = _CholeskyCovPacked


def diag_indices(n: int) -> np.ndarray:
    """Positions of the diagonal in a row-major packed lower triangle of an n x n matrix."""
    return np.cumsum(np.arange(1, n + 1)) - 1


class CholeskyCovPacked(Transform):
    """Unconstrained vector -> packed Cholesky factor: exp on the diagonal entries (PyMC's transform)."""

    domain = constraints.real_vector

    def __init__(self, n: int):
        self.n = int(n)

    @property
    def _diag(self):
        return diag_indices(self.n)

    @property
    def codomain(self):
        return _CholeskyCovPacked(self.n)

    def __call__(self, x):
        return x.at[..., self._diag].set(jnp.exp(x[..., self._diag]))

    def _inverse(self, y):
        return y.at[..., self._diag].set(jnp.log(y[..., self._diag]))

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        return jnp.sum(x[..., self._diag], axis=-1)

    def tree_flatten(self):
        return (), ((), {"n": self.n})

    def __eq__(self, other):
        return isinstance(other, CholeskyCovPacked) and other.n == self.n


@biject_to.register(_CholeskyCovPacked)
def _biject_cholesky_cov_packed(constraint):
    return CholeskyCovPacked(constraint.n)


_SUFFIX[_CholeskyCovPacked] = "cholesky-cov-packed"
