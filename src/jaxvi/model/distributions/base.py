"""Distribution machinery: PyMC-style constructors over ``numpyro.distributions``.

A distribution class declares

* ``parameterize(...)``: PyMC's signature (names, defaults, alternative parameterisations),
  returning the arguments of ``numpyro(...)``; it works on numbers and on nodes alike;
* ``numpyro(**params)``: a pure function building the ``numpyro.distributions`` object;
* ``arg_checks``: the domain of each user-facing parameter, checked when it is a constant.

``Cls("name", ...)`` inside a model creates a named random variable; ``Cls.dist(...)``
an unnamed :class:`DistSpec` (for Mixture components and the like).
"""

from __future__ import annotations

import inspect
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as npd
from numpyro.distributions import constraints

from jaxvi.model.nodes import Apply, Constant, Evaluator, Node, _aval, ancestors, as_node
from jaxvi.model.variables import DataNode, FreeRV, MinibatchNode, ObservedRV, RandomVariable
from jaxvi.model.config import use_default_compilation_cache
from jaxvi.model.context import Model, _as_dims, _checked_array, modelcontext
from jaxvi.model.transforms import biject_to, transform_suffix

__all__ = ["Distribution", "Continuous", "Discrete", "DistSpec", "Static", "ParametrizationError"]


class ParametrizationError(TypeError):
    """A model VI cannot parametrize (PyMC's ``pymc.variational.opvi.ParametrizationError``)."""

_AUTO = object()

_DESCRIBE = {
    constraints._Positive: "positive",
    constraints._Nonnegative: "non-negative",
    constraints._UnitInterval: "in [0, 1]",
    constraints._Simplex: "a probability vector (non-negative, summing to 1)",
    constraints._IntegerPositive: "a positive integer",
    constraints._IntegerNonnegative: "a non-negative integer",
    constraints._Real: "finite",
    constraints._PositiveDefinite: "a symmetric positive-definite matrix",
    constraints._LowerCholesky: "a lower-triangular Cholesky factor with a positive diagonal",
}


def _describe(constraint) -> str:
    for cls in type(constraint).__mro__:
        if cls in _DESCRIBE:
            return _DESCRIBE[cls]
    return str(constraint)


