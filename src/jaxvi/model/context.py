"""The Model context: registries of named variables, coords/dims, data (floor 1)."""

from __future__ import annotations

import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.model.nodes import Node, _canonical_array, ancestors, as_node
from jaxvi.model.variables import (DataNode, DeterministicNode, FreeRV, MinibatchNode, ObservedRV, PotentialNode,
                                   RandomVariable, device_rows)

__all__ = [
    "Model", "modelcontext", "Data", "set_data", "Deterministic", "Potential",
    "RandomVariable", "FreeRV", "ObservedRV", "DataNode", "DeterministicNode", "PotentialNode",
    "Minibatch", "MinibatchNode",
]

_STACK = threading.local()


def _stack() -> list["Model"]:
    if not hasattr(_STACK, "models"):
        _STACK.models = []
    return _STACK.models


def modelcontext(model: "Model | None" = None, what: str | None = None) -> "Model":
    """``model`` if given, else the innermost model on the context stack."""
    if model is not None:
        if not isinstance(model, Model):
            raise TypeError(f"model= must be a jv.Model, got {type(model).__name__}")
        return model
    stack = _stack()
    if not stack:
        target = f" to create {what}" if what else ""
        raise TypeError(
            f"no model on the context stack{target}; build it inside `with jv.Model():` "
            "(or use Distribution.dist(...) for an unnamed distribution)"
        )
    return stack[-1]


