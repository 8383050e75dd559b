"""Objectives (floor 2): what the engine minimises, as typed values.

An :class:`Objective` is ``(draw, given)``: ``draw(params, key)`` draws one step's randomness and
``given(params, noise, batch)`` is the loss at it, so ``objective(params, key, batch) ==
given(params, draw(params, key), batch)``.  When ``predrawn`` the engine draws the noise of a whole
block of steps in one vectorised call (much cheaper on CPU than a PRNG call per step); otherwise
``draw`` hands the key through and ``given`` draws inside.

``kl_qp`` is the reparameterised negative ELBO, E_q[beta * log q(z) - log p(z, data)], estimated with
``n_mc`` draws per step, optionally with the sticking-the-landing gradient (Roeder et al. 2017: the
score term of log q is dropped).  The log-density is at full-data scale (likelihoods scaled by
``total_size``).  :func:`renyi` is the negative variational Renyi bound of order alpha (Li & Turner
2016; alpha = 1 is ``kl_qp``) and :func:`importance_weighted` the negative IWAE bound (alpha = 0;
Burda et al. 2016), optionally with the doubly reparameterised gradient (DReG, Tucker et al. 2019).
All three are :func:`sampled_objective` of a different ``value(log p, log q)`` of the same draws.
:class:`Renyi` and :class:`ImportanceWeighted` are the hashable values the inference classes take as
``objective=`` (:func:`get_objective` resolves names).  :func:`log_ratio` is the one place where
log p - log q is formed for the objectives, diagnostics and Pathfinder (NaN, from draws outside the
model's support, counts as -inf).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Objective", "kl_qp", "renyi", "importance_weighted", "renyi_bound", "sampled_objective", "log_ratio",
           "pass_key", "prior_tempered_logp", "check_alpha", "check_bound_draws",
           "Renyi", "ImportanceWeighted", "get_objective", "OBJECTIVE_NAMES"]


class Objective(NamedTuple):
    """A loss to minimise: ``given(params, draw(params, key), batch)`` (see the module docstring)."""

    draw: Callable  # (params, key) -> noise (the key itself when not predrawn)
    given: Callable  # (params, noise, batch) -> scalar loss
    predrawn: bool = True

    def __call__(self, params, key, batch):
        return self.given(params, self.draw(params, key), batch)


def pass_key(params, key):
    """The ``draw`` of an objective that draws its own randomness from the step's key."""
    return key


def log_ratio(logp, logq):
    """log p - log q with NaN (a draw outside the model's support) as -inf."""
    lr = logp - logq
    return jnp.where(jnp.isnan(lr), -jnp.inf, lr)


def _batched_logp(logp: Callable) -> Callable:
    """``logp(z, batch)`` over draws ``z[n, d]`` -> ``[n]``."""
    vmapped_logp = jax.vmap(logp, in_axes=(0, None))

    def batched_logp(z, batch):
        if z.shape[0] == 1:  # one draw (the default): no draw axis on the data-sized intermediates,
            return logp(z[0], batch)[None]  # whose reductions XLA's CPU backend runs ~2x faster then
        return vmapped_logp(z, batch)

    return batched_logp


def sampled_objective(family, logp: Callable, n_mc: int, value: Callable, stop_q: bool = False) -> Objective:
    """The :class:`Objective` ``value(logp_z[n_mc], logq[n_mc])`` at ``n_mc`` draws ``z ~ q``.

    Predrawn (standard-normal noise of ``family.noise_dim``) for reparameterised families; otherwise
    the family's own ``sample_and_log_prob`` draws from the step's key.  ``stop_q``: log q is taken
    at stopped parameters (same value; only the path through z carries a gradient), as the
    sticking-the-landing and DReG gradients need.
    """
    batched_logp = _batched_logp(logp)

    if not family.reparameterized:
        def loss(params, key, batch):
            if stop_q:
                z = family.sample(params, key, n_mc)
                logq = family.log_prob(jax.lax.stop_gradient(params), z)
            else:
                z, logq = family.sample_and_log_prob(params, key, n_mc)
            return value(batched_logp(z, batch), logq)

        return Objective(pass_key, loss, predrawn=False)

    def draw(params, key):
        dtype = next(x.dtype for x in jax.tree_util.tree_leaves(params) if jnp.issubdtype(x.dtype, jnp.floating))
        return jax.random.normal(key, (n_mc, family.noise_dim(params)), dtype)

    def given(params, eps, batch):
        z, logq = family.transform(params, eps)
        if stop_q:
            logq = family.log_prob(jax.lax.stop_gradient(params), z)
        return value(batched_logp(z, batch), logq)

    return Objective(draw, given)


