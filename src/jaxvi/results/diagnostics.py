"""Diagnostics (floor 4): how far to trust a fitted approximation.

With draws z ~ q from the approximation, the importance ratios r = p(z, data) / q(z) say
everything about q as a proposal for the posterior (Yao, Vehtari, Simpson, Gelman 2018,
"Yes, but did it work?"):

* the Pareto k-hat of the ratios' upper tail (PSIS, Vehtari et al. 2024): below 0.5 the
  approximation is good and importance weighting can fix what is left; 0.5-0.7 usable; above
  0.7 the ratios are too heavy-tailed -- q misses posterior mass and its means and variances
  cannot be trusted (try a richer family or NUTS);
* the ELBO, mean(log r), and the importance-weighted ELBO, E[log mean_K r] (Burda et al.
  2016), a tighter bound on log p(data);
* PSIS importance resampling: draws of q resampled with the smoothed weights, which moves a
  too-narrow or shifted q towards the posterior.

The numerics are pure functions of arrays; ``log_importance_ratios`` compiles one jitted,
vmapped ``sample -> logp - logq`` per (compiled model, family, number of draws), cached on the
compiled model so every fit of the model shares it.
"""

from __future__ import annotations

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.vi.objectives import log_ratio

__all__ = ["KHAT_DRAWS", "KHAT_THRESHOLD", "KhatWarning", "has_density", "log_importance_ratios", "psis",
           "elbo", "iw_elbo", "importance_resample", "approx_log_ratios", "psis_resample", "record_khat",
           "khat_message", "data_values", "draws_per_chunk", "khat_draws_for"]

#: Draws used for the k-hat computed after every fit (0 disables it).
KHAT_DRAWS = 1000
#: Above this k-hat the approximation is flagged as unreliable.
KHAT_THRESHOLD = 0.7
#: The log-densities of the draws are evaluated in chunks of draws holding at most about this
#: many data values (draws x data values), so memory stays bounded whatever the data size.
KHAT_CHUNK_VALUES = 2**24
#: ``record_khat`` spends at most about this many draw x data-value evaluations (a few seconds on
#: a CPU core): on larger data it uses fewer draws, and none (no k-hat) below ``KHAT_MIN_DRAWS``.
KHAT_MAX_VALUES = 2**31
#: The fewest draws a k-hat is computed from (PSIS fits the tail of the largest ~3 sqrt(S) ratios).
KHAT_MIN_DRAWS = 200
#: the automatic check after a fit skips fits with fewer steps (PyMC is quiet on fit(0), fit(10), fit(100))
KHAT_MIN_STEPS = 1000


class KhatWarning(UserWarning):
    """The Pareto k-hat of the importance ratios p/q says the approximation is unreliable."""


def has_density(approx) -> bool:
    """Whether ``approx`` has a normalised density log q (particle approximations do not)."""
    return bool(approx.family.has_density)


def data_values(batch) -> int:
    """How many numbers the data pytree ``batch`` holds (what one log-density evaluation reads)."""
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(batch)))