class Model:
    """A PyMC-style model: ``with jv.Model(coords=...) as model: ...``.

    Models nest: a model created inside another registers its variables in its parent too,
    with its ``name`` as a prefix (``"child::x"``).
    """

    def __init__(self, name: str = "", coords: dict | None = None, model: "Model | None" = None):
        if not isinstance(name, str):
            raise TypeError(f"Model name must be a string, got {type(name).__name__}")
        stack = _stack()
        self.parent = model if model is not None else (stack[-1] if stack else None)
        self.name = name
        prefix = self.parent.prefix if self.parent is not None else ""
        self.prefix = f"{prefix}{name}::" if name else prefix
        self.root: Model = self.parent.root if self.parent is not None else self
        if self.root is self:
            self._coords: dict[str, tuple | None] = {}
            self._dim_lengths: dict[str, int] = {}
            self._data_store: dict[str, Any] = {}
            self._version = 0
            self._compiled = None
        self._named: dict[str, Node] = {}
        self._free: list[FreeRV] = []
        self._observed: list[ObservedRV] = []
        self._deterministics: list[DeterministicNode] = []
        self._potentials: list[PotentialNode] = []
        self._data_vars: list[DataNode] = []
        self._dims: dict[str, tuple] = {}
        if coords:
            self.add_coords(coords)

    # -- context management ---------------------------------------------------------------
    def __enter__(self):
        _stack().append(self)
        return self

    def __exit__(self, *exc):
        _stack().pop()
        return False

    @classmethod
    def get_context(cls, error_if_none: bool = True) -> "Model | None":
        stack = _stack()
        if not stack:
            if error_if_none:
                raise TypeError("no model on the context stack")
            return None
        return stack[-1]

    # -- registries -------------------------------------------------------------------------
    def _chain(self):
        m: Model | None = self
        while m is not None:
            yield m
            m = m.parent

    def full_name(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a variable name must be a non-empty string, got {name!r}")
        return f"{self.prefix}{name}"

    def _check_new_name(self, name: str):
        if name in self.root._named:
            existing = self.root._named[name]
            raise ValueError(
                f"variable name {name!r} is already used in this model (by {type(existing).__name__}); "
                "every named variable needs a unique name"
            )

    def _register(self, node: Node, registry: str, dims: tuple | None = None):
        name = node.name
        self._check_new_name(name)
        self._check_own_variables(node)
        for m in self._chain():
            m._named[name] = node
            getattr(m, registry).append(node)
            if dims:
                m._dims[name] = dims
        self.root._version += 1
        self.root._compiled = None

    def _check_own_variables(self, node: Node):
        """Every named variable ``node`` depends on belongs to this model (not to another one)."""
        named = self.root._named
        for a in ancestors([node], stop=lambda a: a is not node and bool(a.name)):
            if a is not node and a.name and named.get(a.name) is not a:
                raise ValueError(f"{node.name!r} uses {a.name!r}, a variable of another model; a model can only "
                                 f"use its own variables: create {a.name!r} inside this model's `with` block")

    @property
    def named_vars(self) -> dict[str, Node]:
        return dict(self._named)

    @property
    def free_RVs(self) -> list["FreeRV"]:
        return list(self._free)

    @property
    def observed_RVs(self) -> list["ObservedRV"]:
        return list(self._observed)

    @property
    def basic_RVs(self) -> list["RandomVariable"]:
        return [*self._free, *self._observed]

    @property
    def deterministics(self) -> list["DeterministicNode"]:
        return list(self._deterministics)

    @property
    def potentials(self) -> list["PotentialNode"]:
        return list(self._potentials)

    @property
    def unobserved_RVs(self) -> list[Node]:
        return [*self._free, *self._deterministics]

    @property
    def data_vars(self) -> list["DataNode"]:
        return list(self._data_vars)

    @property
    def value_vars(self) -> list[str]:
        return [rv.value_name for rv in self._free]

    @property
    def named_vars_to_dims(self) -> dict[str, tuple]:
        return dict(self._dims)

    def __getitem__(self, name: str) -> Node:
        named = self.root._named
        for key in (name, self.full_name(name) if name else name):
            if key in named:
                return named[key]
        raise KeyError(f"no variable named {name!r} in the model (known: {', '.join(named) or 'none'})")

    def __contains__(self, name) -> bool:
        return name in self.root._named

    # -- coords and dims ----------------------------------------------------------------------
    @property
    def coords(self) -> dict[str, tuple | None]:
        return dict(self.root._coords)

    @property
    def dim_lengths(self) -> dict[str, int]:
        return dict(self.root._dim_lengths)

    def add_coord(self, name: str, values=None, *, length: int | None = None):
        if values is None and length is None:
            raise ValueError(f"coord {name!r}: give its values or its length")
        if values is not None:
            values = tuple(np.asarray(values).tolist())
            if length is not None and length != len(values):
                raise ValueError(f"coord {name!r}: length={length} but {len(values)} values were given")
            length = len(values)
        root = self.root
        if name in root._dim_lengths and root._dim_lengths[name] != length:
            raise ValueError(f"coord {name!r} already has length {root._dim_lengths[name]}, not {length}")
        root._coords[name] = values
        root._dim_lengths[name] = int(length)

    def add_coords(self, coords: dict):
        if not isinstance(coords, dict):
            raise TypeError(f"coords must be a dict {{dim name: values or length}}, got {type(coords).__name__}")
        for name, values in coords.items():
            if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
                self.add_coord(name, length=int(values))
            elif isinstance(values, (str, bytes)) or np.ndim(values) != 1:
                raise TypeError(f"coord {name!r} must be a sequence of labels or a length, got {values!r}")
            else:
                self.add_coord(name, values)

    def shape_from_dims(self, var: str, dims, shape=None, data_shape=None) -> tuple[int, ...] | None:
        """The shape implied by ``dims`` (checked against ``shape`` / data), adding data-defined dims."""
        if dims is None:
            return shape
        dims = _as_dims(var, dims)
        ref = shape if shape is not None else data_shape
        if ref is not None and len(ref) != len(dims):
            raise ValueError(f"variable {var!r}: dims {dims} name {len(dims)} axes but its shape is {tuple(ref)}")
        out = []
        for i, d in enumerate(dims):
            if d is None:
                if ref is None:
                    raise ValueError(f"variable {var!r}: dim {i} is None and no shape is given")
                out.append(int(ref[i]))
                continue
            if not isinstance(d, str):
                raise TypeError(f"variable {var!r}: dims must be names (strings), got {d!r}")
            length = self.root._dim_lengths.get(d)
            if length is None:
                if ref is None:
                    raise ValueError(
                        f"variable {var!r}: unknown dim {d!r}; add it to Model(coords=...) "
                        f"(known: {', '.join(self.root._dim_lengths) or 'none'})"
                    )
                self.add_coord(d, length=int(ref[i]))
                length = int(ref[i])
            out.append(length)
        out = tuple(out)
        if ref is not None and tuple(ref) != out:
            raise ValueError(f"variable {var!r}: shape {tuple(ref)} does not match dims {dims} of lengths {out}")
        return out

    # -- data -----------------------------------------------------------------------------
    def _store_data(self, key: str, value) -> jax.Array:
        arr = jnp.asarray(value)
        self.root._data_store[key] = arr
        return arr

    @property
    def data(self) -> dict[str, jax.Array]:
        """The current values of every data leaf (Data variables and observed arrays)."""
        return dict(self.root._data_store)

    def set_data(self, name: str, values, coords: dict | None = None):
        node = self[name]
        if not isinstance(node, DataNode) or not node.name:
            raise TypeError(f"{name!r} is not a jv.Data variable; only Data variables can be replaced")
        try:  # NaN here would only surface as "NaN at step 0" of the next fit
            arr = _checked_array(name, values)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"set_data: {str(exc).replace('observed data', 'new values')}") from None
        old = self.root._data_store[node.key]
        if arr.ndim != old.ndim:
            raise ValueError(f"data {name!r}: new values have {arr.ndim} dimensions, the old ones {old.ndim}")
        if coords:
            for dim, vals in coords.items():
                self.root._coords[dim] = tuple(np.asarray(vals).tolist())
                self.root._dim_lengths[dim] = len(vals)
        self._store_data(node.key, arr)
        try:
            for rv in self._observes(node):  # the new values must lie in the support of the likelihood
                rv.spec.check_observed(f"set_data: {name!r} observed by {rv.name!r}", rv.observed, self.root)
        except ValueError:
            self._store_data(node.key, old)
            raise

    def _observes(self, node) -> list:
        """The observed variables whose data are ``node``."""
        return [rv for rv in self.root._observed if rv.observed is node]

    # -- evaluation helpers (delegating to the compiled model) ---------------------------------
    def __getstate__(self):  # the compiled functions stay behind (rebuilt by compile() on use)
        state = dict(self.__dict__)
        if "_compiled" in state:
            state["_compiled"] = None
        return state

    def compile(self):
        """The model as pure JAX functions on a flat unconstrained vector (cached)."""
        from jaxvi.model.config import use_default_compilation_cache
        from jaxvi.model.compiled import CompiledModel

        root = self.root
        if root._compiled is None:
            use_default_compilation_cache()  # JAX's persistent cache in the user cache folder (opt-out)
            root._compiled = CompiledModel(root)
        return root._compiled

    def initial_point(self, random_seed=None, jitter: float = 0.0) -> dict[str, np.ndarray]:
        """The starting point in unconstrained space, keyed by value-variable name (``sd_log__``)."""
        cm = self.compile()
        key = jax.random.key(0 if random_seed is None else random_seed)
        flat = cm.initial_point(key, jitter=jitter)
        return {k: np.asarray(v) for k, v in cm.unravel_unconstrained(flat).items()}

    def logp(self, point: dict | None = None, jacobian: bool = True) -> float:
        """Joint log-density at ``point`` (value-variable or variable names; default: initial point)."""
        cm = self.compile()
        flat = cm.initial_point() if point is None else cm.flat_from_point(point)
        return float(cm.logp(flat, jacobian=jacobian))

    def point_logps(self, point: dict | None = None, round_vals: int = 2) -> dict[str, float]:
        """Log-density of each random variable (and potential) at ``point``."""
        cm = self.compile()
        flat = cm.initial_point() if point is None else cm.flat_from_point(point)
        return {k: round(float(v), round_vals) for k, v in cm.logp_terms(flat).items()}

    def __repr__(self):
        return self.str_repr()

    def _summary_rows(self) -> list[tuple[str, str, str]]:
        """``(name, "~" or "=", what)`` for each named variable, as ``print(model)`` shows them."""
        rows = []
        for name, node in self._named.items():
            if isinstance(node, RandomVariable):
                rows.append((name, "~", node.spec.describe() + (" (observed)" if node.is_observed else "")))
            elif isinstance(node, DeterministicNode):
                rows.append((name, "=", f"Deterministic, shape {node.shape}"))
            elif isinstance(node, PotentialNode):
                rows.append((name, "=", f"Potential, shape {node.shape}"))
            elif isinstance(node, DataNode):
                rows.append((name, "=", f"Data, shape {node.shape}"))
        return rows

    def str_repr(self) -> str:
        rows = self._summary_rows()
        width = max((len(n) for n, _, _ in rows), default=0)
        return "\n".join(f"{n:>{width}} {op} {what}" for n, op, what in rows) if rows else "<empty jv.Model>"

    def _repr_latex_(self) -> str:
        """The model as a LaTeX array (what Jupyter shows for ``model`` at the end of a cell, as PyMC does)."""
        rows = self._summary_rows()
        if not rows:
            return r"$\text{empty jv.Model}$"
        lines = []
        for name, op, what in rows:
            relation = r"\sim" if op == "~" else "="
            lines.append(r"\text{" + _latex_text(name) + "} &" + relation + r"& \text{" + _latex_text(what) + "}")
        return r"$$\begin{array}{rcl} " + r" \\ ".join(lines) + r" \end{array}$$"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "_": r"\_", "#": r"\#", "%": r"\%", "&": r"\&", "{": r"\{",
                  "}": r"\}", "~": r"\textasciitilde{}", "$": r"\$", "^": r"\textasciicircum{}"}


