"""PyMC's default optimiser, ``adagrad_window``, written directly in optax.

Used by the NumPyro runner (peers venv) and by the hand-fused limit (jaxvi venv), so that all
four columns take the same optimisation steps as PyMC and jaxvi (whose default this is):

    accu[..., i] = g**2;  i = (i + 1) % n_win
    param -= learning_rate * g / sqrt(accu.sum(-1) + epsilon)

Needs only jax and optax (no jaxvi import).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class AdagradWindowState(NamedTuple):
    index: jnp.ndarray
    accu: optax.Updates


def adagrad_window(learning_rate: float = 1e-3, epsilon: float = 0.1, n_win: int = 10) -> optax.GradientTransformation:
    def init_fn(params):
        accu = jax.tree_util.tree_map(lambda p: jnp.zeros(jnp.shape(p) + (n_win,), jnp.result_type(p)), params)
        return AdagradWindowState(jnp.zeros([], jnp.int32), accu)

    def update_fn(updates, state, params=None):
        del params
        i = state.index
        accu = jax.tree_util.tree_map(lambda a, g: a.at[..., i].set(g * g), state.accu, updates)
        new = jax.tree_util.tree_map(lambda g, a: -learning_rate * g / jnp.sqrt(a.sum(-1) + epsilon), updates, accu)
        return new, AdagradWindowState((i + 1) % n_win, accu)

    return optax.GradientTransformation(init_fn, update_fn)


def make_optimizer(name: str = "adagrad_window") -> optax.GradientTransformation:
    if name == "adagrad_window":
        return adagrad_window()
    if name == "adam":
        return optax.adam(1e-3)
    if name == "adagrad":
        return optax.adagrad(1e-2)
    raise ValueError(f"unknown optimizer {name!r}")
