"""Objectives (floor 2): what the engine minimises, as typed values.

An :class:`Objective` is ``(draw, given)``: ``draw(params, key)`` draws one step's randomness and
``given(params, noise, batch)`` is the loss at it, so ``objective(params, key, batch) ==
given(params, draw(params, key), batch)``.  When ``predrawn`` the engine draws the noise of a whole
block of steps in one vectorised call (much cheaper on CPU than a PRNG call per step); otherwise
``draw`` hands the key through and ``given`` draws inside.

``kl_qp`` is the reparameterised negative ELBO, E_q[beta * log q(z) - log p(z, data)], estimated with
``n_mc`` draws per step, optionally with the sticking-the-landing gradient (Roeder et al. 2017: the
score term of log q is dropped).  The log-density is at full-data scale (likelihoods scaled by
``total_size``).  :func:`log_ratio` is the one place where log p - log q is formed for diagnostics
and Pathfinder (NaN, from draws outside the model's support, counts as -inf).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Objective", "kl_qp", "log_ratio", "pass_key", "prior_tempered_logp"]


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


def kl_qp(family, logp: Callable, n_mc: int = 1, beta: float = 1.0, stick_the_landing: bool = False) -> Objective:
    """The KL(q || p) objective for ``family`` and the model log-density ``logp(z, batch)``.

    Predrawn (standard-normal noise of ``family.noise_dim``) for reparameterised families; otherwise
    the family's own ``sample_and_log_prob`` draws from the step's key.
    """
    vmapped_logp = jax.vmap(logp, in_axes=(0, None))

    def batched_logp(z, batch):
        if z.shape[0] == 1:  # one draw (the default): no draw axis on the data-sized intermediates,
            return logp(z[0], batch)[None]  # whose reductions XLA's CPU backend runs ~2x faster then
        return vmapped_logp(z, batch)

    def value(params, z, logq, batch):
        return jnp.mean(beta * logq - batched_logp(z, batch))

    if not family.reparameterized:
        def loss(params, key, batch):
            if stick_the_landing:
                z = family.sample(params, key, n_mc)
                return value(params, z, family.log_prob(jax.lax.stop_gradient(params), z), batch)
            return value(params, *family.sample_and_log_prob(params, key, n_mc), batch)

        return Objective(pass_key, loss, predrawn=False)

    def draw(params, key):
        dtype = next(x.dtype for x in jax.tree_util.tree_leaves(params) if jnp.issubdtype(x.dtype, jnp.floating))
        return jax.random.normal(key, (n_mc, family.noise_dim(params)), dtype)

    def given(params, eps, batch):
        z, logq = family.transform(params, eps)
        if stick_the_landing:
            logq = family.log_prob(jax.lax.stop_gradient(params), z)
        return value(params, z, logq, batch)

    return Objective(draw, given)


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
