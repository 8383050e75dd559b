"""PyMC's ``pymc.variational.operators``: the objective as a value, ``-KL(approx)()(draws)`` = the ELBO."""

import jax
import numpy as np

from jaxvi.variational.inference import kl_objective


class KL:
    """KL(q || p) of ``approx`` with PyMC's ``beta`` (on the KL to the prior).

    ``KL(approx, beta)()`` is the objective function; calling it with a number of draws returns the
    Monte Carlo estimate of KL (up to log p(data)), i.e. the -ELBO, divided by
    ``approx.symbolic_normalizing_constant`` as PyMC does when ``approx.scale_cost_to_minibatch``.
    """

    def __init__(self, approx, beta: float = 1.0):
        self.approx, self.beta = approx, float(beta)

    def __call__(self):
        approx, beta = self.approx, self.beta

        def objective(draws: int = 1, random_seed=None) -> float:
            loss = kl_objective(approx, int(draws), beta)
            key = jax.random.key(0 if random_seed is None else random_seed)
            value = float(loss(approx.vparams, key, approx.cm.data))
            return value / float(approx.symbolic_normalizing_constant)

        return objective


__all__ = ["KL"]
