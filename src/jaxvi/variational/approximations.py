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

from jaxvi.model.config import prng_key
from jaxvi.model.compiled import CompiledModel, point_value
from jaxvi.vi.families import FAMILIES, FullRankFamily, GroupedFamily, LowRankFamily, MeanFieldFamily, ParticlesFamily
from jaxvi.vi.flows import FlowFamily, is_flow_spec
from jaxvi.vi.pathfinder import BFGSNormalFamily
from jaxvi.vi.stein import importance_resampled_start
from jaxvi.model.nodes import as_node, replace as replace_nodes
from jaxvi.model.context import Model, modelcontext
from jaxvi.results.inference_data import to_inference_data, values_fn
from jaxvi.results import diagnostics
from jaxvi.engine.checkpoint import NpzReader, encode_json, write_npz

__all__ = ["Approximation", "MeanField", "FullRank", "LowRank", "Empirical", "NormalizingFlow", "PathfinderApproximation", "DADVIMeanField", "DADVIFullRank", "Group", "MeanFieldGroup", "FullRankGroup", "EmpiricalGroup", "GroupingError", "LiveValue", "load", "sample_approx"]


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

    get_value = eval  # PyMC's shared-variable spelling: ``approx.mean.get_value()``

    def __repr__(self):  # the current value, shown as an array (not as ``LiveValue(...)``)
        return repr(np.asarray(self.eval()))

    __str__ = lambda self: str(np.asarray(self.eval()))  # noqa: E731

    def __call__(self) -> np.ndarray:
        return self.eval()

    def __reduce__(self):
        return (np.asarray, (np.asarray(self),))


class SharedParam(np.ndarray):
    """A snapshot of one variational parameter with PyMC's ``set_value`` / ``get_value``."""

    def __new__(cls, approx, name):
        obj = np.asarray(approx.vparams[name]).view(cls)
        obj._approx, obj._name = approx, name
        return obj

    def __array_finalize__(self, obj):
        self._approx, self._name = getattr(obj, "_approx", None), getattr(obj, "_name", None)

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        arr = np.asarray(arr)
        return arr[()] if return_scalar else arr

    def get_value(self) -> np.ndarray:
        return np.asarray(self._approx.vparams[self._name])

    def set_value(self, value) -> None:
        old = self._approx.vparams[self._name]
        value = np.asarray(value, dtype=old.dtype)
        if value.size != old.size:
            raise ValueError(f"set_value: {self._name!r} has {old.size} values (shape {tuple(old.shape)}), "
                             f"got shape {value.shape}")
        self._approx.vparams = {**self._approx.vparams, self._name: jnp.asarray(value.reshape(old.shape))}

    def __reduce__(self):
        return (np.asarray, (np.asarray(self),))


def _key(seed):
    """Raw uint32 key data (the engine selects keys with ``jnp.where``), from any ``random_seed``."""
    return jax.random.key_data(prng_key(seed))


#: The families ``start=None`` with no optimizer starts at a mode search (``Approximation.auto_start``).
AUTO_START_FAMILIES = ("mean_field", "full_rank", "low_rank", "normalizing_flow")
AUTO_START_PATHS = 4
#: No mode search when data values x max(parameters, 64) exceed this (about 1.6 GB of float64 intermediates for
#: the search's vmapped ELBO draws and Hessian; the seed's 400,000 x 100 full-data model is 2.6e10)
AUTO_START_MAX_WORK = 2e8


