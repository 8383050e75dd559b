"""The model's variables as graph leaves and named nodes (floor 1): data, minibatches, random variables.

These are the nodes a ``Model`` registers and a ``CompiledModel`` evaluates; neither of those is
imported here (a node knows its model only as the object that owns its data).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.model.nodes import Apply, Node

__all__ = ["DataNode", "MinibatchNode", "RandomVariable", "FreeRV", "ObservedRV", "DeterministicNode",
           "PotentialNode", "device_rows", "total_size_scale"]


def device_rows(source) -> jax.Array:
    """``source`` as a JAX array of JAX's default dtype for it, made with a single host copy.

    ``jnp.asarray`` of a float64 array costs three times its float32 size at peak (a converted
    numpy copy, a staging copy and the device buffer).  On a CPU, ``jax.device_put`` of a numpy
    array whose data are 64-byte aligned aliases it instead of copying, so the rows are
    converted once into a private aligned buffer that becomes the device array: a 400,000 x 100
    float64 data set then costs its float32 size (0.5x its bytes) on top of the caller's array.
    The buffer is private (never the caller's array), so aliasing it is safe.
    """
    if isinstance(source, jax.Array) and source.dtype == jax.dtypes.canonicalize_dtype(source.dtype):
        return source  # already a device array (e.g. made by jv.Minibatch)
    arr = np.asarray(source)
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(arr.dtype))
    nbytes = arr.size * dtype.itemsize
    if nbytes == 0 or jax.default_backend() != "cpu":
        return jnp.asarray(arr, dtype)
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    out = raw[start:start + nbytes].view(dtype).reshape(arr.shape)
    np.copyto(out, arr, casting="unsafe")
    return jax.device_put(out)


def total_size_scale(total_size, shape) -> float:
    """PyMC's likelihood scaling: total_size / batch size along the axes total_size names."""
    if total_size is None:
        return 1.0
    if isinstance(total_size, (int, np.integer)):
        return float(total_size) / shape[0]
    ts = list(total_size)
    if Ellipsis in ts:
        k = ts.index(Ellipsis)
        head, tail = ts[:k], ts[k + 1:]
    else:
        head, tail = ts, []
    coef = 1.0
    for i, t in enumerate(head):
        if t is not None:
            coef *= t / shape[i]
    for i, t in enumerate(tail):
        if t is not None:
            coef *= t / shape[len(shape) - len(tail) + i]
    return coef


# ---------------------------------------------------------------------------------------------
# Leaves and named nodes
# ---------------------------------------------------------------------------------------------
class DataNode(Node):
    """A data leaf whose value lives in the model's data store under ``key``."""

    def __init__(self, key: str, model, name: str | None = None):
        self.key = key
        self.model = model.root
        value = self.model._data_store[key]
        super().__init__(value.shape, value.dtype, name=name)

    @property
    def shape(self):
        return tuple(self.model._data_store[self.key].shape)

    def get_value(self) -> np.ndarray:
        return np.asarray(self.model._data_store[self.key])


class MinibatchNode(Node):
    """Random rows of a large array: ``batch_size`` rows during a fit, all the rows elsewhere.

    Its shape is the batch's.  Outside a fit (sampling, predictive draws, ``sample_node``) it
    evaluates to the full array (``value``).  Minibatch nodes with the same number of rows and
    batch size share one row-index stream in a fit, so separate ``jv.Minibatch`` calls stay aligned.
    ``streamed`` sources (NumPy memory-maps, ``jv.data.NpyDataset``) are read from disk by the
    host during the fit instead of being copied to the device.
    """

    _counter = iter(range(1 << 62))

    def __init__(self, source, batch_size: int, n_rows: int, process_local: bool = False):
        self.source = source
        self.batch_size = int(batch_size)
        self.n_rows = int(n_rows)  # all the rows (over every process of a multi-host run)
        self.process_local = process_local
        self.streamed = isinstance(source, np.memmap) or hasattr(source, "read_rows")
        self.key = f"__minibatch_{next(MinibatchNode._counter)}__"
        self._value = None
        dtype = jax.dtypes.canonicalize_dtype(source.dtype)
        super().__init__((self.batch_size, *source.shape[1:]), dtype)

    @property
    def value(self) -> jax.Array:
        """The full array on the device (loaded once; for a streamed source this reads it all)."""
        if self._value is None:
            self._value = device_rows(self.source)
        return self._value

    def _label(self) -> str:
        return f"<Minibatch of {self.n_rows} rows, batch {self.batch_size}>"


class RandomVariable(Node):
    """A named random variable: its distribution spec, model and dims."""

    is_observed = False

    def __init__(self, name, spec, model, dims=None):
        super().__init__(spec.shape, spec.dtype, name=name)
        self.spec = spec
        self.model = model
        self.dims = dims
        self.inputs = tuple(spec.nodes())

    @property
    def distribution(self) -> str:
        return self.spec.cls.__name__


class FreeRV(RandomVariable):
    """A latent variable; its value is the transform of a slice of the flat unconstrained vector."""

    def __init__(self, name, spec, model, dims=None, transformed=True, initval=None):
        super().__init__(name, spec, model, dims)
        self.transformed = transformed and spec.suffix is not None
        self.value_name = f"{name}_{spec.suffix}__" if self.transformed else name
        self.unconstrained_shape = spec.unconstrained_shape if self.transformed else spec.shape
        self.initval = initval


class ObservedRV(RandomVariable):
    """A likelihood term: the distribution evaluated at observed data (a data or expression node)."""

    is_observed = True

    def __init__(self, name, spec, model, observed: Node, total_size=None, dims=None):
        super().__init__(name, spec, model, dims)
        self.observed = observed
        self.total_size = total_size
        self.inputs = (*self.inputs, observed)
        self._dtype = observed.dtype

    @property
    def shape(self):
        return self.observed.shape


def _identity(x):  # a module-level function (not a lambda): models with Deterministics pickle
    return x


class DeterministicNode(Apply):
    """A named expression recorded in the posterior samples."""

    def __init__(self, name: str, expr: Node, dims=None):
        super().__init__(_identity, [expr], label="Deterministic")
        self.name = name
        self.dims = dims


class PotentialNode(Apply):
    """A named expression added to the model's log-density."""

    def __init__(self, name: str, expr: Node):
        super().__init__(_identity, [expr], label="Potential")
        self.name = name
