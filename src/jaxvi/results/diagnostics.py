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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.model.compiled import FlatLayout
from jaxvi.vi.objectives import log_ratio

__all__ = ["KHAT_DRAWS", "KHAT_THRESHOLD", "FitWarning", "KhatWarning", "NotConvergedWarning", "MomentsWarning",
           "CHECK_MIN_STEPS", "NonFiniteStepsWarning", "REJECTED_WARN_FRACTION", "ConvergenceCheck", "MomentCheck", "convergence_check", "moment_check",
           "convergence_message", "moments_message", "record_checks", "has_density", "log_importance_ratios", "psis",
           "elbo", "iw_elbo", "importance_resample", "psis_trusted", "approx_log_ratios", "psis_resample", "record_khat",
           "khat_message", "log_ratio_bulk_sd", "KHAT_BULK_SD", "data_values", "draws_per_chunk", "khat_draws_for"]

#: Draws used for the k-hat computed after every fit (0 disables it).
KHAT_DRAWS = 4000
#: Above this k-hat the approximation is flagged as unreliable.
KHAT_THRESHOLD = 0.7
#: A k-hat above the threshold whose log ratios have a bulk narrower than this (robust sd in nats, from their
#: interquartile range) is reported as a tail-only mismatch (``khat_message``): q matches p where most of its
#: mass is, and the heavy tail of p/q comes from a few far draws, as when a scale parameter's posterior tail
#: is exponential and q's Gaussian.  Measured on the accuracy suite's default fits (seed 0, 31 posteriors):
#: the 3 full-rank fits with k-hat > 0.7 and a bulk below 0.15 met the target (robust sds 0.03-0.12); the
#: full-rank misses with k-hat > 0.7 had 0.25 (an ODE model's local mode) to 4000, the mean-field ones 0.53
#: and up.  Still a KhatWarning: only its text changes.
KHAT_BULK_SD = 0.15
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


#: Fits with fewer steps than this are too short to judge: the checks record nothing and never warn.
CHECK_MIN_STEPS = KHAT_MIN_STEPS
#: The -ELBO counts as still falling when the last tenth of the fit is this many standard errors
#: below the tenth before it ...
CONVERGENCE_Z = 4.0
#: ... and by more than this many nats (a smaller gain changes no posterior summary that matters).
CONVERGENCE_NATS = 0.1
#: The reweighted moments are trusted below this k-hat only.
MOMENTS_MAX_KHAT = 0.7
#: A coordinate is flagged when q's mean is more than this many (reweighted) posterior sds off ...
MOMENTS_MEAN_SHIFT = 0.2
#: ... or q's sd over the reweighted sd falls outside this range: the 10% an answer may be off, but 5% on
#: the narrow side (importance sampling from a too-narrow q under-corrects: a q 10% too narrow reads about
#: 5%; a too-wide q is corrected well) ...
MOMENTS_SD_RATIO = (0.95, 1.1)
#: ... each limit widened by this many Monte Carlo standard errors of the reweighted estimate
#: (sqrt(1/ESS - 1/draws) sds for a mean, 1/sqrt(2) of it for log sd), so few effective draws do not flag noise.
MOMENTS_NOISE_Z = 3.0


class FitWarning(UserWarning):
    """A fitted approximation may be wrong (the common class of jaxvi's post-fit checks)."""


class KhatWarning(FitWarning):
    """The Pareto k-hat of the importance ratios p/q says the approximation is unreliable."""


class NotConvergedWarning(FitWarning):
    """The -ELBO was still falling at the end of the fit (``approx.diagnostics["converged"]``)."""


class MomentsWarning(FitWarning):
    """The PSIS-reweighted means or sds disagree with the approximation's own (``approx.diagnostics["moments"]``)."""


class NonFiniteStepsWarning(FitWarning):
    """Many optimisation steps had a non-finite loss or gradient and were skipped (``approx.diagnostics["rejected"]``)."""


#: Warn when more than this fraction of a fit's steps were skipped as non-finite: q then has mass where the
#: log density is not finite, and the skipping biases the fit towards where it is.
REJECTED_WARN_FRACTION = 0.01


def rejected_message(rejected: int, steps: int, what: str) -> str:
    return (f"{rejected} of the {what} fit's {steps} steps ({100 * rejected / max(steps, 1):.1f}%) had a non-finite "
            "loss or gradient and were skipped (their -ELBO is NaN in approx.hist): q puts mass where the log "
            "density is not finite, so the fit is biased towards where it is. In float32 this is often an "
            "overflow or a failed Cholesky: try jv.enable_x64(), a better-scaled or reparameterised model, or a "
            "smaller learning rate. See approx.diagnostics['rejected'].")


class EssWarning(FitWarning):
    """Importance-resampled draws (Pathfinder's) rest on too few effective draws for their means to be precise."""


#: Below this effective sample size of the importance weights, resampled means carry a Monte Carlo error
#: of more than about 1/sqrt(400) = 0.05 posterior sds (and miss 0.1 sd one time in twenty).
MIN_IMPORTANCE_ESS = 400
#: ... and below this fraction of the draws they were resampled from: a weight ESS of 525-1834 of 4000 pooled
#: Pathfinder draws (k-hat 0.38-0.46) gave resampled means or sds 0.09-0.15 sd off, while every fit above
#: 2500 of 4000 met the 0.1 sd target (the defaults block of benchmarks/accuracy.md).
MIN_IMPORTANCE_REL_ESS = 0.5
#: Importance-resampled draws with k-hat above this (PSIS's slow-convergence range, Vehtari et al. 2024)
#: are flagged as imprecise too: Pathfinder's means were 0.11-0.13 sd off at k-hat 0.53-0.57 (ESS > 1000).
IMPORTANCE_KHAT = 0.5


