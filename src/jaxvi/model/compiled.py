"""``model.compile()``: the model as pure JAX functions of a flat unconstrained vector.

This is the only thing inference sees.  Every function here is pure, traceable with
``jax.jit`` and vectorisable with ``jax.vmap`` over ``flat``; data enter as the ``batch``
pytree (by default the model's current data), never as baked-in constants, so new data of
the same shape reuse the compiled code.
"""

from __future__ import annotations


import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.model.batching import Batching
from jaxvi.model.nodes import Evaluator, Node
from jaxvi.model.variables import DataNode, FreeRV, MinibatchNode, ObservedRV, total_size_scale
from jaxvi.model.transforms import biject_to

__all__ = ["CompiledModel", "FlatLayout"]


class FlatLayout:
    """The one flatten/unflatten of the model: named blocks laid end to end in a vector."""

    def __init__(self, entries: list[tuple[str, tuple[int, ...]]]):
        self.names = [n for n, _ in entries]
        self.shapes = {n: tuple(s) for n, s in entries}
        self.slices = {}
        offset = 0
        for name, shape in entries:
            size = int(np.prod(shape, dtype=np.int64))
            self.slices[name] = slice(offset, offset + size)
            offset += size
        self.size = offset

    def unravel(self, flat) -> dict:
        return {n: jnp.reshape(flat[..., self.slices[n]], flat.shape[:-1] + self.shapes[n]) for n in self.names}

    def ravel(self, values: dict):
        parts = [jnp.reshape(jnp.asarray(values[n]), (-1,)) for n in self.names]
        return jnp.concatenate(parts) if parts else jnp.zeros((0,))

    def labels(self) -> list[str]:
        """A label per flat coordinate, e.g. ``beta[2]`` (PyMC ordering)."""
        out = []
        for n in self.names:
            shape = self.shapes[n]
            if not shape:
                out.append(n)
            else:
                out.extend(f"{n}[{', '.join(map(str, idx))}]" for idx in np.ndindex(*shape))
        return out