class Static:
    """A parameter passed to ``numpyro(...)`` as a plain Python value (a count, a flag), never traced."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return repr(self.value)


def _is_param_leaf(x):
    return isinstance(x, (Node, DistSpec, Static))


def _tree_leaves(params):
    return jax.tree_util.tree_leaves(params, is_leaf=_is_param_leaf)


#: Constant arrays with at most this many values are printed in full in a model's summary.
SHOWN_VALUES = 8


class DistSpec:
    """An unnamed distribution: a class, its parameter nodes and (optionally) a shape."""

    def __init__(self, cls, params: dict, shape=None, owner: str | None = None):
        self.cls = cls
        self.params = params
        self.owner = owner or cls.__name__
        self._infer(shape)

    # -- graph ----------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        out, seen = [], set()
        for leaf in _tree_leaves(self.params):
            for n in leaf.nodes() if isinstance(leaf, DistSpec) else [leaf] if isinstance(leaf, Node) else []:
                if id(n) not in seen:
                    seen.add(id(n))
                    out.append(n)
        return out

    def build(self, ev, shape=None):
        """The numpyro distribution, with parameter values from ``ev`` and batch shape for ``shape``."""

        def resolve(leaf):
            if isinstance(leaf, Node):
                return ev(leaf)
            if isinstance(leaf, DistSpec):
                return leaf.build(ev)
            return leaf.value if isinstance(leaf, Static) else leaf

        values = jax.tree_util.tree_map(resolve, self.params, is_leaf=_is_param_leaf)
        d = self.cls.numpyro(**values)
        shape = self.shape if shape is None else tuple(shape)
        if shape is not None:  # None only while probing the parameters' natural shape
            batch = shape[: len(shape) - len(d.event_shape)]
            if tuple(d.batch_shape) != batch:
                d = d.expand(batch)
        return without_validation(d)

    def _infer(self, shape):
        nodes = self.nodes()
        info = {}
        self.shape = None  # build() uses the parameters' own batch shape while probing

        def probe(*vals):
            table = {id(n): v for n, v in zip(nodes, vals)}
            d = self.build(lambda n: table[id(n)])
            info["batch_shape"] = tuple(d.batch_shape)
            info["event_shape"] = tuple(d.event_shape)
            info["support"] = d.support
            info["discrete"] = bool(d.support.is_discrete)
            info["suffix"] = None if d.support.is_discrete else transform_suffix(d.support)
            return jnp.zeros(())

        # numpyro validates constant parameters eagerly here (tiny XLA programs, ~25 ms each to
        # compile: 0.6 s for an MvNormal's Cholesky factor): the persistent cache is on before that
        use_default_compilation_cache()
        try:
            jax.eval_shape(probe, *[_aval(n) for n in nodes])
        except (ValueError, TypeError, ArithmeticError, IndexError) as exc:  # e.g. numpyro on empty parameters
            raise ValueError(f"{self.owner}: invalid parameters for {self.cls.__name__} ({exc}); check their "
                             "values and shapes") from exc
        event = info["event_shape"]
        natural = info["batch_shape"] + event
        if shape is not None:
            shape = tuple(int(s) for s in np.atleast_1d(shape)) if not isinstance(shape, tuple) else tuple(int(s) for s in shape)
            if event and tuple(shape[len(shape) - len(event):]) != event:
                raise ValueError(
                    f"{self.owner}: shape {shape} does not end with the event shape {event} of {self.cls.__name__}"
                )
            try:
                np.broadcast_shapes(natural, shape)
                if np.broadcast_shapes(natural, shape) != shape:
                    raise ValueError
            except ValueError:
                raise ValueError(
                    f"{self.owner}: shape {shape} is incompatible with the parameters' shape {natural}"
                ) from None
        self.shape = shape if shape is not None else natural
        self.event_shape = event
        self.discrete = info["discrete"]
        self.suffix = info["suffix"]
        self.support_type = type(info["support"])
        # a parameter-free support (real, positive, simplex...) can be checked on numpy data directly
        self.fixed_support = info["support"] if isinstance(info["support"], constraints.ParameterFreeConstraint) else None
        self.dtype = np.dtype(jax.dtypes.canonicalize_dtype(np.int64 if self.discrete else np.float64))
        if self.suffix is not None:
            def ushape():
                table = {id(n): jnp.zeros(n.shape, n.dtype) for n in nodes}
                d = self.build(lambda n: table[id(n)])
                return biject_to(d.support).inv(jnp.zeros(self.shape, self.dtype))

            self.unconstrained_shape = tuple(jax.eval_shape(ushape).shape)
        else:
            self.unconstrained_shape = self.shape

    def check_observed(self, owner: str, obs: Node, model: Model) -> None:
        """Observed data ``obs`` outside this distribution's support raise a ValueError naming ``owner``."""
        _check_observed_support(owner, self, obs, model)

    def describe(self) -> str:
        def show(v):
            if isinstance(v, DistSpec):
                return v.describe()
            if isinstance(v, Static):
                return repr(v.value)
            if isinstance(v, (list, tuple)):
                return "[" + ", ".join(show(e) for e in v) + "]"
            if isinstance(v, Node):
                if v.name:
                    return v.name
                if isinstance(v, Constant) and v.size == 1:
                    return f"{float(np.asarray(v.value)):g}"
                if isinstance(v, Constant) and v.size <= SHOWN_VALUES and len(v.shape) == 1:
                    return "[" + ", ".join(f"{float(x):g}" for x in np.asarray(v.value)) + "]"
                if isinstance(v, Constant):
                    return f"<array {v.shape}>"
                named = {a.name for a in ancestors([v], stop=lambda a: a is not v and a.name) if a.name}
                return f"f({', '.join(sorted(named))})"
            return repr(v)

        args = ", ".join(show(v) for v in self.params.values() if v is not None)
        return f"{self.cls.__name__}({args})"

    def __repr__(self):
        return f"<{self.describe()} shape={self.shape}>"