def importance_ess(log_weights) -> float:
    """Effective sample size 1 / sum(w^2) of normalised log weights (0 when none is finite)."""
    lw = np.asarray(log_weights, np.float64)
    lw = lw[np.isfinite(lw)]
    if lw.size == 0:
        return 0.0
    w = np.exp(lw - lw.max())
    w /= w.sum()
    return float(1.0 / np.sum(w**2))


class StartWarning(FitWarning):
    """The mode search of a default start found several modes, or none (``approx.diagnostics["start"]``)."""


#: ``sample()`` resamples by default only with at least this many effective draws among the k-hat check's
#: 4000: fewer mean q is far off (a too-wide q on a funnel had 390, with sds 1.3-4.4x the posterior's, which
#: the resampled draws fix) but the resampled means would carry more than 0.1 sd of Monte Carlo error.
DEFAULT_RESAMPLE_MIN_ESS = 100


def psis_trusted(khat: float, log_weights) -> bool:
    """Whether PSIS-resampled draws beat q's own: k-hat below ``KHAT_THRESHOLD`` (Yao et al. 2018: the
    weights are reliable there) and at least ``DEFAULT_RESAMPLE_MIN_ESS`` effective draws.  ``record_khat``
    sets ``approx.importance_resample_default`` from it, so ``approx.sample()`` returns corrected draws."""
    return bool(np.isfinite(khat) and khat < KHAT_THRESHOLD and importance_ess(log_weights) >= DEFAULT_RESAMPLE_MIN_ESS)


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


def _gpd_fit(x: np.ndarray) -> tuple[float, float]:
    """Shape k and scale sigma of a generalised Pareto fitted to the sorted exceedances ``x`` > 0.

    Zhang and Stephens' (2009) empirical-Bayes estimate with the weakly informative prior on k of
    Vehtari et al. (2024) (k shrunk toward 0.5 as if by 10 extra observations), as in loo and ArviZ.
    """
    n = x.size
    m = 30 + int(np.sqrt(n))
    b = 1.0 - np.sqrt(m / (np.arange(1, m + 1, dtype=np.float64) - 0.5))
    b = b / (3.0 * x[int(n / 4 + 0.5) - 1]) + 1.0 / x[-1]
    k = np.log1p(-b[:, None] * x).mean(axis=1)
    profile = n * (np.log(-b / k) - k - 1.0)  # profile log-likelihood of each candidate b
    with np.errstate(over="ignore"):  # a candidate far below the best: exp overflows to inf, its weight to 0
        w = 1.0 / np.exp(profile - profile[:, None]).sum(axis=1)
    keep = w >= 10 * np.finfo(float).eps
    w, b = w[keep], b[keep]
    b_post = np.sum(b * w) / w.sum()
    k_post = np.log1p(-b_post * x).mean()
    sigma = -k_post / b_post
    return float((n * k_post + 10 * 0.5) / (n + 10)), float(sigma)


def _psislw(log_ratios):
    """PSIS (Vehtari et al. 2024) of finite-or--inf ``log_ratios``: normalised smoothed log weights, k-hat.

    The largest ``min(S/5, 3 sqrt(S))`` ratios are replaced by the expected order statistics of a
    generalised Pareto fitted to them (capped at the largest raw ratio); fewer than 5 tail draws
    give k-hat = inf and no smoothing.  numpy only (ArviZ's ``psislw`` gives the same numbers but
    importing ArviZ costs about a second).
    """
    x = np.array(log_ratios, dtype=np.float64)
    x -= np.max(x)
    order = np.argsort(x)
    cut = -int(np.ceil(min(x.size / 5.0, 3.0 * np.sqrt(x.size)))) - 1
    xcut = max(x[order[cut]], np.log(np.finfo(float).tiny))
    (tail,) = np.nonzero(x > xcut)
    k = np.inf
    if tail.size > 4:
        tail = tail[np.argsort(x[tail])]
        k, sigma = _gpd_fit(np.exp(x[tail]) - np.exp(xcut))
        if np.isfinite(k) and sigma > 0:
            p = np.arange(0.5, tail.size) / tail.size
            q = -np.log1p(-p) if abs(k) < np.finfo(float).eps else np.expm1(-k * np.log1p(-p)) / k
            x[tail] = np.log(sigma * q + np.exp(xcut))
            x[x > 0] = 0.0
    m = np.max(x)
    x -= m + np.log(np.sum(np.exp(x - m)))
    return x, float(k)


