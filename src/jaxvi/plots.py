"""Plots of fits (matplotlib): loss history, tracked parameters, approximation vs reference."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_hist", "plot_tracker", "plot_compare"]


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            import IPython  # noqa: F401
        except ImportError:
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _smooth(x: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(x) < window:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    return (c[window:] - c[:-window]) / window


def plot_hist(approx_or_hist, ax=None, window: int | None = None, log: bool | None = None):
    """The loss (-ELBO) history with a moving average; log-scaled when it spans decades."""
    plt = _plt()
    hist = np.asarray(getattr(approx_or_hist, "hist", approx_or_hist), dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    steps = np.arange(len(hist))
    ax.plot(steps, hist, color="0.75", lw=0.5, label="loss")
    window = window or max(1, len(hist) // 200)
    sm = _smooth(hist, window)
    ax.plot(steps[window - 1:] if len(sm) < len(hist) else steps, sm, color="C0", lw=1.5,
            label=f"moving average ({window})")
    finite = hist[np.isfinite(hist)]
    if log is None:
        log = finite.size > 0 and finite.min() > 0 and finite.max() / max(finite.min(), 1e-12) > 100
    if log:
        ax.set_yscale("log")
    if finite.size > 20:  # single-draw losses spike; frame the bulk of them
        lo, hi = np.percentile(finite, [0.5, 99.0])
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        ax.set_ylim(lo - pad if not log else lo * 0.9, hi + pad if not log else hi * 1.1)
    ax.set_xlabel("step")
    ax.set_ylabel("-ELBO")
    ax.legend(loc="upper right", frameon=False)
    return ax


def plot_tracker(tracker, axes=None, hist=None):
    """One panel per tracked quantity (each coordinate a line), plus the loss if ``hist`` is given."""
    plt = _plt()
    names = list(tracker.hist)
    n = len(names) + (hist is not None)
    if axes is None:
        fig, axes = plt.subplots(n, 1, figsize=(7, 2.6 * n), squeeze=False)
        axes = axes[:, 0]
    for ax, name in zip(axes, names):
        values = np.asarray(tracker[name])
        ax.plot(values.reshape(len(values), -1), lw=0.8)
        ax.set_title(f"{name} track")
        ax.set_xlabel("record")
    if hist is not None:
        plot_hist(hist, ax=axes[-1])
        axes[-1].set_title("negative ELBO")
    return axes


def plot_compare(results: dict, var_names=None, axes=None):
    """Overlaid marginal densities of each variable for several InferenceData (e.g. ADVI vs NUTS)."""
    plt = _plt()
    from scipy.stats import gaussian_kde

    first = next(iter(results.values()))
    if var_names is None:
        var_names = list(first.posterior.data_vars)
    var_names = [var_names] if isinstance(var_names, str) else list(var_names)
    panels = []
    for var in var_names:
        arr = np.asarray(first.posterior[var])
        flat_shape = arr.shape[2:]
        for idx in (np.ndindex(*flat_shape) if flat_shape else [()]):
            panels.append((var, idx))
    if axes is None:
        cols = min(3, len(panels))
        rows = int(np.ceil(len(panels) / cols))
        _, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
        axes = axes.ravel()
    for ax, (var, idx) in zip(axes, panels):
        for label, idata in results.items():
            x = np.asarray(idata.posterior[var])[(slice(None), slice(None), *idx)].ravel()
            if x.std() == 0:
                ax.axvline(x[0], label=label)
                continue
            grid = np.linspace(np.percentile(x, 0.5), np.percentile(x, 99.5), 300)
            ax.plot(grid, gaussian_kde(x)(grid), label=label)
        ax.set_title(f"{var}{list(idx) if idx else ''}")
        ax.legend(frameon=False)
    for ax in list(axes)[len(panels):]:
        ax.set_visible(False)
    return axes
