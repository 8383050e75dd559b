"""Approximation objects: a family, its parameters and the compiled model, with results methods.

These are the thin stateful shell over the pure family functions: they hold the current
parameters and the loss history, and turn draws into InferenceData (``sample``), values of
any expression (``sample_node``) and summaries (``mean``, ``std``, ``cov``).
"""

from __future__ import annotations

import json
import os
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np

from ._config import prng_key
from .compiled import CompiledModel
from .families import FullRankFamily, MeanFieldFamily
from .graph import as_node
from .model import Model, modelcontext
from .results import to_inference_data, values_fn

__all__ = ["Approximation", "MeanField", "FullRank", "LiveValue", "load", "sample_approx"]


class LiveValue(np.ndarray):
    """An array snapshot that can also fetch the current value: ``.eval()`` (PyMC style) or ``()``.

    ``Tracker(mean=approx.mean)`` therefore records the mean as the fit goes on.
    """

    def __new__(cls, value, getter=None):
        obj = np.asarray(value).view(cls)
        obj._getter = getter
        return obj

    def __array_finalize__(self, obj):
        self._getter = getattr(obj, "_getter", None)

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        arr = np.asarray(arr)
        return arr[()] if return_scalar else arr

    def eval(self) -> np.ndarray:
        return np.asarray(self._getter()) if self._getter is not None else np.asarray(self)

    def __call__(self) -> np.ndarray:
        return self.eval()

    def __reduce__(self):
        return (np.asarray, (np.asarray(self),))


def _key(seed):
    """Raw uint32 key data (the engine selects keys with ``jnp.where``), from any ``random_seed``."""
    return jax.random.key_data(prng_key(seed))