def psis(log_ratios) -> tuple[np.ndarray, float]:
    """Pareto-smoothed, normalised log importance weights and the k-hat of the ratios (PSIS, as ArviZ's).

    Non-finite log-ratios count as zero weight; when all ratios are equal up to rounding (spread
    below 1e-4 nats or a 1e-6 fraction of their size: q is exact up to a constant) the weights are uniform and k-hat is -inf; when none is finite k-hat is inf.
    """
    lr = np.asarray(log_ratios, np.float64)
    finite = np.isfinite(lr)
    if not finite.any():
        return np.full(lr.shape, -np.log(lr.size)), float("inf")
    spread = np.ptp(lr[finite])
    # ratios equal to rounding (float32 log-densities of ~100 nats differ by ~1e-5): q exact up to a constant
    if spread <= max(1e-4, 1e-6 * abs(lr[finite][0])):
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
    """``draws`` rows of ``z`` chosen with probabilities proportional to exp(log_weights).

    With replacement the choice is systematic resampling (one uniform offset, ``draws`` evenly spaced points
    on the weights' cumulative sum, then shuffled): each row is kept floor or ceil of draws x its weight
    times, so the kept draws' moments carry less resampling noise than independent picks, and memory is
    O(rows + draws) (a categorical over every pair would hold draws x rows numbers)."""
    lw = jnp.asarray(log_weights)
    if replace:
        k_offset, k_order = jax.random.split(key)
        w = np.asarray(log_weights, np.float64)
        w = np.exp(w - np.max(w[np.isfinite(w)])) if np.isfinite(w).any() else np.ones_like(w)
        w = np.where(np.isfinite(w), w, 0.0)
        cum = np.cumsum(w)
        cum /= cum[-1]  # exactly 1 at the end: every point (< 1) falls on a row of positive weight
        points = (np.arange(int(draws)) + float(jax.random.uniform(k_offset))) / int(draws)
        idx = np.minimum(np.searchsorted(cum, points, side="right"), w.size - 1)
        idx = jax.random.permutation(k_order, jnp.asarray(idx))
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
    """``draws`` PSIS-resampled draws (flat) from ``proposals`` draws of ``approx``'s ``proposal`` (q, or
    the particles' normal; default: at least 4 per kept draw, rounded up to a multiple of 1000 so few sizes
    compile) and the PSIS k-hat."""
    proposals = proposals or resample_proposals(draws)
    k1, k2 = jax.random.split(key)
    z, lr = log_importance_ratios(approx.cm, *proposal(approx), k1, proposals)
    lw, khat = psis(lr)
    return importance_resample(k2, z, lw, draws), {"importance_resampled": True, "psis_khat": khat,
                                                  "psis_proposals": int(proposals)}


#: ``sample()``'s default PSIS resampling holds at most this many proposal numbers (proposals x dimension)
RESAMPLE_MAX_NUMBERS = 2**26