def kl_qp(family, logp: Callable, n_mc: int = 1, beta: float = 1.0, stick_the_landing: bool = False) -> Objective:
    """The KL(q || p) objective for ``family`` and the model log-density ``logp(z, batch)``:
    mean(beta * log q - log p) over ``n_mc`` draws (see :func:`sampled_objective`)."""

    def value(logp_z, logq):
        return jnp.mean(beta * logq - logp_z)

    return sampled_objective(family, logp, n_mc, value, stop_q=stick_the_landing)


def renyi_bound(log_ratios, alpha: float, axis: int = -1):
    """The Renyi bound estimate 1/(1-alpha) log mean_k exp((1-alpha) r_k) of log-ratios ``r`` along
    ``axis`` (alpha = 1: the mean, the ELBO; alpha = 0: the importance-weighted bound)."""
    if alpha == 1.0:
        return jnp.mean(log_ratios, axis=axis)
    k = log_ratios.shape[axis]
    a = 1.0 - alpha
    return (jax.scipy.special.logsumexp(a * log_ratios, axis=axis) - jnp.log(k)) / a


def check_alpha(alpha, what: str = "alpha") -> float:
    """``alpha`` as a float, or a ValueError naming ``what`` when it is not a finite real number."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
            or not np.isfinite(alpha):
        raise ValueError(f"{what} must be a finite real number (the Renyi bound's order), got {alpha!r}")
    return float(alpha)


def check_bound_draws(n_mc, alpha: float, what: str = "obj_n_mc") -> int:
    """``n_mc`` as an int; the Renyi bound of order alpha != 1 with one draw is the ELBO, so it needs 2 or more."""
    if isinstance(n_mc, bool) or not isinstance(n_mc, (int, np.integer)) or n_mc < 1:
        raise ValueError(f"{what} must be a positive integer (draws per step), got {n_mc!r}")
    if alpha != 1.0 and n_mc < 2:
        raise ValueError(f"{what}={n_mc}: the Renyi / importance-weighted bound (alpha={alpha:g}) needs at least 2 "
                         f"draws per step (with one it is the ELBO); pass {what} >= 2 (e.g. 8) or use alpha=1")
    return int(n_mc)


def renyi(family, logp: Callable, alpha: float, n_mc: int = 8) -> Objective:
    """The negative variational Renyi bound of order ``alpha`` (Li & Turner 2016),

        -L_alpha = -1/(1-alpha) log (1/K) sum_k exp((1-alpha) (log p(z_k) - log q(z_k))),  z_k ~ q, K = n_mc,

    formed with logsumexp (a NaN log-ratio counts as -inf, see :func:`log_ratio`).  alpha = 1 is
    :func:`kl_qp` exactly (the ELBO); alpha = 0 the importance-weighted bound (IWAE); alpha < 0 fits
    that cover more of p's mass; alpha in (0, 1) lies between IWAE and the ELBO.  Needs ``n_mc >= 2``
    for alpha != 1 and a family with a density.  With a minibatch ``logp`` (unbiased, noisy) the bound
    for alpha != 1 is of the noisy estimate, not of the full-data log p: the noise widens the fit.
    """
    alpha = check_alpha(alpha)
    n_mc = check_bound_draws(n_mc, alpha, "n_mc")
    if alpha == 1.0:
        return kl_qp(family, logp, n_mc=n_mc)
    check_family(family, f"the Renyi bound (alpha={alpha:g})")

    def value(logp_z, logq):
        return -renyi_bound(log_ratio(logp_z, logq), alpha, axis=0)

    return sampled_objective(family, logp, n_mc, value)


def importance_weighted(family, logp: Callable, n_mc: int = 8, dreg: bool = False) -> Objective:
    """The negative importance-weighted bound, -log (1/K) sum_k w_k with w_k = p(z_k) / q(z_k), K = n_mc draws
    (Burda, Grosse & Salakhutdinov 2016): :func:`renyi` at alpha = 0.

    ``dreg=True``: the doubly reparameterised gradient (Tucker, Lawson, Gu & Maddison 2019),
    sum_k wn_k^2 d log w_k / dz dz/dphi with normalised weights wn_k and log q at stopped parameters:
    unbiased for the same bound, without the score term whose variance grows with K.  The loss
    value is the same; the gradient needs draws that are differentiable in the parameters
    (``family.transform`` or ``family.sample``).
    """
    if not dreg:
        return renyi(family, logp, 0.0, n_mc)
    n_mc = check_bound_draws(n_mc, 0.0, "n_mc")
    check_family(family, "the importance-weighted bound", dreg=True)

    def value(logp_z, logq):  # logq at stopped parameters: d log w / d phi is the path term only
        lw = log_ratio(logp_z, logq)
        wn2 = jax.lax.stop_gradient(jax.nn.softmax(lw) ** 2)
        surrogate = jnp.sum(wn2 * jnp.where(jnp.isfinite(lw), lw, 0.0))
        bound = renyi_bound(lw, 0.0)
        return -(jax.lax.stop_gradient(bound) + surrogate - jax.lax.stop_gradient(surrogate))

    return sampled_objective(family, logp, n_mc, value, stop_q=True)


@dataclass(frozen=True)
class Renyi:
    """The Renyi objective of order ``alpha`` as a value (``objective=jv.Renyi(alpha=0.5)``); see :func:`renyi`."""

    alpha: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "alpha", check_alpha(self.alpha))

    def check(self, n_mc, what: str = "obj_n_mc") -> int:
        return check_bound_draws(n_mc, self.alpha, what)

    def check_family(self, family) -> None:
        if self.alpha != 1.0:
            check_family(family, f"objective={self!r}", dreg=getattr(self, "dreg", False))

    def build(self, family, logp: Callable, n_mc: int) -> Objective:
        return renyi(family, logp, self.alpha, n_mc)


@dataclass(frozen=True)
class ImportanceWeighted:
    """The importance-weighted bound as a value (``objective=jv.ImportanceWeighted(dreg=True)``); see
    :func:`importance_weighted`."""

    dreg: bool = False
    alpha: ClassVar[float] = 0.0

    def __post_init__(self):
        if not isinstance(self.dreg, (bool, np.bool_)):
            raise ValueError(f"dreg must be True or False, got {self.dreg!r}")
        object.__setattr__(self, "dreg", bool(self.dreg))

    check = Renyi.check
    check_family = Renyi.check_family

    def build(self, family, logp: Callable, n_mc: int) -> Objective:
        return importance_weighted(family, logp, n_mc, dreg=self.dreg)


OBJECTIVE_NAMES = {"kl": None, "renyi": Renyi, "iw": ImportanceWeighted, "iwae": ImportanceWeighted,
                   "importance_weighted": ImportanceWeighted}


def get_objective(objective="kl", alpha=None, dreg=None):
    """``objective=`` of the KL-type inference classes as a value: None for ``"kl"`` (KL(q || p), kl_qp),
    a :class:`Renyi` for ``"renyi"`` (``alpha``, default 0.5), an :class:`ImportanceWeighted` for
    ``"iw"``/``"iwae"`` (``dreg``); a ``Renyi``/``ImportanceWeighted`` passes through.  Bad input is a
    ValueError naming the argument."""
    if isinstance(objective, (Renyi, ImportanceWeighted)):
        if alpha is not None or dreg is not None:
            raise ValueError(f"objective={objective!r} carries its own options: pass alpha=/dreg= to it, not beside it")
        return objective
    if not isinstance(objective, str) or objective.lower() not in OBJECTIVE_NAMES:
        raise ValueError(f"objective must be one of {', '.join(repr(k) for k in OBJECTIVE_NAMES)} or a "
                         f"jv.Renyi(alpha=...) / jv.ImportanceWeighted(dreg=...), got {objective!r}")
    cls = OBJECTIVE_NAMES[objective.lower()]
    if alpha is not None and cls is not Renyi:
        raise ValueError(f"alpha={alpha!r} is the order of objective='renyi', not of objective={objective!r}")
    if dreg is not None and cls is not ImportanceWeighted:
        raise ValueError(f"dreg={dreg!r} is an option of objective='iw', not of objective={objective!r}")
    if cls is None:
        return None
    if cls is Renyi:
        return Renyi() if alpha is None else Renyi(alpha)
    return ImportanceWeighted(False if dreg is None else dreg)


def check_family(family, what: str, dreg: bool = False) -> None:
    """The Renyi and importance-weighted bounds need log q; DReG needs it at any point (log q at stopped
    parameters of the draws), which a flow without a closed-form inverse does not have."""
    if not family.has_density:
        raise ValueError(f"{what} needs log q: the {family.name!r} family has no density (particles); "
                         "use a parametric approximation (mean-field, full-rank, low-rank, a flow)")
    if dreg and not getattr(family, "invertible", True):
        raise ValueError(f"dreg=True needs log q at any point, and the {family.name!r} flow has layers without a "
                         "closed-form inverse; use dreg=False or an invertible flow (e.g. 'realnvp', 'householder')")


def prior_tempered_logp(logp_terms: Callable, latent_names, beta: float) -> Callable:
    """``log p(data | z) + beta * log p(z)`` from ``logp_terms(z, batch) -> {name: term}``.

    With it ``kl_qp(..., beta=beta)`` is PyMC's ``KL(approx, beta)``: -E[log p(data|z)] + beta *
    E[log q(z) - log p(z)], beta scaling the whole KL to the prior (the latent terms, with their
    log-Jacobians), not only log q.
    """
    latent_names = tuple(latent_names)

    def logp(z, batch):
        terms = logp_terms(z, batch)
        latent = sum(terms[n] for n in latent_names)
        return sum(terms.values()) - (1.0 - beta) * latent

    return logp