def _latex_text(text: str) -> str:
    """``text`` safe inside LaTeX's ``\text{...}``."""
    return "".join(_LATEX_ESCAPES.get(c, c) for c in text)


def _as_dims(var: str, dims) -> tuple | None:
    """``dims`` as a tuple (a single dim may be given as a string)."""
    if dims is None or isinstance(dims, str):
        return dims if dims is None else (dims,)
    try:
        return tuple(dims)
    except TypeError:
        raise TypeError(f"variable {var!r}: dims must be a dim name or a tuple of names (strings), got {dims!r}") from None


def _numeric_expr(var: str, what: str, value) -> Node:
    expr = as_node(value)
    if not (np.issubdtype(expr.dtype, np.number) or expr.dtype == np.bool_):
        raise TypeError(f"{what} {var!r} must be a numeric expression, got dtype {expr.dtype} ({value!r})")
    return expr


def _checked_array(name: str, value, allow_nan: bool = False) -> np.ndarray:
    if isinstance(value, np.ma.MaskedArray):
        masked = int(np.ma.count_masked(value))
        if masked:
            raise ValueError(f"{name!r}: the data are a masked array with {masked} masked value(s); jaxvi does not "
                             "impute missing values (its fill value would be fitted as data): drop them "
                             "(e.g. y.compressed()) or model them explicitly")
        value = np.ma.getdata(value)
    try:
        arr = _canonical_array(np.asarray(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name!r}: cannot convert the data to a numeric array ({exc})") from exc
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name!r}: data must be real numbers (or booleans), got dtype {arr.dtype}; convert them "
                        "with np.asarray(values, dtype=float)")
    if not allow_nan and np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name!r}: the observed data contain {bad} NaN or infinite value(s); drop or impute them")
    return arr


