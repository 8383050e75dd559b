"""Normalizing flows (floor 2): a flow family as a chain of pure layer functions.

A draw is ``z = T_K(... T_1(eps))`` with ``eps ~ N(0, I)`` on the model's flat unconstrained
vector, and ``log q(z) = log N(eps) - sum_k log|det J_k|``.  Flows are named by PyMC 3's
formula strings: layers joined by ``-``, each ``name`` or ``name*k``, applied from the left
(``"scale-loc"`` is mean-field; ``"planar*4-scale-loc"`` four planar layers under it).

Classic layers are written here as small pure functions: ``loc``, ``scale``, ``planar``,
``radial``, ``householder`` (``hh``).  Modern layers come from flowjax (equinox modules,
split into trainable arrays and static structure): ``realnvp`` (affine coupling), ``maf``
(masked autoregressive, affine) and ``nsf`` (rational-quadratic spline coupling; on a single
coordinate an elementwise spline).

Every flow starts as the identity map, so a fresh flow is N(initial point, I), the same start
as mean-field ADVI (planar flows are constrained to stay invertible with a shifted softplus
that is exactly zero at the start; radial flows start with beta = 0).  Unless the spec has its
own ``loc`` layer, a diagonal affine output layer ``scale-loc`` is appended: the last ``loc``
starts at the model's initial point, so the learned layers work on a standardised scale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.vi.families import standard_normal_log_prob

__all__ = ["FlowFamily", "parse_flow", "LAYERS", "is_flow_spec"]

_SHIFT = float(np.log(np.e - 1.0))  # softplus(_SHIFT) == 1


class Loc:
    """``y = z + b``."""

    invertible = True

    @staticmethod
    def init(key, d, dtype):
        return {"b": jnp.zeros(d, dtype)}

    @staticmethod
    def forward(p, z):
        return z + p["b"], jnp.zeros(z.shape[:-1], z.dtype)

    @staticmethod
    def inverse(p, y):
        return y - p["b"], jnp.zeros(y.shape[:-1], y.dtype)


class Scale:
    """``y = z * exp(log_scale)`` (diagonal)."""

    invertible = True

    @staticmethod
    def init(key, d, dtype):
        return {"log_scale": jnp.zeros(d, dtype)}

    @staticmethod
    def forward(p, z):
        return z * jnp.exp(p["log_scale"]), jnp.broadcast_to(jnp.sum(p["log_scale"]), z.shape[:-1])

    @staticmethod
    def inverse(p, y):
        return y * jnp.exp(-p["log_scale"]), jnp.broadcast_to(jnp.sum(p["log_scale"]), y.shape[:-1])


class Planar:
    """``y = z + u_hat tanh(w.z + b)`` (Rezende & Mohamed 2015), kept invertible.

    ``u_hat = u + (m(w.u) - w.u) w / |w|^2`` with ``m(x) = softplus(x + log(e - 1)) - 1``, which
    keeps ``w.u_hat > -1`` and is 0 at ``u = 0``: the layer starts as the identity.
    """

    invertible = False

    @staticmethod
    def init(key, d, dtype):
        w = 0.1 * jax.random.normal(key, (d,), dtype) / np.sqrt(d)
        return {"u": jnp.zeros(d, dtype), "w": w, "b": jnp.zeros((), dtype)}

    @staticmethod
    def forward(p, z):
        u, w = p["u"], p["w"]
        wu = w @ u
        u_hat = u + (jax.nn.softplus(wu + _SHIFT) - 1.0 - wu) * w / (w @ w + 1e-12)
        t = jnp.tanh(z @ w + p["b"])
        y = z + t[..., None] * u_hat
        logdet = jnp.log1p((1.0 - t**2) * (w @ u_hat))
        return y, logdet


class Radial:
    """``y = z + beta h(r) (z - z0)``, ``h = 1 / (alpha + r)`` (Rezende & Mohamed 2015).

    ``alpha = softplus(a)``, ``beta = softplus(b) - alpha > -alpha`` (invertible); a = b = 0
    gives beta = 0, the identity.
    """

    invertible = False

    @staticmethod
    def init(key, d, dtype):
        return {"z0": 0.1 * jax.random.normal(key, (d,), dtype), "a": jnp.zeros((), dtype),
                "b": jnp.zeros((), dtype)}

    @staticmethod
    def forward(p, z):
        d = z.shape[-1]
        alpha = jax.nn.softplus(p["a"])
        beta = jax.nn.softplus(p["b"]) - alpha
        diff = z - p["z0"]
        r = jnp.sqrt(jnp.sum(diff**2, axis=-1) + 1e-12)
        h = 1.0 / (alpha + r)
        y = z + (beta * h)[..., None] * diff
        logdet = (d - 1) * jnp.log1p(beta * h) + jnp.log1p(beta * h - beta * h**2 * r)
        return y, logdet


class Householder:
    """``y = z - 2 v (v.z) / |v|^2``: a reflection (volume-preserving, its own inverse)."""

    invertible = True

    @staticmethod
    def init(key, d, dtype):
        return {"v": jax.random.normal(key, (d,), dtype)}

    @staticmethod
    def forward(p, z):
        v = p["v"]
        y = z - 2.0 * (z @ v)[..., None] * v / (v @ v + 1e-12)
        return y, jnp.zeros(z.shape[:-1], z.dtype)

    inverse = forward


class FlowjaxLayer:
    """A flowjax bijection as a layer: trainable arrays in params, the rest kept here.

    The conditioner network's output layer starts at zero, so the layer starts as the identity.
    ``make(key, d)`` builds the bijection (its random structure must not depend on the key,
    so the layers of one flow keep their shape when re-initialised).
    """

    invertible = True

    def __init__(self, kind: str, nn_width: int = 32, nn_depth: int = 1, knots: int = 16, interval: float = 4.0):
        self.kind, self.nn_width, self.nn_depth = kind, nn_width, nn_depth
        self.knots, self.interval = knots, interval
        self._static = None

    def _build(self, key, d):
        import flowjax.bijections as fb
        from flowjax.flows import _affine_with_min_scale

        nn = dict(nn_width=self.nn_width, nn_depth=self.nn_depth)
        spline = fb.RationalQuadraticSpline(knots=self.knots, interval=self.interval)
        if self.kind == "nsf" and d == 1:  # nothing to condition on: an elementwise spline
            return fb.Vmap(spline, axis_size=1), None
        if self.kind in ("realnvp", "nsf"):
            if d < 2:
                raise ValueError(f"a {self.kind!r} (coupling) flow needs at least 2 dimensions; this "
                                 "model has 1: use 'nsf', 'planar' or 'radial' layers")
            transformer = _affine_with_min_scale() if self.kind == "realnvp" else spline
            bij = fb.Coupling(key, transformer=transformer, untransformed_dim=d // 2, dim=d, **nn)
            last = lambda t: t.bijections[0].conditioner.layers[-1]  # noqa: E731
        else:  # maf
            bij = fb.MaskedAutoregressive(key, transformer=_affine_with_min_scale(), dim=d, **nn)
            last = lambda t: t.bijections[0].masked_autoregressive_mlp.layers[-1]  # noqa: E731
        # reverse the coordinates after each layer, so the next conditions the other way
        return fb.Chain([bij, fb.Flip((d,))]) if d > 1 else fb.Chain([bij]), last

    def init(self, key, d, dtype):
        import equinox as eqx
        import paramax

        # built in the flow's own precision: flowjax keeps the coupling transformer's initial parameters in
        # its static part, and a float64 copy there (a flow made inside the float64 mode search) would be
        # truncated, with a JAX warning, at every float32 step
        with jax.enable_x64(jnp.dtype(dtype) == jnp.float64):
            bij, last = self._build(key, d)
        if last is not None:
            zero = jax.tree_util.tree_map(lambda a: jnp.zeros_like(a) if eqx.is_inexact_array(a) else a, last(bij))
            bij = eqx.tree_at(last, bij, zero)
        bij = jax.tree_util.tree_map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, bij)
        params, self._static = eqx.partition(bij, eqx.is_inexact_array,
                                             is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable))
        return params

    def _bijection(self, params):
        import equinox as eqx
        import paramax

        if self._static is None:
            raise RuntimeError("the flow layer was not initialised")
        return paramax.unwrap(eqx.combine(params, self._static))

    def forward(self, params, z):
        bij = self._bijection(params)
        fn = jnp.vectorize(bij.transform_and_log_det, signature="(d)->(d),()")
        return fn(z)

    def inverse(self, params, y):
        bij = self._bijection(params)
        x, neg = jnp.vectorize(bij.inverse_and_log_det, signature="(d)->(d),()")(y)
        return x, -neg


LAYERS = {
    "loc": lambda: Loc, "scale": lambda: Scale, "planar": lambda: Planar, "radial": lambda: Radial,
    "householder": lambda: Householder, "hh": lambda: Householder,
    "realnvp": lambda: FlowjaxLayer("realnvp"), "maf": lambda: FlowjaxLayer("maf"),
    "nsf": lambda: FlowjaxLayer("nsf"),
}
_TOKEN = re.compile(r"^([a-z_]+)(?:\*(\d+))?$")


def parse_flow(spec: str) -> list[str]:
    """``"planar*3-loc"`` -> ``["planar", "planar", "planar", "loc"]`` (with clear errors)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a flow must be a non-empty string such as 'planar*4' or 'realnvp*4', got {spec!r}")
    names = []
    for token in spec.strip().lower().split("-"):
        m = _TOKEN.match(token.strip())
        if m is None or m.group(1) not in LAYERS:
            raise ValueError(f"flow {spec!r}: cannot read {token!r}; write layers joined by '-', each "
                             f"'name' or 'name*k' with name one of {', '.join(LAYERS)}")
        k = int(m.group(2) or 1)
        if k < 1:
            raise ValueError(f"flow {spec!r}: {token!r} repeats a layer {k} times; use a positive count")
        names += [m.group(1)] * k
    return names