class CompiledModel:
    """Pure functions of the model on the flat unconstrained vector (see module docstring)."""

    def __init__(self, model):  # a jv.Model (not imported: context.py imports this module)
        self.model = model.root
        self.free_rvs: list[FreeRV] = self.model.free_RVs
        self.observed_rvs: list[ObservedRV] = self.model.observed_RVs
        self.potentials = self.model.potentials
        self.deterministics = self.model.deterministics
        self.layout = FlatLayout([(rv.value_name, rv.unconstrained_shape) for rv in self.free_rvs])
        self.size = self.layout.size
        self.value_names = list(self.layout.names)
        self.var_names = [rv.name for rv in self.free_rvs]
        self.dtype = jax.dtypes.canonicalize_dtype(np.float64)
        self._by_value_name = {rv.value_name: rv for rv in self.free_rvs}
        self.batching = Batching.of([*self.free_rvs, *self.observed_rvs, *self.potentials, *self.deterministics])
        self.minibatch_groups = self.batching.groups
        self.logp_and_grad = jax.jit(jax.value_and_grad(self.logp))
        self._initial_jit = jax.jit(self._initial_point)
        self._derived: dict = {}

    def cached(self, key: tuple, build):
        """What the floors above derive from this model (compiled runners, samplers, ...), built once by
        ``build()`` and kept under ``key`` (a hashable tuple whose first item names the user).

        The one cache of things derived from a compiled model: it lives and dies with the model, so a
        dropped model releases its compiled programs and data.
        """
        try:
            return self._derived[key]
        except KeyError:
            value = self._derived[key] = build()
            return value

    # -- data -------------------------------------------------------------------------------
    @property
    def data(self) -> dict[str, jax.Array]:
        """The data pytree (Data variables, observed arrays, the full arrays of minibatches)."""
        return {**self.model.data, **{n.key: n.value for g in self.minibatch_groups for n in g.nodes}}

    def fit_data(self) -> dict:
        """The data a fit starts from: like ``data`` but without the streamed (on-disk) minibatches."""
        return {**self.model.data, **{n.key: n.value for g in self.minibatch_groups if not g.streamed
                                      for n in g.nodes}}

    def select_batch(self, key, data, shards: int = 1) -> dict:
        """``data`` with every in-memory minibatch replaced by its rows for this step (``Batching.select``)."""
        return self.batching.select(key, data, shards)

    def _batch(self, batch):
        return self.fit_data() if batch is None else batch

    # -- the evaluator ---------------------------------------------------------------------------
    def _evaluator(self, batch, free_value, records: list | None = None) -> Evaluator:
        """An evaluator whose free variables take ``free_value(rv, dist, transform)``."""

        def leaf(node: Node, ev: Evaluator):
            if isinstance(node, DataNode):
                return batch[node.key]
            if isinstance(node, MinibatchNode):  # the full array unless the fit passes its rows
                return batch[node.key] if node.key in batch else node.value
            if isinstance(node, FreeRV):
                d = node.spec.build(ev)
                t = biject_to(d.support) if node.transformed else None
                x, u = free_value(node, d, t)
                if records is not None:
                    ldj = t.log_abs_det_jacobian(u, x) if t is not None else 0.0
                    records.append((node, d, x, ldj))
                return x
            if isinstance(node, ObservedRV):
                x = ev(node.observed)
                d = node.spec.build(ev, shape=jnp.shape(x))
                if records is not None:
                    records.append((node, d, x, 0.0))
                return x
            raise TypeError(f"cannot evaluate {node!r}: it does not belong to this model")

        return Evaluator(leaf)

    def _from_flat(self, flat):
        values = self.layout.unravel(jnp.asarray(flat))

        def free_value(rv, d, t):
            u = values[rv.value_name]
            return (t(u) if t is not None else u), u

        return free_value

    # -- densities ----------------------------------------------------------------------------
    def logp_terms(self, flat, batch=None, jacobian: bool = True) -> dict:
        """Log-density of each random variable and potential (likelihoods scaled by total_size).

        numpyro's per-value support masks are left out of the traced function: free values lie in
        their support by construction (they come through the transforms) and observed data were
        checked against it when the model was built, so the masks would only cost time every step.
        """
        batch = self._batch(batch)
        records: list = []
        ev = self._evaluator(batch, self._from_flat(flat), records)
        for rv in (*self.free_rvs, *self.observed_rvs):
            ev(rv)
        terms = {}
        for rv, d, x, ldj in records:
            lp = jnp.sum(d.log_prob(x))  # d was built with validation off (distributions.base.without_validation)
            if rv.is_observed:
                lp = lp * total_size_scale(rv.total_size, jnp.shape(x))
            elif jacobian:
                lp = lp + jnp.sum(ldj)
            terms[rv.name] = lp
        for pot in self.potentials:
            terms[pot.name] = jnp.sum(ev(pot))
        return {name: terms[name] for name in [*(rv.name for rv in self.free_rvs),
                                              *(rv.name for rv in self.observed_rvs),
                                              *(p.name for p in self.potentials)]}

    def likelihood_scale(self) -> float:
        """The largest total_size / batch-size scaling of an observed variable (1.0 without total_size):
        PyMC's normalizing constant of the ELBO when ``scale_cost_to_minibatch``."""
        scales = [float(total_size_scale(rv.total_size, tuple(rv.shape))) for rv in self.observed_rvs
                  if rv.total_size is not None]
        return max(scales + [1.0])

    def logp(self, flat, batch=None, jacobian: bool = True):
        """Joint log-density in unconstrained space: prior + scaled likelihood (+ log-Jacobian).

        A jitted function of ``(flat, batch)``, so the model's Python is traced once per argument shape and
        dtype however many programs use it (a fit's mode search, optimiser loop, checks and draws call it
        under a dozen transformations; each retrace of a model cost 0.05-0.2 s); inside another trace it is
        a nested call that XLA inlines, so the compiled programs are unchanged.
        """
        jacobian = bool(jacobian)
        fn = self.cached(("logp", jacobian), lambda: jax.jit(functools.partial(self._logp, jacobian=jacobian)))
        return fn(flat, self._batch(batch))

    def _logp(self, flat, batch, jacobian: bool = True):
        terms = self.logp_terms(flat, batch, jacobian=jacobian)
        total = jnp.zeros((), self.dtype)
        for v in terms.values():
            total = total + v
        return total

    # -- values ------------------------------------------------------------------------------------
    def evaluate(self, nodes, flat, batch=None):
        """Values of arbitrary model nodes (Deterministics, expressions) at ``flat``."""
        single = isinstance(nodes, Node)
        ev = self._evaluator(self._batch(batch), self._from_flat(flat))
        out = [ev(n) for n in ([nodes] if single else nodes)]
        return out[0] if single else out

    def unravel(self, flat, batch=None) -> dict:
        """Constrained values of the free variables, by variable name."""
        ev = self._evaluator(self._batch(batch), self._from_flat(flat))
        return {rv.name: ev(rv) for rv in self.free_rvs}

    def unravel_unconstrained(self, flat) -> dict:
        """Unconstrained values, by value-variable name (``sd_log__``)."""
        return self.layout.unravel(jnp.asarray(flat))

    def ravel(self, values: dict):
        """Flat vector from unconstrained values keyed by value-variable name."""
        return self.layout.ravel(values)

    # -- points -----------------------------------------------------------------------------------
    def _flat_from(self, choose, batch):
        """Walk the model choosing each free variable's constrained value; return the flat vector."""
        chosen: dict = {}

        def free_value(rv, d, t):
            x = choose(rv, d, t)
            u = t.inv(x) if t is not None else x
            chosen[rv.value_name] = u
            return x, u

        ev = self._evaluator(batch, free_value)
        for rv in self.free_rvs:
            ev(rv)
        return self.layout.ravel(chosen).astype(self.dtype)

    def _initial_point(self, key, jitter, batch):
        def choose(rv, d, t):
            if isinstance(rv.initval, str):  # PyMC's initval="prior" / "support_point"
                if rv.initval == "prior":
                    i = next(j for j, r in enumerate(self.free_rvs) if r is rv)
                    return jnp.asarray(d.sample(jax.random.fold_in(key, 1 + i)), self.dtype)
                return support_point(rv, d, t)
            if rv.initval is not None:
                return jnp.asarray(rv.initval, self.dtype)
            return support_point(rv, d, t)

        flat = self._flat_from(choose, batch)
        noise = jax.random.uniform(key, flat.shape, self.dtype, -1.0, 1.0)
        return flat + jitter * noise

    def initial_point(self, key=None, jitter: float = 0.0, batch=None):
        """PyMC's starting point (the distributions' central values) plus uniform(-jitter, jitter)."""
        key = jax.random.key(0) if key is None else key
        if isinstance(key, (int, np.integer)):
            key = jax.random.key(int(key))
        return self._initial_jit(key, jnp.asarray(jitter, self.dtype), self._batch(batch))

    def free_rv(self, name: str, what: str = "point") -> FreeRV:
        """The free variable called ``name`` (its own or its value-variable name); a KeyError names the rest."""
        for rv in self.free_rvs:
            if name in (rv.name, rv.value_name):
                return rv
        raise KeyError(f"{what}: {name!r} is not a free variable of the model (free: {', '.join(self.var_names)})")

    def start_point(self, values=None, batch=None, what: str = "start", key=None):
        """The one start resolver: PyMC's initial point with ``values`` in place of its entries.

        ``values`` maps variable names (constrained values) or value-variable names (unconstrained
        ones, ``sd_log__``) to starting values; ``what`` names the argument in error messages; ``key``
        draws the variables with ``initval="prior"`` (key 0 when None).
        """
        base = self.initial_point(key, batch=batch)
        if values is None:
            return base
        if not isinstance(values, dict):
            raise TypeError(f"{what} must be a dict of variable values, got {type(values).__name__}")
        point = dict(self.unravel_unconstrained(base))
        for name, value in values.items():
            rv = self.free_rv(name, what)
            if name == rv.name and rv.value_name != rv.name:
                point.pop(rv.value_name, None)
            point[name] = value
        return self.flat_from_point(point, batch)

    def flat_from_point(self, point: dict, batch=None):
        """Flat vector from a point keyed by value-variable names (unconstrained) or variable names."""
        known = set(self._by_value_name) | {rv.name for rv in self.free_rvs}
        unknown = [k for k in point if k not in known]
        if unknown:
            raise KeyError(f"point has unknown variable(s) {unknown}; expected some of {sorted(known)}")

        def choose(rv, d, t):
            if rv.value_name in point:
                u = point_value(rv.value_name, point[rv.value_name], rv.unconstrained_shape, self.dtype)
                return t(u) if t is not None else u
            if rv.name in point:
                x = point_value(rv.name, point[rv.name], rv.shape, self.dtype)
                inside = d.support(x)
                if not isinstance(inside, jax.core.Tracer) and not bool(jnp.all(inside)):
                    raise ValueError(f"the value given for {rv.name!r} lies outside the support of its "
                                     f"{rv.distribution} distribution; give a value inside it, or an unconstrained "
                                     f"value as {rv.value_name!r}")
                return x
            raise KeyError(f"point has no value for {rv.value_name!r} (or {rv.name!r})")

        return self._flat_from(choose, self._batch(batch))

    # -- generative sampling -------------------------------------------------------------------
    def sample_observed(self, key, flat, batch=None, names=None) -> dict:
        """Draw the observed variables (``names``, default all) given the free variables at ``flat``."""
        records: list = []
        ev = self._evaluator(self._batch(batch), self._from_flat(flat), records)
        rvs = self.observed_rvs if names is None else [self.model[n] for n in names]
        for rv in rvs:
            ev(rv)
        dists = {rv.name: d for rv, d, _, _ in records if rv.is_observed}
        keys = jax.random.split(key, max(len(rvs), 1))
        return {rv.name: dists[rv.name].sample(k) for rv, k in zip(rvs, keys)}

    def sample_prior(self, key, batch=None) -> tuple:
        """One ancestral draw from the prior: (flat unconstrained vector, {observed name: value})."""
        keys = iter(jax.random.split(key, len(self.free_rvs) + 1))

        def choose(rv, d, t):
            return d.sample(next(keys))

        batch = self._batch(batch)
        flat = self._flat_from(choose, batch)
        return flat, self.sample_observed(next(keys), flat, batch)

    def __repr__(self):
        return f"CompiledModel(size={self.size}, free={self.value_names}, observed={[r.name for r in self.observed_rvs]})"


