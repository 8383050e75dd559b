"""PyMC-named stochastic optimisers, returned as ``optax`` transformations.

The functions in this module follow the names, keyword arguments and defaults
of ``pymc.variational.updates`` (which are Lasagne-style update rules), but
each one returns an :class:`optax.GradientTransformation`.  As usual in optax,
the transformation receives gradients of a loss to be *minimised* and returns
*additive* updates, to be applied with :func:`optax.apply_updates`::

    tx = adagrad_window()              # PyMC's default optimiser
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)

Every ``learning_rate`` may be a float (or scalar array) or an optax schedule,
i.e. a callable mapping the step count (0 for the first update) to a learning
rate.  All transformations work on arbitrary pytrees, are ``jax.jit`` and
``jax.lax.scan`` compatible, and preserve the dtype of each leaf.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "sgd",
    "momentum",
    "nesterov_momentum",
    "adagrad",
    "adagrad_window",
    "adadelta",
    "rmsprop",
    "adam",
    "adamax",
    "apply_momentum",
    "apply_nesterov_momentum",
    "norm_constraint",
    "total_norm_constraint",
    "get_optimizer",
    "with_grad_norm_clip",
    "polyak_averaging",
    "OPTIMIZER_NAMES",
]

ScalarOrSchedule = Union[float, jax.Array, Callable[[jax.Array], Any]]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _zero_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


def _current_lr(learning_rate: ScalarOrSchedule, count: jax.Array):
    """Learning rate for the step whose (pre-increment) count is ``count``."""
    if callable(learning_rate):
        return learning_rate(count)
    return learning_rate


def _cast(x, like):
    """Cast ``x`` to the dtype of ``like`` (keeps float32 leaves float32)."""
    return jnp.asarray(x).astype(jnp.result_type(like))


def _zeros_like_tree(params):
    return jax.tree_util.tree_map(jnp.zeros_like, params)


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if ivalue < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(ivalue)


# ---------------------------------------------------------------------------
# state containers
# ---------------------------------------------------------------------------


class SGDState(NamedTuple):
    """State of :func:`sgd`: the number of updates applied so far."""

    count: jax.Array


class MomentumState(NamedTuple):
    """State of :func:`apply_momentum` / :func:`apply_nesterov_momentum`."""

    velocity: Any


class AdagradState(NamedTuple):
    """State of :func:`adagrad`."""

    count: jax.Array
    accu: Any


class AdagradWindowState(NamedTuple):
    """State of :func:`adagrad_window`.

    ``accu`` holds, per parameter, a ring buffer of the last ``n_win`` squared
    gradients (shape ``param.shape + (n_win,)``); ``index`` is the slot that
    the next squared gradient will be written to.
    """

    count: jax.Array
    index: jax.Array
    accu: Any


class AdadeltaState(NamedTuple):
    """State of :func:`adadelta`."""

    count: jax.Array
    accu: Any
    delta_accu: Any


class RMSPropState(NamedTuple):
    """State of :func:`rmsprop`."""

    count: jax.Array
    accu: Any


class AdamState(NamedTuple):
    """State of :func:`adam`."""

    count: jax.Array
    m: Any
    v: Any


class AdamaxState(NamedTuple):
    """State of :func:`adamax`."""

    count: jax.Array
    m: Any
    u: Any


# ---------------------------------------------------------------------------
# plain update rules
# ---------------------------------------------------------------------------


def sgd(learning_rate: ScalarOrSchedule = 1e-3) -> optax.GradientTransformation:
    """Stochastic gradient descent: ``update = -learning_rate * g``.

    PyMC default: ``learning_rate=1e-3``.
    """

    def init_fn(params):
        del params
        return SGDState(count=_zero_count())

    def update_fn(updates, state, params=None):
        del params
        lr = _current_lr(learning_rate, state.count)
        new_updates = jax.tree_util.tree_map(lambda g: _cast(-lr * g, g), updates)
        return new_updates, SGDState(count=optax.safe_int32_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


def apply_momentum(
    transformation: Optional[optax.GradientTransformation] = None,
    momentum: float = 0.9,
) -> optax.GradientTransformation:
    """Classical momentum on top of another transformation.

    With ``u`` the updates produced by ``transformation`` (or the raw incoming
    updates if ``transformation`` is None): ``v = momentum * v + u``;
    ``update = v``.  PyMC default: ``momentum=0.9``.
    """
    return _momentum(transformation, momentum, nesterov=False)


def apply_nesterov_momentum(
    transformation: Optional[optax.GradientTransformation] = None,
    momentum: float = 0.9,
) -> optax.GradientTransformation:
    """Nesterov momentum on top of another transformation.

    With ``u`` the updates produced by ``transformation`` (or the raw incoming
    updates if ``transformation`` is None): ``v = momentum * v + u``;
    ``update = momentum * v + u``.  PyMC default: ``momentum=0.9``.
    """
    return _momentum(transformation, momentum, nesterov=True)


def _momentum(transformation, mom: float, nesterov: bool) -> optax.GradientTransformation:
    """``v = mom * v + u`` on the updates ``u`` of ``transformation``; the update is ``v`` (classical) or
    ``mom * v + u`` (Nesterov)."""

    def init_fn(params):
        return MomentumState(velocity=_zeros_like_tree(params))

    def update_fn(updates, state, params=None):
        del params
        velocity = jax.tree_util.tree_map(lambda v, u: _cast(mom * v + u, v), state.velocity, updates)
        if not nesterov:
            return velocity, MomentumState(velocity=velocity)
        new_updates = jax.tree_util.tree_map(lambda v, u: _cast(mom * v + u, u), velocity, updates)
        return new_updates, MomentumState(velocity=velocity)

    tx = optax.GradientTransformation(init_fn, update_fn)
    return tx if transformation is None else optax.chain(transformation, tx)


def momentum(
    learning_rate: ScalarOrSchedule = 1e-3, momentum: float = 0.9
) -> optax.GradientTransformation:
    """SGD with classical momentum.

    ``v = momentum * v - learning_rate * g``; ``update = v``.
    PyMC defaults: ``learning_rate=1e-3, momentum=0.9``.
    """
    return apply_momentum(sgd(learning_rate), momentum=momentum)


def nesterov_momentum(
    learning_rate: ScalarOrSchedule = 1e-3, momentum: float = 0.9
) -> optax.GradientTransformation:
    """SGD with Nesterov momentum.

    ``v = momentum * v - learning_rate * g``;
    ``update = momentum * v - learning_rate * g`` (using the new ``v``).
    PyMC defaults: ``learning_rate=1e-3, momentum=0.9``.
    """
    return apply_nesterov_momentum(sgd(learning_rate), momentum=momentum)


def adagrad(
    learning_rate: ScalarOrSchedule = 1.0, epsilon: float = 1e-6
) -> optax.GradientTransformation:
    """Adagrad.

    ``accu += g**2``; ``update = -learning_rate * g / sqrt(accu + epsilon)``.
    PyMC defaults: ``learning_rate=1.0, epsilon=1e-6``.
    """

    return _accumulating_optimizer(learning_rate, epsilon, AdagradState, lambda a, g: a + g * g)


def adagrad_window(
    learning_rate: ScalarOrSchedule = 1e-3, epsilon: float = 0.1, n_win: int = 10
) -> optax.GradientTransformation:
    """Adagrad over a sliding window of the last ``n_win`` squared gradients.

    A ring buffer (shape ``param.shape + (n_win,)``, zeros initially) receives
    ``g**2`` in slot ``i``; then ``i = (i + 1) % n_win``,
    ``accu_sum = buffer.sum(-1)`` and
    ``update = -learning_rate * g / sqrt(accu_sum + epsilon)``.
    This is PyMC's default optimiser; PyMC defaults:
    ``learning_rate=1e-3, epsilon=0.1, n_win=10``.
    """
    n_win = _check_positive_int("n_win", n_win)

    def init_fn(params):
        accu = jax.tree_util.tree_map(
            lambda p: jnp.zeros(jnp.shape(p) + (n_win,), dtype=jnp.result_type(p)),
            params,
        )
        return AdagradWindowState(
            count=_zero_count(), index=jnp.zeros([], jnp.int32), accu=accu
        )

    def update_fn(updates, state, params=None):
        del params
        lr = _current_lr(learning_rate, state.count)
        i = state.index
        accu = jax.tree_util.tree_map(
            lambda a, g: a.at[..., i].set(_cast(g * g, a)), state.accu, updates
        )
        new_updates = jax.tree_util.tree_map(
            lambda g, a: _cast(-lr * g / jnp.sqrt(a.sum(axis=-1) + epsilon), g),
            updates,
            accu,
        )
        new_index = ((i + 1) % n_win).astype(jnp.int32)
        return new_updates, AdagradWindowState(
            count=optax.safe_int32_increment(state.count), index=new_index, accu=accu
        )

    return optax.GradientTransformation(init_fn, update_fn)


def adadelta(
    learning_rate: ScalarOrSchedule = 1.0, rho: float = 0.95, epsilon: float = 1e-6
) -> optax.GradientTransformation:
    """Adadelta.

    ``accu = rho * accu + (1 - rho) * g**2``;
    ``step = g * sqrt(delta_accu + epsilon) / sqrt(accu + epsilon)``;
    ``update = -learning_rate * step``;
    ``delta_accu = rho * delta_accu + (1 - rho) * step**2``.
    PyMC defaults: ``learning_rate=1.0, rho=0.95, epsilon=1e-6``.
    """

    def init_fn(params):
        return AdadeltaState(
            count=_zero_count(),
            accu=_zeros_like_tree(params),
            delta_accu=_zeros_like_tree(params),
        )

    def update_fn(updates, state, params=None):
        del params
        lr = _current_lr(learning_rate, state.count)
        accu = jax.tree_util.tree_map(
            lambda a, g: _cast(rho * a + (1.0 - rho) * g * g, a), state.accu, updates
        )
        step = jax.tree_util.tree_map(
            lambda g, d, a: _cast(g * jnp.sqrt(d + epsilon) / jnp.sqrt(a + epsilon), g),
            updates,
            state.delta_accu,
            accu,
        )
        delta_accu = jax.tree_util.tree_map(
            lambda d, s: _cast(rho * d + (1.0 - rho) * s * s, d), state.delta_accu, step
        )
        new_updates = jax.tree_util.tree_map(lambda s: _cast(-lr * s, s), step)
        return new_updates, AdadeltaState(
            count=optax.safe_int32_increment(state.count),
            accu=accu,
            delta_accu=delta_accu,
        )

    return optax.GradientTransformation(init_fn, update_fn)


def rmsprop(
    learning_rate: ScalarOrSchedule = 1e-3, rho: float = 0.9, epsilon: float = 1e-6
) -> optax.GradientTransformation:
    """RMSProp.

    ``accu = rho * accu + (1 - rho) * g**2``;
    ``update = -learning_rate * g / sqrt(accu + epsilon)``.
    PyMC defaults: ``learning_rate=1e-3, rho=0.9, epsilon=1e-6``.
    """

    return _accumulating_optimizer(learning_rate, epsilon, RMSPropState,
                                   lambda a, g: rho * a + (1.0 - rho) * g * g)


def _accumulating_optimizer(learning_rate, epsilon, state_cls, accumulate):
    """Adagrad and RMSProp: ``accu = accumulate(accu, g)``; ``update = -lr * g / sqrt(accu + epsilon)``."""

    def init_fn(params):
        return state_cls(count=_zero_count(), accu=_zeros_like_tree(params))

    def update_fn(updates, state, params=None):
        del params
        lr = _current_lr(learning_rate, state.count)
        accu = jax.tree_util.tree_map(lambda a, g: _cast(accumulate(a, g), a), state.accu, updates)
        new_updates = jax.tree_util.tree_map(lambda g, a: _cast(-lr * g / jnp.sqrt(a + epsilon), g), updates, accu)
        return new_updates, state_cls(count=optax.safe_int32_increment(state.count), accu=accu)

    return optax.GradientTransformation(init_fn, update_fn)


def adam(
    learning_rate: ScalarOrSchedule = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
) -> optax.GradientTransformation:
    """Adam (Lasagne form, bias correction folded into the step size).

    ``t += 1``; ``a_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)``;
    ``m = beta1 * m + (1 - beta1) * g``; ``v = beta2 * v + (1 - beta2) * g**2``;
    ``update = -a_t * m / (sqrt(v) + epsilon)``.
    PyMC defaults: ``learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8``.
    """

    return _moment_optimizer(
        learning_rate, beta1, AdamState,
        second=lambda v, g: beta2 * v + (1.0 - beta2) * g * g,
        step_scale=lambda t: jnp.sqrt(1.0 - beta2**t) / (1.0 - beta1**t),
        denominator=lambda v: jnp.sqrt(v) + epsilon)


def adamax(
    learning_rate: ScalarOrSchedule = 2e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
) -> optax.GradientTransformation:
    """Adamax (infinity-norm variant of Adam).

    ``t += 1``; ``a_t = lr / (1 - beta1**t)``;
    ``m = beta1 * m + (1 - beta1) * g``; ``u = max(beta2 * u, |g|)``;
    ``update = -a_t * m / (u + epsilon)``.
    PyMC defaults: ``learning_rate=2e-3, beta1=0.9, beta2=0.999, epsilon=1e-8``.
    """

    return _moment_optimizer(
        learning_rate, beta1, AdamaxState,
        second=lambda u, g: jnp.maximum(beta2 * u, jnp.abs(g)),
        step_scale=lambda t: 1.0 / (1.0 - beta1**t),
        denominator=lambda u: u + epsilon)


def _moment_optimizer(learning_rate, beta1, state_cls, second, step_scale, denominator):
    """Adam and Adamax: ``m = beta1 m + (1 - beta1) g``, ``s = second(s, g)``, and
    ``update = -learning_rate * step_scale(t) * m / denominator(s)`` at update ``t = 1, 2, ...``."""

    def init_fn(params):
        return state_cls(_zero_count(), _zeros_like_tree(params), _zeros_like_tree(params))

    def update_fn(updates, state, params=None):
        del params
        count, m_old, s_old = state
        lr = _current_lr(learning_rate, count)
        t = optax.safe_int32_increment(count)
        m = jax.tree_util.tree_map(lambda m_, g: _cast(beta1 * m_ + (1.0 - beta1) * g, m_), m_old, updates)
        s_new = jax.tree_util.tree_map(lambda s_, g: _cast(second(s_, g), s_), s_old, updates)

        def step(g, m_, s_):
            a_t = lr * step_scale(t.astype(jnp.result_type(g)))
            return _cast(-a_t * m_ / denominator(s_), g)

        return jax.tree_util.tree_map(step, updates, m, s_new), state_cls(t, m, s_new)

    return optax.GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------------------
# norm constraints
# ---------------------------------------------------------------------------


def _default_norm_axes(ndim: int):
    if ndim == 0:
        return None  # whole (scalar) array
    if ndim in (1, 2):
        return (0,)
    return tuple(range(1, ndim))


def norm_constraint(
    max_norm: float,
    norm_axes: Optional[Union[int, Sequence[int]]] = None,
    epsilon: float = 1e-7,
) -> optax.GradientTransformation:
    """Per-leaf max-norm rescaling of incoming arrays.

    For each leaf ``x`` with ``norm = ||x||_2`` over ``norm_axes`` (kept dims):
    ``x * clip(norm, 0, max_norm) / (epsilon + norm)``.  Default ``norm_axes``
    (Lasagne/PyMC): axis 0 for 1-d and 2-d arrays, all axes but the first for
    3-d and higher (e.g. ``(1, 2, 3)`` for 4-d), the whole array for scalars.
    PyMC default: ``epsilon=1e-7``.
    """
    if norm_axes is not None and isinstance(norm_axes, int):
        norm_axes = (norm_axes,)

    def constrain(x):
        x = jnp.asarray(x)
        axes = tuple(norm_axes) if norm_axes is not None else _default_norm_axes(x.ndim)
        norms = jnp.sqrt(jnp.sum(x * x, axis=axes, keepdims=True))
        target = jnp.clip(norms, 0.0, max_norm)
        return _cast(x * (target / (epsilon + norms)), x)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree_util.tree_map(constrain, updates), state

    return optax.GradientTransformation(init_fn, update_fn)


def total_norm_constraint(
    max_norm: float, epsilon: float = 1e-7
) -> optax.GradientTransformation:
    """Rescale the whole pytree so its global L2 norm is at most ``max_norm``.

    ``norm = sqrt(sum_leaves sum(x**2))``;
    ``x * clip(norm, 0, max_norm) / (epsilon + norm)`` for every leaf.
    PyMC default: ``epsilon=1e-7``.
    """

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        leaves = jax.tree_util.tree_leaves(updates)
        if not leaves:
            return updates, state
        norm = jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in leaves))
        scale = jnp.clip(norm, 0.0, max_norm) / (epsilon + norm)
        new_updates = jax.tree_util.tree_map(lambda x: _cast(x * scale, x), updates)
        return new_updates, state

    return optax.GradientTransformation(init_fn, update_fn)


def with_grad_norm_clip(
    tx: optax.GradientTransformation, max_norm: Optional[float]
) -> optax.GradientTransformation:
    """Clip gradients to global norm ``max_norm`` before ``tx``.

    Returns ``optax.chain(optax.clip_by_global_norm(max_norm), tx)``, or ``tx``
    unchanged when ``max_norm`` is None (PyMC's ``total_grad_norm_constraint``;
    PyMC default: no clipping).
    """
    if max_norm is None:
        return tx
    import numbers

    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real) or not 0 < float(max_norm) < float("inf"):
        raise ValueError(f"total_grad_norm_constraint must be a positive number (the largest gradient norm), "
                         f"or None for no clipping; got {max_norm!r}")
    return optax.chain(optax.clip_by_global_norm(max_norm), tx)


# ---------------------------------------------------------------------------
# iterate averaging
# ---------------------------------------------------------------------------


class PolyakAveragingState(NamedTuple):
    count: jax.Array  # int32: updates done
    average: Any  # running mean of the parameters after each update of the averaging window
    inner: Any  # the wrapped transformation's state


def polyak_averaging(tx, n_steps: int, tail: float = 0.5) -> optax.GradientTransformation:
    """Polyak-Ruppert averaging of the iterates of ``tx`` over the last ``tail`` of ``n_steps`` updates.

    With noisy gradients (minibatches, few Monte Carlo draws) a stochastic optimiser's last
    iterate keeps fluctuating around the optimum; the mean of the iterates over a long tail
    has the noise of the whole tail averaged out (Polyak & Juditsky 1992).  This wraps any
    optax transformation (or an optimizer name): updates ``0 .. n_steps - 2`` are those of
    ``tx``, while the state keeps the running mean of the parameters produced by the updates
    from ``n_steps - round(tail * n_steps)`` on; update ``n_steps - 1`` (the last of a fit of
    ``n_steps``) sets the parameters to that mean.  Gradients are always taken at the raw
    iterates, so ``tx`` runs unchanged.  Updates after ``n_steps`` (e.g. ``refine``) are
    plain ``tx`` updates starting from the averaged point.

    Pass the fit's own ``n`` as ``n_steps`` (as for an optax schedule)::

        n = 20_000
        jv.fit(n, obj_optimizer=jv.polyak_averaging(jv.adam(learning_rate=1e-3), n))

    The averaged variational parameters (e.g. a mean-field ``mu`` and ``rho``) are the
    approximation of the fit; ``hist`` still records the losses of the raw iterates.
    """
    tx = get_optimizer(tx)
    n_steps = _check_positive_int("n_steps", n_steps)
    if isinstance(tail, bool) or not 0.0 < float(tail) <= 1.0:
        raise ValueError(f"polyak_averaging: tail must be a fraction in (0, 1] of the n_steps updates, got {tail!r}")
    start = n_steps - max(1, int(round(float(tail) * n_steps)))

    def init_fn(params):
        return PolyakAveragingState(_zero_count(), jax.tree_util.tree_map(jnp.zeros_like, params), tx.init(params))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("polyak_averaging needs the current parameters (update(grads, state, params))")
        inner_updates, inner = tx.update(updates, state.inner, params)
        count = state.count
        new_params = optax.apply_updates(params, inner_updates)
        seen = jnp.maximum(count - start + 1, 1)
        in_window = (count >= start) & (count < n_steps)

        def mean(avg, p):
            moved = avg + (p - avg) / seen.astype(avg.dtype)
            return jnp.where(in_window, moved, avg)

        average = jax.tree_util.tree_map(mean, state.average, new_params)
        last = count == n_steps - 1
        out = jax.tree_util.tree_map(lambda a, p, u: jnp.where(last, (a - p).astype(u.dtype), u),
                                     average, params, inner_updates)
        return out, PolyakAveragingState(count + 1, average, inner)

    return optax.GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------------------
# lookup
# ---------------------------------------------------------------------------

_OPTIMIZERS = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov_momentum": nesterov_momentum,
    "adagrad": adagrad,
    "adagrad_window": adagrad_window,
    "adadelta": adadelta,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamax": adamax,
}

#: Names accepted by :func:`get_optimizer`.
OPTIMIZER_NAMES = tuple(_OPTIMIZERS)


def get_optimizer(obj: Union[str, optax.GradientTransformation, Callable]):
    """Resolve ``obj`` into an :class:`optax.GradientTransformation`.

    Accepts an optax ``GradientTransformation`` (returned unchanged), one of
    the names in :data:`OPTIMIZER_NAMES` (case-insensitive; built with its PyMC
    defaults), or one of this module's optimiser factories (called with no
    arguments).  Raises ``ValueError`` for an unknown name and ``TypeError``
    for any other kind of object.
    """
    valid = ", ".join(repr(n) for n in OPTIMIZER_NAMES)
    if isinstance(obj, optax.GradientTransformation):
        return obj
    if isinstance(obj, str):
        key = obj.strip().lower()
        if key not in _OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {obj!r}; valid names are: {valid}.")
        return _OPTIMIZERS[key]()
    for factory in _OPTIMIZERS.values():
        if obj is factory:
            return factory()
    raise TypeError(
        "Expected an optax.GradientTransformation or an optimizer name "
        f"(one of: {valid}), got {type(obj).__name__}: {obj!r}."
    )
