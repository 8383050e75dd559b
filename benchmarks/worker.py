"""One measurement in a fresh process: ``python worker.py LIB CASE METHOD N``.

LIB is a runner module in this folder (``bench_jaxvi``, ``bench_pymc``, ``bench_numpyro``,
``limit``; ``bench_numpyro:bnaf`` sets the runner's ``VARIANT``) with ``build(case)``, ``fit(model, case, method, n) -> (fitted, losses)`` and
``draw(model, fitted, case, draws)``.  The parent puts its ``time.time()`` from just before
it started this process in ``BENCH_T_SPAWN``; the process then:

1. imports the library, builds the model, fits ``n`` steps, takes 1000 draws -- the cold
   time to result is measured from the spawn (interpreter start and imports included);
   the first fit's gradient evaluations are ``n`` times ``cases.grads_per_step(method)``, plus the
   runner's ``start_grad_evals(fitted)`` if it has one (what the fit spent before its steps);
2. fits ``n`` steps again on the same model, ``WARM_REPEATS`` times: the warm fit is the best
   of these (the machine may be shared, so one repeat guards against a noisy neighbour);
3. fits ``SMALL_N`` steps on the same model: the fixed cost of a fit call (what a second fit
   pays besides its iterations, e.g. a re-compilation);
4. records its peak resident memory (``VmHWM``) and the bytes of the case's data, then runs the
   runner's ``extra(model, case, method, n)`` if it has one (e.g. a full-data iteration).

It prints one JSON line prefixed with ``BENCH_RESULT`` on stdout.

``python worker.py --prime LIB CASE:METHOD ...`` instead runs a short untimed fit and the draws of
each case in one process (to fill PyTensor's on-disk C cache before the timed runs).
"""

import os
import sys
import time

T_SPAWN = float(os.environ.get("BENCH_T_SPAWN") or time.time())
T_START = time.time()

import importlib  # noqa: E402
import json  # noqa: E402

MARK = "BENCH_RESULT "


def rss_mb(field: str = "VmHWM") -> float:
    """This process's peak (``VmHWM``) or current (``VmRSS``) resident memory in MiB (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def prime(lib: str, pairs: list[str]) -> None:
    runner = importlib.import_module(lib)
    import cases

    done = {}
    for pair in pairs:
        case, method = pair.split(":")
        t = time.perf_counter()
        try:
            model = runner.build(case)
            fitted, _ = runner.fit(model, case, method, cases.SMALL_N)
            runner.draw(model, fitted, case, cases.DRAWS)
            done[pair] = round(time.perf_counter() - t, 3)
        except Exception as exc:  # noqa: BLE001  (priming is best effort)
            done[pair] = f"{type(exc).__name__}: {exc}"
    print(MARK + json.dumps({"primed": done, "wall_s": time.time() - T_SPAWN}), flush=True)


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if sys.argv[1] == "--prime":
        return prime(sys.argv[2], sys.argv[3:])
    lib, case, method, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    out = {"lib": lib, "case": case, "method": method, "n": n, "startup_s": T_START - T_SPAWN}
    lib, _, variant = lib.partition(":")  # "bench_numpyro:bnaf": a runner and its variant

    t = time.perf_counter()
    runner = importlib.import_module(lib)
    if variant:
        runner.VARIANT = variant
    import numpy as np

    import cases

    out["import_s"] = time.perf_counter() - t
    out["versions"] = runner.versions()
    out["rss_after_import_mb"] = rss_mb("VmRSS")  # interpreter + library, before any data

    t = time.perf_counter()
    model = runner.build(case)
    out["build_s"] = time.perf_counter() - t

    t = time.perf_counter()
    fitted, losses = runner.fit(model, case, method, n)
    out["fit1_s"] = time.perf_counter() - t
    # gradient evaluations of the first fit: its steps, plus whatever the runner's fit spent before them
    # (jaxvi's default mode search: ``start_grad_evals``)
    start = getattr(runner, "start_grad_evals", None)
    out["grad_evals"] = n * cases.grads_per_step(method) + (int(start(fitted)) if start else 0)

    t = time.perf_counter()
    out["posterior_mean"] = runner.draw(model, fitted, case, cases.DRAWS)
    out["draw_s"] = time.perf_counter() - t
    stats = out["posterior_mean"].pop("_stats", None)  # accuracy statistics of the draws (cases.stats)
    if stats:
        out["stats"] = stats
    out["cold_s"] = time.time() - T_SPAWN  # the time to result

    out["n_losses"] = int(len(losses))
    tail = losses[-cases.LOSS_WINDOW:]
    out["final_loss"] = float(tail.mean()) if len(tail) else float("nan")
    out["loss_nonfinite"] = int((~np.isfinite(tail)).sum())

    warm = []
    repeats = int(os.environ.get("BENCH_WARM_REPEATS") or cases.WARM_REPEATS)
    out["warm_repeats"] = repeats
    for _ in range(repeats):
        t = time.perf_counter()
        _, losses2 = runner.fit(model, case, method, n)
        warm.append(time.perf_counter() - t)
    out["warm_runs_s"] = warm
    out["warm_s"] = min(warm)
    out["final_loss_warm"] = float(losses2[-cases.LOSS_WINDOW:].mean())

    t = time.perf_counter()
    runner.fit(model, case, method, cases.SMALL_N)
    out["small_s"] = time.perf_counter() - t
    out["small_n"] = cases.SMALL_N
    # peak resident memory of everything so far (data, build, compile, fits, draws), before the
    # runner's extra measurements (e.g. the full-data iteration of the minibatch case)
    out["peak_rss_mb"] = rss_mb("VmHWM")
    out["data_bytes"] = cases.data_bytes(case)

    if hasattr(runner, "extra"):  # runner-specific diagnostics
        out["extra"] = runner.extra(model, case, method, n)

    print(MARK + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
