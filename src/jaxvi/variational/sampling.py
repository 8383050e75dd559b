"""``jv.sample``: NUTS as PyMC's ``pm.sample`` (floor 5).

The sampler itself lives in :mod:`jaxvi.results.mcmc`; this layer adds what needs the inference
floor: ``init="advi"`` / ``"advi+adapt_diag"`` / ``"pathfinder"`` fit an approximation first and start
the chains from it.
"""

from __future__ import annotations

import warnings

import numpy as np

from jaxvi.model.context import modelcontext
from jaxvi.results.diagnostics import KhatWarning
from jaxvi.results.mcmc import NUTS_ALIASES, NUTS_OPTIONS, nuts, starting_points

__all__ = ["sample"]

#: The inits that first fit an approximation: (method, keep adapting the mass matrix).
VI_INITS = {"advi": ("advi", False), "advi+adapt_diag": ("advi", True), "pathfinder": ("pathfinder", True)}


def _fit_for_init(model, init: str, n_init: int, random_seed):
    """Fit the approximation behind ``init="advi"`` etc. (PyMC's ``init_nuts``): only the start (draws)
    and the inverse mass matrix (its covariance) of the chains."""
    from jaxvi.variational.inference import Pathfinder, fit

    method, adapt = VI_INITS[init]
    seed = None if random_seed is None else int(np.random.default_rng(random_seed).integers(2**31))
    with warnings.catch_warnings():  # a rough approximation is fine as a start: NUTS corrects it
        warnings.simplefilter("ignore", KhatWarning)
        if method == "pathfinder":
            return Pathfinder(model=model, random_seed=seed).fit(), adapt
        return fit(n_init, method=method, model=model, random_seed=seed, progressbar=False,
                   stop_on_convergence=True), adapt


def sample(draws: int = 1000, tune: int = 1000, chains: int = 4, target_accept: float = 0.8,
           random_seed=None, init="jitter+adapt_diag", model=None, progressbar: bool = True,
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
    ``cores`` and ``compute_convergence_checks`` are accepted and ignored, ``discard_tuned_samples=True``
    is accepted; ``return_inferencedata=False`` returns the draws as PyMC's MultiTrace shows them (a
    ``PointsTrace``: ``trace['mu']``, ``trace[i]``, ``trace.varnames``); ``random_seed`` may be one seed
    per chain, as in PyMC (one seed is derived from them).

    The data enter the compiled sampler as an argument and compiled samplers are cached per
    model and settings, so repeated calls (or calls after ``jv.set_data`` with same-shaped data)
    do not recompile.  A progress bar (tuning/sampling, divergences) goes to stderr unless
    ``progressbar=False``; Ctrl-C after the tuning returns the draws taken so far, with a warning.

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
    return_inferencedata = bool(kwargs.pop("return_inferencedata", True))
    if isinstance(random_seed, (list, tuple)):  # PyMC's one seed per chain: one seed derived from them all
        random_seed = int(np.random.SeedSequence([int(s) for s in random_seed]).generate_state(1)[0])
    for k in ("cores", "compute_convergence_checks", "discard_tuned_samples"):
        if k == "discard_tuned_samples" and kwargs.get(k, True) is not True:
            raise ValueError("jv.sample always discards the tuning draws (discard_tuned_samples=True)")
        kwargs.pop(k, None)
    jitter_max_retries = int(kwargs.pop("jitter_max_retries", 10))
    n_init = int(kwargs.pop("n_init", 200_000))
    if isinstance(init, str) and init in VI_INITS:
        init, adapt = _fit_for_init(model, init, n_init, random_seed)
        if not adapt:  # PyMC's "advi": the approximation's mass matrix, kept fixed
            kwargs.setdefault("adapt_mass_matrix", False)
    options = {NUTS_ALIASES.get(k, k): v for k, v in kwargs.items()}
    unknown = sorted(set(options) - set(NUTS_OPTIONS))
    if unknown:
        raise TypeError(f"sample() got unexpected keyword argument(s) {unknown}; NUTS options are "
                        f"{', '.join(NUTS_OPTIONS)} (and PyMC's max_treedepth)")

    flats, inverse_mass, dense_mass, run_key = starting_points(
        cm, init, chains, random_seed, initvals=initvals, dense_mass=dense_mass, jitter_max_retries=jitter_max_retries)
    idata = nuts(cm, flats, draws=draws, tune=tune, key=run_key, inverse_mass=inverse_mass, dense_mass=dense_mass,
                 target_accept=target_accept, options=options, progressbar=progressbar)
    if return_inferencedata:
        return idata
    from jaxvi.results.inference_data import PointsTrace
    from jaxvi.variational.approximations import flat_draws

    return PointsTrace(cm, flat_draws(cm, idata), nchains=chains)  # PyMC's MultiTrace form
