"""``jv.math``: every ``jax.numpy`` function, lifted to accept model nodes, plus PyMC's extras.

``jv.math.sin(x)`` returns a lazy node when ``x`` is a model variable and a plain array otherwise.
Names not defined here are looked up in ``jax.numpy`` on first use (``jv.math.einsum``,
``jv.math.where``, ...).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp

from jaxvi.model.nodes import lift

__all__ = [
    "invlogit", "expit", "logit", "sigmoid", "softplus", "log1pexp", "log1mexp", "logsumexp", "dot",
    "switch", "sqr", "erf", "erfc", "erfinv", "gammaln", "logdiffexp", "eq", "neq", "lt", "le", "gt", "ge",
    "fill_diagonal", "lift",
]

invlogit = lift(jax.nn.sigmoid, label="invlogit")
expit = invlogit
sigmoid = lift(jax.nn.sigmoid, label="sigmoid")
logit = lift(jsp.logit, label="logit")
softplus = lift(jax.nn.softplus, label="softplus")
log1pexp = lift(jax.nn.softplus, label="log1pexp")
logsumexp = lift(jsp.logsumexp, label="logsumexp")
dot = lift(jnp.dot, label="dot")
switch = lift(jnp.where, label="switch")
sqr = lift(jnp.square, label="sqr")
erf = lift(jsp.erf, label="erf")
erfc = lift(jsp.erfc, label="erfc")
erfinv = lift(jsp.erfinv, label="erfinv")
gammaln = lift(jsp.gammaln, label="gammaln")
eq = lift(jnp.equal, label="eq")
neq = lift(jnp.not_equal, label="neq")
lt = lift(jnp.less, label="lt")
le = lift(jnp.less_equal, label="le")
gt = lift(jnp.greater, label="gt")
ge = lift(jnp.greater_equal, label="ge")


fill_diagonal = lift(lambda a, val: jnp.fill_diagonal(a, val, inplace=False), label="fill_diagonal")  # PyMC's form:
# a new array (jax.numpy's own needs inplace=False)


def _log1mexp(x):
    """log(1 - exp(-x)) for x > 0, computed stably (PyMC's convention)."""
    return jnp.where(x < 0.6931472, jnp.log(-jnp.expm1(-x)), jnp.log1p(-jnp.exp(-x)))


log1mexp = lift(_log1mexp, label="log1mexp")
logdiffexp = lift(lambda a, b: a + _log1mexp(a - b), label="logdiffexp")

_lifted: dict[str, object] = {}


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _lifted:
        fn = getattr(jnp, name, None)
        if fn is None or not callable(fn):
            raise AttributeError(f"jaxvi.math has no function {name!r} (and neither has jax.numpy)")
        _lifted[name] = lift(fn, label=name)
    return _lifted[name]


def __dir__():
    return sorted(set(__all__) | {n for n in dir(jnp) if not n.startswith("_") and callable(getattr(jnp, n))})