class Approximation:
    """A variational approximation of a model's posterior in unconstrained space."""

    family = MeanFieldFamily

    def __init__(self, model: Model | None = None, start=None, start_sigma=None, random_seed=None,
                 family=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {', '.join(kwargs)}")
        self.model = modelcontext(model, what=f"a {type(self).__name__} approximation")
        self.cm: CompiledModel = self.model.compile()
        if self.cm.size == 0:
            raise ValueError("the model has no free variables to approximate")
        if family is not None:
            self.family = family
        self._sample_key = _key(random_seed)
        self.vparams = self.family.init(self._start_flat(start), self._start_sigma(start_sigma))
        self.hist = np.zeros(0)

    # -- starting values ----------------------------------------------------------------------
    def _start_flat(self, start):
        cm = self.cm
        init = cm.initial_point()
        if start is None:
            return init
        if not isinstance(start, dict):
            raise TypeError(f"start must be a dict of variable values, got {type(start).__name__}")
        point = {**cm.unravel_unconstrained(init)}
        for key, value in start.items():
            rv = next((r for r in cm.free_rvs if key in (r.name, r.value_name)), None)
            if rv is None:
                raise KeyError(f"start: {key!r} is not a free variable of the model "
                               f"(free: {', '.join(cm.var_names)})")
            if key == rv.name and rv.value_name != rv.name:
                point.pop(rv.value_name, None)
            point[key] = value
        return cm.flat_from_point(point)

    def _start_sigma(self, start_sigma):
        if start_sigma is None:
            return None
        cm = self.cm
        default = self.family.std(self.family.init(jnp.zeros(cm.size, cm.dtype)))
        sigma = {k: np.asarray(v) for k, v in cm.layout.unravel(default).items()}
        for key, value in dict(start_sigma).items():
            rv = next((r for r in cm.free_rvs if key in (r.name, r.value_name)), None)
            if rv is None:
                raise KeyError(f"start_sigma: {key!r} is not a free variable of the model")
            value = np.broadcast_to(np.asarray(value, dtype=float), rv.unconstrained_shape)
            if np.any(value <= 0):
                raise ValueError(f"start_sigma: the sigma of {key!r} must be positive")
            sigma[rv.value_name] = value
        return cm.layout.ravel(sigma).astype(cm.dtype)

    # -- summaries on the flat unconstrained space ------------------------------------------------
    @property
    def ndim(self) -> int:
        return self.cm.size

    @property
    def mean(self) -> LiveValue:
        return LiveValue(self.family.mean(self.vparams), lambda: self.family.mean(self.vparams))

    @property
    def std(self) -> LiveValue:
        return LiveValue(self.family.std(self.vparams), lambda: self.family.std(self.vparams))

    @property
    def cov(self) -> LiveValue:
        return LiveValue(self.family.cov(self.vparams), lambda: self.family.cov(self.vparams))

    def _by_value_name(self, flat):
        return {k: np.asarray(v) for k, v in self.cm.unravel_unconstrained(jnp.asarray(flat)).items()}

    @property
    def mean_dict(self) -> dict:
        return self._by_value_name(self.family.mean(self.vparams))

    @property
    def std_dict(self) -> dict:
        return self._by_value_name(self.family.std(self.vparams))

    @property
    def shared_params(self) -> dict:
        return {k: np.asarray(v) for k, v in self.vparams.items()}

    @property
    def params(self) -> list:
        """The variational parameters as a list, in PyMC's order (``[mu, rho]`` for mean-field)."""
        return [np.asarray(self.vparams[k]) for k in self.family.param_names]

    def logq(self, z):
        """log q(z) for flat unconstrained points ``z`` (shape (..., ndim))."""
        return self.family.log_prob(self.vparams, jnp.asarray(z))

    # -- draws ---------------------------------------------------------------------------------------
    def _next_key(self, random_seed):
        if random_seed is not None:
            return _key(random_seed)
        self._sample_key, sub = jax.random.split(self._sample_key)
        return sub

    @cached_property
    def _draw(self):
        return jax.jit(self.family.sample, static_argnums=2)

    def sample_flat(self, draws: int, random_seed=None):
        """``draws`` draws of the flat unconstrained vector, shape (draws, ndim)."""
        if not isinstance(draws, (int, np.integer)) or draws < 1:
            raise ValueError(f"draws must be a positive integer, got {draws!r}")
        return self._draw(self.vparams, self._next_key(random_seed), int(draws))

    def sample(self, draws: int = 500, random_seed=None, return_inferencedata: bool = True, **kwargs):
        """Draws from the approximation as ArviZ InferenceData (constrained values, Deterministics)."""
        for k in kwargs:
            if k not in ("include_transformed", "hide_transformed"):
                raise TypeError(f"sample(): unexpected keyword argument {k!r}")
        flat = self.sample_flat(draws, random_seed)
        if not return_inferencedata:
            from .results import posterior_values

            return posterior_values(self.cm, flat)
        attrs = {"inference_library": "jaxvi", "variational_family": self.family.name}
        return to_inference_data(self.cm, flat[None], attrs=attrs)

    def sample_node(self, node, size: int | None = None, deterministic: bool = False, random_seed=None):
        """Values of any model expression under the approximation.

        ``size=None`` gives one draw, ``size=k`` an array with a leading axis of k draws;
        ``deterministic=True`` evaluates at the approximation's mean.
        """
        node = as_node(node)
        if deterministic:
            value = self.cm.evaluate(node, self.family.mean(self.vparams))
            return np.broadcast_to(np.asarray(value), ((size,) if size else ()) + np.shape(value)).copy()
        flat = self.sample_flat(1 if size is None else size, random_seed)
        values = np.asarray(values_fn(self.cm, (node,))(flat, self.cm.data)[0])
        return values[0] if size is None else values

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Save parameters and history (``.npz``); ``jv.load(path, model=...)`` restores them exactly."""
        meta = {"class": type(self).__name__, "family": self.family.name,
                "value_names": self.cm.value_names,
                "shapes": {n: list(self.cm.layout.shapes[n]) for n in self.cm.value_names}}
        arrays = {f"param:{k}": np.asarray(v) for k, v in self.vparams.items()}
        arrays["hist"] = np.asarray(self.hist)
        arrays["sample_key"] = np.asarray(self._sample_key)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        path = os.fspath(path)
        tmp = path + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)  # atomic: a crash mid-write leaves the previous file intact

    def __repr__(self):
        fitted = f", {len(self.hist)} steps fitted" if len(self.hist) else ""
        return f"<{type(self).__name__} approximation of {self.cm.size} parameter(s){fitted}>"


class MeanField(Approximation):
    """Independent normals in unconstrained space (mean-field ADVI)."""

    family = MeanFieldFamily


class FullRank(Approximation):
    """A multivariate normal with full covariance in unconstrained space (full-rank ADVI)."""

    family = FullRankFamily

    @property
    def L_chol(self) -> LiveValue:
        return LiveValue(self.family.L(self.vparams), lambda: self.family.L(self.vparams))


_CLASSES = {"MeanField": MeanField, "FullRank": FullRank}


def load(path, model: Model | None = None) -> Approximation:
    """Restore an approximation saved with ``approx.save(path)`` onto ``model``."""
    model = modelcontext(model, what="the loaded approximation")
    with np.load(os.fspath(path)) as f:
        meta = json.loads(bytes(f["meta"]).decode())
        params = {k.split(":", 1)[1]: jnp.asarray(f[k]) for k in f.files if k.startswith("param:")}
        hist = np.asarray(f["hist"])
        key = jnp.asarray(f["sample_key"])
    cls = _CLASSES.get(meta["class"])
    if cls is None:
        raise ValueError(f"cannot load an approximation of class {meta['class']!r}")
    cm = model.compile()
    if cm.value_names != meta["value_names"]:
        raise ValueError(f"the saved approximation is for variables {meta['value_names']}, "
                         f"but the model has {cm.value_names}")
    approx = cls(model=model)
    approx.vparams = params
    approx.hist = hist
    approx._sample_key = key
    return approx


def sample_approx(approx: Approximation, draws: int = 100, random_seed=None, **kwargs):
    """``approx.sample(draws)`` as a function, as in PyMC."""
    return approx.sample(draws, random_seed=random_seed, **kwargs)