def point_value(name: str, value, shape: tuple, dtype, prefix: str = ""):
    """A point's value for ``name`` as an array of ``shape`` (scalars broadcast), checked when concrete."""
    if isinstance(value, jax.core.Tracer):
        return jnp.reshape(jnp.asarray(value, dtype), shape)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{prefix}the value given for {name!r} must be numeric, got {value!r}") from None
    size = int(np.prod(shape, dtype=np.int64))
    if arr.ndim and arr.size != size:
        raise ValueError(f"{prefix}the value given for {name!r} has shape {arr.shape}, but {name!r} has shape {tuple(shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{prefix}the value given for {name!r} is not finite ({value!r}); give finite numbers")
    return jnp.asarray(np.broadcast_to(arr, shape) if arr.ndim == 0 else arr.reshape(shape), dtype)


def support_point(rv: FreeRV, d, t):
    """A central value inside the support: the mean where finite, else the transform of zero."""
    zero = jnp.zeros(rv.unconstrained_shape, jax.dtypes.canonicalize_dtype(np.float64))
    fallback = t(zero) if t is not None else zero
    hook = getattr(rv.spec.cls, "support_point", None)
    try:
        m = hook(d) if hook is not None else d.mean
        m = jnp.broadcast_to(jnp.asarray(m, fallback.dtype), fallback.shape)
    except (NotImplementedError, AttributeError, TypeError, ValueError):
        return fallback
    # a subnormal mean (a Beta with alpha ~1e-38: 6e-39) is flushed to zero by some XLA CPU ops and not by
    # others, so it can pass the checks below and still map to -inf: such a mean counts as on the edge
    ok = jnp.isfinite(m) & ((m == 0) | (jnp.abs(m) >= jnp.finfo(m.dtype).tiny))
    if t is not None:  # a mean on the support's edge (a Beta with a tiny alpha) maps to +-inf
        u = t.inv(m)
        ok = ok & (jnp.isfinite(u) if u.shape == m.shape else jnp.all(jnp.isfinite(u)))
    inside = jnp.asarray(d.support(m))
    inside = jnp.reshape(inside, inside.shape + (1,) * (m.ndim - inside.ndim))
    event_ok = jnp.all(ok, axis=tuple(range(m.ndim - len(d.event_shape), m.ndim)), keepdims=True) & inside
    return jnp.where(event_ok, m, fallback)
