"""Callbacks, called as ``cb(approx, hist, i)`` during a fit (PyMC's protocol).

A callback may carry an ``every`` attribute: the engine then calls it only after the steps
with index ``i % every == 0`` and fuses the steps in between into one compiled loop.
A callable without ``every`` is called after every step.  Raising ``StopIteration``
stops the fit cleanly, keeping the approximation and its full history.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.variational.approximations import LiveValue

__all__ = ["Callback", "CheckParametersConvergence", "CheckLossConvergence", "PlateauRule", "loss_plateau",
           "Tracker"]


class Callback:
    every = 1

    def __call__(self, approx, hist, i):  # pragma: no cover - interface
        raise NotImplementedError


def _flatten(params) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(p)) for p in params])


class CheckParametersConvergence(Callback):
    """Stop when the variational parameters change by less than ``tolerance`` over ``every`` steps.

    ``diff="relative"`` measures (current - previous) / |current|, ``diff="absolute"`` the plain
    difference; ``ord`` is the norm applied to the change (``np.inf``: the largest entry).
    """

    def __init__(self, every: int = 100, tolerance: float = 1e-3, diff: str = "relative", ord=np.inf):
        if diff not in ("relative", "absolute"):
            raise ValueError(f"diff must be 'relative' or 'absolute', got {diff!r}")
        if int(every) < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.every = int(every)
        self.tolerance = float(tolerance)
        self.diff = diff
        self.ord = ord
        self.prev = None

    def __call__(self, approx, hist, i):
        current = _flatten(approx.params)
        if self.prev is None or i < self.every:
            self.prev = current
            return
        if i % self.every:
            return
        delta = current - self.prev
        if self.diff == "relative":
            delta = delta / np.abs(current)
        self.prev = current
        if np.linalg.norm(delta, self.ord) < self.tolerance:
            raise StopIteration(f"Convergence achieved at {i}")


def loss_plateau(older, newer, tolerance: float = 1e-3, z: float = 2.0, n_batches: int = 10):
    """Whether the loss has stopped decreasing between two consecutive windows (pure; numpy or JAX).

    The decrease mean(older) - mean(newer) is compared with its noise: the standard error from
    ``n_batches`` batch means per window (batch means absorb the autocorrelation of successive
    losses, which a per-step standard error would ignore).  Plateau when the decrease is both
    within the noise (below ``z`` standard errors) and small (below ``tolerance`` times
    |mean(newer)|): a noisy loss that is still falling fast is not stopped just because one
    window's noise hides the fall.  Returns a boolean (array).
    """
    w = older.shape[-1] // n_batches * n_batches
    bo = jnp.reshape(older[-w:], (n_batches, -1)).mean(axis=1)
    bn = jnp.reshape(newer[-w:], (n_batches, -1)).mean(axis=1)
    decrease = bo.mean() - bn.mean()
    se = jnp.sqrt((jnp.var(bo, ddof=1) + jnp.var(bn, ddof=1)) / n_batches)
    return (decrease < z * se) & (decrease < tolerance * jnp.abs(bn.mean()))


class _PlateauOptions:
    def __init__(self, every: int = 100, window: int = 500, tolerance: float = 1e-3, z: float = 2.0,
                 n_batches: int = 10):
        if int(window) < 2 * n_batches or int(every) < 1:
            raise ValueError(f"need window >= 2 * n_batches ({2 * n_batches}) and every >= 1, "
                             f"got window={window!r}, every={every!r}")
        self.every, self.window, self.n_batches = int(every), int(window), int(n_batches)
        self.tolerance, self.z = float(tolerance), float(z)


class CheckLossConvergence(_PlateauOptions, Callback):
    """Stop when the loss reaches a plateau, robustly to Monte Carlo and minibatch noise.

    Every ``every`` steps the last ``window`` losses are compared with the ``window`` before them
    (:func:`loss_plateau`): the fit stops when the mean decreased by less than ``z`` standard
    errors of the difference (batch means) and by less than ``tolerance`` relative to the loss.
    ``jv.fit(..., stop_on_convergence=True)`` runs the same test inside the compiled loop.
    """

    def __call__(self, approx, hist, i):
        if i % self.every or len(hist) < 2 * self.window:
            return
        recent = np.asarray(hist[-2 * self.window:], np.float32)
        if not np.all(np.isfinite(recent)):
            return
        if bool(loss_plateau(recent[:self.window], recent[self.window:], self.tolerance, self.z, self.n_batches)):
            raise StopIteration(f"Convergence achieved at {i}: the loss has reached a plateau "
                                f"(windows of {self.window} steps)")


class PlateauRule(_PlateauOptions):
    """The loss-plateau test inside the compiled loop (``fit(stop_on_convergence=True)``).

    Its state (a ring buffer of the last 2 * window losses, a count and the stop flag) rides in
    the optimizer state: ``wrap(step)`` updates it after every step and ``stop(opt_state)`` tells the
    engine's loop to end.  Same test and schedule as :class:`CheckLossConvergence`.
    """

    @property
    def config(self) -> tuple:
        return (self.every, self.window, self.tolerance, self.z, self.n_batches)

    def init(self, dtype=jnp.float32):
        return {"buf": jnp.zeros(2 * self.window, dtype), "n": jnp.zeros((), jnp.int32),
                "stop": jnp.asarray(False)}

    def update(self, state, loss):
        w2 = 2 * self.window
        n = state["n"] + 1
        buf = state["buf"].at[(n - 1) % w2].set(loss.astype(state["buf"].dtype))
        due = (n >= w2) & ((n - 1) % self.every == 0)

        def test(b):
            b = jnp.roll(b, -(n % w2))  # oldest first
            return loss_plateau(b[:self.window], b[self.window:], self.tolerance, self.z, self.n_batches)

        stop = jax.lax.cond(due, test, lambda b: jnp.asarray(False), buf)
        return {"buf": buf, "n": n, "stop": stop}

    def wrap(self, step):
        def wrapped(params, opt_state, key, batch):
            inner, rule_state = opt_state
            params, inner, loss = step(params, inner, key, batch)
            return params, (inner, self.update(rule_state, loss)), loss

        return wrapped

    @staticmethod
    def stop(opt_state):
        return opt_state[1]["stop"]


class Tracker(Callback):
    """Record values during the fit: ``Tracker(mean=approx.mean, std=approx.std, loss=fn)``.

    Each value is a callable taking no arguments or ``(approx, hist, i)``, or a live array such
    as ``approx.mean`` (re-read at every record).  ``tracker["mean"]`` is the list of records.

    Live values of the approximation (``approx.mean``, ``approx.std.eval``, ...) are pure functions of
    its parameters: before the engine replays a fused chunk, :meth:`prefetch` computes them for all
    the chunk's steps in one vectorised call, and each step's record then just takes its row.
    """

    def __init__(self, every: int = 1, **kwargs):
        self.every = int(every)
        self.whatchdict = kwargs
        self.hist = collections.defaultdict(list)
        self._ahead = {}  # name -> (first step, number of steps, values of the prefetched steps)
        for name, fn in kwargs.items():
            if not (callable(fn) or hasattr(fn, "eval")):
                raise TypeError(f"Tracker: {name!r} must be callable (or a live value such as approx.mean)")

    def prefetch(self, approx, steps, params_block):
        """Compute the live values for the steps ``steps`` from their parameters (row j: step ``steps[j]``)."""
        self._ahead = {}
        for name, fn in self.whatchdict.items():
            getter = _live_getter(fn)
            if getter is None:
                continue
            saved = approx.vparams

            def at(params, getter=getter):  # the getter reads approx.vparams (pure library code)
                approx.vparams = params
                return getter()

            try:
                values = np.asarray(jax.vmap(at)(params_block))
            finally:
                approx.vparams = saved
            self._ahead[name] = (int(steps[0]), len(steps), list(values))  # rows: list indexing per record

    @property
    def records_blocks(self) -> bool:
        """Whether every tracked value is a live value (prefetched per chunk, so :meth:`record_block` works)."""
        return all(_live_getter(fn) is not None for fn in self.whatchdict.values())

    def record_block(self, steps):
        """:meth:`record` for each of ``steps`` (all within the last prefetched chunk)."""
        for name in self.whatchdict:
            first, _, rows = self._ahead[name]
            self.hist[name].extend(rows[int(i) - first] for i in steps)

    def record(self, approx, hist, i):
        for name, fn in self.whatchdict.items():
            ahead = self._ahead.get(name)
            if ahead is not None and 0 <= i - ahead[0] < ahead[1]:
                self.hist[name].append(ahead[2][i - ahead[0]])
                continue
            if hasattr(fn, "eval") and not isinstance(fn, type):
                value = fn.eval()
            else:
                try:  # as PyMC: the no-argument form first, then (approx, hist, i) after any error
                    value = fn()
                except Exception:  # noqa: BLE001 - e.g. ``lambda *t: t[-1]`` raises IndexError
                    value = fn(approx, hist, i)
            self.hist[name].append(np.asarray(value))

    __call__ = record

    def clear(self):
        self.hist = collections.defaultdict(list)
        self._ahead = {}

    def __getitem__(self, key):
        return self.hist[key]


def _live_getter(fn):
    """The getter of ``approx.mean``-style live values (the value itself, or its ``.eval`` / call), else None."""
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, LiveValue) and getattr(fn, "__func__", None) in (LiveValue.eval, LiveValue.__call__):
        fn = owner
    return getattr(fn, "_getter", None) if isinstance(fn, LiveValue) else None
