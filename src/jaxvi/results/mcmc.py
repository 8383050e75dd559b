"""MCMC on a compiled model (floor 4): numpyro's NUTS from given starting points and mass matrix.

Everything works on the compiled model (``model.compile()``): NUTS (numpyro's) runs on the flat
unconstrained vector with the data passed in as a traced argument, and predictive draws vmap
``CompiledModel.sample_observed`` / ``sample_prior`` over draws.  Results come back as ArviZ
InferenceData built by :mod:`jaxvi.results`, with PyMC's names for groups and sample stats.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.model.config import prng_key as _key
from jaxvi.model.compiled import CompiledModel
from jaxvi.results.inference_data import to_inference_data

__all__ = ["nuts", "starting_points", "checked_initial_points", "INIT_METHODS", "NUTS_OPTIONS", "NUTS_ALIASES",
           "attrs"]

#: The ``init=`` strings ``jv.sample`` understands (an object with ``nuts_init`` works too).
INIT_METHODS = ("auto", "jitter+adapt_diag", "adapt_diag", "jitter+adapt_full", "adapt_full", "advi",
                "advi+adapt_diag", "pathfinder")

#: PyMC keyword names for numpyro's NUTS options.
NUTS_ALIASES = {"max_treedepth": "max_tree_depth", "step_scale": "step_size"}

#: NUTS steps per compiled chunk (the host reports progress between chunks).
_CHUNK_STEPS = 250

#: Elements (draws x observed values) evaluated per vmapped chunk of predictive sampling.
_CHUNK_ELEMENTS = 1 << 22


# -- NUTS ----------------------------------------------------------------------------------------
#: numpyro ``init_kernel`` options that ``jv.sample`` passes through (``**kwargs``).
NUTS_OPTIONS = ("step_size", "max_tree_depth", "adapt_step_size", "adapt_mass_matrix",
                 "regularize_mass_matrix", "forward_mode_differentiation")

def _nuts_fns(cm: CompiledModel, tune: int, chunk: int, dense: bool, with_mass: bool,
              target_accept: float, options: tuple):
    """jit(vmap(init)) and jit(scan of ``chunk`` vmapped NUTS steps), cached per configuration.

    Built on numpyro's functional ``hmc(potential_fn_gen=..., algo="NUTS")``: the data enter as
    the potential's model argument, so they are a traced input of the compiled programs, and a
    second ``jv.sample`` call with the same settings reuses them (no recompilation).
    """
    return cm.cached(("nuts", tune, chunk, dense, with_mass, target_accept, options),
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


def dispersed_points(cm: CompiledModel, base, key, n: int, jitter: float, include_base: bool = False):
    """``n`` starting points ``base`` + uniform(-jitter, jitter) noise with a finite log density and gradient.

    Points that are not finite are re-drawn (``checked_initial_points``); when that fails at ``jitter`` the
    noise shrinks (jitter / 4, / 16) before the last resort, ``base`` itself (a model with predictors in the
    thousands overflows exp() two units away from its initial point).  ``include_base``: the first point is
    ``base``.  Raises (naming the variables) only when ``base`` itself is not finite.
    """
    base = jnp.asarray(base)
    scale = float(jitter)
    for _ in range(3):
        noise = jax.random.uniform(key, (n, base.shape[-1]), base.dtype, -scale, scale)
        flats = base + noise
        if include_base:
            flats = flats.at[0].set(base)
        try:
            return checked_initial_points(cm, flats, cm.data, jax.random.fold_in(key, 1), scale, base, 20)
        except ValueError:
            scale /= 4
    return checked_initial_points(cm, jnp.broadcast_to(base, (n, base.shape[-1])), cm.data, key, 0.0, base, 0)


def checked_initial_points(cm: CompiledModel, flats, batch, key, jitter: float, base, max_retries: int):
    """Re-jitter chains whose starting log-density or gradient is not finite; raise if that fails."""
    logp_grad = cm.cached(("logp_grad",),
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
    base = jnp.stack([cm.start_point(dict(iv) if iv else None, batch, what="initvals")
                      for iv in initvals]).astype(cm.dtype)
    key, sub = jax.random.split(key)
    flats = base + jax.random.uniform(sub, base.shape, cm.dtype, -jitter, jitter) if jitter else base
    return flats, base, key


def starting_points(cm: CompiledModel, init, chains: int, random_seed, *, initvals=None, dense_mass: bool = False,
                    jitter_max_retries: int = 10):
    """``(flats[chains, size], inverse_mass or None, dense_mass, key for the run)`` for ``init``.

    ``init`` is one of :data:`INIT_METHODS` (without the ones that fit an approximation first) or an
    object with ``nuts_init(key, chains)``, e.g. a fitted approximation.
    """
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
        flats = checked_initial_points(cm, flats, batch, init_key, jitter, base, jitter_max_retries)
    elif callable(getattr(init, "nuts_init", None)):
        flats, inverse_mass = init.nuts_init(init_key, chains)
        flats = jnp.asarray(flats, cm.dtype)
        if flats.shape != (chains, cm.size):
            raise ValueError(f"init.nuts_init returned positions of shape {flats.shape}, "
                             f"expected (chains, size) = {(chains, cm.size)}")
        flats = checked_initial_points(cm, flats, batch, init_key, 0.0, None, 0)
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

    return flats, inverse_mass, dense_mass, run_key


def nuts(cm: CompiledModel, flats, *, draws: int, tune: int, key, inverse_mass=None, dense_mass: bool = False,
         target_accept: float = 0.8, options: dict | None = None, progressbar: bool = False):
    """Run vectorised NUTS chains from ``flats[chains, size]``; returns InferenceData (see ``jv.sample``)."""
    options = dict(options or {})
    batch = cm.data
    chains = int(flats.shape[0])
    run_key = key
    t0 = time.perf_counter()
    total = tune + draws
    n_chunks = -(-total // _CHUNK_STEPS)
    chunk = -(-total // n_chunks)  # equal chunks: one compiled program; < n_chunks extra steps
    init_fn, chunk_fn = _nuts_fns(cm, tune, chunk, bool(dense_mass), inverse_mass is not None,
                                  float(target_accept), tuple(sorted(options.items())))
    state = init_fn(jax.random.split(run_key, chains), flats, inverse_mass, batch)
    kept, done = [], 0
    bar = None
    if progressbar:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"NUTS, {chains} chains", file=sys.stderr, dynamic_ncols=True)
    try:
        for _ in range(n_chunks):
            state, out = chunk_fn(state, batch)
            lo, hi = max(tune - done, 0), min(total - done, chunk)
            if hi > lo:
                kept.append({k: np.asarray(v[lo:hi]) for k, v in out.items()})
            done += chunk
            if bar is not None:
                divs = sum(int(p["diverging"].sum()) for p in kept)
                bar.set_postfix_str(f"{'tuning' if done <= tune else 'sampling'}, {divs} divergences", refresh=False)
                bar.update(min(done, total) - bar.n)
    except KeyboardInterrupt:
        if not kept:  # still tuning: there is no draw to keep
            raise
        warnings.warn(f"NUTS was interrupted after {min(done, total)} of {total} steps: the result holds the "
                      f"{sum(len(p['z']) for p in kept)} draws per chain taken so far", UserWarning, stacklevel=3)
    finally:
        if bar is not None:
            bar.close()
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
    run_attrs = attrs(sampler="NUTS (numpyro)", sampling_time=float(sampling_time), tuning_steps=tune,
                      n_draws=draws, target_accept=float(target_accept))
    return to_inference_data(cm, stats["z"], sample_stats=sample_stats, batch=batch, attrs=run_attrs)


def attrs(**extra) -> dict:
    import numpyro

    from importlib.metadata import version

    return {"inference_library": "jaxvi", "inference_library_version": version("jaxvi"),
            "numpyro_version": numpyro.__version__, **extra}


