"""PyMC-named stochastic optimisers, returned as ``optax`` transformations (floor 2).

Each PyMC optimizer is an update rule ``scale_by_<name>`` (optax style: a pure ``init``/``update``
pair over a NamedTuple state, no learning rate) chained with ``optax.scale_by_learning_rate``;
the result is an :class:`Optimizer`, an ``optax.GradientTransformation`` that compares equal by
its configuration (so equal optimizers share one compiled fitting loop).

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

import dataclasses
import functools
import operator
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "Optimizer",
    "LearningRateState",
    "LearningRateError",
    "scale_by_adagrad",
    "scale_by_adagrad_window",
    "scale_by_adadelta",
    "scale_by_rmsprop",
    "scale_by_adam",
    "scale_by_adamax",
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
    "ExponentialDecay",
    "OPTIMIZER_NAMES",
]

ScalarOrSchedule = Union[float, jax.Array, Callable[[jax.Array], Any]]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _zero_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


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
# optimizers that compare equal by configuration
# ---------------------------------------------------------------------------


def _hashable(value):
    """``value`` as part of an optimizer's configuration: numbers by value, anything else as itself."""
    if isinstance(value, (jax.Array, np.ndarray, np.generic)) and np.ndim(value) == 0:
        return float(value)
    if isinstance(value, (jax.Array, np.ndarray)):
        arr = np.asarray(value)
        return ("array", arr.dtype.str, arr.shape, arr.tobytes())
    return value


class Optimizer(optax.GradientTransformation):
    """An optax ``GradientTransformation`` that remembers how it was made.

    Two optimizers made with the same configuration (``jv.adam(learning_rate=0.01)`` twice) are equal
    and hash alike, so fits with either share one compiled loop.  A schedule or a user's optax
    transformation inside the configuration counts by identity.
    """

    def __new__(cls, init, update, config: tuple):
        self = super().__new__(cls, init, update)
        self.config = tuple(_hashable(c) for c in config)
        return self

    def __eq__(self, other):
        return type(other) is type(self) and other.config == self.config

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self.config)

    def __repr__(self):
        return f"Optimizer{self.config!r}"


