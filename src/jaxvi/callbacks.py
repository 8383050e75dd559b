"""Callbacks, called as ``cb(approx, hist, i)`` during a fit (PyMC's protocol).

A callback may carry an ``every`` attribute: the engine then calls it only after the steps
with index ``i % every == 0`` and fuses the steps in between into one compiled loop.
A callable without ``every`` is called after every step.  Raising ``StopIteration``
stops the fit cleanly, keeping the approximation and its full history.
"""

from __future__ import annotations

import collections

import numpy as np

__all__ = ["Callback", "CheckParametersConvergence", "Tracker"]


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


class Tracker(Callback):
    """Record values during the fit: ``Tracker(mean=approx.mean, std=approx.std, loss=fn)``.

    Each value is a callable taking no arguments or ``(approx, hist, i)``, or a live array such
    as ``approx.mean`` (re-read at every record).  ``tracker["mean"]`` is the list of records.
    """

    def __init__(self, every: int = 1, **kwargs):
        self.every = int(every)
        self.whatchdict = kwargs
        self.hist = collections.defaultdict(list)
        for name, fn in kwargs.items():
            if not (callable(fn) or hasattr(fn, "eval")):
                raise TypeError(f"Tracker: {name!r} must be callable (or a live value such as approx.mean)")

    def record(self, approx, hist, i):
        for name, fn in self.whatchdict.items():
            if hasattr(fn, "eval") and not isinstance(fn, type):
                value = fn.eval()
            else:
                try:
                    value = fn()
                except TypeError:
                    value = fn(approx, hist, i)
            self.hist[name].append(np.asarray(value))

    __call__ = record

    def clear(self):
        self.hist = collections.defaultdict(list)

    def __getitem__(self, key):
        return self.hist[key]