class Distribution:
    """Base of every jaxvi distribution.  See the module docstring for what subclasses declare."""

    arg_checks: dict = {}

    @staticmethod
    def parameterize(*args, **kwargs) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def numpyro(**params):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def _spec(cls, owner: str, args, kwargs, shape=None) -> DistSpec:
        sig = inspect.signature(cls.parameterize)
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as exc:
            valid = ", ".join(sig.parameters)
            raise TypeError(f"{owner}: {exc} (valid parameters of {cls.__name__}: {valid})") from None
        for pname, value in bound.arguments.items():
            check = cls.arg_checks.get(pname)
            if check is None or value is None or isinstance(value, DistSpec):
                continue
            shown = repr(value)
            if isinstance(value, Node):  # data, or an expression of constants and data: known now
                node, value = value, _known_value(value)
                if value is None:
                    continue
                named = sorted({a.name for a in ancestors([node]) if a.name})
                shown = f"{value.tolist()!r} (the value of {node._label() if node.name else 'an expression of ' + ', '.join(repr(n) for n in named)})"
            try:  # checked in the working precision (float32 unless x64): 1e-50 is 0 there, 1e50 inf
                arr = np.asarray(np.asarray(value, dtype=np.float64), dtype=jax.dtypes.canonicalize_dtype(np.float64))
                arr = np.where(np.abs(arr) < np.finfo(arr.dtype).tiny, 0.0, arr).astype(arr.dtype)  # XLA flushes
            except (TypeError, ValueError):
                raise TypeError(f"{owner}: parameter {pname} must be numeric, got {value!r}") from None
            if np.any(np.isfinite(np.asarray(value, dtype=np.float64)) & ~np.isfinite(arr)):
                raise ValueError(f"{owner}: parameter {pname} overflows {arr.dtype} (got {value!r}); rescale the "
                                 "model or call jv.enable_x64() first")
            try:  # numpy in: most constraints then run in numpy, with no JAX dispatch to compile
                ok = np.all(np.isfinite(arr)) and bool(np.all(np.asarray(check(arr))))
            except (TypeError, ValueError):  # e.g. a non-square matrix where a square one is needed
                ok = False
            if not ok:
                raise ValueError(f"{owner}: parameter {pname} must be {_describe(check)}, got {shown}")
        try:
            params = cls.parameterize(**bound.arguments)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{owner}: {exc}") from None
        params = {k: _param_tree(v) for k, v in params.items()}
        return DistSpec(cls, params, shape, owner=owner)

    @classmethod
    def dist(cls, *args, shape=None, size=None, **kwargs) -> DistSpec:
        """An unnamed distribution, e.g. a component of :class:`Mixture`."""
        shape = size if shape is None else shape
        return cls._spec(f"{cls.__name__}.dist", args, kwargs, shape=_as_shape(shape, cls.__name__))

    def __new__(cls, name, *args, shape=None, dims=None, observed=None, total_size=None,
                transform=_AUTO, default_transform=_AUTO, initval=None, model=None, size=None, **kwargs):
        if not isinstance(name, str):
            raise TypeError(
                f"{cls.__name__}: the first argument must be the variable's name (a string), got {name!r}; "
                f"use {cls.__name__}.dist(...) for an unnamed distribution"
            )
        model = modelcontext(model, what=f"the {cls.__name__} variable {name!r}")
        full = model.full_name(name)
        model._check_new_name(full)
        owner = f"{cls.__name__} {full!r}"
        shape = _as_shape(size if shape is None else shape, owner)
        dims = _as_dims(full, dims)

        obs_node = None
        if observed is not None:
            obs_node = _observed_node(model, full, observed)
            if obs_node.size == 0:
                raise ValueError(f"{owner}: the observed data are empty (shape {obs_node.shape}); a likelihood "
                                 "without data would fit the prior only: pass the data")
            shape = model.shape_from_dims(full, dims, shape=shape, data_shape=obs_node.shape)
            if shape is not None and tuple(shape) != tuple(obs_node.shape):
                raise ValueError(f"{owner}: shape {tuple(shape)} does not match the observed data's shape {obs_node.shape}")
            shape = tuple(obs_node.shape)
        else:
            shape = model.shape_from_dims(full, dims, shape=shape)
            if total_size is not None:
                raise ValueError(f"{owner}: total_size can only be passed to observed RVs (it scales a likelihood)")

        spec = cls._spec(owner, args, kwargs, shape=shape)
        if obs_node is None:
            if spec.discrete:
                raise TypeError(
                    f"{owner}: discrete variables can only be observed in jaxvi (gradient-based VI needs "
                    "continuous latent variables); marginalise it out or pass observed="
                )
            transformed = not (transform is None or default_transform is None)
            if initval is not None:
                initval = _checked_initval(owner, full, spec, initval, model)
            rv = FreeRV(full, spec, model, dims=dims, transformed=transformed, initval=initval)
            model._register(rv, "_free", dims)
            return rv
        _validate_total_size(owner, total_size, obs_node.shape)
        if total_size is None:
            _warn_minibatch_without_total_size(owner, spec, obs_node)
        _check_observed_support(owner, spec, obs_node, model)
        rv = ObservedRV(full, spec, model, obs_node, total_size=total_size, dims=dims)
        model._register(rv, "_observed", dims)
        return rv


