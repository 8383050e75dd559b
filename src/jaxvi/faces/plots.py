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
    """The loss (-ELBO) history with a moving average.

    ``window`` (default: a fiftieth of the steps) sets the moving average; ``log=None`` log-scales
    the y axis when the positive losses span more than two decades (``True``/``False`` forces it).
    Single-draw losses spike, so the y range frames the bulk (0.5 to 99th percentile of the later half).
    """
    plt = _plt()
    hist = np.asarray(getattr(approx_or_hist, "hist", approx_or_hist), dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    steps = np.arange(len(hist))
    ax.plot(steps, hist, color="0.75", lw=0.5, label="loss")
    window = int(window or max(1, len(hist) // 50))
    sm = _smooth(hist, window)
    if len(sm) < len(hist):
        ax.plot(steps[window - 1:], sm, color="C0", lw=1.5, label=f"moving average ({window} steps)")
    finite = hist[np.isfinite(hist)]
    if log is None:
        log = finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > 100
    if log:
        ax.set_yscale("log")
    if finite.size > 20:
        late = finite[len(finite) // 2:]
        lo, hi = min(np.percentile(late, 0.5), np.min(sm[np.isfinite(sm)])), np.percentile(finite, 99.0)
        if log:
            ax.set_ylim(lo * 0.9, hi * 1.1)
        else:
            pad = 0.05 * (hi - lo) if hi > lo else 1.0
            ax.set_ylim(lo - pad, hi + pad)
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
    every = int(getattr(tracker, "every", 1) or 1)
    for ax, name in zip(axes, names):
        values = np.asarray(tracker[name])
        ax.plot(np.arange(len(values)) * every, values.reshape(len(values), -1), lw=0.8)
        ax.set_title(f"{name} track")
        ax.set_xlabel("step")
    if hist is not None:
        plot_hist(hist, ax=axes[-1])
        axes[-1].set_title("negative ELBO")
    return axes


def _panels(idata, var_names, max_panels):
    """(variable, index, title) for every scalar entry of ``var_names``, titles with coordinate labels."""
    post = idata.posterior
    missing = [v for v in var_names if v not in post]
    if missing:
        raise KeyError(f"plot_compare: no variable(s) {missing} in the posterior (it has {list(post.data_vars)})")
    panels = []
    for var in var_names:
        da = post[var]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        for idx in np.ndindex(*da.shape[2:]):
            labels = [str(da[d].values[i]) if d in da.coords else str(i) for d, i in zip(dims, idx)]
            panels.append((var, idx, f"{var}[{', '.join(labels)}]" if idx else var))
    return panels[:max_panels], len(panels)


def _values(idata, var, idx) -> np.ndarray:
    return np.asarray(idata.posterior[var])[(slice(None), slice(None), *idx)].ravel()


def _density(ax, x: np.ndarray, grid, label, color, slot=(0, 1)):
    """A KDE curve, or for booleans/small-range integers side-by-side bars of frequencies (``slot`` = (i, n))."""
    from scipy.stats import gaussian_kde

    if x.dtype == bool or (np.issubdtype(x.dtype, np.integer) and len(np.unique(x)) <= 30):
        values, counts = np.unique(x.astype(int), return_counts=True)
        width = 0.8 / slot[1]
        ax.bar(values - 0.4 + width * (slot[0] + 0.5), counts / counts.sum(), width=width, color=color,
               alpha=0.7, label=label)
        ax.set_xticks(values)
        return
    if np.std(x) == 0:
        ax.axvline(x[0], color=color, label=label)
        return
    y = gaussian_kde(x)(grid)
    ax.plot(grid, y, color=color, lw=1.6, label=label)
    ax.fill_between(grid, y, color=color, alpha=0.12)


def plot_compare(results: dict, var_names=None, axes=None, kind: str = "density", max_panels: int = 12):
    """Compare posteriors (e.g. ``{"ADVI": idata1, "NUTS": idata2}``) variable by variable.

    ``kind="density"`` overlays the marginal densities of every scalar entry of ``var_names``
    (at most ``max_panels`` panels), on a common grid per panel; ``kind="pair"`` draws the joint
    scatter of exactly two scalar entries (e.g. ``var_names=["mu", "sd"]``), one colour per result.
    Returns the array of axes.
    """
    if kind not in ("density", "pair"):
        raise ValueError(f"plot_compare: kind must be 'density' or 'pair', got {kind!r}")
    if not results:
        raise ValueError("plot_compare: results is empty; pass {label: InferenceData}")
    plt = _plt()
    first = next(iter(results.values()))
    if var_names is None:
        var_names = list(first.posterior.data_vars)
    var_names = [var_names] if isinstance(var_names, str) else list(var_names)
    panels, total = _panels(first, var_names, max_panels if kind == "density" else 3)
    colors = {label: f"C{i}" for i, label in enumerate(results)}
    if kind == "pair":
        if total != 2:
            raise ValueError(f"plot_compare(kind='pair') needs exactly two scalar entries, got {total} "
                             f"from var_names={var_names}")
        if axes is None:
            _, ax = plt.subplots(figsize=(5, 4.5))
        else:
            ax = np.ravel(axes)[0]
        (vx, ix, tx), (vy, iy, ty) = panels
        for label, idata in results.items():
            ax.scatter(_values(idata, vx, ix), _values(idata, vy, iy), s=3, alpha=0.3, color=colors[label],
                       label=label, rasterized=True)
        ax.set_xlabel(tx)
        ax.set_ylabel(ty)
        ax.legend(frameon=False, markerscale=4)
        return np.array([ax])
    if axes is None:
        cols = min(3, len(panels))
        rows = int(np.ceil(len(panels) / cols))
        _, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    axes = np.ravel(axes)
    for ax, (var, idx, title) in zip(axes, panels):
        xs = {label: _values(idata, var, idx) for label, idata in results.items()}
        pooled = np.concatenate([x for x in xs.values() if x.size]).astype(float)
        lo, hi = np.percentile(pooled, [0.5, 99.5])
        grid = np.linspace(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo), 300)
        for i, (label, x) in enumerate(xs.items()):
            _density(ax, x, grid, label, colors[label], slot=(i, len(xs)))
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.set_yticks([])
    axes[0].legend(frameon=False)
    if total > len(panels):
        axes[0].figure.suptitle(f"first {len(panels)} of {total} entries", fontsize=9)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return axes