class Approximation:
    """A variational approximation of a model's posterior in unconstrained space."""

    family = MeanFieldFamily()

    def __init__(self, groups=None, model: Model | None = None, start=None, start_sigma=None, random_seed=None,
                 family=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {', '.join(kwargs)}")
        if isinstance(groups, Model):  # Approximation(model) as well as Approximation([groups], model)
            groups, model = None, groups if model is None else model
        self.model = modelcontext(model, what=f"a {type(self).__name__} approximation")
        self.cm: CompiledModel = self.model.compile()
        if self.cm.size == 0:
            raise ValueError("the model has no free variables to approximate")
        self._random_seed = random_seed
        if groups is not None:
            family = grouped_family(self.cm, groups, random_seed)
            self._groups_spec = [{"names": [self.cm.var_names[i] for i in _owned(self.cm, family, gi)],
                                  "vfam": g.vfam, "rank": g.rank, "flow": g.flow}
                                 for gi, g in enumerate([groups] if isinstance(groups, Group) else groups)]
        if family is not None:
            self.family = family
        self._sample_key = _key(random_seed)
        self.vparams = self._init_params(start, start_sigma)
        self.hist = np.zeros(0)
        if groups is not None:
            self._groups = [groups] if isinstance(groups, Group) else list(groups)
            self.vparams = self._group_starts(self.vparams, start)

    def _group_starts(self, vparams, start):
        """Each group's own start (``Group(params=...)``, an empirical group's particles); sets ``group.group``."""
        cm, family, parts = self.cm, self.family, list(vparams["groups"])
        center = self._start_point(start)
        key = self._derived_key(2)
        for gi, g in enumerate(self._groups):
            g.group = [cm.free_rvs[i].value_name for i in _owned(cm, family, gi)]
            own = g.start_params(cm, family.indices[gi], center, jax.random.fold_in(key, gi))
            if own is not None:
                parts[gi] = own
        return {**vparams, "groups": parts}

    @property
    def groups(self) -> list:
        """The approximation's groups (PyMC's ``approx.groups``); one group over every variable unless grouped."""
        if getattr(self, "_groups", None) is not None:
            return list(self._groups)
        names = [rv.value_name for rv in self.cm.free_rvs]
        fam = self.family
        kind = getattr(fam, "name", None)
        if kind == "mean_field":
            g = MeanFieldGroup(None)
        elif kind == "full_rank":
            g = FullRankGroup(None)
        elif kind == "empirical":
            g = EmpiricalGroup(None, size=int(self.vparams["particles"].shape[0]))
        else:
            g = object.__new__(Group)
            g.__dict__.update(group=None, vfam=getattr(fam, "name", type(fam).__name__), rank=None, flow=None,
                              size=None, trace=None, jitter=1.0, params=None)
        g.group = names
        return [g]

    @property
    def has_logq(self) -> bool:
        """PyMC's name for ``has_density``."""
        return self.has_density

    def _derived_key(self, purpose: int):
        """A key for one use at construction (1: particles, 2: group starts, 3: the start), from the sample key."""
        return jax.random.fold_in(jax.random.wrap_key_data(jnp.asarray(self._sample_key)), purpose)

    def _start_point(self, start):
        """The start (``cm.start_point``); ``initval="prior"`` variables are drawn with the fit's seed."""
        return self.cm.start_point(start, key=self._derived_key(3))

    #: ``start=None``: the start a fit chooses -- with no optimizer either, the mode search of ``auto_start``
    #: (families that can start at a fitted normal only; else, and with an optimizer, PyMC's start)
    start_pending = False

    def _init_params(self, start, start_sigma):
        if start == "auto":
            return self.auto_start(start_sigma=start_sigma)
        if isinstance(start, str):  # "laplace" / "pathfinder": a fitted normal as the start (jaxvi.laplace)
            from jaxvi.vi.starts import start_params

            return start_params(self, start, start_sigma)
        # (not with minibatches, nor with data so large that the search's ELBO draws and Hessian over the full
        # data would not fit in memory: it evaluates the whole data set at every L-BFGS step)
        self.start_pending = (start is None and start_sigma is None and type(self)._init_params is
                              Approximation._init_params and self.family.name in AUTO_START_FAMILIES
                              and not self.cm.minibatch_groups
                              and diagnostics.data_values(self.cm.data) * max(self.cm.size, 64) <= AUTO_START_MAX_WORK)
        return self.family.init(self._start_point(start), self._start_sigma(start_sigma))

    def auto_start(self, num_paths: int = AUTO_START_PATHS, jitter: float = 2.0, start_sigma=None):
        """Start at the mode search of ``jaxvi.vi.starts.mode_search`` (``start="auto"``) and return the parameters.

        ``num_paths`` Pathfinder paths, the first from the initial point, the others from it plus
        uniform(-jitter, jitter) noise in unconstrained space, run in float64.  Warns
        (``jaxvi.diagnostics.StartWarning``) when paths end in distinct modes of similar mass, and when
        no path found a mode (a funnel: the log density rises without bound) so the start fell back to
        the best path normal's mean with unit sds.  The figures are in ``start_info`` / ``start_paths``.
        """
        from jaxvi.results.mcmc import dispersed_points
        from jaxvi.vi.starts import start_params

        cm, key = self.cm, self._derived_key(4)
        base = self._start_point(None)
        self.start_pending = False
        if not np.isfinite(float(cm.logp(base, cm.data))):
            # a log density that is not finite at the initial point: no search (PyMC's start, and the fit's own
            # error names the variable and the step)
            return self.family.init(base, self._start_sigma(start_sigma))
        x0s = dispersed_points(cm, base, key, num_paths, jitter, include_base=True)
        params = start_params(self, "auto", start_sigma, key=jax.random.fold_in(key, 2), x0s=x0s)
        diagnostics.record_start(self)
        return params

    @property
    def has_density(self) -> bool:
        """Whether log q is defined (False for particles)."""
        return bool(self.family.has_density)

    # -- starting values ----------------------------------------------------------------------
    def _start_sigma(self, start_sigma):
        if start_sigma is None:
            return None
        cm = self.cm
        default = self.family.std(self.family.init(jnp.zeros(cm.size, cm.dtype)))
        sigma = {k: np.asarray(v) for k, v in cm.layout.unravel(default).items()}
        for key, value in dict(start_sigma).items():
            rv = cm.free_rv(key, "start_sigma")
            value = np.asarray(point_value(key, value, rv.unconstrained_shape, cm.dtype, prefix="start_sigma: "))
            if not np.all(value > 0):
                raise ValueError(f"start_sigma: the sigma of {key!r} must be positive, got {value}")
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

    def _dataset(self, flat):
        """Flat values as an xarray Dataset by value-variable name, with the model's dims and coords."""
        import xarray as xr

        model, values, data_vars = self.model, self._by_value_name(flat), {}
        for rv in self.cm.free_rvs:
            v = values[rv.value_name]
            dims = list(model.named_vars_to_dims.get(rv.name) or ())
            if len(dims) != v.ndim:
                dims = [f"{rv.value_name}_dim_{i}" for i in range(v.ndim)]
            coords = {d: np.asarray(model.coords[d]) for d in dims if model.coords.get(d) is not None}
            data_vars[rv.value_name] = xr.DataArray(v, dims=dims, coords=coords)
        return xr.Dataset(data_vars)

    @property
    def mean_data(self):
        """``mean`` as an xarray Dataset by value-variable name, with dims and coords (PyMC's)."""
        return self._dataset(self.family.mean(self.vparams))

    @property
    def std_data(self):
        """``std`` as an xarray Dataset by value-variable name, with dims and coords (PyMC's)."""
        return self._dataset(self.family.std(self.vparams))

    @property
    def mean_dict(self) -> dict:
        return self._by_value_name(self.family.mean(self.vparams))

    @property
    def std_dict(self) -> dict:
        return self._by_value_name(self.family.std(self.vparams))

    @property
    def shared_params(self) -> dict:
        """The parameters by name; each entry also has PyMC's ``.set_value(v)`` / ``.get_value()``."""
        if isinstance(self.vparams, dict) and all(isinstance(v, jax.Array) for v in self.vparams.values()):
            return {k: SharedParam(self, k) for k in self.vparams}
        return jax.tree_util.tree_map(np.asarray, self.vparams)

    #: PyMC's switch: divide the objective reported by ``jv.variational.operators.KL`` by
    #: ``symbolic_normalizing_constant`` (total_size / batch).  jaxvi's fits always optimise and
    #: record the full-data -ELBO (see the README's "Deliberate differences").
    scale_cost_to_minibatch = True

    @property
    def symbolic_normalizing_constant(self) -> float:
        """PyMC's ELBO normalizer: the largest total_size / batch scaling (1 when not scaling)."""
        return self.cm.likelihood_scale() if self.scale_cost_to_minibatch else 1.0

    @property
    def params(self) -> list:
        """The variational parameters as a list, in PyMC's order (``[mu, rho]`` for mean-field)."""
        return [np.asarray(x) for k in self.family.param_names for x in jax.tree_util.tree_leaves(self.vparams[k])]

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

    def sample(self, draws: int = 500, random_seed=None, return_inferencedata: bool = True,
               importance_resample: bool | None = None, **kwargs):
        """Draws from the approximation as ArviZ InferenceData (constrained values, Deterministics).

        ``importance_resample=True`` resamples the draws with Pareto-smoothed importance weights
        p/q (from at least 4x as many proposals, and at least 4000), which corrects a too-narrow or shifted q towards the
        posterior when its k-hat (attrs ``psis_khat``) is below 0.7.  The default (None) is
        ``self.importance_resample_default``, which the fit's k-hat check sets: True when that k-hat is
        below 0.7 with at least 100 effective draws (``jaxvi.diagnostics.psis_trusted``), else False (q's
        own draws, as PyMC gives; also before any check).  ``importance_resample=False`` always gives q's
        own, and so does a default request too large to resample (more than 2**26 proposal numbers, or
        beyond the k-hat check's data budget; attrs ``importance_resample_skipped`` says so).  The attrs
        say which (``importance_resampled``) and carry the ``khat`` computed after the fit (see
        :mod:`jaxvi.diagnostics`).
        """
        for k in kwargs:
            if k not in ("include_transformed", "hide_transformed"):
                raise TypeError(f"sample(): unexpected keyword argument {k!r}")
        if not isinstance(draws, (int, np.integer)) or draws < 1:
            raise ValueError(f"draws must be a positive integer, got {draws!r}")
        attrs = {"inference_library": "jaxvi", "variational_family": self.family.name}
        if importance_resample is None:
            importance_resample = self.importance_resample_default
            skip = diagnostics.default_resample_skip(self, int(draws)) if importance_resample else ""
            if skip:  # too large to resample by default: q's own draws, and the attrs say why
                importance_resample, attrs["importance_resample_skipped"] = False, skip
        if importance_resample:
            flat, info = diagnostics.psis_resample(self, int(draws), self._next_key(random_seed))
            attrs.update(info)
        else:
            flat = self.sample_flat(draws, random_seed)
            if diagnostics.has_density(self):
                attrs["importance_resampled"] = False
        if not return_inferencedata:
            from jaxvi.results.inference_data import PointsTrace

            return PointsTrace(self.cm, flat)
        if self.khat is not None:
            attrs.update(khat=self.khat, khat_draws=self.khat_draws)
        if self.report is not None:  # jv.fit(method="auto")'s AutoReport, as JSON text
            attrs["jaxvi_auto_report"] = self.report.to_json()
        return to_inference_data(self.cm, flat[None], attrs=attrs)

    # -- diagnostics (jaxvi.diagnostics) ----------------------------------------------------------
    khat = None  #: Pareto k-hat of p/q computed after the last fit (None: not computed)
    #: what ``sample()`` does when not told: PSIS-resample q's draws towards the posterior (set after each
    #: fit by ``jaxvi.diagnostics.record_khat``: True when k-hat < 0.7 with enough effective draws)
    importance_resample_default = False
    khat_draws = 0  #: draws behind ``khat``
    #: the post-fit checks' figures ("khat", "converged", "moments"; see ``jaxvi.diagnostics.record_checks``)
    diagnostics: dict = {}
    #: what ``jv.fit(method="auto")`` did to choose this approximation (``jaxvi.variational.auto.AutoReport``)
    report = None

    def iw_elbo(self, draws: int = 1000, k: int | None = None, random_seed=None) -> float:
        """The importance-weighted ELBO from ``draws`` draws, ``k`` per bound (default all; k=1: the ELBO)."""
        _, lr = diagnostics.approx_log_ratios(self, int(draws), self._next_key(random_seed))
        return diagnostics.iw_elbo(lr, k)

    def psis_khat(self, draws: int = 1000, random_seed=None) -> float:
        """The Pareto k-hat of p/q from ``draws`` fresh draws (< 0.5 good, > 0.7 unreliable)."""
        _, lr = diagnostics.approx_log_ratios(self, int(draws), self._next_key(random_seed))
        return diagnostics.psis(lr)[1]

    def nuts_init(self, key, chains: int):
        """Starting points and inverse mass matrix for ``jv.sample(init=approx)``: ``chains`` draws and
        the covariance (dense for correlated families up to 500 dimensions, else its diagonal)."""
        flats = self.sample_flat(int(chains), random_seed=key)
        dense = not isinstance(self.family, MeanFieldFamily) and self.ndim <= 500
        inverse_mass = self.family.cov(self.vparams) if dense else self.family.std(self.vparams) ** 2
        return flats, inverse_mass

    def sample_node(self, node, size: int | None = None, deterministic: bool = False, random_seed=None,
                    more_replacements: dict | None = None):
        """Values of any model expression under the approximation.

        ``size=None`` gives one draw, ``size=k`` an array with a leading axis of k draws;
        ``deterministic=True`` evaluates at the approximation's mean.  ``more_replacements``
        (PyMC's) maps nodes of the expression to values or other nodes that stand in for them,
        e.g. ``{x: x_new}`` to evaluate on new inputs.
        """
        node = as_node(node)
        if more_replacements:
            node = replace_nodes(node, more_replacements)
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
        meta["init"] = self._init_kwargs()
        arrays = {f"param:{k}": np.asarray(v) for k, v in _named_leaves(self.vparams).items()}
        arrays["hist"] = np.asarray(self.hist)
        arrays["sample_key"] = np.asarray(self._sample_key)
        arrays["meta"] = encode_json(meta)
        write_npz(path, arrays, what="approx.save")  # atomic and fsync-ed: the previous file or this one

    def __getstate__(self):  # compiled functions stay behind; they are rebuilt on use
        state = {k: v for k, v in self.__dict__.items() if k not in ("_draw", "cm")}
        state["vparams"] = jax.tree_util.tree_map(np.asarray, self.vparams)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.vparams = jax.tree_util.tree_map(jnp.asarray, self.vparams)
        self.cm = self.model.compile()

    def _init_kwargs(self) -> dict:
        """Constructor arguments (JSON) that rebuild this approximation's structure for ``jv.load``."""
        if isinstance(self.family, GroupedFamily):
            return {"groups": self._groups_spec}
        return {}

    def __repr__(self):
        fitted = f", {len(self.hist)} steps fitted" if len(self.hist) else ""
        return f"<{type(self).__name__} approximation of {self.cm.size} parameter(s){fitted}>"


class MeanField(Approximation):
    """Independent normals in unconstrained space (mean-field ADVI)."""

    family = MeanFieldFamily()


class FullRank(Approximation):
    """A multivariate normal with full covariance in unconstrained space (full-rank ADVI)."""

    family = FullRankFamily()

    @property
    def L_chol(self) -> LiveValue:
        return LiveValue(self.family.L(self.vparams), lambda: self.family.L(self.vparams))


class _LinearResponse:
    """DADVI's approximations: ``cov`` and ``std`` are the linear-response (LRVB) ones when computed
    (``lr_cov``); draws, ``logq`` and k-hat stay those of the fitted family ``q_std``/``q_cov``."""

    lr_cov = None  #: the linear-response covariance (flat, unconstrained), None when not computed

    @property
    def q_cov(self) -> LiveValue:
        return Approximation.cov.fget(self)

    @property
    def q_std(self) -> LiveValue:
        return Approximation.std.fget(self)

    @property
    def cov(self) -> LiveValue:
        if self.lr_cov is None:
            return self.q_cov
        return LiveValue(self.lr_cov, lambda: self.lr_cov)

    @property
    def std(self) -> LiveValue:
        if self.lr_cov is None:
            return self.q_std
        sd = jnp.sqrt(jnp.diag(self.lr_cov))
        return LiveValue(sd, lambda: sd)


class DADVIMeanField(_LinearResponse, MeanField):
    """Mean-field normal fitted by DADVI, with linear-response covariances."""


class DADVIFullRank(_LinearResponse, FullRank):
    """Full-rank normal fitted by DADVI, with linear-response covariances."""


class LowRank(Approximation):
    """A normal with low-rank plus diagonal covariance, diag(s**2) + W W^T, W of shape (ndim, rank).

    ``rank=None`` uses min(ndim, 5); the cost per draw and density is O(ndim * rank**2).
    """

    def __init__(self, model: Model | None = None, rank: int | None = None, **kwargs):
        super().__init__(model=model, family=LowRankFamily(rank), **kwargs)

    @property
    def rank(self) -> int:
        return int(self.vparams["W"].shape[-1])

    def _init_kwargs(self):
        return {"rank": self.rank}


class Empirical(Approximation):
    """Particles in unconstrained space (SVGD's approximation, or draws from anywhere).

    ``trace`` may be an InferenceData (e.g. from ``jv.sample``), a dict of constrained draws by
    variable name (leading axis = draws), or an array of flat unconstrained draws ``(n, ndim)``.
    Without a trace, ``size`` particles start at the initial point (or ``start``) plus
    ``jitter`` times standard normal noise (``init="jitter"``, PyMC's start), or as such draws
    importance-resampled toward the posterior (``init="importance"``, SVGD's default; see
    ``jaxvi.stein.importance_resampled_start``).  Draws pick particles uniformly with replacement.
    """

    family = ParticlesFamily()

    def __init__(self, trace=None, size: int | None = None, jitter: float = 1.0, model: Model | None = None,
                 random_seed=None, start=None, init: str = "jitter", **kwargs):
        for k in kwargs:
            if k != "local_rv":
                raise TypeError(f"Empirical: unexpected keyword argument {k!r}")
        if trace is None and size is None:
            raise ValueError("Empirical needs a trace of draws or a number of particles: Empirical(size=100)")
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
            raise ValueError(f"Empirical: size must be a positive number of particles, got {size!r}")
        if not np.isfinite(jitter) or jitter < 0:
            raise ValueError(f"Empirical: jitter must be a non-negative number, got {jitter!r}")
        if init not in ("jitter", "importance"):
            raise ValueError(f"Empirical: init must be 'jitter' or 'importance', got {init!r}")
        self._trace, self._size, self._jitter, self._init = trace, size, float(jitter), init
        self.init_ess = None  # effective sample size of the importance-resampled start
        super().__init__(model=model, start=start, random_seed=random_seed)

    def _init_params(self, start, start_sigma):
        if self._trace is not None:
            particles = flat_draws(self.cm, self._trace)
            if self._size is not None:
                particles = particles[-int(self._size):]
        else:
            center = self._start_point(start)
            key = self._derived_key(1)
            if self._init == "importance" and self._jitter > 0:
                particles, ess, used = _importance_start(key, self.cm.logp, self.cm.data, center, self._jitter,
                                                         int(self._size))
                self.init_ess = float(ess) if bool(used) else None
            else:
                noise = jax.random.normal(key, (int(self._size), self.cm.size), self.cm.dtype)
                particles = center + self._jitter * noise
        return self.family.init(jnp.asarray(particles, self.cm.dtype))

    @property
    def histogram(self) -> LiveValue:
        """The particles, shape (n_particles, ndim) (PyMC's name)."""
        return LiveValue(self.vparams["particles"], lambda: self.vparams["particles"])

    @property
    def size(self) -> int:
        return int(self.vparams["particles"].shape[0])

    def _init_kwargs(self):
        return {"size": self.size, "jitter": 0.0}


# one compiled start per (model, number of particles): a second SVGD on the same model reuses it
_importance_start = jax.jit(importance_resampled_start, static_argnums=(1, 5))


def flat_draws(cm: CompiledModel, trace) -> jnp.ndarray:
    """Flat unconstrained draws ``(n, ndim)`` from InferenceData, a dict by name, a PointsTrace or an array."""
    if isinstance(getattr(trace, "flat", None), jax.Array) and hasattr(trace, "varnames"):  # a PointsTrace
        return jnp.asarray(trace.flat, cm.dtype)
    if hasattr(trace, "posterior"):
        trace = trace.posterior
    if hasattr(trace, "data_vars"):  # an xarray Dataset with (chain, draw, ...) dims
        trace = {name: np.asarray(trace[name].values).reshape((-1,) + tuple(trace[name].shape[2:]))
                 for name in cm.var_names if name in trace.data_vars}
    if isinstance(trace, dict):
        missing = [n for n in cm.var_names if n not in trace]
        if missing:
            raise ValueError(f"the draws have no values for {', '.join(missing)}")
        point = {n: jnp.asarray(trace[n], cm.dtype) for n in cm.var_names}
        sizes = {v.shape[0] if v.ndim else 0 for v in point.values()}
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError("the draws of each variable must share one leading draws axis")
        return jax.jit(jax.vmap(cm.flat_from_point))(point)
    arr = np.asarray(trace)
    if arr.ndim != 2 or arr.shape[1] != cm.size:
        raise ValueError(f"an array of draws must have shape (draws, {cm.size}) (flat unconstrained values), "
                         f"got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("the draws contain NaN or infinite values")
    return jnp.asarray(arr, cm.dtype)


class NormalizingFlow(Approximation):
    """A normalizing flow on the flat unconstrained vector (see ``jaxvi.flows`` for specs)."""

    def __init__(self, flow: str = "planar", model: Model | None = None, random_seed=None, **kwargs):
        kwargs.pop("local_rv", None)
        key = jax.random.fold_in(prng_key(random_seed), 2)
        super().__init__(model=model, family=FlowFamily(flow, key), random_seed=random_seed, **kwargs)

    @property
    def flow(self) -> str:
        return self.family.flow

    def _init_kwargs(self):
        return {"flow": self.family.flow}


class PathfinderApproximation(Approximation):
    """The best single-path Pathfinder normal (a BFGSNormalFamily approximation with a density)."""

    family = BFGSNormalFamily()

    def __init__(self, model: Model | None = None, params=None, random_seed=None):
        super().__init__(model=model, random_seed=random_seed)
        if params is not None:
            self.vparams = params

    def _init_params(self, start, start_sigma):
        d, dtype = self.cm.size, self.cm.dtype
        return {"mu": self._start_point(start), "alpha": jnp.ones(d, dtype), "Q": jnp.eye(d, 1, dtype=dtype),
                "L": jnp.eye(1, dtype=dtype)}


class GroupingError(TypeError, ValueError):
    """Groups that do not partition the free variables: a TypeError as in PyMC, and a ValueError."""


_MF_NAMES = ("mean_field", "mf", "advi")
_FR_NAMES = ("full_rank", "fr", "fullrank")
_EMPIRICAL_NAMES = ("empirical", "histogram")


def _group_class(vfam, params):
    """The Group subclass PyMC's ``Group(...)`` dispatches to, from ``vfam`` or the keys of ``params``."""
    if vfam is None and params is not None:
        keys = set(dict(params))
        for cls in (MeanFieldGroup, FullRankGroup, EmpiricalGroup):
            if keys == set(cls.param_keys):
                return cls
        raise ValueError(f"Group: params with keys {sorted(keys)} match no family "
                         "(mean-field: mu, rho; full-rank: mu, L_tril; empirical: histogram)")
    v = (vfam or "mean_field").lower() if isinstance(vfam, str) or vfam is None else None
    if v in _MF_NAMES:
        return MeanFieldGroup
    if v in _FR_NAMES:
        return FullRankGroup
    if v in _EMPIRICAL_NAMES:
        return EmpiricalGroup
    return Group


class Group:
    """Variables that share one variational family: ``Group([mu, sd], vfam="fr")``.

    ``group=None`` takes every free variable no other group names.  ``vfam``: "mean_field"/"mf"
    (default), "full_rank"/"fr", "empirical" (particles: with ``size=`` or ``trace=``),
    "low_rank"/"lr" (with ``rank=``), or a flow spec such as "planar*4" or "realnvp*4" (also
    "nf"/"flow" with ``flow=``).  As in PyMC, ``Group(...)`` is a ``MeanFieldGroup``, ``FullRankGroup``
    or ``EmpiricalGroup`` for those families, and ``params=`` (``{"mu", "rho"}``, ``{"mu", "L_tril"}``
    or ``{"histogram"}``, shaped as PyMC's) chooses the family and gives its starting values.
    Once in an approximation, ``group.group`` lists the value-variable names it covers.
    """

    default_vfam = "mean_field"
    param_keys: tuple = ()

    def __new__(cls, *args, **kwargs):
        if cls is Group and (args or kwargs):  # not when unpickling (no arguments)
            vfam = kwargs.get("vfam", args[1] if len(args) > 1 else None)
            params = kwargs.get("params", args[2] if len(args) > 2 else None)
            cls = _group_class(vfam, params)
        return object.__new__(cls)

    def __init__(self, group=None, vfam: str | None = None, params=None, rank: int | None = None,
                 flow: str | None = None, size: int | None = None, trace=None, jitter: float = 1.0, **kwargs):
        for k in kwargs:
            if k not in ("local_rv", "model", "random_seed", "options"):
                raise TypeError(f"Group: unexpected keyword argument {k!r}")
        if group is not None and not isinstance(group, (list, tuple)):
            group = [group]
        self.group = None if group is None else list(group)
        self.vfam = self.default_vfam if vfam is None else vfam
        self.rank, self.flow = rank, flow
        self.size, self.trace, self.jitter = size, trace, float(jitter)
        if not isinstance(self.vfam, str):
            raise TypeError(f"Group: vfam must be a string such as 'mf', 'fr' or 'planar*4', got {vfam!r}")
        if params is not None:
            params = {k: np.asarray(v) for k, v in dict(params).items()}
            if self.param_keys and set(params) != set(self.param_keys):
                raise ValueError(f"{type(self).__name__}: params must have the keys {', '.join(self.param_keys)}, "
                                 f"got {', '.join(sorted(params))}")
            if not self.param_keys:
                raise ValueError(f"Group: params= is supported for mean-field, full-rank and empirical groups, "
                                 f"not vfam={self.vfam!r}")
        self.params = params
        self.family_for(None)  # an unknown vfam fails here, not at fit time

    @property
    def has_logq(self) -> bool:
        """Whether the group has a density (False for particles)."""
        return self.vfam.lower() not in _EMPIRICAL_NAMES

    def family_for(self, key):
        v = self.vfam.lower()
        if v in ("nf", "flow", "normalizing_flow"):
            return FlowFamily(self.flow or "planar", key)
        if v in _EMPIRICAL_NAMES:
            return ParticlesFamily
        if v in ("low_rank", "lr", "lowrank"):
            return LowRankFamily(self.rank)
        if v in FAMILIES:
            return FAMILIES[v]
        if is_flow_spec(v):
            return FlowFamily(v, key)
        raise ValueError(f"unknown vfam {self.vfam!r}; valid: mean_field/mf, full_rank/fr, empirical, low_rank/lr, "
                         "or a flow spec such as 'planar*4', 'radial*2-loc', 'realnvp*4', 'maf*4', 'nsf*2'")

    def start_params(self, cm: CompiledModel, idx, center, key):
        """This group's starting parameters over flat coordinates ``idx``, or None for the family's default."""
        if self.params is None:
            return None
        d, out = len(idx), {}
        for k, v in self.params.items():
            v = jnp.asarray(v, cm.dtype)
            want = {"mu": d, "rho": d, "L_tril": d * (d + 1) // 2}.get(k)
            if want is not None:
                if v.size != want:
                    raise ValueError(f"{type(self).__name__}: params[{k!r}] has {v.size} values, the group needs "
                                     f"{want} (shape {v.shape})")
                v = v.reshape(want)
            out[k] = v
        if "histogram" in out:
            out = {"particles": out.pop("histogram").reshape(-1, d)}
        return out

    def __repr__(self):
        names = "None" if self.group is None else [getattr(v, "name", v) for v in self.group]
        return f"{type(self).__name__}({names}, vfam={self.vfam!r})"


class MeanFieldGroup(Group):
    """PyMC's mean-field group: independent normals, params ``mu`` and ``rho`` (std = softplus(rho))."""

    default_vfam = "mean_field"
    param_keys = ("mu", "rho")

    @staticmethod
    def get_param_spec_for(d: int, **kwargs) -> dict:
        return {"mu": (d,), "rho": (d,)}


class FullRankGroup(Group):
    """PyMC's full-rank group: params ``mu`` and the packed lower triangle ``L_tril``."""

    default_vfam = "full_rank"
    param_keys = ("mu", "L_tril")

    @staticmethod
    def get_param_spec_for(d: int, **kwargs) -> dict:
        return {"mu": (d,), "L_tril": (d * (d + 1) // 2,)}


class EmpiricalGroup(Group):
    """PyMC's empirical group: particles (``histogram``), from ``trace=`` or ``size=`` jittered starts."""

    default_vfam = "empirical"
    param_keys = ("histogram",)

    def __init__(self, group=None, vfam: str | None = None, params=None, size: int | None = None, trace=None,
                 jitter: float = 1.0, **kwargs):
        if trace is None and size is None and params is None:
            raise ValueError("Need `trace` or `size` to initialize an empirical group")
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
            raise ValueError(f"EmpiricalGroup: size must be a positive number of particles, got {size!r}")
        super().__init__(group, vfam, params, size=size, trace=trace, jitter=jitter, **kwargs)

    @staticmethod
    def get_param_spec_for(d: int, size: int = 1, **kwargs) -> dict:
        return {"histogram": (size, d)}

    def start_params(self, cm, idx, center, key):
        out = super().start_params(cm, idx, center, key)
        if out is not None:
            return out
        if self.trace is not None:
            particles = flat_draws(cm, self.trace)[:, idx]
            if self.size is not None:
                particles = particles[-int(self.size):]
        else:
            particles = center[idx] + self.jitter * jax.random.normal(key, (int(self.size), len(idx)), cm.dtype)
        return {"particles": jnp.asarray(particles, cm.dtype)}


def grouped_family(cm: CompiledModel, groups, random_seed=None) -> GroupedFamily:
    """Resolve ``Group``s against the model: which flat coordinates each family covers."""
    if isinstance(groups, Group):
        groups = [groups]
    if not isinstance(groups, (list, tuple)) or not groups or not all(isinstance(g, Group) for g in groups):
        raise TypeError("groups must be a non-empty list of jv.Group(...) objects")
    by_name = {rv.name: rv for rv in cm.free_rvs}
    by_value = {rv.value_name: rv for rv in cm.free_rvs}
    owner: dict = {}
    rest = [g for g in groups if g.group is None]
    if len(rest) > 1:
        raise GroupingError("only one Group(None, ...) may take the remaining variables")
    for gi, g in enumerate(groups):
        for v in g.group or []:
            name = getattr(v, "name", v)
            rv = by_name[name] if name in by_name else by_value.get(name)
            if rv is None or (hasattr(v, "name") and not any(v is r for r in cm.free_rvs)):
                raise ValueError(f"Group: {name!r} is not a free variable of the model "
                                 f"(free: {', '.join(cm.var_names)})")
            if rv.name in owner:
                raise GroupingError(f"Found duplicates in groups: {rv.name!r} is in more than one group")
            owner[rv.name] = gi
    missing = [rv.name for rv in cm.free_rvs if rv.name not in owner]
    if missing and not rest:
        raise GroupingError(f"No approximation is specified for the rest variables: no group covers {', '.join(missing)}: add them to a group or add "
                         "jv.Group(None, vfam=...) for the remaining variables")
    if rest:
        if not missing:
            raise ValueError("Group(None, ...) has no variables left: every free variable is in another group")
        for name in missing:
            owner[name] = groups.index(rest[0])
    base = prng_key(random_seed)
    parts = []
    for gi, g in enumerate(groups):
        idx = [np.arange(cm.layout.slices[rv.value_name].start, cm.layout.slices[rv.value_name].stop)
               for rv in cm.free_rvs if owner[rv.name] == gi]
        parts.append((np.concatenate(idx), g.family_for(jax.random.fold_in(base, 100 + gi))))
    return GroupedFamily.of(parts)


_CLASSES = {"MeanField": MeanField, "FullRank": FullRank, "LowRank": LowRank, "Empirical": Empirical,
            "NormalizingFlow": NormalizingFlow, "Approximation": Approximation}


def _named_leaves(params) -> dict:
    """Parameter arrays by path, in tree order: ``mu`` for a flat dict, ``layers/0/b`` when nested."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        out["/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)] = leaf
    return out


def _owned(cm, family, gi) -> list[int]:
    """Indices (into cm.free_rvs) of the variables whose coordinates group ``gi`` covers."""
    cover = set(family.indices[gi].tolist())
    return [i for i, rv in enumerate(cm.free_rvs) if cm.layout.slices[rv.value_name].start in cover]


def _open_saved(path) -> tuple[NpzReader, dict]:
    """The file written by ``approx.save`` (headers checked) and its metadata, or an error saying what is wrong."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"jv.load: there is no file {path!r}; give the path that approx.save(...) wrote")
    if os.path.isdir(path):
        raise IsADirectoryError(f"jv.load: {path!r} is a folder; give the .npz file that approx.save(...) wrote")
    f = NpzReader(path, "jv.load: the approximation file", "it is not an approximation saved with approx.save(...); "
                  "save the approximation again")
    try:
        f.names(required=("meta", "hist", "sample_key"), allowed=("meta", "hist", "sample_key"), prefixes=("param:",))
        if not any(k.startswith("param:") for k in f.headers):
            f.fail(f"it has no parameters (it holds {sorted(f.headers)})")
        meta = f.read_json("meta", required=("class", "value_names"))
        f.expect("hist", "f", ndim=1)
    except BaseException:
        f.close()
        raise
    return f, meta


def load(path, model: Model | None = None) -> Approximation:
    """Restore an approximation saved with ``approx.save(path)`` onto ``model`` (the model it was fitted on)."""
    model = modelcontext(model, what="the loaded approximation")
    f, meta = _open_saved(path)
    with f:
        return _restore_saved(f, meta, model)


def _restore_saved(f: NpzReader, meta: dict, model: Model) -> Approximation:
    cls = _CLASSES.get(meta["class"])
    if cls is None:
        f.fail(f"it holds an approximation of class {meta['class']!r} (loadable: {', '.join(_CLASSES)})")
    cm = model.compile()
    if cm.value_names != meta["value_names"]:
        raise ValueError(f"jv.load: the saved approximation is for variables {meta['value_names']}, "
                         f"but the model has {cm.value_names}; load it onto the model it was fitted on")
    shapes = {n: list(cm.layout.shapes[n]) for n in cm.value_names}
    if meta.get("shapes", shapes) != shapes:
        raise ValueError(f"jv.load: the saved approximation has variable shapes {meta['shapes']}, but the model's "
                         f"are {shapes}; load it onto the model it was fitted on")
    init = dict(meta.get("init") or {})
    try:
        if "groups" in init:
            init["groups"] = [Group(g["names"], vfam=g["vfam"], rank=g.get("rank"), flow=g.get("flow"))
                              for g in init["groups"]]
        approx = cls(model=model, **init)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        f.fail(f"its metadata do not describe a {meta['class']} ({type(exc).__name__}: {exc})")
    expected = _named_leaves(approx.vparams)
    params = sorted(k.split(":", 1)[1] for k in f.headers if k.startswith("param:"))
    if params != sorted(expected):
        f.fail(f"its parameters {params} do not fit a {meta['class']} approximation (expected {sorted(expected)})")
    for k, v in expected.items():
        f.expect(f"param:{k}", "fiu", shape=np.shape(v))
    f.expect("sample_key", "u", shape=np.shape(approx._sample_key))
    treedef = jax.tree_util.tree_structure(approx.vparams)
    approx.vparams = jax.tree_util.tree_unflatten(
        treedef, [jnp.asarray(f.read(f"param:{k}", finite=True), dtype=jnp.asarray(v).dtype) for k, v in expected.items()])
    approx.hist = f.read("hist")
    approx._sample_key = jnp.asarray(f.read("sample_key"))
    return approx


def sample_approx(approx: Approximation, draws: int = 100, random_seed=None, **kwargs):
    """``approx.sample(draws)`` as a function, as in PyMC."""
    return approx.sample(draws, random_seed=random_seed, **kwargs)

