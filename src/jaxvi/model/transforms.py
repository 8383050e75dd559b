"""The one transform registry: from a distribution's support to its unconstrained space.

The bijection itself comes from ``numpyro.distributions.transforms.biject_to`` (so its
log-Jacobian stays correct); this module only adds PyMC's value-variable naming
(``sd_log__``, ``p_logodds__``, ...) and the packed covariance-Cholesky space used by
``LKJCholeskyCov``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import constraints
from numpyro.distributions.transforms import Transform, biject_to

__all__ = ["biject_to", "transform_suffix", "value_var_name", "CholeskyCovPacked", "cholesky_cov_packed",
           "PackedCholesky", "softplus_inverse", "tril_size", "tril_indices", "diag_indices"]

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


# -- the packed lower triangle: the one place that knows its layout -----------------------------------
def tril_size(n: int) -> int:
    """Entries of the packed lower triangle of an n x n matrix."""
    return n * (n + 1) // 2


def tril_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each entry of the packed lower triangle: row-major, as PyMC packs it."""
    return np.tril_indices(n)


def diag_indices(n: int) -> np.ndarray:
    """Positions of the diagonal in a row-major packed lower triangle of an n x n matrix."""
    return np.cumsum(np.arange(1, n + 1)) - 1


def softplus_inverse(x):
    """rho such that softplus(rho) = x (stable for large x)."""
    x = jnp.asarray(x)
    return x + jnp.log(-jnp.expm1(-x))


_POSITIVE = {
    "softplus": (jax.nn.softplus, softplus_inverse, lambda x: -jax.nn.softplus(-x)),
    "exp": (jnp.exp, jnp.log, lambda x: x),
    None: (lambda x: x, lambda y: y, jnp.zeros_like),
}  # name -> (map of the diagonal, its inverse, log of its derivative)


class PackedCholesky(Transform):
    """Packed lower triangle (R^{n(n+1)/2}) -> lower-triangular n x n matrix with a positive diagonal.

    The packed entries are the matrix's lower triangle row by row (:func:`tril_indices`); the diagonal
    entries go through ``positive`` ("softplus" for the full-rank family's ``L_tril``, "exp", or None
    for factors packed as they are, e.g. an ``LKJCholeskyCov`` value).  ``inv`` packs a matrix.
    """

    domain = constraints.real_vector
    codomain = constraints.lower_cholesky
    #: Above this size an unbatched vector is unpacked row by row (slices) rather than by one scatter.
    SLICE_UNPACK_FROM = 100

    def __init__(self, n: int, positive: str | None = "softplus"):
        self.n, self.positive = int(n), positive
        self._f, self._f_inv, self._log_df = _POSITIVE[positive]

    def __call__(self, x):
        n = self.n
        if x.ndim > 1 or n < self.SLICE_UNPACK_FROM:
            rows, cols = tril_indices(n)
            raw = jnp.zeros(x.shape[:-1] + (n, n), x.dtype).at[..., rows, cols].set(x)
        else:
            # Row i of the packed triangle starts at i(i+1)/2: one length-n slice per row, masked to the
            # triangle.  The scatter above makes XLA constant-fold n^2/2-long index arrays (4.6 s of
            # compile at n = 1000, 15-28 s at n = 2000) and runs 1.2-2x slower there.
            padded = jnp.concatenate([x, jnp.zeros((n,), x.dtype)])
            starts = (np.arange(n) * (np.arange(n) + 1) // 2).astype(np.int32)
            raw = jax.vmap(lambda s: jax.lax.dynamic_slice(padded, (s,), (n,)))(jnp.asarray(starts))
        i = jax.lax.broadcasted_iota(jnp.int32, (n, n), 0)
        j = jax.lax.broadcasted_iota(jnp.int32, (n, n), 1)
        return jnp.where(i == j, self._f(raw), jnp.where(j < i, raw, jnp.zeros((), raw.dtype)))

    def _inverse(self, y):
        rows, cols = tril_indices(self.n)
        packed = y[..., rows, cols]
        diag = jnp.asarray(rows == cols)
        return jnp.where(diag, self._f_inv(jnp.where(diag, packed, 1.0)), packed)

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        return jnp.sum(self._log_df(x[..., diag_indices(self.n)]), axis=-1)

    def tree_flatten(self):
        return (), ((), {"n": self.n, "positive": self.positive})

    def __eq__(self, other):
        return isinstance(other, PackedCholesky) and (other.n, other.positive) == (self.n, self.positive)


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
