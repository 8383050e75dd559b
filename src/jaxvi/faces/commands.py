"""What the ``jaxvi fit`` and ``jaxvi compare`` commands do (``cli.py`` is only their argparse face).

A model file is any Python file that defines a model.  It is run with ``__name__`` set to
``"jaxvi_model_file"`` (so an ``if __name__ == "__main__":`` block does not run), and the model is
looked up in this order:

1. a global ``model``: a ``jv.Model``, or a function callable without arguments returning one
   (``def model(): ...``);
2. a function ``build_model()`` returning a ``jv.Model``;
3. the only ``jv.Model`` among the file's globals.

Every user mistake (missing file, no model in it, unknown method, the file raising an error)
is a :class:`CommandError`, which the command line prints as one line and exits with code 2.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
import warnings

import numpy as np

__all__ = ["CommandError", "load_model", "fit_command", "compare_command", "vi_methods"]

MODEL_FILE_RUN_NAME = "jaxvi_model_file"
_LOOKUP_HELP = ("define `model` (a jv.Model, or a function returning one), a function `build_model()` "
                "returning a jv.Model, or exactly one jv.Model at the top level")


class CommandError(Exception):
    """A user error of the command line: reported in one line, exit code 2."""


def vi_methods() -> list[str]:
    """The variational methods ``jv.fit`` accepts by name."""
    from jaxvi.variational.inference import METHODS

    return sorted(METHODS)


def _check_methods(methods, allowed, hint=""):
    for m in methods:
        if m not in allowed:
            raise CommandError(f"unknown method {m!r}; valid methods: {', '.join(allowed)}{hint}")


def _model_from(value, path, what):
    from jaxvi.model.context import Model

    if isinstance(value, Model):
        return value
    if callable(value):
        try:
            result = value()
        except TypeError as exc:
            raise CommandError(f"{path}: calling {what}() failed ({exc}); it must take no arguments") from None
        if isinstance(result, Model):
            return result
        raise CommandError(f"{path}: {what}() returned {type(result).__name__}, not a jv.Model")
    raise CommandError(f"{path}: `{what}` is a {type(value).__name__}, not a jv.Model; {_LOOKUP_HELP}")


def load_model(path):
    """Run the model file ``path`` and return its model (see the module docstring for the rule)."""
    from jaxvi.model.context import Model

    path = os.fspath(path)
    if not os.path.exists(path):
        raise CommandError(f"model file {path!r} does not exist")
    if os.path.isdir(path) or not path.endswith(".py"):
        raise CommandError(f"model file {path!r} must be a Python file (MODEL.py)")
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # so the file can import its neighbours
    try:
        namespace = runpy.run_path(path, run_name=MODEL_FILE_RUN_NAME)
    except CommandError:
        raise
    except SystemExit as exc:
        raise CommandError(f"{path} exited (code {exc.code}) while being loaded") from None
    except Exception as exc:  # the user's code: report it in one line
        raise CommandError(f"{path} raised {type(exc).__name__} while being loaded: {exc} "
                           f"(run `python {path}` for the full traceback)") from None
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)
    for what in ("model", "build_model"):
        if what in namespace:
            try:
                return _model_from(namespace[what], path, what)
            except CommandError:
                raise
            except Exception as exc:
                raise CommandError(f"{path}: {what}() raised {type(exc).__name__}: {exc}") from None
    models = [v for k, v in namespace.items() if isinstance(v, Model) and not k.startswith("_")]
    unique = list({id(m): m for m in models}.values())
    if len(unique) == 1:
        return unique[0]
    found = f"found {len(unique)} jv.Model objects" if unique else "found none"
    raise CommandError(f"no model in {path} ({found}); {_LOOKUP_HELP}")


def _out_dir(out, path, command):
    out = out or f"{os.path.splitext(os.path.basename(path))[0]}-{command}"
    if os.path.exists(out) and not os.path.isdir(out):
        raise CommandError(f"--out {out!r} is a file, not a folder; give a folder for the outputs")
    try:
        os.makedirs(out, exist_ok=True)
        import tempfile

        with tempfile.TemporaryFile(dir=out):  # writable? (os.access is wrong for root and some mounts)
            pass
    except OSError as exc:
        raise CommandError(f"--out {out!r}: cannot write into this folder ({exc.strerror or exc}); give a folder "
                           "you can write to") from None
    return out


def _summary(idata, kind="stats"):
    from jaxvi.results.inference_data import import_arviz

    az = import_arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.summary(idata, kind=kind, round_to=4)


def _save_fig(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)


def _density_vars(model) -> list[str]:
    """Variables worth a density panel: free variables, then small Deterministics."""
    names = [rv.name for rv in model.free_RVs]
    names += [d.name for d in model.deterministics if int(np.prod(d.shape, dtype=np.int64)) <= 4]
    return names


def _use_agg():
    import matplotlib

    matplotlib.use("Agg")


def _fit_vi(model, method, n, draws, seed, progressbar):
    from jaxvi.variational.inference import fit

    t0 = time.perf_counter()
    approx = fit(n, method=method, model=model, random_seed=seed, progressbar=progressbar)
    idata = approx.sample(draws, random_seed=seed + 1)
    return approx, idata, time.perf_counter() - t0


def fit_command(path, method="advi", n=20000, draws=1000, seed=0, out=None, progressbar=True, echo=print) -> dict:
    """``jaxvi fit``: fit, then write posterior.nc, summary.csv, loss.png and posterior.png into ``out``."""
    _check_methods([method], vi_methods(), hint=" (for NUTS use `jaxvi compare --methods advi,nuts`)")
    _check_counts(n=n, draws=draws)
    model = load_model(path)
    out = _out_dir(out, path, "fit")  # checked before the fit
    _use_agg()
    from jaxvi.faces.plots import plot_compare, plot_hist

    approx, idata, seconds = _fit_vi(model, method, n, draws, seed, progressbar)
    files = {"posterior": os.path.join(out, "posterior.nc"), "summary": os.path.join(out, "summary.csv"),
             "loss": os.path.join(out, "loss.png"), "densities": os.path.join(out, "posterior.png")}
    idata.to_netcdf(files["posterior"])
    table = _summary(idata)
    table.to_csv(files["summary"])
    echo(f"{method}: {len(approx.hist)} steps in {seconds:.1f} s; final loss {_final_loss(approx.hist)}")
    echo(table.to_string())
    ax = plot_hist(approx)
    ax.set_title(f"{os.path.basename(path)}: {method} loss history")
    _save_fig(ax.figure, files["loss"])
    axes = plot_compare({method: idata}, var_names=_density_vars(model))
    _save_fig(axes[0].figure, files["densities"])
    echo(f"wrote {', '.join(os.path.basename(f) for f in files.values())} to {os.path.abspath(out)}")
    return {"files": files, "summary": table, "approx": approx, "idata": idata}


def _final_loss(hist) -> str:
    hist = np.asarray(hist, dtype=float)
    if hist.size == 0:
        return "n/a (no steps)"
    tail = hist[-min(len(hist), 1000):]
    return f"{np.mean(tail):.4g} (mean of the last {len(tail)})"


def _check_counts(**counts):
    for name, value in counts.items():
        if value < 1:
            raise CommandError(f"--{name} must be a positive integer, got {value}")


def compare_command(path, methods=("advi", "fullrank_advi", "nuts"), n=20000, draws=1000, seed=0, out=None,
                    progressbar=True, tune=1000, chains=2, echo=print) -> dict:
    """``jaxvi compare``: fit every method, write compare.png (overlaid densities) and compare.csv."""
    methods = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    if not methods:
        raise CommandError("--methods is empty; give a comma-separated list such as advi,nuts")
    _check_methods(methods, [*vi_methods(), "nuts"])
    _check_counts(n=n, draws=draws)
    model = load_model(path)
    out = _out_dir(out, path, "compare")
    _use_agg()
    import pandas as pd

    from jaxvi.faces.plots import plot_compare
    from jaxvi.variational.sampling import sample

    results, tables = {}, []
    for i, method in enumerate(methods):
        if method == "nuts":
            t0 = time.perf_counter()
            idata = sample(draws=draws, tune=tune, chains=chains, model=model, random_seed=seed + i,
                           progressbar=progressbar)
            seconds, steps = time.perf_counter() - t0, (draws + tune) * chains
        else:
            approx, idata, seconds = _fit_vi(model, method, n, draws, seed + i, progressbar)
            steps = len(approx.hist)
        results[method] = idata
        table = _summary(idata)
        table.insert(0, "method", method)
        table["seconds"] = round(seconds, 2)
        table["steps"] = steps
        tables.append(table)
        echo(f"{method}: {steps} steps in {seconds:.1f} s")
    table = pd.concat(tables)
    table.index.name = "variable"
    files = {"table": os.path.join(out, "compare.csv"), "figure": os.path.join(out, "compare.png")}
    table.to_csv(files["table"])
    echo(table.to_string())
    axes = plot_compare(results, var_names=_density_vars(model))
    _save_fig(axes[0].figure, files["figure"])
    echo(f"wrote compare.csv, compare.png to {os.path.abspath(out)}")
    return {"files": files, "table": table, "results": results}
