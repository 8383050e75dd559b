"""Objectives (floor 2): ``(params, key, batch) -> loss`` to minimise.

``kl_qp`` is the reparameterised negative ELBO, E_q[beta * log q(z) - log p(z, data)],
estimated with ``n_mc`` draws per step (vectorised with ``jax.vmap``), optionally with the
sticking-the-landing gradient (Roeder et al. 2017: the score term of log q is dropped).
The log-density is at full-data scale (likelihoods scaled by ``total_size``).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["kl_qp"]


def kl_qp(family, logp: Callable, n_mc: int = 1, beta: float = 1.0, stick_the_landing: bool = False):
    """The KL(q || p) objective for ``family`` and the model log-density ``logp(z, batch)``."""
    batched_logp = jax.vmap(logp, in_axes=(0, None))

    def loss(params, key, batch):
        if stick_the_landing:
            z = family.sample(params, key, n_mc)
            logq = family.log_prob(jax.lax.stop_gradient(params), z)
        else:
            z, logq = family.sample_and_log_prob(params, key, n_mc)
        return jnp.mean(beta * logq - batched_logp(z, batch))

    return loss