def draws_per_chunk(values: int, draws: int) -> int:
    """Draws whose log-densities are evaluated together (vmapped) on data of ``values`` numbers."""
    return max(1, min(int(draws), KHAT_CHUNK_VALUES // max(int(values), 1)))


def _ratio_fn(cm, family, draws: int, chunk: int):
    def build():
        def logp(z, batch):
            if chunk >= draws:
                return jax.vmap(cm.logp, in_axes=(0, None))(z, batch)
            # big data: ``chunk`` draws at a time, so the intermediates hold chunk x data values
            return jax.lax.map(lambda one: cm.logp(one, batch), z, batch_size=chunk)

        def ratios(params, rng, batch):
            z, logq = family.sample_and_log_prob(params, rng, draws)
            lr = log_ratio(logp(z, batch), logq)
            return z, lr

        return jax.jit(ratios)

    return cm.cached(("log_ratios", family, int(draws), int(chunk)), build)


def log_importance_ratios(cm, family, params, key, draws: int = KHAT_DRAWS, batch=None):
    """``draws`` draws z ~ q and log p(z, data) - log q(z) (NaN -> -inf): ``(z[draws, d], log_r[draws])``.

    The log-densities are evaluated ``draws_per_chunk`` draws at a time (all at once on small
    data), so the memory stays near ``KHAT_CHUNK_VALUES`` values however large the data.
    """
    if isinstance(key, int):
        key = jax.random.key(key)
    batch = cm.data if batch is None else batch
    chunk = draws_per_chunk(data_values(batch), draws)
    z, lr = _ratio_fn(cm, family, draws, chunk)(params, key, batch)
    return np.asarray(z), np.asarray(lr, dtype=np.float64)


def _psislw(log_ratios):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arviz warns about its refactor and about large k itself
        import arviz as az

        fn = getattr(az, "psislw", None)
        if fn is None:  # pragma: no cover - arviz 1.x moved it
            from arviz_stats import psislw as fn
        lw, k = fn(np.asarray(log_ratios, np.float64))
    return np.asarray(lw), float(np.asarray(k))


def psis(log_ratios) -> tuple[np.ndarray, float]:
    """Pareto-smoothed, normalised log importance weights and the k-hat of the ratios (ArviZ's PSIS).

    Non-finite log-ratios count as zero weight; when all ratios are equal (q is exact up to a
    constant) the weights are uniform and k-hat is -inf; when none is finite k-hat is inf.
    """
    lr = np.asarray(log_ratios, np.float64)
    finite = np.isfinite(lr)
    if not finite.any():
        return np.full(lr.shape, -np.log(lr.size)), float("inf")
    spread = np.ptp(lr[finite])
    if spread <= 1e-12 * max(1.0, abs(lr[finite][0])):
        lw = np.where(finite, -np.log(finite.sum()), -np.inf)
        return lw, float("-inf")
    lr = np.where(finite, lr, -np.inf)
    return _psislw(lr)


def elbo(log_ratios) -> float:
    """The Monte Carlo ELBO estimate, mean(log p - log q)."""
    return float(np.mean(np.asarray(log_ratios, np.float64)))


def iw_elbo(log_ratios, k: int | None = None) -> float:
    """The importance-weighted ELBO with ``k`` ratios per bound (default: all of them as one).

    E[log (1/k) sum_j r_j] is a lower bound on log p(data) that tightens as k grows (k = 1 is the
    ELBO); the ``n // k`` groups of ``k`` draws are averaged.
    """
    lr = np.asarray(log_ratios, np.float64).ravel()
    k = lr.size if k is None else int(k)
    if not 1 <= k <= lr.size:
        raise ValueError(f"iw_elbo: k must be between 1 and the number of draws ({lr.size}), got {k}")
    groups = lr[: (lr.size // k) * k].reshape(-1, k)
    m = np.max(groups, axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        lme = np.log(np.mean(np.exp(groups - m), axis=1)) + m[:, 0]
    return float(np.mean(lme))


def importance_resample(key, z, log_weights, draws: int, replace: bool = True):
    """``draws`` rows of ``z`` chosen with probabilities proportional to exp(log_weights)."""
    lw = jnp.asarray(log_weights)
    if replace:
        idx = jax.random.categorical(key, lw, shape=(int(draws),))
    else:
        n_pos = int(np.count_nonzero(np.isfinite(np.asarray(log_weights))))
        if draws > n_pos:
            raise ValueError(f"cannot resample {draws} distinct draws from {n_pos} with positive weight")
        idx = jax.random.choice(key, lw.shape[0], (int(draws),), replace=False, p=jax.nn.softmax(lw))
    return jnp.asarray(z)[idx]


def approx_log_ratios(approx, draws: int, key):
    """Draws of ``approx`` (flat) and their log importance ratios; needs an approximation with a density."""
    if not has_density(approx):
        raise TypeError(f"a {type(approx).__name__} approximation has no density log q: importance ratios, "
                        "k-hat and the importance-weighted ELBO need one")
    return log_importance_ratios(approx.cm, approx.family, approx.vparams, key, draws)


def psis_resample(approx, draws: int, key, proposals: int | None = None):
    """``draws`` PSIS-resampled draws (flat) from ``proposals`` draws of ``approx`` (default: at least
    4 per kept draw, rounded up to a multiple of 1000 so few sizes compile) and the PSIS k-hat."""
    proposals = proposals or 1000 * -(-4 * int(draws) // 1000)
    k1, k2 = jax.random.split(key)
    z, lr = approx_log_ratios(approx, proposals, k1)
    lw, khat = psis(lr)
    return importance_resample(k2, z, lw, draws), {"importance_resampled": True, "psis_khat": khat,
                                                  "psis_proposals": int(proposals)}


def khat_message(khat: float, what: str) -> str:
    return (f"Pareto k-hat = {khat:.2f} > {KHAT_THRESHOLD} for the {what} approximation: the importance "
            "ratios p(z, data)/q(z) of its draws are heavy-tailed, so q misses part of the posterior and "
            "its means, variances and predictions may be badly off. Try a richer family "
            "(method='fullrank_advi', 'lowrank_advi', a normalizing flow 'nfvi'), importance resampling "
            "(approx.sample(..., importance_resample=True), reliable only for k-hat < 0.7), "
            "or NUTS (jv.sample(init=approx)).")


def khat_draws_for(values: int, draws: int = KHAT_DRAWS) -> int:
    """The draws ``record_khat`` uses on data of ``values`` numbers: ``draws``, fewer when
    ``draws x values`` exceeds ``KHAT_MAX_VALUES``, and 0 (skip) when that leaves fewer than
    ``KHAT_MIN_DRAWS``."""
    n = min(int(draws), KHAT_MAX_VALUES // max(int(values), 1))
    return n if n >= min(KHAT_MIN_DRAWS, int(draws)) else 0


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside jaxvi (so a warning points at the user's line)."""
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(root + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def record_khat(approx, draws: int = KHAT_DRAWS, warn: bool = True, min_steps: int = 0):
    """Compute k-hat for a fitted ``approx`` (if it has a density), store ``approx.khat`` /
    ``approx.khat_draws`` and warn above ``KHAT_THRESHOLD``.  Returns k-hat or None.

    Cost: one log p(z, data) per draw on all the data.  The draws are evaluated in chunks
    (``draws_per_chunk``), so memory stays bounded; on large full-data models the number of
    draws shrinks so that draws x data values stays under ``KHAT_MAX_VALUES`` (a few seconds),
    and below ``KHAT_MIN_DRAWS`` draws k-hat is skipped (``approx.khat`` stays None and
    ``approx.khat_skipped`` says why).

    Minibatch and streamed fits are always skipped: their data are large by assumption (a
    streamed data set is not even on the device), so 1000 full passes over every row would cost
    more than the fit itself (a 10,000-step fit with batches of 500 reads 5 million rows; 1000
    draws on 400,000 rows read 400 million); and log p estimated on a minibatch instead is not
    an importance ratio: its noise, exponentiated, biases and fattens the ratios' tail, so the
    k-hat would flag a good approximation.  Compute it yourself when you can afford it:
    ``psis(approx_log_ratios(approx, draws, key)[1])``.
    """
    if not draws or not has_density(approx):
        return None
    if getattr(approx.cm, "minibatch_groups", None):  # big data: see the docstring
        approx.khat_skipped = "minibatch or streamed data: log p on every row for every draw is too costly"
        return None
    if len(getattr(approx, "hist", ())) < min_steps:
        approx.khat_skipped = (f"a fit of {len(approx.hist)} steps is too short to judge (the automatic "
                               f"check needs at least {min_steps} steps)")
        return None
    values = data_values(approx.cm.data)
    n = khat_draws_for(values, draws)
    if not n:
        approx.khat_skipped = (f"{values:,} data values: fewer than {KHAT_MIN_DRAWS} draws fit in the k-hat "
                               f"budget of {KHAT_MAX_VALUES:,} draw x data evaluations")
        return None
    draws = n
    key = jax.random.key(len(approx.hist))  # deterministic, and leaves approx's own sample stream alone
    _, lr = approx_log_ratios(approx, draws, key)
    _, khat = psis(lr)
    approx.khat, approx.khat_draws = khat, int(draws)
    if warn and khat > KHAT_THRESHOLD:
        warnings.warn(khat_message(khat, getattr(approx.family, "name", type(approx).__name__)), KhatWarning,
                      stacklevel=_user_stacklevel())
    return khat
