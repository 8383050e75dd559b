"""MCMC and predictive sampling (floor 4): ``jv.sample``, ``jv.sample_posterior_predictive``,
``jv.sample_prior_predictive``.

Everything works on the compiled model (``model.compile()``): NUTS (numpyro's) runs on the flat
unconstrained vector with the data passed in as a traced argument, and predictive draws vmap
``CompiledModel.sample_observed`` / ``sample_prior`` over draws.  Results come back as ArviZ
InferenceData built by :mod:`jaxvi.results`, with PyMC's names for groups and sample stats.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ._config import prng_key as _key
from .compiled import CompiledModel
from .model import modelcontext
from .results import make_inference_data, posterior_values, to_inference_data

__all__ = ["sample", "sample_posterior_predictive", "sample_prior_predictive", "INIT_METHODS"]

#: The ``init=`` strings ``jv.sample`` understands (an object with ``nuts_init`` works too).
INIT_METHODS = ("auto", "jitter+adapt_diag", "adapt_diag", "jitter+adapt_full", "adapt_full", "advi",
                "advi+adapt_diag", "pathfinder")

#: The inits that first fit an approximation: (method, keep adapting the mass matrix).
_VI_INITS = {"advi": ("advi", False), "advi+adapt_diag": ("advi", True), "pathfinder": ("pathfinder", True)}


def _fit_for_init(model, init: str, n_init: int, random_seed):
    """Fit the approximation behind ``init="advi"`` etc. (PyMC's ``init_nuts``).

    This reaches up to the inference floor by design, imported on use: the approximation is only
    the start (draws) and the inverse mass matrix (its covariance) of the chains.
    """
    from .inference import fit
    from .pathfinder import Pathfinder

    from .diagnostics import KhatWarning

    method, adapt = _VI_INITS[init]
    seed = None if random_seed is None else int(np.random.default_rng(random_seed).integers(2**31))
    with warnings.catch_warnings():  # a rough approximation is fine as a start: NUTS corrects it
        warnings.simplefilter("ignore", KhatWarning)
        if method == "pathfinder":
            return Pathfinder(model=model, random_seed=seed).fit(), adapt
        return fit(n_init, method=method, model=model, random_seed=seed, progressbar=False,
                   stop_on_convergence=True), adapt

#: PyMC keyword names for numpyro's NUTS options.
_NUTS_ALIASES = {"max_treedepth": "max_tree_depth", "step_scale": "step_size"}

#: NUTS steps per compiled chunk (the host reports progress between chunks).
_CHUNK_STEPS = 250

#: Elements (draws x observed values) evaluated per vmapped chunk of predictive sampling.
_CHUNK_ELEMENTS = 1 << 22


# -- NUTS ----------------------------------------------------------------------------------------
#: numpyro ``init_kernel`` options that ``jv.sample`` passes through (``**kwargs``).
_NUTS_OPTIONS = ("step_size", "max_tree_depth", "adapt_step_size", "adapt_mass_matrix",
                 "regularize_mass_matrix", "forward_mode_differentiation")

_FNS: "OrderedDict[tuple, object]" = OrderedDict()
_CACHE_SIZE = 32


def _cached(sig: tuple, build):
    """Compiled functions by (compiled model, settings), least recently used dropped first."""
    if sig in _FNS:
        _FNS.move_to_end(sig)
        return _FNS[sig]
    fns = _FNS[sig] = build()
    while len(_FNS) > _CACHE_SIZE:
        _FNS.popitem(last=False)
    return fns


def _nuts_fns(cm: CompiledModel, tune: int, chunk: int, dense: bool, with_mass: bool,
              target_accept: float, options: tuple):
    """jit(vmap(init)) and jit(scan of ``chunk`` vmapped NUTS steps), cached per configuration.

    Built on numpyro's functional ``hmc(potential_fn_gen=..., algo="NUTS")``: the data enter as
    the potential's model argument, so they are a traced input of the compiled programs, and a
    second ``jv.sample`` call with the same settings reuses them (no recompilation).
    """
    return _cached(("nuts", cm, tune, chunk, dense, with_mass, target_accept, options),
                   lambda: _build_nuts_fns(cm, tune, chunk, dense, target_accept, options))


def _build_nuts_fns(cm, tune, chunk, dense, target_accept, options):
    from numpyro.infer.hmc import hmc

    init_kernel, sample_kernel = hmc(potential_fn_gen=lambda batch: (lambda z: -cm.logp(z, batch)),
                                     algo="NUTS")
    opts = dict(options)

    def init_one(key, z, inverse_mass, batch):
        return init_kernel(z, tune, inverse_mass_matrix=inverse_mass, dense_mass=dense,
                           target_accept_prob=target_accept, model_args=(batch,), rng_key=key, **opts)

    def run_chunk(state, batch):
        def body(s, _):
            s = jax.vmap(sample_kernel, in_axes=(0, None))(s, (batch,))
            return s, {"z": s.z, "diverging": s.diverging, "energy": s.energy, "n_steps": s.num_steps,
                       "acceptance_rate": s.accept_prob, "potential_energy": s.potential_energy,
                       "step_size": s.adapt_state.step_size}

        return jax.lax.scan(body, state, None, length=chunk)

    return jax.jit(jax.vmap(init_one, in_axes=(0, 0, None, None))), jax.jit(run_chunk)


def _checked_initial_points(cm: CompiledModel, flats, batch, key, jitter: float, base, max_retries: int):
    """Re-jitter chains whose starting log-density or gradient is not finite; raise if that fails."""
    logp_grad = _cached(("logp_grad", cm),
                        lambda: jax.jit(jax.vmap(jax.value_and_grad(cm.logp), in_axes=(0, None))))

    def bad(f):
        lp, g = logp_grad(f, batch)
        return ~(np.isfinite(np.asarray(lp)) & np.all(np.isfinite(np.asarray(g)), axis=-1))

    flats = jnp.asarray(flats)
    failed = bad(flats)
    tries = 0
    while failed.any() and jitter > 0 and base is not None and tries < max_retries:
        tries += 1
        key, sub = jax.random.split(key)
        noise = jax.random.uniform(sub, flats.shape, flats.dtype, -jitter, jitter)
        flats = jnp.where(jnp.asarray(failed)[:, None], base + noise, flats)
        failed = bad(flats)
    if failed.any():
        chain = int(np.flatnonzero(failed)[0])
        terms = jax.jit(cm.logp_terms)(flats[chain], batch)
        culprits = [n for n, v in terms.items() if not np.isfinite(float(v))]
        point = {k: np.asarray(v) for k, v in cm.unravel_unconstrained(flats[chain]).items()}
        what = (f"non-finite log-density in {culprits}" if culprits
                else "a non-finite gradient of the log-density")
        raise ValueError(
            f"bad initial energy: chain {chain} starts with {what} at {point}; "
            "pass initvals= or check the model's priors and data")
    return flats


def _initial_points(cm: CompiledModel, key, chains: int, jitter: float, initvals, batch):
    """Flat starting points (chains, size): the model's initial point, user values, jitter."""
    if initvals is None or isinstance(initvals, Mapping):
        initvals = [initvals] * chains
    initvals = list(initvals)
    if len(initvals) != chains:
        raise ValueError(f"initvals: got {len(initvals)} dicts for {chains} chains")
    base_point = cm.initial_point(jax.random.key(0), jitter=0.0, batch=batch)
    base_values = cm.unravel_unconstrained(base_point)
    bases = []
    for iv in initvals:
        if not iv:
            bases.append(base_point)
            continue
        point = {}
        for rv in cm.free_rvs:
            if rv.name in iv:
                point[rv.name] = iv[rv.name]
            elif rv.value_name in iv:
                point[rv.value_name] = iv[rv.value_name]
            else:
                point[rv.value_name] = base_values[rv.value_name]
        known = {rv.name for rv in cm.free_rvs} | {rv.value_name for rv in cm.free_rvs}
        unknown = sorted(set(iv) - known)
        if unknown:
            raise KeyError(f"initvals name unknown free variable(s) {unknown}; known: {sorted(known)}")
        bases.append(cm.flat_from_point(point, batch))
    base = jnp.stack(bases).astype(cm.dtype)
    key, sub = jax.random.split(key)
    flats = base + jax.random.uniform(sub, base.shape, cm.dtype, -jitter, jitter) if jitter else base
    return flats, base, key


def sample(draws: int = 1000, tune: int = 1000, chains: int = 4, target_accept: float = 0.8,
           random_seed=None, init="jitter+adapt_diag", model=None, progressbar: bool = False,
           initvals=None, dense_mass: bool = False, **kwargs):
    """Draw from the posterior with NUTS (numpyro's), PyMC style.

    Runs ``chains`` vectorised chains on the model's flat unconstrained vector, ``tune`` warm-up
    steps (step size and mass matrix adaptation, discarded) and then ``draws`` kept steps.

    ``init``: "jitter+adapt_diag" (default; PyMC's start plus uniform(-1, 1) jitter in unconstrained
    space), "adapt_diag" (no jitter), "jitter+adapt_full" / "adapt_full" (dense mass matrix), "auto"
    (= "jitter+adapt_diag"), "advi+adapt_diag" / "advi" (fit mean-field ADVI first -- at most
    ``n_init=200_000`` steps, stopping at a loss plateau -- start the chains at its draws with its
    variances as the inverse mass matrix, adapted further / kept fixed), "pathfinder" (the same
    from multi-path Pathfinder, with its dense covariance), or an object with ``nuts_init(key,
    chains) -> (positions[chains, size], inverse_mass_matrix or None)``, e.g. a fitted approximation
    (``jv.sample(init=approx)``: dense covariance for correlated families, else diagonal).  ``initvals``: a dict (or one per
    chain) of starting values by variable name (constrained) or value-variable name (unconstrained).
    As in PyMC the jitter applies to user ``initvals`` too, and chains starting where the
    log-density or its gradient is not finite are re-jittered (``jitter_max_retries``, default 10)
    before an error names the offending variables.  Extra keyword arguments are numpyro NUTS
    options: ``max_tree_depth`` (PyMC's ``max_treedepth``), ``step_size`` (initial), ``adapt_step_size``,
    ``adapt_mass_matrix``, ``regularize_mass_matrix``, ``forward_mode_differentiation``; PyMC's
    ``cores``, ``compute_convergence_checks``, ``return_inferencedata=True`` and
    ``discard_tuned_samples=True`` are accepted and ignored.

    The data enter the compiled sampler as an argument and compiled samplers are cached per
    model and settings, so repeated calls (or calls after ``jv.set_data`` with same-shaped data)
    do not recompile.  Progress goes to stderr only with ``progressbar=True``.

    Returns InferenceData with ``posterior`` (free variables and Deterministics, coords/dims),
    ``sample_stats`` (``diverging``, ``energy``, ``tree_depth``, ``n_steps``, ``acceptance_rate``,
    ``lp``, ``step_size``, ``reached_max_treedepth``), ``observed_data`` and ``constant_data``.
    """
    model = modelcontext(model, what="sample")
    cm = model.compile()
    if cm.size == 0:
        raise ValueError("the model has no free random variables: there is nothing to sample")
    draws, tune, chains = int(draws), int(tune), int(chains)
    if draws < 1 or tune < 0 or chains < 1:
        raise ValueError(f"need draws >= 1, tune >= 0 and chains >= 1; got {draws}, {tune}, {chains}")
    for k in ("cores", "compute_convergence_checks", "discard_tuned_samples", "return_inferencedata"):
        if k == "return_inferencedata" and kwargs.get(k, True) is not True:
            raise ValueError("jv.sample always returns InferenceData (return_inferencedata=True)")
        if k == "discard_tuned_samples" and kwargs.get(k, True) is not True:
            raise ValueError("jv.sample always discards the tuning draws (discard_tuned_samples=True)")
        kwargs.pop(k, None)
    jitter_max_retries = int(kwargs.pop("jitter_max_retries", 10))
    n_init = int(kwargs.pop("n_init", 200_000))
    if isinstance(init, str) and init in _VI_INITS:
        init, adapt = _fit_for_init(model, init, n_init, random_seed)
        if not adapt:  # PyMC's "advi": the approximation's mass matrix, kept fixed
            kwargs.setdefault("adapt_mass_matrix", False)
    options = {_NUTS_ALIASES.get(k, k): v for k, v in kwargs.items()}
    unknown = sorted(set(options) - set(_NUTS_OPTIONS))
    if unknown:
        raise TypeError(f"sample() got unexpected keyword argument(s) {unknown}; NUTS options are "
                        f"{', '.join(_NUTS_OPTIONS)} (and PyMC's max_treedepth)")

    batch = cm.data
    key = _key(random_seed)
    init_key, run_key = jax.random.split(key)
    inverse_mass = None
    if isinstance(init, str):
        if init not in INIT_METHODS:
            raise ValueError(f"unknown init {init!r}; valid ones: {', '.join(INIT_METHODS)}, "
                             "or an object with a nuts_init(key, chains) method")
        jitter = 1.0 if init in ("auto",) or init.startswith("jitter+") else 0.0
        dense_mass = bool(dense_mass) or init.endswith("adapt_full")
        flats, base, init_key = _initial_points(cm, init_key, chains, jitter, initvals, batch)
        flats = _checked_initial_points(cm, flats, batch, init_key, jitter, base, jitter_max_retries)
    elif callable(getattr(init, "nuts_init", None)):
        flats, inverse_mass = init.nuts_init(init_key, chains)
        flats = jnp.asarray(flats, cm.dtype)
        if flats.shape != (chains, cm.size):
            raise ValueError(f"init.nuts_init returned positions of shape {flats.shape}, "
                             f"expected (chains, size) = {(chains, cm.size)}")
        flats = _checked_initial_points(cm, flats, batch, init_key, 0.0, None, 0)
        if inverse_mass is not None:
            inverse_mass = jnp.asarray(inverse_mass, cm.dtype)
            expected = ((cm.size,), (cm.size, cm.size))
            if inverse_mass.shape not in expected:
                raise ValueError(f"init.nuts_init returned an inverse mass matrix of shape "
                                 f"{inverse_mass.shape}; expected one of {expected}")
            dense_mass = inverse_mass.ndim == 2
    else:
        raise ValueError(f"unknown init {init!r}; valid ones: {', '.join(INIT_METHODS)}, "
                         "or an object with a nuts_init(key, chains) method")

    t0 = time.perf_counter()
    total = tune + draws
    n_chunks = -(-total // _CHUNK_STEPS)
    chunk = -(-total // n_chunks)  # equal chunks: one compiled program; < n_chunks extra steps
    init_fn, chunk_fn = _nuts_fns(cm, tune, chunk, bool(dense_mass), inverse_mass is not None,
                                  float(target_accept), tuple(sorted(options.items())))
    state = init_fn(jax.random.split(run_key, chains), flats, inverse_mass, batch)
    kept, done = [], 0
    for _ in range(n_chunks):
        state, out = chunk_fn(state, batch)
        lo, hi = max(tune - done, 0), min(total - done, chunk)
        if hi > lo:
            kept.append({k: np.asarray(v[lo:hi]) for k, v in out.items()})
        done += chunk
        if progressbar:
            phase = "tuning" if done <= tune else "sampling"
            divs = sum(int(p["diverging"].sum()) for p in kept)
            print(f"NUTS {chains} chains: {min(done, total)}/{total} steps ({phase}), "
                  f"{divs} divergences", file=sys.stderr, flush=True)
    stats = {k: np.swapaxes(np.concatenate([p[k] for p in kept]), 0, 1) for k in kept[0]}
    sampling_time = time.perf_counter() - t0

    max_depth = options.get("max_tree_depth", 10)
    max_depth = max(max_depth) if isinstance(max_depth, tuple) else int(max_depth)
    n_steps = stats["n_steps"].astype(np.int64)
    # a tree of depth d takes between 2**(d-1) and 2**d - 1 leapfrog steps
    tree_depth = np.where(n_steps > 0, np.floor(np.log2(np.maximum(n_steps, 1))).astype(np.int64) + 1, 0)
    sample_stats = {
        "diverging": stats["diverging"].astype(bool),
        "energy": stats["energy"],
        "tree_depth": tree_depth,
        "n_steps": n_steps,
        "acceptance_rate": stats["acceptance_rate"],
        "lp": -stats["potential_energy"],
        "step_size": stats["step_size"],
        "reached_max_treedepth": tree_depth >= max_depth,
    }
    attrs = _attrs(sampler="NUTS (numpyro)", sampling_time=float(sampling_time), tuning_steps=tune,
                   n_draws=draws, target_accept=float(target_accept))
    return to_inference_data(cm, stats["z"], sample_stats=sample_stats, batch=batch, attrs=attrs)


def _attrs(**extra) -> dict:
    import numpyro

    from . import __version__

    return {"inference_library": "jaxvi", "inference_library_version": __version__,
            "numpyro_version": numpyro.__version__, **extra}


# -- predictive sampling --------------------------------------------------------------------------
def _predictive_fn(cm: CompiledModel, free_names: tuple, observed: tuple, others: tuple):
    """jit(vmap(draw -> {observed draws, other node values})) over (key, free values)."""

    def build():
        nodes = [cm.model[n] for n in others]

        def one(key, values, batch):
            flat = cm.flat_from_point(dict(zip(free_names, values)), batch)
            out = cm.sample_observed(key, flat, batch, list(observed)) if observed else {}
            if nodes:
                out.update(zip(others, cm.evaluate(nodes, flat, batch)))
            return out

        return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))

    return _cached(("posterior_predictive", cm, free_names, observed, others), build)


def _posterior_dict(trace) -> dict:
    """{name: array (chain, draw, ...)} from InferenceData / DataTree / Dataset / dict."""
    if isinstance(trace, dict):
        return {k: np.asarray(v) for k, v in trace.items()}
    post = None
    for get in (lambda t: t["posterior"], lambda t: t.posterior):
        try:
            post = get(trace)
            break
        except (KeyError, AttributeError, TypeError):
            continue
    if post is None:
        if hasattr(trace, "data_vars"):  # an xarray Dataset of posterior draws
            post = trace
        else:
            raise TypeError("trace must be InferenceData (or DataTree) with a posterior group, "
                            f"an xarray Dataset or a dict of arrays; got {type(trace).__name__}")
    ds = post.to_dataset() if hasattr(post, "to_dataset") and not hasattr(post, "data_vars") else post
    return {name: np.asarray(ds[name].values) for name in ds.data_vars}


def _split_var_names(cm: CompiledModel, var_names):
    model = cm.model
    observed_names = [rv.name for rv in cm.observed_rvs]
    if var_names is None:
        return observed_names, []
    if isinstance(var_names, str):
        var_names = [var_names]
    observed, others = [], []
    free = set(cm.var_names)
    for name in var_names:
        node = model[name]
        full = node.name
        if full in observed_names:
            observed.append(full)
        elif full in free:
            raise ValueError(f"{full!r} is a free random variable; sample_posterior_predictive draws "
                             "observed variables and evaluates Deterministics or expressions")
        else:
            others.append(full)
    return observed, others


def _chunk_size(cm: CompiledModel, n: int, observed, others, batch) -> int:
    width = 1
    for name in (*observed, *others):
        node = cm.model[name]
        shape = getattr(node, "shape", None) or ()
        width += int(np.prod(shape, dtype=np.int64))
    width += sum(int(np.size(v)) for v in jax.tree.leaves(batch)) // 16  # intermediates
    return int(max(1, min(n, _CHUNK_ELEMENTS // max(width, 1))))


def _data_groups(cm: CompiledModel, batch) -> dict:
    """``observed_data`` and ``constant_data`` (Data variables) at the given data."""
    observed = {rv.name: np.asarray(batch[rv.observed.key]) for rv in cm.observed_rvs
                if getattr(rv.observed, "key", None) in batch}
    constant = {d.name: np.asarray(batch[d.key]) for d in cm.model.data_vars}
    return {"observed_data": observed, "constant_data": constant}


def _add_groups(trace, new):
    """Put the groups of ``new`` into ``trace`` (replacing same-named ones); return ``trace``."""
    if hasattr(trace, "extend") and not hasattr(trace, "children"):  # arviz 0.x InferenceData
        trace.extend(new, join="right")
        return trace
    for group in new.children:  # pragma: no cover - arviz 1.x DataTree
        trace[group] = new[group]
    return trace


def sample_posterior_predictive(trace, model=None, var_names=None, random_seed=None,
                                extend_inferencedata: bool = False, predictions: bool = False,
                                progressbar: bool = False):
    """Draw the observed variables once for every (chain, draw) of ``trace.posterior``.

    ``trace``: InferenceData (from ``jv.sample`` or ``approx.sample``), an ArviZ DataTree, a posterior
    Dataset, or a dict ``{name: array (chain, draw, ...)}`` holding every free variable
    (constrained values).  Uses the model's current data, so after ``jv.set_data`` the draws are
    predictions for the new data.  ``var_names``: observed variables to draw (default all); the
    names of Deterministics are accepted too and are recomputed with the current data.

    Returns InferenceData with ``posterior_predictive`` (chain, draw, *shape), ``observed_data``
    and ``constant_data`` groups; with ``predictions=True`` the groups are ``predictions`` and
    ``predictions_constant_data`` (the current Data).  With ``extend_inferencedata=True`` the new
    groups are added to ``trace`` in place (replacing same-named ones) and ``trace`` is returned.
    """
    model = modelcontext(model, what="sample_posterior_predictive")
    cm = model.compile()
    if extend_inferencedata and isinstance(trace, dict):
        raise TypeError("extend_inferencedata=True needs an InferenceData trace, not a dict")
    post = _posterior_dict(trace)
    free_names = tuple(cm.var_names)
    missing = [n for n in free_names if n not in post]
    if missing:
        raise KeyError(f"trace has no posterior draws of the free variable(s) {missing}; "
                       f"it has {sorted(post)}")
    observed, others = _split_var_names(cm, var_names)
    lead = post[free_names[0]].shape[:2] if free_names else (1, 1)
    for n in free_names:
        rv_shape = tuple(cm.model[n].shape)
        arr = post[n]
        if arr.ndim < 2 or arr.shape[:2] != lead or arr.shape[2:] != rv_shape:
            raise ValueError(f"trace: {n!r} has shape {arr.shape}, expected (chain, draw) + {rv_shape} "
                             f"with (chain, draw) = {lead}")
    n = int(np.prod(lead))
    batch = cm.data
    values = tuple(jnp.asarray(post[name].reshape((n,) + post[name].shape[2:]), cm.dtype)
                   for name in free_names)
    keys = jax.random.split(_key(random_seed), n)
    out: dict = {}
    if observed or others:
        fn = _predictive_fn(cm, free_names, tuple(observed), tuple(others))
        chunk = _chunk_size(cm, n, observed, others, batch)
        pieces = []
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            idx = jnp.minimum(jnp.arange(start, start + chunk), n - 1)  # pad: one compile
            res = fn(keys[idx], tuple(v[idx] for v in values), batch)
            pieces.append({k: np.asarray(v)[: stop - start] for k, v in res.items()})
            if progressbar:
                print(f"posterior predictive: {stop}/{n} draws", file=sys.stderr, flush=True)
        for name in (*observed, *others):
            arr = np.concatenate([p[name] for p in pieces])
            out[name] = arr.reshape(lead + arr.shape[1:])
    constant = _data_groups(cm, batch)
    if predictions:
        groups = {"predictions": out, "predictions_constant_data": constant["constant_data"]}
    elif extend_inferencedata:
        groups = {"posterior_predictive": out}
    else:
        groups = {"posterior_predictive": out, **constant}
    new = make_inference_data(cm.model, groups, attrs=_attrs(sampler="posterior predictive"))
    return _add_groups(trace, new) if extend_inferencedata else new


def sample_prior_predictive(draws: int = 500, model=None, var_names=None, random_seed=None):
    """Ancestral draws from the prior: InferenceData with ``prior`` (free variables and
    Deterministics), ``prior_predictive`` (observed variables), ``observed_data`` and
    ``constant_data`` groups, each with one chain of ``draws`` draws.

    ``var_names`` restricts the variables returned (any free, Deterministic or observed names).
    """
    model = modelcontext(model, what="sample_prior_predictive")
    cm = model.compile()
    draws = int(draws)
    if draws < 1:
        raise ValueError(f"need draws >= 1, got {draws}")
    batch = cm.data
    keys = jax.random.split(_key(random_seed), draws)
    prior_fn = _cached(("prior", cm), lambda: jax.jit(jax.vmap(cm.sample_prior, in_axes=(0, None))))
    flat, obs = prior_fn(keys, batch)
    observed_names = [rv.name for rv in cm.observed_rvs]
    latent_names = [*cm.var_names, *(d.name for d in cm.deterministics)]
    if var_names is not None:
        wanted = [model[n].name for n in ([var_names] if isinstance(var_names, str) else var_names)]
        observed_names = [n for n in observed_names if n in wanted]
        latent_names = [n for n in latent_names if n in wanted]
        unknown = [n for n in wanted if n not in observed_names and n not in latent_names]
        if unknown:
            raise ValueError(f"var_names {unknown} are neither free, Deterministic nor observed variables")
    prior = posterior_values(cm, flat[None], var_names=latent_names, batch=batch) if latent_names else {}
    prior_predictive = {n: np.asarray(obs[n])[None] for n in observed_names}
    groups = {"prior": prior, "prior_predictive": prior_predictive, **_data_groups(cm, batch)}
    return make_inference_data(cm.model, groups, attrs=_attrs(sampler="prior predictive"))