# ---------------------------------------------------------------------------------------------
# User-facing constructors
# ---------------------------------------------------------------------------------------------
class MinibatchInputError(TypeError, ValueError):
    """A Minibatch input that is not an array: a TypeError, and the ValueError PyMC raises."""


class MinibatchRowsError(ValueError, AssertionError):
    """Minibatch arrays with different numbers of rows: a ValueError, and the AssertionError PyMC raises."""


def Minibatch(*arrays, batch_size: int = 128):
    """Random minibatches of rows: ``X_mb, y_mb = jv.Minibatch(X, y, batch_size=500)``.

    Every array is sliced by the same random rows at each step of a fit (the indices are drawn
    inside the compiled loop from the fit's random key), and separate calls over arrays with the
    same number of rows and batch size stay row-aligned too.  Outside a fit the nodes evaluate to
    the full arrays.  Observed variables built on them need ``total_size=`` (the number of rows).
    NumPy memory-maps (``np.load(path, mmap_mode="r")``) and ``jv.data.NpyDataset`` are streamed
    from disk.  In a multi-process run (``jax.distributed``) each process passes its own rows
    (the same number on every process); the data set is their concatenation in process order.
    Returns one node per array (a single node for one array).
    """
    if not arrays:
        raise TypeError("Minibatch() needs at least one array")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"Minibatch: batch_size must be a positive integer, got {batch_size!r}")
    sources = []
    for i, a in enumerate(arrays):
        what = f"Minibatch array {i}"
        if isinstance(a, Node):
            raise MinibatchInputError(f"{what}: {a!r} is not valid for Minibatch: pass the data array itself (a NumPy "
                                      "array or memory-map), not a model variable or expression")
        if not (isinstance(a, np.memmap) or hasattr(a, "read_rows") or isinstance(a, jax.Array)):
            _checked_array(what, np.asarray(a).flat[:1])  # the dtype checks, on one value
            a = device_rows(a)  # the one converted copy, straight to the device (data.device_rows)
            _checked_array(what, np.asarray(a))  # NaN/inf check on it (np.asarray of a CPU array: a view)
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise TypeError(f"{what}: data must be numeric, got dtype {a.dtype}")
        if len(a.shape) == 0:
            raise ValueError(f"{what}: a minibatch needs an array with rows, got a scalar")
        sources.append(a)
    rows = {int(a.shape[0]) for a in sources}
    if len(rows) > 1:
        raise MinibatchRowsError(f"Minibatch: the arrays must have the same number of rows, got {sorted(rows)} "
                                 "(All variables shape[0] in Minibatch should be equal)")
    processes = jax.process_count()
    n_rows = rows.pop() * processes
    if batch_size > n_rows:
        raise ValueError(f"Minibatch: batch_size={batch_size} is larger than the {n_rows} rows of the data")
    nodes = [MinibatchNode(a, batch_size, n_rows, process_local=processes > 1) for a in sources]
    return nodes[0] if len(nodes) == 1 else nodes