def _known_value(node: Node, max_size: int = 1 << 20):
    """The value of ``node`` when the model is built (Data and constants only), else None."""
    if node.size > max_size:
        return None
    leaves = ancestors([node])
    if not all(isinstance(a, (Constant, DataNode)) or (a.inputs and not isinstance(a, (RandomVariable, MinibatchNode)))
               for a in leaves):
        return None
    try:
        return np.asarray(Evaluator(lambda n, _: n.get_value())(node))
    except Exception:  # noqa: BLE001 - not evaluable now: checked by the fit instead
        return None


def _param_tree(v):
    """Nodes and constants become nodes; lists of component distributions stay lists."""
    if v is None or isinstance(v, (Node, DistSpec, Static)):
        return v
    if isinstance(v, (list, tuple)) and any(isinstance(e, DistSpec) for e in v):
        return [_param_tree(e) for e in v]
    return as_node(v)


class Continuous(Distribution):
    pass


class Discrete(Distribution):
    pass


def _as_shape(shape, owner):
    if shape is None:
        return None
    if isinstance(shape, Node):
        raise TypeError(f"{owner}: shape must be a tuple of integers, not a model variable")
    try:
        arr = np.atleast_1d(np.asarray(shape))
        out = tuple(int(s) for s in arr)
        if arr.dtype.kind not in "iub" and not np.array_equal(arr.astype(float), out):
            raise ValueError
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: shape must be an integer or a tuple of integers, got {shape!r}") from None
    if any(s < 0 for s in out):
        raise ValueError(f"{owner}: shape {out} has a negative dimension")
    if math.prod(out) > MAX_ELEMENTS:
        raise ValueError(f"{owner}: shape {out} has {math.prod(out):,d} elements ({4 * math.prod(out) / 1e12:,.1f} TB "
                         f"in float32), more than the {MAX_ELEMENTS:,d} a variable may have; check the shape")
    return out


#: Most elements of one variable (XLA indexes arrays with 32-bit integers).
MAX_ELEMENTS = 2**31 - 1


def _observed_node(model: Model, name: str, observed) -> Node:
    if isinstance(observed, Node):
        bad = [a.name for a in ancestors([observed]) if isinstance(a, RandomVariable) and not a.is_observed]
        if bad:
            raise ValueError(f"{name!r}: observed= depends on the free variable(s) {bad}; observed values must be data")
        return observed
    arr = _checked_array(name, observed)
    model._store_data(name, arr)
    return DataNode(name, model)


def _validate_total_size(owner, total_size, shape):
    if total_size is None:
        return
    if isinstance(total_size, (bool, np.bool_)):
        raise TypeError(f"{owner}: Invalid type for total_size: must be an int or a tuple, got {total_size!r}")
    if isinstance(total_size, (int, np.integer)):
        entries = [int(total_size)]
        if not shape:
            raise ValueError(f"{owner}: total_size given for a scalar observed variable")
        begin = [(int(total_size), shape[0])]
        end = []
    elif isinstance(total_size, (tuple, list)):
        ts = list(total_size)
        if ts.count(Ellipsis) > 1:
            raise ValueError(f"{owner}: Only one Ellipsis may be in total_size, got {tuple(total_size)}")
        if Ellipsis in ts:
            k = ts.index(Ellipsis)
            head, tail = ts[:k], ts[k + 1:]
        else:
            head, tail = ts, []
        if len(head) + len(tail) > len(shape):
            raise ValueError(f"{owner}: Length of total_size {tuple(total_size)} is more than the number of axes of the data {shape}")
        begin = [(t, shape[i]) for i, t in enumerate(head) if t is not None]
        end = [(t, shape[len(shape) - len(tail) + i]) for i, t in enumerate(tail) if t is not None]
        entries = [t for t, _ in begin + end]
    else:
        raise TypeError(f"{owner}: Invalid type for total_size: must be an int or a tuple, got {type(total_size).__name__}")
    for t in entries:
        if not isinstance(t, (int, np.integer)) or isinstance(t, bool):
            raise NotImplementedError(f"{owner}: Cannot convert total_size entry {t!r} to an integer (entries are integers, None or one Ellipsis)")
        if t <= 0:
            raise ValueError(f"{owner}: total_size must be positive, got {t}")
    for t, n in begin + end:
        if t < n:
            raise ValueError(f"{owner}: total_size {t} is smaller than the observed batch ({n} rows)")


def _warn_minibatch_without_total_size(owner, spec, obs: Node):
    stop = lambda n: isinstance(n, RandomVariable)  # noqa: E731
    if any(isinstance(n, MinibatchNode) for n in ancestors([obs, *spec.nodes()], stop=stop)):
        warnings.warn(f"{owner} is observed on a jv.Minibatch but has no total_size: its likelihood is "
                      "not scaled to the full data set; pass total_size=<number of rows>",
                      UserWarning, stacklevel=3)


