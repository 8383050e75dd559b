"""PyMC's ``pymc.variational.updates``: the optimizers with PyMC's ``(loss_or_grads, params, **kwargs)`` form.

``adam(learning_rate=1e-2)`` (no loss, no params) returns the optax transformation to hand to
``fit(obj_optimizer=...)``, as ``jv.adam`` does.  ``adam(grads, params)`` applies one step and returns
the updated parameters keyed by position (PyMC returns a dict of pytensor updates keyed by the shared
variables); ``loss_or_grads`` may also be a function ``loss(params)`` whose gradient is taken.  Giving
only one of the two is a ValueError, as in PyMC.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from jaxvi.vi import optimizers as _opt
from jaxvi.vi.optimizers import (apply_momentum, apply_nesterov_momentum, norm_constraint,  # noqa: F401
                                 total_norm_constraint)

__all__ = ["sgd", "momentum", "nesterov_momentum", "adagrad", "adagrad_window", "rmsprop", "adadelta", "adam",
           "adamax", "apply_momentum", "apply_nesterov_momentum", "norm_constraint", "total_norm_constraint"]


def _pymc_form(factory):
    @functools.wraps(factory)
    def optimizer(loss_or_grads=None, params=None, **kwargs):
        tx = factory(**kwargs)
        if loss_or_grads is None and params is None:
            return tx
        if loss_or_grads is None or params is None:
            raise ValueError(f"{factory.__name__}: give both loss_or_grads and params, or neither "
                             "(for a transformation to pass to fit(obj_optimizer=...))")
        params = [jnp.asarray(p) for p in params]
        if callable(loss_or_grads):
            grads = jax.grad(loss_or_grads)(params)
        else:
            grads = [jnp.asarray(g, p.dtype) for g, p in zip(loss_or_grads, params)]
            if len(grads) != len(params):
                raise ValueError(f"{factory.__name__}: {len(grads)} gradients for {len(params)} params")
        updates, _ = tx.update(grads, tx.init(params), params)
        return dict(enumerate(optax.apply_updates(params, updates)))

    return optimizer


sgd = _pymc_form(_opt.sgd)
momentum = _pymc_form(_opt.momentum)
nesterov_momentum = _pymc_form(_opt.nesterov_momentum)
adagrad = _pymc_form(_opt.adagrad)
adagrad_window = _pymc_form(_opt.adagrad_window)
rmsprop = _pymc_form(_opt.rmsprop)
adadelta = _pymc_form(_opt.adadelta)
adam = _pymc_form(_opt.adam)
adamax = _pymc_form(_opt.adamax)