def Data(name: str, value, *, dims=None, coords=None, model: Model | None = None, mutable=None, **kwargs) -> DataNode:
    """Named data that can be replaced later with :func:`set_data` (for predictions)."""
    if kwargs:
        raise TypeError(f"Data {name!r}: unexpected keyword argument(s) {', '.join(kwargs)}")
    model = modelcontext(model, what=f"the Data variable {name!r}")
    full = model.full_name(name)
    model._check_new_name(full)
    arr = _checked_array(full, value, allow_nan=True)
    if coords:
        model.add_coords(coords)
    dims = _as_dims(full, dims)
    model.shape_from_dims(full, dims, data_shape=arr.shape)
    model._store_data(full, arr)
    node = DataNode(full, model, name=full)
    model._register(node, "_data_vars", dims)
    return node


def set_data(new_data: dict, model: Model | None = None, coords: dict | None = None):
    """Replace the values of Data variables: ``jv.set_data({"x": x_new})``."""
    model = modelcontext(model, what="set_data")
    for name, values in new_data.items():
        model.set_data(name, values, coords=coords)


def Deterministic(name: str, var, dims=None, model: Model | None = None) -> DeterministicNode:
    """Record ``var`` under ``name`` in the posterior samples."""
    model = modelcontext(model, what=f"the Deterministic {name!r}")
    full = model.full_name(name)
    model._check_new_name(full)
    expr = _numeric_expr(full, "Deterministic", var)
    dims = _as_dims(full, dims)
    if dims is not None:
        model.shape_from_dims(full, dims, shape=expr.shape)
    node = DeterministicNode(full, expr, dims)
    model._register(node, "_deterministics", dims)
    return node


def Potential(name: str, var, model: Model | None = None) -> PotentialNode:
    """Add ``var`` (summed) to the model's log-density."""
    model = modelcontext(model, what=f"the Potential {name!r}")
    full = model.full_name(name)
    model._check_new_name(full)
    node = PotentialNode(full, _numeric_expr(full, "Potential", var))
    model._register(node, "_potentials")
    return node