def without_validation(d, _depth: int = 0):
    """``d`` (and the distributions inside it) with numpyro's argument/sample validation off.

    The parameters and data were checked when the model was built; this is per instance, so numpyro's
    process-wide ``enable_validation`` flag is neither read inside a fit nor ever changed by jaxvi.
    """
    if isinstance(d, npd.Distribution) and _depth < 8:
        d._validate_args = False
        for v in vars(d).values():
            for x in v if isinstance(v, (list, tuple)) else (v,):
                if isinstance(x, npd.Distribution):
                    without_validation(x, _depth + 1)
    return d


def _outside_support(spec: DistSpec, value: np.ndarray, model: Model):
    """(number of entries of ``value`` outside the support, support name); None when the support is not
    known before the fit (it depends on free variables)."""
    stop = lambda n: isinstance(n, RandomVariable)  # noqa: E731
    free_inputs = any(isinstance(a, RandomVariable) for a in ancestors(spec.nodes(), stop=stop))
    if free_inputs and not issubclass(spec.support_type, constraints.ParameterFreeConstraint):
        return None
    support = spec.fixed_support
    if support is None:
        store = model.root._data_store
        ev = Evaluator(lambda n, _: store[n.key] if isinstance(n, DataNode) else _placeholder(n))
        support = spec.build(ev, shape=value.shape).support
    inside = np.asarray(support(np.asarray(value)))
    return int(inside.size - inside.sum()), _describe(support)


def _check_observed_support(owner, spec: DistSpec, obs: Node, model: Model):
    """Observed data outside the support is an error (checked where it can be without a fit)."""
    if not isinstance(obs, DataNode):
        return
    found = _outside_support(spec, model.root._data_store[obs.key], model)
    if found and found[0]:
        raise ValueError(f"{owner}: {found[0]} observed value(s) lie outside the support of {spec.cls.__name__} "
                         f"(values must be {found[1]}); check the data or choose a distribution that covers them")


def _checked_initval(owner: str, name: str, spec: DistSpec, initval, model: Model) -> np.ndarray:
    """``initval`` broadcast to the variable's shape: numeric, finite and inside the support."""
    if isinstance(initval, str):
        if initval in ("prior", "support_point"):
            return initval
        raise ValueError(f"{owner}: initval must be a value, 'prior' or 'support_point', got {initval!r}")
    try:
        value = np.broadcast_to(np.asarray(initval), spec.shape)
    except ValueError:
        raise ValueError(f"{owner}: initval of shape {np.shape(initval)} does not fit the variable's shape "
                         f"{spec.shape}; give a scalar or an array of that shape") from None
    value = _checked_array(name, value, allow_nan=True)
    if not np.all(np.isfinite(value)):
        what = "be finite"
    else:
        found = _outside_support(spec, value, model)
        if not found or not found[0]:
            return value
        what = f"be {found[1]}"
    raise ValueError(f"{owner}: initval must {what} (a starting value inside the support of {spec.cls.__name__}), "
                     f"got {initval!r}")


def _placeholder(node):
    # a valid stand-in value for a free variable, used only to reach a parameter-free support
    return jnp.ones(node.shape, node.dtype) * 0.5


def logp(rv, value) -> Node:
    """PyMC's ``pm.logp(rv, value)``: the elementwise log-density of ``rv``'s distribution at ``value``.

    ``rv`` is a model variable or an unnamed ``Distribution.dist(...)``; its parameters stay lazy, so
    the result is a node like any other (``jv.draw(jv.logp(x, 1.0))``, ``approx.sample_node(...)``).
    ``value`` is broadcast to the variable's shape.
    """
    if isinstance(rv, RandomVariable):
        spec, what = rv.spec, rv.name
    elif isinstance(rv, DistSpec):
        spec, what = rv, rv.owner
    else:
        raise TypeError(f"logp: expected a random variable or a Distribution.dist(...), got {type(rv).__name__}")
    inputs, value = spec.nodes(), as_node(value)
    shape = tuple(rv.shape)

    def log_density(*vals):
        *params, x = vals
        known = {id(node): v for node, v in zip(inputs, params)}
        d = spec.build(lambda node: known[id(node)], shape=shape)
        return d.log_prob(jnp.broadcast_to(x, shape))

    return Apply(log_density, [*inputs, value], label=f"logp({what})")