def is_flow_spec(spec) -> bool:
    try:
        parse_flow(spec)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class FlowFamily:
    """A normalizing-flow family on R^d: params ``{"layers": [layer params, ...]}``.

    ``FlowFamily(spec, key)``: ``key`` (a JAX key, default key 0) draws the layers' initial
    parameters; it is kept as raw key data so that the family stays a hashable value.
    """

    spec: str = "planar"
    key: Any = None
    name: ClassVar[str] = "normalizing_flow"
    param_names: ClassVar[tuple] = ("layers",)
    has_density: ClassVar[bool] = True
    reparameterized: ClassVar[bool] = True
    MOMENT_DRAWS: ClassVar[int] = 4000  # mean/std/cov of a flow are Monte Carlo estimates with a fixed key

    def __post_init__(self):
        names = parse_flow(self.spec)
        if "loc" not in names:
            names += (["scale"] if "scale" not in names else []) + ["loc"]
        key = jax.random.key(0) if self.key is None else self.key
        if not isinstance(key, tuple):
            key = tuple(int(x) for x in np.asarray(jax.random.key_data(key)).ravel())
        object.__setattr__(self, "spec", "-".join(names))
        object.__setattr__(self, "key", key)

    @property
    def layer_names(self) -> list[str]:
        return self.spec.split("-")

    @property
    def flow(self) -> str:
        return self.spec

    @cached_property
    def layers(self) -> list:
        return [LAYERS[n]() for n in self.layer_names]

    @property
    def _loc(self) -> int:  # the loc layer that starts at the initial point
        return max(i for i, n in enumerate(self.layer_names) if n == "loc")

    @property
    def _key(self):
        return jax.random.wrap_key_data(jnp.asarray(self.key, jnp.uint32))

    @property
    def invertible(self) -> bool:
        return all(layer.invertible for layer in self.layers)

    def init(self, mean, sigma=None):
        mean = jnp.asarray(mean)
        d, dtype = mean.shape[-1], mean.dtype
        keys = jax.random.split(self._key, len(self.layers))
        params = [layer.init(k, d, dtype) for layer, k in zip(self.layers, keys)]
        params[self._loc] = {"b": mean}
        if sigma is not None:
            scales = [i for i, n in enumerate(self.layer_names) if n == "scale"]
            if scales:
                params[scales[-1]] = {"log_scale": jnp.log(jnp.broadcast_to(sigma, (d,))).astype(dtype)}
        return {"layers": params}

    def _push(self, params, eps):
        z, logdet = eps, jnp.zeros(eps.shape[:-1], eps.dtype)
        for layer, p in zip(self.layers, params["layers"]):
            z, ld = layer.forward(p, z)
            logdet = logdet + ld
        return z, logdet

    def _dim(self, params):
        return params["layers"][self._loc]["b"].shape[-1]

    def noise_dim(self, params):
        return self._dim(params)

    def transform(self, params, eps):
        z, logdet = self._push(params, eps)
        return z, standard_normal_log_prob(eps) - logdet

    def sample_and_log_prob(self, params, key, n):
        loc = params["layers"][self._loc]["b"]
        return self.transform(params, jax.random.normal(key, (n, loc.shape[-1]), loc.dtype))

    def sample(self, params, key, n):
        return self.sample_and_log_prob(params, key, n)[0]

    def log_prob(self, params, z):
        if not self.invertible:
            bad = sorted({n for n, layer in zip(self.layer_names, self.layers) if not layer.invertible})
            raise TypeError(f"log q(z) at arbitrary points needs an invertible flow; {', '.join(bad)} layers "
                            "have no closed-form inverse (log q of the flow's own draws is available "
                            "through sample_and_log_prob)")
        x, logdet = z, jnp.zeros(z.shape[:-1], z.dtype)
        for layer, p in zip(reversed(self.layers), reversed(params["layers"])):
            x, ld = layer.inverse(p, x)
            logdet = logdet + ld
        return standard_normal_log_prob(x) - logdet

    def _moments_draws(self, params):
        return self.sample(params, jax.random.key(12345), self.MOMENT_DRAWS)

    def mean(self, params):
        return jnp.mean(self._moments_draws(params), axis=0)

    def std(self, params):
        return jnp.std(self._moments_draws(params), axis=0)

    def cov(self, params):
        return jnp.atleast_2d(jnp.cov(self._moments_draws(params), rowvar=False))

    def entropy(self, params, key=None, n: int = 1000):
        _, logq = self.sample_and_log_prob(params, jax.random.key(0) if key is None else key, n)
        return -jnp.mean(logq)

    def coordinate_finite(self, params):
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(params)]))
        return jnp.broadcast_to(finite, (self._dim(params),))

    def __repr__(self):
        return f"FlowFamily({self.flow!r})"

