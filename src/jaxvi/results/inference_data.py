"""Results (floor 4): draws of the flat vector -> ArviZ InferenceData.

One converter serves every producer of draws (variational approximations, NUTS, predictive
sampling): values of the free variables and Deterministics are computed from the flat draws
by the compiled model, vectorised over chains and draws.
"""

from __future__ import annotations


import warnings
from importlib.metadata import version

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.model.compiled import CompiledModel

__all__ = ["to_inference_data", "posterior_values", "make_inference_data", "import_arviz", "ARVIZ_MAJOR"]

ARVIZ_MAJOR = int(version("arviz").split(".")[0])


def import_arviz():
    """arviz, imported on first use (it costs about a second at start-up)."""
    with warnings.catch_warnings():  # arviz 0.2x announces its refactor on import
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def values_fn(cm: CompiledModel, nodes: tuple):
    """Compiled ``(flat_draws[n, size], batch) -> [values of each node, n leading]`` (cached per node set)."""
    return cm.cached(("values", nodes), lambda: jax.jit(jax.vmap(lambda flat, batch: cm.evaluate(list(nodes), flat, batch),
                                                                 in_axes=(0, None))))


def posterior_values(cm: CompiledModel, flat_draws, var_names=None, batch=None, chunk: int = 4096) -> dict:
    """Values of ``var_names`` (default: free variables and Deterministics) for draws of shape (..., size)."""
    model = cm.model
    if var_names is None:
        var_names = [*cm.var_names, *(d.name for d in model.deterministics)]
    names = tuple(var_names)
    flat_draws = jnp.asarray(flat_draws)
    lead = flat_draws.shape[:-1]
    flat2 = flat_draws.reshape((-1, cm.size))
    fn = values_fn(cm, tuple(model[n] for n in names))
    batch = cm.data if batch is None else batch
    pieces = [fn(flat2[i:i + chunk], batch) for i in range(0, max(flat2.shape[0], 1), chunk)] if flat2.shape[0] else []
    out = {}
    for j, name in enumerate(names):
        vals = np.concatenate([np.asarray(p[j]) for p in pieces]) if pieces else np.zeros((0,))
        out[name] = vals.reshape(lead + vals.shape[1:])
    return out


def _coords_dims(model, names):
    dims, coords = {}, {}
    for name in names:
        d = model.named_vars_to_dims.get(name)
        if d:
            dims[name] = list(d)
            for dim in d:
                vals = model.coords.get(dim)
                coords[dim] = list(vals) if vals is not None else list(range(model.dim_lengths[dim]))
    return coords, dims


def make_inference_data(model, groups: dict[str, dict], attrs: dict | None = None):
    """Build InferenceData (arviz 0.x) or DataTree (arviz 1.x) from ``{group: {var: array}}``."""
    names = [n for g in groups.values() for n in g]
    coords, dims = _coords_dims(model, names)
    groups = {g: v for g, v in groups.items() if v}
    az = import_arviz()
    if ARVIZ_MAJOR >= 1:  # pragma: no cover - depends on the installed arviz
        idata = az.from_dict(groups, coords=coords, dims=dims)
    else:
        idata = az.from_dict(**groups, coords=coords, dims=dims)
    if attrs:
        for group in groups:
            if group in ("observed_data", "constant_data", "predictions_constant_data"):
                continue
            # netCDF has no boolean attributes (to_netcdf would refuse them): flags are stored as 0/1
            getattr(idata, group).attrs.update({k: int(v) if isinstance(v, (bool, np.bool_)) else v
                                                for k, v in attrs.items() if v is not None})
    return idata


def to_inference_data(cm: CompiledModel, flat_draws, sample_stats: dict | None = None, batch=None,
                      attrs: dict | None = None):
    """InferenceData with posterior (chain, draw, ...), observed and constant data, sample stats.

    ``flat_draws`` has shape (chains, draws, size).
    """
    model = cm.model
    flat_draws = jnp.asarray(flat_draws)
    if flat_draws.ndim != 3:
        raise ValueError(f"flat draws must have shape (chains, draws, size), got {flat_draws.shape}")
    posterior = posterior_values(cm, flat_draws, batch=batch)
    data = cm.data if batch is None else batch
    observed = {rv.name: np.asarray(data[rv.observed.key]) for rv in model.observed_RVs
                if getattr(rv.observed, "key", None) in data}
    constant = {d.name: np.asarray(data[d.key]) for d in model.data_vars}
    groups = {"posterior": posterior, "sample_stats": sample_stats or {}, "observed_data": observed,
              "constant_data": constant}
    return make_inference_data(model, groups, attrs=attrs)


class PointsTrace:
    """Draws as PyMC's ``MultiTrace`` shows them (``sample(..., return_inferencedata=False)``).

    ``varnames`` holds the free variables, their value variables (``sd_log__``) and Deterministics;
    ``trace["mu"]`` / ``trace.get_values("mu")`` is an array with a leading draws axis and
    ``trace[i]`` the i-th draw as a dict.
    """

    def __init__(self, cm: CompiledModel, flat_draws, nchains: int = 1):
        flat_draws = jnp.asarray(flat_draws)
        self.flat, self.nchains = flat_draws, int(nchains)  # flat unconstrained draws (n, ndim)
        values = posterior_values(cm, flat_draws)
        unconstrained = jax.vmap(cm.unravel_unconstrained)(flat_draws)
        for rv in cm.free_rvs:
            if rv.value_name != rv.name:
                values[rv.value_name] = np.asarray(unconstrained[rv.value_name])
        self._values = values
        self.varnames = list(values)
        self._n = int(flat_draws.shape[0])

    def __len__(self):
        return self._n

    def get_values(self, varname):
        return self._values[varname]

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._values[key]
        return {k: v[key] for k, v in self._values.items()}

    def points(self):
        return (self[i] for i in range(self._n))

    def __repr__(self):
        return f"<PointsTrace: {self._n} draws of {', '.join(self.varnames)}>"