def resample_proposals(draws: int) -> int:
    """The proposals ``psis_resample`` draws for ``draws`` kept draws: at least 4 per kept draw, rounded up to
    a multiple of 1000, and at least the k-hat check's ``KHAT_DRAWS`` (so up to 1000 draws reuse its compiled
    code, and few sizes compile)."""
    return max(KHAT_DRAWS, 1000 * -(-4 * int(draws) // 1000))


def default_resample_skip(approx, draws: int) -> str:
    """Why ``sample(draws)`` should not PSIS-resample by default ("" when it should): the proposals must fit
    the k-hat check's data budget and ``RESAMPLE_MAX_NUMBERS`` (a large request gets q's own draws)."""
    proposals = resample_proposals(draws)
    if proposals * approx.cm.size > RESAMPLE_MAX_NUMBERS:
        return f"{proposals:,} proposals x {approx.cm.size:,} dimensions exceed {RESAMPLE_MAX_NUMBERS:,} numbers"
    if khat_draws_for(data_values(approx.cm.data), proposals) < proposals:
        return f"{proposals:,} proposals exceed the budget of {KHAT_MAX_VALUES:,} draw x data evaluations"
    return ""


def log_ratio_bulk_sd(log_ratios) -> float:
    """A robust sd of the finite log ratios (interquartile range / 1.349, nats): how far q is from p where
    most of q's draws fall, untouched by the few far draws that set k-hat.  NaN with fewer than 20."""
    lr = np.asarray(log_ratios, np.float64)
    lr = lr[np.isfinite(lr)]
    if lr.size < 20:
        return float("nan")
    q25, q75 = np.percentile(lr, [25, 75])
    return float((q75 - q25) / 1.349)


def khat_message(khat: float, what: str, bulk_sd: float | None = None) -> str:
    """The KhatWarning text; ``bulk_sd`` (``log_ratio_bulk_sd``) below ``KHAT_BULK_SD`` says the mismatch is
    in the tails only."""
    head = (f"Pareto k-hat = {khat:.2f} > {KHAT_THRESHOLD} for the {what} approximation: the importance "
            "ratios p(z, data)/q(z) of its draws are heavy-tailed")
    if bulk_sd is not None and np.isfinite(bulk_sd) and bulk_sd < KHAT_BULK_SD:
        return (head + f", but only from a few far draws: the bulk of the log ratios is narrow (robust sd "
                f"{bulk_sd:.2f} nats < {KHAT_BULK_SD}), so q matches the posterior closely where most of its mass "
                "is, and the posterior has a heavier tail than q somewhere (e.g. a scale parameter). Means and "
                "sds are then usually close; tail quantiles, rare-event probabilities and importance-weighted "
                "estimates are not to be trusted. To be sure, compare with NUTS (jv.sample(init=approx)). "
                "See approx.diagnostics['log_ratio_bulk_sd'].")
    return (head + ", so q misses part of the posterior and "
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


class ParticleCheck(NamedTuple):
    """Particles (SVGD's) against the posterior as seen through a normal fitted to them: draws of that
    normal, PSIS-reweighted to p, estimate the posterior's means and sds (when its k-hat says they can)."""

    ran: bool
    reason: str  #: why the moments were not compared ("" when they were)
    khat: float  #: k-hat of p over the fitted normal (a proposal built from the particles)
    labels: tuple
    mean_shift: np.ndarray  #: (particles' mean - reweighted mean) / reweighted sd
    sd_ratio: np.ndarray  #: particles' sd / reweighted sd
    flagged: tuple
    ess: float
    #: whether ``sample()`` returns the normal's PSIS-resampled draws by default (``psis_trusted``)
    resample: bool = False


def particle_normal(approx):
    """The full-rank normal N(mean, cov) of the particles ``approx.vparams["particles"]`` (the diagonal of cov
    when there are fewer than 2 d particles) as ``(FullRankFamily, params)``; None when cov is singular.
    ``particle_check`` judges the particles through it, and ``proposal`` resamples from it."""
    from jaxvi.model.transforms import PackedCholesky
    from jaxvi.vi.families import FullRankFamily

    cm = approx.cm
    x = np.asarray(approx.vparams["particles"], np.float64)
    n, d = x.shape
    cov = np.cov(x, rowvar=False).reshape(d, d) if n > 2 * d else np.diag(x.var(axis=0, ddof=1))
    cov = cov + np.eye(d) * 1e-8 * max(float(np.max(np.diag(cov))), 1e-12)
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return None
    return FullRankFamily(), {"mu": jnp.asarray(x.mean(axis=0), cm.dtype),
                              "L_tril": PackedCholesky(d).inv(jnp.asarray(chol, cm.dtype))}


def proposal(approx):
    """The density ``psis_resample`` draws proposals from, as ``(family, params)``: q itself when it has a
    density, the particles' normal (``particle_normal``) for particles; TypeError when there is neither."""
    if has_density(approx):
        return approx.family, approx.vparams
    normal = particle_normal(approx) if "particles" in getattr(approx, "vparams", {}) else None
    if normal is None:
        raise TypeError(f"a {type(approx).__name__} approximation has no density log q (and its particles no "
                        "usable normal): importance ratios, k-hat and importance resampling need one")
    return normal


def particle_check(approx, draws: int, key) -> ParticleCheck:
    """The check for an approximation without a density made of particles (``vparams["particles"]``).

    The particles are compared with the PSIS-reweighted draws of their normal (``particle_normal``); the limits
    for the moments are ``moment_check``'s, widened by the particles' own Monte Carlo error (1/sqrt(particles)
    sds), so only errors beyond what that many particles can resolve are flagged.  ``record_particles`` also
    reads from it whether ``sample()`` should resample that normal's draws by default (``psis_trusted``).
    """
    cm = approx.cm
    x = np.asarray(approx.vparams["particles"], np.float64)
    n, d = x.shape
    labels = tuple(cm.layout.labels())
    empty = np.full(d, np.nan)
    normal = particle_normal(approx)
    if normal is None:
        return ParticleCheck(False, "the particles' covariance is singular", float("inf"), labels, empty, empty,
                             (), float("nan"), False)
    z, lr = log_importance_ratios(cm, *normal, key, draws)
    lw, khat = psis(lr)
    if not np.isfinite(khat) or khat >= MOMENTS_MAX_KHAT:
        return ParticleCheck(False, f"k-hat {khat:.2f} >= {MOMENTS_MAX_KHAT}: a normal fitted to the particles is "
                             "not a usable proposal", float(khat), labels, empty, empty, (), float("nan"), False)
    w, ess = _normalised(lw)
    z = np.asarray(z, np.float64)
    se = MOMENTS_NOISE_Z * np.sqrt(1.0 / n + max(1.0 / ess - 1.0 / z.shape[0], 0.0))
    shift, ratio, bad = _compare_moments(x.mean(axis=0), x.std(axis=0), z, w, se, MOMENTS_MEAN_SHIFT,
                                         MOMENTS_SD_RATIO)
    return ParticleCheck(True, "", float(khat), labels, shift, ratio, tuple(lab for lab, b in zip(labels, bad) if b),
                         ess, psis_trusted(khat, lw))


def particles_message(check: ParticleCheck, what: str, limit: int = 8) -> str:
    if not check.ran:
        return (f"The {what} particles could not be checked against the posterior ({check.reason}): they may be "
                "far from it or miss part of it, and nothing here says otherwise. Compare with NUTS "
                "(jv.sample(init=approx)) or a fitted family (method='fullrank_advi', method='auto'). "
                "See approx.diagnostics['particles'].")
    def figures(lab):
        j = check.labels.index(lab)
        return check.mean_shift[j], check.sd_ratio[j]

    return (f"The {what} particles' moments disagree with an importance-sampling estimate of the posterior's "
            f"(a normal fitted to the particles, reweighted to p; k-hat {check.khat:.2f}) for "
            f"{_flagged_figures(check.flagged, figures, limit)} (unconstrained space). "
            + ("approx.sample() already returns that normal's PSIS-resampled draws, which correct this; the "
               "particles themselves (approx.histogram, approx.mean) do not. " if check.resample else "")
            + "Try more steps or particles, "
            "a fitted family (method='fullrank_advi', method='auto'), or NUTS (jv.sample(init=approx)). See approx.diagnostics['particles'].")


def record_particles(approx, draws: int, warn: bool, min_steps: int):
    """``particle_check`` on a fitted particle approximation into ``approx.diagnostics["particles"]``; sets
    ``approx.importance_resample_default`` when the check trusts the weights of the particles' normal
    (``sample()`` then returns its PSIS-resampled draws: 100 particles cannot resolve sds to 10%)."""
    approx.importance_resample_default = False
    if len(getattr(approx, "hist", ())) < min_steps or "particles" not in getattr(approx, "vparams", {}):
        return None
    if getattr(approx.cm, "minibatch_groups", None):
        return None
    n = khat_draws_for(data_values(approx.cm.data), draws)
    if not n:
        return None
    check = particle_check(approx, n, jax.random.key(len(approx.hist)))
    approx.diagnostics = {**(getattr(approx, "diagnostics", None) or {}), "particles": check}
    approx.importance_resample_default = check.resample
    if warn and (check.flagged or not check.ran):
        warnings.warn(particles_message(check, "SVGD" if approx.family.name == "empirical" else approx.family.name),
                      MomentsWarning if check.ran else KhatWarning, stacklevel=_user_stacklevel())
    return check


def record_khat(approx, draws: int = KHAT_DRAWS, warn: bool = True, min_steps: int = 0, checks: bool = True,
                **check_options):
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
    if not draws:
        return None
    if not has_density(approx):  # particles (SVGD): checked through a normal fitted to them
        if checks:
            record_particles(approx, draws, warn, min_steps)
        return None
    if getattr(approx.cm, "minibatch_groups", None):  # big data: see the docstring
        approx.khat_skipped = "minibatch or streamed data: log p on every row for every draw is too costly"
        return None
    if len(getattr(approx, "hist", ())) < min_steps:
        approx.khat_skipped = (f"a fit of {len(approx.hist)} steps is too short to judge (the automatic "
                               f"check needs at least {min_steps} steps)")
        approx.diagnostics = {"skipped": approx.khat_skipped}
        return None
    values = data_values(approx.cm.data)
    n = khat_draws_for(values, draws)
    if not n:
        approx.khat_skipped = (f"{values:,} data values: fewer than {KHAT_MIN_DRAWS} draws fit in the k-hat "
                               f"budget of {KHAT_MAX_VALUES:,} draw x data evaluations")
        return None
    draws = n
    key = jax.random.key(len(approx.hist))  # deterministic, and leaves approx's own sample stream alone
    z, lr = approx_log_ratios(approx, draws, key)
    lw, khat = psis(lr)
    bulk = log_ratio_bulk_sd(lr)
    approx.khat, approx.khat_draws = khat, int(draws)
    approx.importance_resample_default = psis_trusted(khat, lw)
    if warn and khat > KHAT_THRESHOLD:
        warnings.warn(khat_message(khat, getattr(approx.family, "name", type(approx).__name__), bulk), KhatWarning,
                      stacklevel=_user_stacklevel())
    if checks:  # what k-hat misses: a loss still falling, reweighted moments off (``record_checks``)
        record_checks(approx, z, lw, khat, warn, min_steps=min_steps, **check_options)
    approx.diagnostics = {**(getattr(approx, "diagnostics", None) or {}), "log_ratio_bulk_sd": bulk}
    return khat


# -- the checks that catch what k-hat misses ---------------------------------------------------------
#
# ``approx.diagnostics`` is a dict, one entry per check, each a NamedTuple of figures:
#   "khat"       the Pareto k-hat (also ``approx.khat``)
#   "converged"  ConvergenceCheck: is the -ELBO still falling at the end of the fit?
#   "moments"    MomentCheck: PSIS-reweighted means/sds against q's own (unconstrained space)
#   "start"      StartCheck: what the mode search of a default start found (agreeing paths, other modes,
#                no mode); recorded when the start is made (``record_start``), kept by ``record_checks``
#   "dispersion" DispersionCheck: a restricted family's sds against the marginal sds of the start's
#                Laplace normal (mean-field's under-dispersion on correlated posteriors)
# Each check that fails warns with its own FitWarning subclass, naming the flat coordinates
# (``beta[2]``, ``sd_log__``) and what to try.


class ConvergenceCheck(NamedTuple):
    """The -ELBO at the end of a fit: medians of its last five tenths (``window`` steps each)."""

    converged: bool
    steps: int  #: steps in the history judged
    window: int  #: steps per tenth
    drop: float  #: median of the second-to-last tenth minus that of the last (nats; > 0: still falling)
    se: float  #: standard error of ``drop`` from the step-to-step noise
    z: float  #: drop / se
    threshold: float  #: the drop above which the fit counts as not converged: max(CONVERGENCE_NATS, CONVERGENCE_Z*se)
    more_steps: int  #: extrapolated steps until the drop per tenth falls below ``threshold`` (0 when converged)


class MomentCheck(NamedTuple):
    """PSIS-reweighted moments of q's draws against their plain moments, per flat coordinate
    (unconstrained space, where the normal families live)."""

    ran: bool
    reason: str  #: why it did not run ("" when it ran)
    khat: float
    labels: tuple  #: the coordinates' names (``beta[2]``)
    mean_shift: np.ndarray  #: (q's mean - reweighted mean) / reweighted sd
    sd_ratio: np.ndarray  #: q's sd / reweighted sd
    flagged: tuple  #: labels of the coordinates outside the limits (both spaces)
    ess: float  #: effective sample size of the smoothed weights
    constrained_labels: tuple = ()  #: the same figures for the constrained values (``sigma``, not ``sigma_log__``)
    constrained_mean_shift: np.ndarray | None = None
    constrained_sd_ratio: np.ndarray | None = None


def convergence_check(hist, nats: float = CONVERGENCE_NATS, z: float = CONVERGENCE_Z) -> ConvergenceCheck | None:
    """Whether the -ELBO history ``hist`` has stopped falling (None: too short to judge, < 100 finite steps).

    The last five tenths of the fit give medians m1..m5 (robust to the heavy-tailed loss estimates).
    The fit is not converged when the last drop m4 - m5 exceeds both ``z`` standard errors (noise
    from the step-to-step differences, by their MAD) and ``nats``.  Steps still needed are
    extrapolated from a geometric decay fitted to the four drops (least squares on their logs) until
    the drop per tenth falls below that threshold; when the drops do not shrink (or some are not
    positive), the estimate is as many steps again as the fit has run.
    """
    h = np.asarray(hist, np.float64)
    h = h[np.isfinite(h)]
    n = h.size
    w = n // 10
    if w < 10:
        return None
    tail = h[-5 * w:]
    m = np.median(tail.reshape(5, w), axis=1)
    drops = m[:-1] - m[1:]
    d = float(drops[-1])
    diffs = np.diff(tail)
    sd = 1.4826 * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2.0)
    se = float(np.sqrt(2.0) * 1.2533 * sd / np.sqrt(w))
    thr = max(float(nats), z * se)
    converged = bool(d <= thr)
    more = 0
    if not converged:
        more = int(n)
        if np.all(drops > 0):
            slope, icept = np.polyfit(np.arange(4.0), np.log(drops), 1)
            last = np.exp(icept + 3 * slope)  # the fitted last drop
            if slope < 0 and last > thr:
                more = int(w * np.ceil(np.log(thr / last) / slope))
    return ConvergenceCheck(converged, int(n), int(w), d, se, d / se if se > 0 else float("inf"), float(thr), more)


def _normalised(log_weights):
    """Normalised weights exp(log_weights) and their effective sample size 1 / sum(w^2)."""
    w = np.exp(np.asarray(log_weights, np.float64) - np.max(log_weights))
    w = w / w.sum()
    return w, float(1.0 / np.sum(w**2))


def _compare_moments(mean, sd, z, w, se: float, mean_shift: float, sd_ratio):
    """(shift, ratio, bad) per column: the moments ``mean``/``sd`` against the ``w``-weighted moments of ``z``,
    each limit widened by ``se`` (Monte Carlo standard errors, in sds; 1/sqrt(2) of it for log sd)."""
    mean_w = w @ z
    sd_w = np.sqrt(np.maximum(w @ (z - mean_w) ** 2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = (mean - mean_w) / sd_w
        ratio = sd / sd_w
    lo, hi = sd_ratio
    bad = (np.abs(shift) > mean_shift + se) | (ratio < lo * np.exp(-se / np.sqrt(2))) | (ratio > hi * np.exp(se / np.sqrt(2)))
    return shift, ratio, bad & (sd_w > 0)


def _reweighted(z, w, mean_shift: float, sd_ratio, ess: float):
    """(shift, ratio, bad) per column of ``z``: q's moments against the ``w``-weighted ones."""
    se = np.sqrt(max(1.0 / ess - 1.0 / z.shape[0], 0.0)) * MOMENTS_NOISE_Z
    return _compare_moments(z.mean(axis=0), z.std(axis=0), z, w, se, mean_shift, sd_ratio)


def moment_check(z, log_weights, khat: float, labels, mean_shift: float = MOMENTS_MEAN_SHIFT,
                 sd_ratio=MOMENTS_SD_RATIO, constrained=None, constrained_labels=()) -> MomentCheck:
    """Compare the PSIS-reweighted mean and sd of each coordinate of the draws ``z`` (of q) with their
    plain mean and sd; runs only when ``khat`` < ``MOMENTS_MAX_KHAT`` (else the weights are not trusted).
    ``constrained`` (the same draws as constrained values, one column per ``constrained_labels``) is
    judged too: a log-normal q can be right for ``log sigma``'s mean and wrong for ``sigma``'s sd.

    The reweighting moves q's draws towards the posterior; importance sampling from a too-narrow q
    under-corrects (the tails it never draws stay unweighted), so a flagged sd ratio is if anything
    an under-statement of the error.
    """
    labels, constrained_labels = tuple(labels), tuple(constrained_labels)
    z = np.asarray(z, np.float64)
    empty = np.full(z.shape[-1], np.nan)
    if not np.isfinite(khat) or khat >= MOMENTS_MAX_KHAT:
        why = f"k-hat {khat:.2f} >= {MOMENTS_MAX_KHAT}: the importance weights cannot be trusted"
        return MomentCheck(False, why, float(khat), labels, empty, empty, (), float("nan"))
    w, ess = _normalised(log_weights)
    shift, ratio, bad = _reweighted(z, w, mean_shift, sd_ratio, ess)
    flagged = [lab for lab, b in zip(labels, bad) if b]
    c_shift = c_ratio = None
    if constrained is not None:
        x = np.asarray(constrained, np.float64)
        keep = np.all(np.isfinite(x), axis=1)
        wx = w[keep] / w[keep].sum() if keep.any() else w[keep]
        if keep.sum() >= KHAT_MIN_DRAWS:
            c_shift, c_ratio, c_bad = _reweighted(x[keep], wx, mean_shift, sd_ratio, ess)
            flagged += [lab for lab, b in zip(constrained_labels, c_bad) if b and lab not in labels]
    return MomentCheck(True, "", float(khat), labels, shift, ratio, tuple(flagged), ess,
                       constrained_labels if c_shift is not None else (), c_shift, c_ratio)


def convergence_message(check: ConvergenceCheck, what: str) -> str:
    return (f"The {what} fit has not converged: its -ELBO fell by {check.drop:.3g} nats over the last "
            f"{check.window} of its {check.steps} steps ({check.z:.1f} standard errors). About "
            f"{check.more_steps} more steps are likely needed: call inference.refine({check.more_steps}) "
            "(or fit with a larger n or learning rate, or start='laplace'). See approx.diagnostics['converged'].")


def _flagged_figures(flagged, figures, limit: int) -> str:
    """'a (mean off by +0.30 sd, sd ratio 0.85), ... and N more' for the ``flagged`` labels; ``figures(label)``
    gives (mean shift, sd ratio)."""
    parts = [f"{lab} (mean off by {sh:+.2f} sd, sd ratio {r:.2f})"
             for lab, (sh, r) in ((lab, figures(lab)) for lab in flagged[:limit])]
    more = f" and {len(flagged) - limit} more" if len(flagged) > limit else ""
    return ", ".join(parts) + more


def moments_message(check: MomentCheck, what: str, limit: int = 8, corrected: bool = False) -> str:
    def figures(lab):
        if lab in check.labels:
            j = check.labels.index(lab)
            return check.mean_shift[j], check.sd_ratio[j]
        j = check.constrained_labels.index(lab)
        return check.constrained_mean_shift[j], check.constrained_sd_ratio[j]

    return (f"The {what} approximation's moments disagree with its PSIS-reweighted ones (k-hat {check.khat:.2f}) "
            f"for {_flagged_figures(check.flagged, figures, limit)} (q's sd over the reweighted sd below 1 means q "
            "is too narrow, as mean-field is on correlated posteriors). "
            + ("approx.sample() already returns PSIS-resampled draws that correct this; q's own moments "
               "(approx.mean, approx.std, sample_node) do not. " if corrected else
               "approx.sample(..., importance_resample=True) corrects the draws. ")
            + "Try a richer family (method='fullrank_advi' or 'lowrank_advi', 'dadvi' for linear-response "
            "covariances, method='auto') or NUTS (jv.sample(init=approx)). See approx.diagnostics['moments'].")


#: A restricted family (mean-field, low-rank) whose sd is below this fraction of the Laplace normal's
#: marginal sd is flagged: on a near-normal posterior that normal's marginals are about right, and the
#: KL(q || p)-optimal mean-field sd is 1/sqrt(precision_ii), below them exactly where correlations are.
DISPERSION_MIN_RATIO = 0.8
#: The families the dispersion check judges (a full-rank normal or a flow can represent the correlations).
DISPERSION_FAMILIES = ("mean_field", "low_rank")


class DispersionCheck(NamedTuple):
    """q's sds against the marginal sds of the start's Laplace normal (unconstrained space)."""

    labels: tuple
    sd_ratio: np.ndarray  #: q's sd / the Laplace normal's marginal sd, per coordinate
    flagged: tuple  #: labels with a ratio below DISPERSION_MIN_RATIO


def dispersion_check(approx) -> DispersionCheck | None:
    """The check, when ``approx`` of a restricted family started at a Laplace normal (else None)."""
    info = getattr(approx, "start_info", None) or {}
    marginal = getattr(approx, "start_sd", None)
    if marginal is None or not info.get("laplace") or approx.family.name not in DISPERSION_FAMILIES:
        return None
    labels = tuple(approx.cm.layout.labels())
    ratio = np.asarray(approx.std, np.float64).reshape(-1) / np.asarray(marginal, np.float64)
    return DispersionCheck(labels, ratio, tuple(lab for lab, r in zip(labels, ratio) if r < DISPERSION_MIN_RATIO))


def dispersion_message(check: DispersionCheck, what: str, limit: int = 8) -> str:
    i = [check.labels.index(lab) for lab in check.flagged]
    parts = [f"{check.labels[j]} ({check.sd_ratio[j]:.2f})" for j in i[:limit]]
    more = f" and {len(i) - limit} more" if len(i) > limit else ""
    return (f"The {what} approximation's sds are below the marginal sds of the Laplace normal at the mode for "
            f"{', '.join(parts)}{more} (ratio in brackets, unconstrained space): the posterior is correlated and a "
            f"{what} normal under-states its uncertainty there. Use method='fullrank_advi' (or 'dadvi' for "
            "linear-response sds). See approx.diagnostics['dispersion'].")


def constrained_draws(cm, z):
    """The draws ``z`` (n, d) as constrained values of the free variables, one column per element: (x, labels)."""
    def build():
        def run(z):
            values = jax.vmap(cm.unravel)(z)
            return jnp.concatenate([jnp.reshape(values[rv.name], (z.shape[0], -1)).astype(z.dtype)
                                    for rv in cm.free_rvs], axis=1)

        return jax.jit(run)

    shapes = jax.eval_shape(lambda v: cm.unravel(v), jax.ShapeDtypeStruct((cm.size,), cm.dtype))
    labels = FlatLayout([(rv.name, tuple(shapes[rv.name].shape)) for rv in cm.free_rvs]).labels()
    return np.asarray(cm.cached(("constrained_draws",), build)(jnp.asarray(z, cm.dtype))), labels


def record_checks(approx, z, log_weights, khat: float, warn: bool = True, min_steps: int = CHECK_MIN_STEPS,
                  convergence: bool = True) -> dict:
    """Run the post-fit checks on ``approx`` (with draws ``z`` of q, their PSIS log weights and k-hat)
    into ``approx.diagnostics`` and warn on each that fails.  Fits with fewer than ``min_steps`` steps
    are not judged (``diagnostics["skipped"]`` says so); ``convergence=False`` leaves the loss check
    out (methods whose optimizer reports its own convergence)."""
    what = getattr(approx.family, "name", type(approx).__name__)
    record = {k: v for k, v in (getattr(approx, "diagnostics", None) or {}).items()
              if k not in ("khat", "converged", "moments", "skipped", "dispersion")}
    record["khat"] = khat
    steps = len(approx.hist)
    if steps < min_steps:
        record["skipped"] = f"a fit of {steps} steps is too short to judge (the checks need {min_steps})"
        approx.diagnostics = record
        return record
    labels = approx.cm.layout.labels()
    check = convergence_check(approx.hist) if convergence else None
    if check is not None:
        record["converged"] = check
    x, x_labels = constrained_draws(approx.cm, z) if np.isfinite(khat) and khat < MOMENTS_MAX_KHAT else (None, ())
    record["moments"] = moments = moment_check(z, log_weights, khat, labels, constrained=x,
                                               constrained_labels=x_labels)
    dispersion = dispersion_check(approx)
    if dispersion is not None:
        record["dispersion"] = dispersion
    approx.diagnostics = record
    if warn and check is not None and not check.converged:
        warnings.warn(convergence_message(check, what), NotConvergedWarning, stacklevel=_user_stacklevel())
    if warn and moments.flagged:
        warnings.warn(moments_message(moments, what, corrected=getattr(approx, "importance_resample_default", False)),
                      MomentsWarning, stacklevel=_user_stacklevel())
    if warn and dispersion is not None and dispersion.flagged and not moments.flagged:
        warnings.warn(dispersion_message(dispersion, what), MomentsWarning, stacklevel=_user_stacklevel())
    return record


#: Mode-search paths whose last iterates lie within this many of the start's sds of its mean agree.
START_AGREE_SDS = 2.0
#: A converged path elsewhere whose normal's ELBO is within this many nats of the best's: a second mode
#: holding similar mass (a single normal cannot represent both).
START_SIMILAR_NATS = 2.0


class StartCheck(NamedTuple):
    """What the mode search of a default start found (``approx.diagnostics["start"]``)."""

    paths: int
    agreeing: int  # paths that ended at the chosen mode
    local_modes: int  # converged paths elsewhere with a clearly lower ELBO (ignored: the best one is used)
    other_modes: tuple  # labels of coordinates where a converged path of similar ELBO ended elsewhere
    elbo_gap: float  # ELBO of the best normal minus that of the best other mode (inf: none)
    fallback: bool  # no mode found: the best path normal's mean with unit sds


def start_check(info: dict, paths: dict | None, labels) -> StartCheck:
    """Read the per-path figures of ``jaxvi.vi.starts.mode_search`` (pure, numpy)."""
    if not paths:
        return StartCheck(1, 1, 0, (), float("inf"), bool(info.get("fallback", False)))
    elbos = np.asarray(paths["path_elbos"], np.float64)
    offsets = np.asarray(paths["path_offsets"], np.float64)
    converged = np.isin(np.asarray(paths["path_status"]), (1, 2)) & np.isfinite(elbos)
    far = offsets.max(axis=1) > START_AGREE_SDS
    agreeing = int((~far & np.isfinite(elbos)).sum())
    best = float(np.max(elbos)) if np.isfinite(elbos).any() else -np.inf
    elsewhere = converged & far
    similar = elsewhere & (best - elbos < START_SIMILAR_NATS)
    gap = float(best - elbos[elsewhere].max()) if elsewhere.any() else float("inf")
    coords = np.flatnonzero((offsets[similar] > START_AGREE_SDS).any(axis=0)) if similar.any() else []
    return StartCheck(int(elbos.size), agreeing, int((elsewhere & ~similar).sum()),
                      tuple(labels[j] for j in coords), gap, bool(info.get("fallback", False)))


def record_start(approx, warn: bool = True) -> StartCheck:
    """Judge ``approx``'s mode-search start into ``approx.diagnostics["start"]``; warn on several modes or none."""
    labels = approx.cm.layout.labels()
    check = start_check(approx.start_info, getattr(approx, "start_paths", None), labels)
    approx.diagnostics = {**(getattr(approx, "diagnostics", None) or {}), "start": check}
    what = getattr(approx.family, "name", type(approx).__name__)
    if warn and check.other_modes:
        shown = ", ".join(check.other_modes[:8]) + (f" and {len(check.other_modes) - 8} more"
                                                     if len(check.other_modes) > 8 else "")
        warnings.warn(f"The {what} start's mode search found distinct modes of similar mass (ELBOs within "
                      f"{check.elbo_gap:.2g} nats): paths ended far apart in {shown}. A single {what} normal covers "
                      "one of them; try method='svgd' or a flow (method='nfvi'), or NUTS (jv.sample). "
                      "See approx.diagnostics['start'].", StartWarning, stacklevel=_user_stacklevel())
    if warn and check.fallback:
        warnings.warn(f"The {what} start's mode search found no mode (the log density rises without bound along "
                      "every path, as in the neck of a funnel: a centred hierarchical model?); the fit starts from "
                      "the best path normal's mean with unit sds instead. Gaussian families under-state such "
                      "posteriors; a non-centred parameterisation or NUTS (jv.sample) is safer. "
                      "See approx.diagnostics['start'].", StartWarning, stacklevel=_user_stacklevel())
    return check