@functools.partial(jax.tree_util.register_dataclass, data_fields=["rule", "learning_rate"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class LearningRateState:
    """State of a PyMC-named optimizer (a pytree): its rule's state, then the learning rate's (optax's own).

    The rule's fields read through (``state.index`` of ``adagrad_window``).
    """

    rule: Any
    learning_rate: Any

    def __getattr__(self, name):
        if name.startswith("__") or name in ("rule", "learning_rate"):
            raise AttributeError(name)
        return getattr(self.rule, name)


def _with_learning_rate(name: str, rule: optax.GradientTransformation, learning_rate, **config) -> Optimizer:
    """``rule`` chained with ``optax.scale_by_learning_rate(learning_rate)``: a named PyMC optimizer."""
    if not callable(learning_rate):
        learning_rate = _checked_learning_rate(learning_rate, name)
    lr = optax.scale_by_learning_rate(learning_rate)

    def init_fn(params):
        return LearningRateState(rule.init(params), lr.init(params))

    def update_fn(updates, state, params=None):
        updates, rule_state = rule.update(updates, state.rule, params)
        updates, lr_state = lr.update(updates, state.learning_rate, params)
        return updates, LearningRateState(rule_state, lr_state)

    return Optimizer(init_fn, update_fn, (name, ("learning_rate", learning_rate), *sorted(config.items())))


class LearningRateError(ValueError, FloatingPointError):
    """A learning rate that is negative or not finite (a FloatingPointError too, where PyMC's fit would raise one)."""


def _checked_learning_rate(learning_rate, name: str = "the optimizer") -> float:
    try:
        if isinstance(learning_rate, (str, bytes, bool)):
            raise TypeError
        value = float(learning_rate)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: learning_rate must be a non-negative number or an optax schedule, got {learning_rate!r}") from None
    if not np.isfinite(value) or value < 0:
        raise LearningRateError(f"{name}: learning_rate must be a finite number >= 0 (a negative one would climb the loss, a "
                                f"NaN would make every step NaN), got {learning_rate!r}")
    return value


def _rule(init_fn, update_fn) -> optax.GradientTransformation:
    def update(updates, state, params=None):
        del params
        return update_fn(updates, state)

    return optax.GradientTransformation(init_fn, update)


# ---------------------------------------------------------------------------
# the update rules, without their learning rate (``scale_by_*``)
# ---------------------------------------------------------------------------


class AccumulatorState(NamedTuple):
    """State of :func:`scale_by_adagrad` and :func:`scale_by_rmsprop`: the accumulated squared gradients."""

    accu: Any


class AdagradWindowState(NamedTuple):
    """State of :func:`scale_by_adagrad_window`.

    ``accu`` holds, per parameter, a ring buffer of the last ``n_win`` squared
    gradients (shape ``param.shape + (n_win,)``); ``index`` is the slot that
    the next squared gradient will be written to.
    """

    index: jax.Array
    accu: Any


class AdadeltaState(NamedTuple):
    """State of :func:`scale_by_adadelta`."""

    accu: Any
    delta_accu: Any


class MomentsState(NamedTuple):
    """State of :func:`scale_by_adam` / :func:`scale_by_adamax`: the update count and the two moments."""

    count: jax.Array
    m: Any
    s: Any


def _accumulating(epsilon, accumulate) -> optax.GradientTransformation:
    """``accu = accumulate(accu, g)``; ``u = g / sqrt(accu + epsilon)``."""

    def update(updates, state):
        accu = jax.tree_util.tree_map(lambda a, g: _cast(accumulate(a, g), a), state.accu, updates)
        return jax.tree_util.tree_map(lambda g, a: _cast(g / jnp.sqrt(a + epsilon), g), updates, accu), \
            AccumulatorState(accu)

    return _rule(lambda params: AccumulatorState(_zeros_like_tree(params)), update)


def scale_by_adagrad(epsilon: float = 1e-6) -> optax.GradientTransformation:
    """Adagrad's rule: ``accu += g**2``; ``u = g / sqrt(accu + epsilon)``."""
    return _accumulating(epsilon, lambda a, g: a + g * g)


def scale_by_rmsprop(rho: float = 0.9, epsilon: float = 1e-6) -> optax.GradientTransformation:
    """RMSProp's rule: ``accu = rho * accu + (1 - rho) * g**2``; ``u = g / sqrt(accu + epsilon)``."""
    return _accumulating(epsilon, lambda a, g: rho * a + (1.0 - rho) * g * g)


def scale_by_adagrad_window(epsilon: float = 0.1, n_win: int = 10) -> optax.GradientTransformation:
    """PyMC's windowed Adagrad rule: ``u = g / sqrt(sum of the last n_win g**2 + epsilon)``."""
    n_win = _check_positive_int("n_win", n_win)

    def init(params):
        accu = jax.tree_util.tree_map(lambda p: jnp.zeros(jnp.shape(p) + (n_win,), dtype=jnp.result_type(p)), params)
        return AdagradWindowState(index=jnp.zeros([], jnp.int32), accu=accu)

    def update(updates, state):
        i = state.index
        accu = jax.tree_util.tree_map(lambda a, g: a.at[..., i].set(_cast(g * g, a)), state.accu, updates)
        out = jax.tree_util.tree_map(lambda g, a: _cast(g / jnp.sqrt(a.sum(axis=-1) + epsilon), g), updates, accu)
        return out, AdagradWindowState(index=((i + 1) % n_win).astype(jnp.int32), accu=accu)

    return _rule(init, update)


def scale_by_adadelta(rho: float = 0.95, epsilon: float = 1e-6) -> optax.GradientTransformation:
    """Adadelta's rule: ``accu = rho accu + (1 - rho) g**2``; ``u = g sqrt(delta + eps) / sqrt(accu + eps)``;
    ``delta = rho delta + (1 - rho) u**2``."""

    def init(params):
        return AdadeltaState(accu=_zeros_like_tree(params), delta_accu=_zeros_like_tree(params))

    def update(updates, state):
        accu = jax.tree_util.tree_map(lambda a, g: _cast(rho * a + (1.0 - rho) * g * g, a), state.accu, updates)
        step = jax.tree_util.tree_map(lambda g, d, a: _cast(g * jnp.sqrt(d + epsilon) / jnp.sqrt(a + epsilon), g),
                                      updates, state.delta_accu, accu)
        delta = jax.tree_util.tree_map(lambda d, u: _cast(rho * d + (1.0 - rho) * u * u, d), state.delta_accu, step)
        return step, AdadeltaState(accu=accu, delta_accu=delta)

    return _rule(init, update)


def _moments(beta1, second, step_scale, denominator) -> optax.GradientTransformation:
    """Adam-type rules: ``m = beta1 m + (1 - beta1) g``, ``s = second(s, g)``, and
    ``u = step_scale(t) * m / denominator(s)`` at update ``t = 1, 2, ...``."""

    def init(params):
        return MomentsState(_zero_count(), _zeros_like_tree(params), _zeros_like_tree(params))

    def update(updates, state):
        t = optax.safe_int32_increment(state.count)
        m = jax.tree_util.tree_map(lambda m_, g: _cast(beta1 * m_ + (1.0 - beta1) * g, m_), state.m, updates)
        s = jax.tree_util.tree_map(lambda s_, g: _cast(second(s_, g), s_), state.s, updates)

        def step(g, m_, s_):
            return _cast(step_scale(t.astype(jnp.result_type(g))) * m_ / denominator(s_), g)

        return jax.tree_util.tree_map(step, updates, m, s), MomentsState(t, m, s)

    return _rule(init, update)


def scale_by_adam(beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8) -> optax.GradientTransformation:
    """Adam's rule in Lasagne's (PyMC's) form, the bias correction folded into the step:
    ``u = sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + epsilon)``."""
    return _moments(beta1, lambda v, g: beta2 * v + (1.0 - beta2) * g * g,
                    lambda t: jnp.sqrt(1.0 - beta2**t) / (1.0 - beta1**t), lambda v: jnp.sqrt(v) + epsilon)


def scale_by_adamax(beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8) -> optax.GradientTransformation:
    """Adamax's rule: ``u_inf = max(beta2 u_inf, |g|)``; ``u = m / ((1 - beta1**t) (u_inf + epsilon))``."""
    return _moments(beta1, lambda u, g: jnp.maximum(beta2 * u, jnp.abs(g)),
                    lambda t: 1.0 / (1.0 - beta1**t), lambda u: u + epsilon)


# ---------------------------------------------------------------------------
# PyMC's optimizers: a rule chained with optax.scale_by_learning_rate
# ---------------------------------------------------------------------------


def sgd(learning_rate: ScalarOrSchedule = 1e-3) -> Optimizer:
    """Stochastic gradient descent: ``update = -learning_rate * g``.  PyMC default: ``learning_rate=1e-3``."""
    return _with_learning_rate("sgd", optax.identity(), learning_rate)


def apply_momentum(transformation: Optional[optax.GradientTransformation] = None, momentum: float = 0.9):
    """Classical momentum on the updates ``u`` of ``transformation`` (the raw updates if None):
    ``v = momentum * v + u``; ``update = v``.  PyMC default: ``momentum=0.9``."""
    return _momentum("apply_momentum", transformation, momentum, nesterov=False)


def apply_nesterov_momentum(transformation: Optional[optax.GradientTransformation] = None, momentum: float = 0.9):
    """Nesterov momentum on the updates ``u`` of ``transformation`` (the raw updates if None):
    ``v = momentum * v + u``; ``update = momentum * v + u``.  PyMC default: ``momentum=0.9``."""
    return _momentum("apply_nesterov_momentum", transformation, momentum, nesterov=True)


def _momentum(name, transformation, momentum, nesterov):
    trace = optax.trace(decay=momentum, nesterov=nesterov)
    if transformation is None:
        return Optimizer(trace.init, trace.update, (name, ("momentum", momentum)))
    both = optax.chain(transformation, trace)
    return Optimizer(both.init, both.update, (name, transformation, ("momentum", momentum)))


def momentum(learning_rate: ScalarOrSchedule = 1e-3, momentum: float = 0.9) -> Optimizer:
    """SGD with classical momentum: ``v = momentum * v - learning_rate * g``; ``update = v``.
    PyMC defaults: ``learning_rate=1e-3, momentum=0.9``."""
    return apply_momentum(sgd(learning_rate), momentum=momentum)


def nesterov_momentum(learning_rate: ScalarOrSchedule = 1e-3, momentum: float = 0.9) -> Optimizer:
    """SGD with Nesterov momentum: ``v = momentum * v - learning_rate * g``;
    ``update = momentum * v - learning_rate * g``.  PyMC defaults: ``learning_rate=1e-3, momentum=0.9``."""
    return apply_nesterov_momentum(sgd(learning_rate), momentum=momentum)


def adagrad(learning_rate: ScalarOrSchedule = 1.0, epsilon: float = 1e-6) -> Optimizer:
    """Adagrad: ``accu += g**2``; ``update = -learning_rate * g / sqrt(accu + epsilon)``.
    PyMC defaults: ``learning_rate=1.0, epsilon=1e-6``."""
    return _with_learning_rate("adagrad", scale_by_adagrad(epsilon), learning_rate, epsilon=epsilon)


def adagrad_window(learning_rate: ScalarOrSchedule = 1e-3, epsilon: float = 0.1, n_win: int = 10) -> Optimizer:
    """Adagrad over a sliding window of the last ``n_win`` squared gradients, PyMC's default optimiser.

    A ring buffer (shape ``param.shape + (n_win,)``, zeros initially) receives ``g**2`` in slot ``i``;
    then ``i = (i + 1) % n_win`` and ``update = -learning_rate * g / sqrt(buffer.sum(-1) + epsilon)``.
    PyMC defaults: ``learning_rate=1e-3, epsilon=0.1, n_win=10``.
    """
    return _with_learning_rate("adagrad_window", scale_by_adagrad_window(epsilon, n_win), learning_rate,
                               epsilon=epsilon, n_win=n_win)


def adadelta(learning_rate: ScalarOrSchedule = 1.0, rho: float = 0.95, epsilon: float = 1e-6) -> Optimizer:
    """Adadelta (the rule of :func:`scale_by_adadelta` times ``-learning_rate``).
    PyMC defaults: ``learning_rate=1.0, rho=0.95, epsilon=1e-6``."""
    return _with_learning_rate("adadelta", scale_by_adadelta(rho, epsilon), learning_rate, rho=rho, epsilon=epsilon)


def rmsprop(learning_rate: ScalarOrSchedule = 1e-3, rho: float = 0.9, epsilon: float = 1e-6) -> Optimizer:
    """RMSProp: ``accu = rho * accu + (1 - rho) * g**2``; ``update = -learning_rate * g / sqrt(accu + epsilon)``.
    PyMC defaults: ``learning_rate=1e-3, rho=0.9, epsilon=1e-6``."""
    return _with_learning_rate("rmsprop", scale_by_rmsprop(rho, epsilon), learning_rate, rho=rho, epsilon=epsilon)


def adam(learning_rate: ScalarOrSchedule = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
         epsilon: float = 1e-8) -> Optimizer:
    """Adam (Lasagne form): ``update = -learning_rate * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + eps)``.
    PyMC defaults: ``learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8``."""
    return _with_learning_rate("adam", scale_by_adam(beta1, beta2, epsilon), learning_rate,
                               beta1=beta1, beta2=beta2, epsilon=epsilon)


def adamax(learning_rate: ScalarOrSchedule = 2e-3, beta1: float = 0.9, beta2: float = 0.999,
           epsilon: float = 1e-8) -> Optimizer:
    """Adamax: ``u = max(beta2 * u, |g|)``; ``update = -learning_rate / (1 - beta1**t) * m / (u + epsilon)``.
    PyMC defaults: ``learning_rate=2e-3, beta1=0.9, beta2=0.999, epsilon=1e-8``."""
    return _with_learning_rate("adamax", scale_by_adamax(beta1, beta2, epsilon), learning_rate,
                               beta1=beta1, beta2=beta2, epsilon=epsilon)


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

    def update_fn(updates, state, params=None):
        del params
        return jax.tree_util.tree_map(constrain, updates), state

    return Optimizer(optax.init_empty_state, update_fn, ("norm_constraint", max_norm, norm_axes, epsilon))


def total_norm_constraint(
    max_norm: float, epsilon: float = 1e-7
) -> optax.GradientTransformation:
    """Rescale the whole pytree so its global L2 norm is at most ``max_norm``.

    ``norm = sqrt(sum_leaves sum(x**2))``;
    ``x * clip(norm, 0, max_norm) / (epsilon + norm)`` for every leaf.
    PyMC default: ``epsilon=1e-7``.
    """

    def update_fn(updates, state, params=None):
        del params
        leaves = jax.tree_util.tree_leaves(updates)
        if not leaves:
            return updates, state
        norm = jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in leaves))
        scale = jnp.clip(norm, 0.0, max_norm) / (epsilon + norm)
        new_updates = jax.tree_util.tree_map(lambda x: _cast(x * scale, x), updates)
        return new_updates, state

    return Optimizer(optax.init_empty_state, update_fn, ("total_norm_constraint", max_norm, epsilon))


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


@dataclasses.dataclass(frozen=True)
class ExponentialDecay:
    """The learning-rate schedule ``init * (final / init) ** min(count / steps, 1)`` (an optax schedule).

    A frozen dataclass, so two equal schedules compare equal and optimizers built with them share one
    compiled loop (an ``optax.exponential_decay`` closure counts by identity).
    """

    init: float
    steps: int
    final: float

    def __post_init__(self):
        if not (np.isfinite(self.init) and np.isfinite(self.final)) or self.init <= 0 or self.final <= 0:
            raise LearningRateError(f"ExponentialDecay: init and final must be finite numbers > 0, got "
                                    f"{self.init!r} and {self.final!r}")
        _check_positive_int("steps", self.steps)

    def __call__(self, count):
        frac = jnp.minimum(jnp.asarray(count, jnp.float32) / self.steps, 1.0)
        return self.init * (self.final / self.init) ** frac


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

    return Optimizer(init_fn, update_fn, ("polyak_averaging", tx, n_steps, float(tail)))


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
