"""jaxvi vs PyMC vs NumPyro SVI vs a hand-fused JAX loop, on the seed cases (``make bench``).

Every (case, method, library) is measured by ``worker.py`` in a fresh process; this script
starts them one after another, collects their JSON lines and writes ``results.json`` (raw) and
``results.md`` (the tables).  A library that fails on a case gets its error text in the table.

    python benchmarks/run.py [--jaxvi-python .venv/bin/python]
                             [--peers-python benchmarks/.venv-peers/bin/python]
                             [--only CASE ...] [--pairs CASE:METHOD ...] [--merge]
                             [--libs jaxvi pymc numpyro limit numpyro_bnaf] [--scale 0.1]

Besides the standard library only numpy is needed here (through ``cases.py``); ``make bench``
runs it with the jaxvi venv's python.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import cases  # noqa: E402  (numpy only)

MARK = "BENCH_RESULT "
# library key -> (runner module, which venv, label in the tables)
LIBS = {
    "jaxvi": ("bench_jaxvi", "jaxvi", "jaxvi"),
    "pymc": ("bench_pymc", "peers", "PyMC"),
    "numpyro": ("bench_numpyro", "peers", "NumPyro"),
    "limit": ("limit", "jaxvi", "limit (hand-fused JAX)"),
    "numpyro_bnaf": ("bench_numpyro:bnaf", "peers", "NumPyro (AutoBNAFNormal)"),
    "jaxvi_x64": ("bench_jaxvi:x64", "jaxvi", "jaxvi (float64)"),
}
BASE_LIBS = ("jaxvi", "pymc", "numpyro", "limit")  # the libraries of a case unless cases.py says otherwise
METHOD_LABEL = {"advi": "ADVI (mean-field)", "fullrank_advi": "full-rank ADVI",
                "svgd": f"SVGD ({cases.SVGD_PARTICLES} particles, sgd lr {cases.SVGD_LR})",
                "nfvi": "normalizing flow (NFVI)"}
# What each library runs for a method, where that is not the obvious (printed under the section's table).
METHOD_NOTES = {
    "svgd": "jaxvi `jv.fit(n, method=\"svgd\", inf_kwargs=dict(n_particles=1000), obj_optimizer=jv.sgd(learning_rate=0.01))`; "
            "PyMC the same with `pm.`; NumPyro `numpyro.contrib.einstein.SVGD` (SteinVI with an `AutoDelta` guide) with "
            "`RBFKernel()`, 1000 particles, `numpyro.optim.SGD(0.01)`, particles started as PyMC's (initial point + N(0, 1)). "
            "The 1000 draws are the particles (jaxvi/PyMC resample them, NumPyro takes each once). "
            "PyMC's SVGD keeps no loss history (final avg loss n/a); NumPyro's loss is SteinVI's ELBO-based loss, not comparable.",
    "nfvi": "jaxvi `jv.NFVI(flow=FLOW, random_seed=0).fit(n, obj_optimizer=jv.adam(learning_rate=optax.cosine_decay_schedule(0.01, n, 0.01)), "
            "obj_n_mc=256)`; NumPyro: SVI with `AutoIAFNormal` (row \"NumPyro\") or `AutoBNAFNormal` (default sizes), "
            "`Trace_ELBO(num_particles=256)`, the same optax adam schedule, started at the initial point. "
            "Final avg loss = mean of the last 1000 −ELBO estimates (each a 256-draw average; 0 is exact, both targets are normalised).",
}


def machine_info() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(os.cpu_count())
    return {"nproc": nproc, "cpu": cpu, "platform": platform.platform(), "python": platform.python_version()}


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _spawn(cmd: list[str], timeout: float, extra_env: dict | None = None) -> dict:
    """Run ``cmd`` in a fresh process; returns its BENCH_RESULT record or {"error": ...}."""
    env = dict(os.environ)
    env.pop("JAX_ENABLE_X64", None)
    env.pop("BENCH_WARM_REPEATS", None)
    env.update(extra_env or {})
    env["BENCH_T_SPAWN"] = repr(time.time())
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "wall_s": time.perf_counter() - t0}
    except OSError as exc:
        return {"error": f"could not start {cmd[0]}: {exc}", "wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            rec = json.loads(line[len(MARK):])
            rec["wall_s"] = wall
            return rec
    err = [ln for ln in (proc.stderr or proc.stdout or "").strip().splitlines() if ln.strip()]
    msg = err[-1] if err else f"exit status {proc.returncode}, no output"
    return {"error": msg, "returncode": proc.returncode, "stderr_tail": "\n".join(err[-25:]), "wall_s": wall}


def run_worker(python: str, module: str, case: str, method: str, n: int, timeout: float,
               warm_repeats: int | None = None, extra_env: dict | None = None) -> dict:
    """One measurement (``worker.py``) in a fresh process."""
    env = {"BENCH_WARM_REPEATS": str(warm_repeats)} if warm_repeats else {}
    env.update(extra_env or {})
    return _spawn([python, os.path.join(HERE, "worker.py"), module, case, method, str(n)], timeout, env)


JAXVI_LIBS = ("jaxvi", "jaxvi_x64")


def run_jaxvi_worker(python: str, module: str, case: str, method: str, n: int, timeout: float,
                     warm_repeats: int | None = None) -> dict:
    """jaxvi twice in fresh processes sharing a new, empty persistent compilation cache.

    The first process finds the cache empty (a first-ever run: everything compiled by XLA); the
    second finds what the first compiled, as anyone running a script a second time does (the
    PyMC rows likewise run with PyTensor's C cache primed).  The second is the row; the first's
    cold time is kept as ``cold_empty_cache_s``.
    """
    cache = tempfile.mkdtemp(prefix="jaxvi-bench-cache-")
    try:
        env = {"JAXVI_COMPILATION_CACHE": cache}
        first = run_worker(python, module, case, method, n, timeout, warm_repeats, env)
        rec = run_worker(python, module, case, method, n, timeout, warm_repeats, env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if "error" not in first and "error" not in rec:
        rec["cold_empty_cache_s"] = first["cold_s"]
    return rec


def run_prime(python: str, module: str, pairs: list[tuple[str, str]], timeout: float) -> dict:
    """Untimed short fits of every pair in one process (fills PyTensor's on-disk C cache)."""
    return _spawn([python, os.path.join(HERE, "worker.py"), "--prime", module, *(f"{c}:{m}" for c, m in pairs)],
                  timeout)


def _libs_for(case: str, method: str) -> tuple:
    libs = tuple(cases.libs_for(case, method, BASE_LIBS))
    if case in cases.X64_CASES and method in ("advi", "fullrank_advi"):
        libs += ("jaxvi_x64",)
    return libs + tuple(lib for c, lib in cases.NOT_AVAILABLE_CASE if c == case and lib not in libs)


def derive(rec: dict) -> dict:
    """The table's numbers from a worker record."""
    if "error" in rec:
        return rec
    n = rec["n"]
    steady = max(rec["warm_s"] - rec["small_s"], 0.0)  # the iterations alone (fixed cost removed)
    rec["overhead_s"] = rec["fit1_s"] - steady
    rec["it_per_s"] = n / rec["warm_s"] if rec["warm_s"] > 0 else float("nan")
    rec["steady_it_per_s"] = n / steady if steady > 0 else float("nan")
    return rec


# -- markdown --------------------------------------------------------------------------------------


def _f(x, digits=3):
    if x is None or x != x:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:.2f}"


def _ratio(a, b):
    try:
        if a is None or b is None or b == 0 or a != a or b != b:
            return "n/a"
        r = a / b
    except TypeError:
        return "n/a"
    return f"{r:.3g}×"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def _pm(v):
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:.3g}" for x in v) + "]"
    return f"{v:.3g}"


def _mib(b):
    return b / 2**20


def _big_data_lines(case: str, ok: dict, shown: list) -> list[str]:
    """The minibatch and stream cases' extra measurements: full-data iteration, peak memory, rows/s."""
    out = []
    label = lambda lib: LIBS[lib][2]  # noqa: E731
    ex = {lib: (r.get("extra") or {}) for lib, r in ok.items()}
    if case == "minibatch":
        per = {lib: ex[lib]["full_data_s_per_it"] for lib in shown if ex.get(lib, {}).get("full_data_s_per_it")}
        if per:
            cells = "; ".join(f"{label(lib)} **{_f(s)} s**" for lib, s in per.items())
            ratios = "; ".join(f"{label(lib)} ÷ jaxvi = **{_ratio(per[lib], per.get('jaxvi'))}**"
                               for lib in per if lib != "jaxvi")
            out += [f"Full-data iteration (the same model on all {cases.MINIBATCH_ROWS:,} rows, no minibatch; "
                    f"mean of a few timed steps after compiling): {cells}" + (f" ({ratios})." if ratios else "."), ""]
    if case in ("minibatch", "stream"):
        data = next((r.get("data_bytes") for r in ok.values() if r.get("data_bytes")), cases.data_bytes(case))
        rows = []
        for lib in shown:
            r = ok.get(lib)
            if not r or not r.get("peak_rss_mb"):
                continue
            peak, base = r["peak_rss_mb"], r.get("rss_after_import_mb", float("nan"))
            fit_peak = ex.get(lib, {}).get("peak_rss_mb")
            rows.append(f"| {label(lib)} | {peak:,.0f} | {peak / _mib(data):.2f}× | {base:,.0f} "
                        f"| {(peak - base) / _mib(data):.2f}× |" + (f" {fit_peak:,.0f} ({fit_peak / _mib(data):.2f}×) |"
                                                                    if case == "stream" and fit_peak else ""))
        if rows:
            what = "the .npy files on disk" if case == "stream" else "the float64 array every library is given"
            out += [f"Peak resident memory (VmHWM of the whole process: data, build, compile, fits, draws) vs the "
                    f"data's {_mib(data):,.0f} MiB ({what}):", "",
                    "| library | peak RSS (MiB) | ÷ data | RSS after import (MiB) | (peak − after import) ÷ data |"
                    + (" peak RSS during the streamed fit alone (MiB, ÷ data) |" if case == "stream" else ""),
                    "|---|---:|---:|---:|---:|" + ("---:|" if case == "stream" else ""), *rows, ""]
    if case == "stream" and ex.get("jaxvi", {}).get("rows_per_s"):
        e = ex["jaxvi"]
        out += [f"Streaming throughput (jaxvi, a separate timed fit after the warm ones): **{e['rows_per_s']:,.0f} "
                f"rows/s** ({cases.STREAM_BATCH:,}-row batches read from the memory-mapped files by the prefetch "
                f"thread); {e['rows']:,} rows = one pass in {e['rows'] / e['rows_per_s']:.1f} s.", ""]
    return out


def write_markdown(path: str, meta: dict, results: list[dict]) -> None:
    m = meta["machine"]
    lines = ["# jaxvi benchmarks: jaxvi vs PyMC vs NumPyro SVI vs a hand-fused JAX loop", ""]
    lines.append(f"Generated by `make bench` (`benchmarks/run.py`) on {meta['date']}; whole run "
                 f"{meta['total_s']:.0f} s.")
    lines.append("")
    lines.append(f"- Machine: nproc = {m['nproc']}, CPU: {m['cpu']}; {m['platform']}, Python {m['python']}.")
    lines.append(f"- Load average (1/5/15 min) at start: {meta['load_start']}; at end: {meta['load_end']}"
                 " (other jobs on the machine inflate and scatter the times).")
    v = meta["versions"]
    vj, vp, vn, vl = v.get("jaxvi", {}), v.get("pymc", {}), v.get("numpyro", {}), v.get("limit", {})
    lines.append(f"- jaxvi {vj.get('jaxvi', '?')} on jax {vj.get('jax', '?')} (float32); "
                 f"PyMC {vp.get('pymc', '?')} on PyTensor {vp.get('pytensor', '?')} ({vp.get('floatX', '?')}, "
                 f"C compiler {'yes' if vp.get('cxx') else 'no'}); "
                 f"NumPyro {vn.get('numpyro', '?')} on jax {vn.get('jax', '?')}, optax {vn.get('optax', '?')} "
                 f"(float32); limit on jax {vl.get('jax', '?')}, optax {vl.get('optax', '?')}.")
    lines.append("- Precision: jaxvi computes in **float32 by default** (JAX's default, as NumPyro and the limit): "
                 "half the memory and memory traffic of float64 for data and intermediates (what bounds the big-data "
                 "cases: a float64 400,000 x 100 data set would double the device copy) and twice the SIMD width for "
                 "data-sized arithmetic, while the Monte Carlo noise of a one-draw ELBO gradient is far above float32 "
                 "rounding, so the fits land in the same place (same final losses in the rows below). "
                 "`jv.enable_x64()` switches to float64: the **jaxvi (float64)** rows (`bench_jaxvi.py` with "
                 f"`VARIANT = \"x64\"`) on the small cases ({', '.join(cases.X64_CASES)}) cost 0.8-1.4x the float32 "
                 "time (a step on 2-100 values is bound by fixed per-step work, not by arithmetic width). "
                 "PyMC runs in float64, its `floatX` default.")
    if meta.get("peers_error"):
        lines.append(f"- Peers venv problem: {meta['peers_error']}")
    lines += [
        "",
        "How each number is measured (each library and case in a fresh process, `benchmarks/worker.py`):",
        "",
        "- **cold time to result**: wall time from starting the process (before any import) through "
        "imports, model build, compilation, the fit of n steps and 1000 posterior draws.",
        "- **compile/overhead**: the first fit's time minus the steady-state cost of its n iterations "
        "(steady state = warm fit − the time of a fit of 10 steps, i.e. a fit call's fixed cost removed).",
        f"- **warm fit**: a later fit of the full n on the same model in the same process (best of "
        f"{cases.WARM_REPEATS}); **it/s** = n / warm fit. It includes whatever a library redoes on every "
        "fit call (PyMC rebuilds and compiles its step function, NumPyro's `SVI.run` re-traces and "
        "re-compiles its scan); **fit-call fixed cost** is the time of a 10-step fit, which shows that part.",
        f"- **final avg loss**: mean of the last {cases.LOSS_WINDOW} −ELBO values of the first fit "
        "(one-sample estimates, as in PyMC's progress bar).",
        "- **P(x<0.1)** (mixture: the left mode's mass) and **corr** (mvnormal: the correlation), where shown: "
        "computed from the 1000 posterior draws (`cases.stats`), next to the exact value.",
        "- Same data (numpy seeds, `benchmarks/cases.py`) and seed 0 everywhere. In the ADVI and full-rank cases jaxvi runs its "
        "defaults, the call a user types (`jv.fit(n, method=...)`, `benchmarks/bench_jaxvi.py`): a mode search for the start "
        "(multi-path Pathfinder, a Laplace step), then Adam scaled by the start's sds with a learning rate "
        "decaying over the n steps and the last 20% of the iterates averaged (`jaxvi.vi.starts.default_recipe`). "
        "PyMC runs its own defaults (its initial point, sigma log 2 for mean-field, 1 for full-rank, "
        "`adagrad_window` with lr 1e-3, eps 0.1, n_win 10); NumPyro and the limit start where PyMC does "
        "with the same `adagrad_window` through optax (`benchmarks/optim.py`; "
        f"NumPyro optimiser here: `{vn.get('numpyro_optimizer', '?')}`).",
        "- **gradient evaluations**: of the log density in the first fit: n x draws per step (1 for ADVI, "
        "the particles for SVGD, the Monte Carlo draws for a flow), plus jaxvi's mode search before the steps "
        "(its count in `approx.start_info['n_grad_evals']`, a Hessian counted as d evaluations).",
        "- Compilation caches: PyMC's rows run with PyTensor's on-disk C cache primed by untimed 10-step fits "
        "of every case (as for anyone who has run PyMC before). jaxvi turns on JAX's persistent compilation "
        "cache by default, so each jaxvi row runs twice in fresh processes sharing a new, empty cache folder: "
        "the row is the second run (the compiled programs come from disk, as on any second run of a script) "
        "and **cold, empty cache** is the first run's cold time (everything compiled by XLA, as on a first-ever "
        "run). NumPyro and the limit have no persistent cache by default and compile in every process.",
        "- **limit**: `benchmarks/limit.py`, the same reparameterised ELBO gradient step and optimiser as one "
        "jitted `lax.scan` over n steps with the log-density written by hand in `jax.numpy`.",
        "",
    ]
    by = {}
    for r in results:
        by.setdefault((r["case"], r["method"]), {})[r["lib"]] = r
    for case, method, n in meta["runs"]:
        recs = by.get((case, method), {})
        title = METHOD_LABEL.get(method, method)
        if method == "nfvi":
            title += f", jaxvi flow `{cases.NFVI_FLOW.get(case, '?')}`"
        lines.append(f"## {case} — {title}, n = {n:,}")
        lines.append("")
        lines.append(f"{cases.DESCRIPTIONS[case]}.")
        lines.append("")
        if meta.get("measured", {}).get(f"{case}/{method}"):
            lines.append(_measured_note(meta["measured"][f"{case}/{method}"]))
            lines.append("")
        exact = cases.EXACT_STATS.get(case, {}) if any(r.get("stats") for r in recs.values()) else {}
        stat_head = "".join(f" | {k} of the draws (exact {v:g})" for k, v in exact.items())
        lines.append("| library | cold time to result (s) | cold, empty cache (s) | compile/overhead (s) | warm fit (s) "
                     f"| it/s | gradient evaluations | final avg loss | fit-call fixed cost (s){stat_head} |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(exact))
        shown = [lib for lib in meta["libs"] if lib in _libs_for(case, method) or cases.not_available(case, method, lib)]
        for lib in shown:
            label = LIBS[lib][2]
            r = recs.get(lib)
            dashes = " — |" * len(exact)
            if r is None:
                lines.append(f"| {label} | not run | | | | | | | |" + " |" * len(exact))
            elif "error" in r:
                lines.append(f"| {label} | {'' if r.get('na') else 'error: '}{_cell(r['error'])} | — | — | — | — | — | — | — |{dashes}")
            else:
                st = r.get("stats") or {}
                stat_cells = "".join(f" {_f(st.get(k))} |" for k in exact)
                loss = f"{r['final_loss']:.4g}" if r["final_loss"] == r["final_loss"] else "n/a"
                empty = _f(r["cold_empty_cache_s"]) if r.get("cold_empty_cache_s") else "—"
                grads = f"{r['grad_evals']:,}" if r.get("grad_evals") is not None else "—"
                lines.append(f"| {label} | {_f(r['cold_s'])} | {empty} | {_f(r['overhead_s'])} | {_f(r['warm_s'])} "
                             f"| {r['it_per_s']:,.{1 if r['it_per_s'] < 100 else 0}f} | {grads} | {loss} "
                             f"| {_f(r['small_s'])} |{stat_cells}")
        lines.append("")
        if METHOD_NOTES.get(method):
            lines.append(METHOD_NOTES[method].replace("FLOW", f'\"{cases.NFVI_FLOW.get(case, "?")}\"'))
            lines.append("")
        jx = (recs.get("jaxvi") or {}).get("extra") or {}
        if jx.get("init_jitter_stats"):
            st = ", ".join(f"{k} {_f(v)}" for k, v in jx["init_jitter_stats"].items())
            lines.append("jaxvi's SVGD starts by default from the jittered particles importance-resampled toward the "
                         "posterior (`init=\"importance\"`); the same fit from PyMC's plain jittered start "
                         f"(`inf_kwargs=dict(init=\"jitter\")`, untimed) gives {st}.")
            lines.append("")
        reps = {LIBS[lib][2]: r["warm_repeats"] for lib, r in recs.items()
                if "error" not in r and r.get("warm_repeats", cases.WARM_REPEATS) != cases.WARM_REPEATS}
        if reps:
            lines.append("Warm fit here: " + "; ".join(f"{k} best of {v}" for k, v in reps.items())
                         + " (slow per iteration).")
            lines.append("")
        ok = {k: r for k, r in recs.items() if "error" not in r}
        g = lambda lib, key: ok.get(lib, {}).get(key)  # noqa: E731
        na = {lib for lib in shown if recs.get(lib, {}).get("na")}
        terms = [("pymc", f"jaxvi it/s ÷ PyMC it/s = **{_ratio(g('jaxvi', 'it_per_s'), g('pymc', 'it_per_s'))}**"),
                 ("numpyro", f"jaxvi it/s ÷ NumPyro it/s = **{_ratio(g('jaxvi', 'it_per_s'), g('numpyro', 'it_per_s'))}**"),
                 ("numpyro_bnaf", "jaxvi it/s ÷ NumPyro (AutoBNAFNormal) it/s = "
                                  f"**{_ratio(g('jaxvi', 'it_per_s'), g('numpyro_bnaf', 'it_per_s'))}**"),
                 ("limit", f"jaxvi warm ÷ limit warm = **{_ratio(g('jaxvi', 'warm_s'), g('limit', 'warm_s'))}**"),
                 ("limit", "jaxvi warm ÷ limit warm with the noise drawn as jaxvi draws it (`fold_in(key, t)`) = "
                           f"**{_ratio(g('jaxvi', 'warm_s'), (g('limit', 'extra') or {}).get('foldin_rng_warm_s'))}**"),
                 ("limit", "jaxvi warm ÷ limit warm with the KSD computed every step (jaxvi's SVGD loss) = "
                           f"**{_ratio(g('jaxvi', 'warm_s'), (g('limit', 'extra') or {}).get('ksd_warm_s'))}**"),
                 ("pymc", f"PyMC cold ÷ jaxvi cold = **{_ratio(g('pymc', 'cold_s'), g('jaxvi', 'cold_s'))}**"),
                 ("numpyro", f"NumPyro cold ÷ jaxvi cold = **{_ratio(g('numpyro', 'cold_s'), g('jaxvi', 'cold_s'))}**"),
                 ("pymc", "PyMC cold ÷ jaxvi cold with an empty cache = "
                          f"**{_ratio(g('pymc', 'cold_s'), g('jaxvi', 'cold_empty_cache_s'))}**"),
                 ("numpyro", "NumPyro cold ÷ jaxvi cold with an empty cache = "
                             f"**{_ratio(g('numpyro', 'cold_s'), g('jaxvi', 'cold_empty_cache_s'))}**"),
                 ("numpyro_bnaf", "NumPyro (AutoBNAFNormal) cold ÷ jaxvi cold = "
                                  f"**{_ratio(g('numpyro_bnaf', 'cold_s'), g('jaxvi', 'cold_s'))}**"),
                 ("jaxvi_x64", f"jaxvi float64 warm ÷ float32 warm = **{_ratio(g('jaxvi_x64', 'warm_s'), g('jaxvi', 'warm_s'))}**")]
        shown_terms = [t for lib, t in terms if lib in shown and lib not in na
                       and not ("**n/a**" in t and ("fold_in" in t or "KSD" in t))]  # (limit variants it did not run)
        if shown_terms:
            lines += ["Ratios: " + "; ".join(shown_terms) + ".", ""]
        lim = ok.get("limit", {}).get("extra") or {}
        if lim.get("inloop_rng_warm_s"):
            lines.append(f"The limit with its PRNG key split inside every step instead of all "
                         f"draws up front: warm {_f(lim['inloop_rng_warm_s'])} s "
                         f"(jaxvi warm ÷ that = {_ratio(g('jaxvi', 'warm_s'), lim['inloop_rng_warm_s'])}), "
                         f"final avg loss {lim['inloop_rng_final_loss']:.4g}.")
            if lim.get("foldin_rng_warm_s"):
                lines[-1] += (f" With each step's noise from `fold_in(key, t)` as jaxvi draws it (reproducible however the "
                              f"fit is chunked): warm {_f(lim['foldin_rng_warm_s'])} s (jaxvi warm ÷ that = "
                              f"**{_ratio(g('jaxvi', 'warm_s'), lim['foldin_rng_warm_s'])}**).")
            lines.append("")
        lines += _big_data_lines(case, ok, shown)
        pms = []
        for lib in meta["libs"]:
            r = ok.get(lib)
            if r and r.get("posterior_mean"):
                pms.append(f"{LIBS[lib][2]} " + ", ".join(f"{k}={_pm(v)}" for k, v in r["posterior_mean"].items()))
        if pms:
            lines.append("Posterior means of the 1000 draws: " + "; ".join(pms) + ".")
            lines.append("")
    lines += ["## Where the cold time goes", "",
              "Seconds: interpreter start / imports / model build / first fit / 1000 draws (their sum is the cold time). "
              "jaxvi imports ArviZ (with xarray, pandas, scipy.stats and matplotlib, about 1.5 s of CPU) only when the first "
              "InferenceData is built, so for jaxvi that import is in the draws column; PyMC imports it with `import pymc`.",
              "", "| case | method | " + " | ".join(LIBS[lib][2] for lib in meta["libs"]) + " |",
              "|---|---|" + "---|" * len(meta["libs"])]
    for case, method, _ in meta["runs"]:
        cells = []
        for lib in meta["libs"]:
            r = by.get((case, method), {}).get(lib)
            if not r and lib not in _libs_for(case, method):
                cells.append("—")
            elif not r or "error" in r:
                cells.append(("n/a" if r.get("na") else "error") if r else "not run")
            else:
                cells.append(" / ".join(f"{r[k]:.2f}" for k in ("startup_s", "import_s", "build_s", "fit1_s", "draw_s")))
        lines.append(f"| {case} | {method} | " + " | ".join(cells) + " |")
    lines.append("")
    errs = [r for r in results if "error" in r and r.get("stderr_tail")
            and (r["case"], r["method"]) in {(c, m) for c, m, _ in meta["runs"]}]
    if errs:
        lines += ["## Errors", ""]
        for r in errs:
            lines += [f"{LIBS[r['lib']][2]} on {r['case']} / {r['method']}:", "", "```", r["stderr_tail"], "```", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


# -- main ------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jaxvi-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    p.add_argument("--peers-python", default=os.path.join(HERE, ".venv-peers", "bin", "python"))
    p.add_argument("--only", nargs="*", help="cases to run (default: all)")
    p.add_argument("--pairs", nargs="*", help="case:method pairs to run, e.g. mixture:svgd (default: all)")
    p.add_argument("--merge", action="store_true",
                   help="merge the new records into the existing results.json (replacing the same case/method/library) "
                        "instead of rewriting it, then rewrite results.md from the merged records")
    p.add_argument("--libs", nargs="*", default=list(LIBS), choices=list(LIBS))
    p.add_argument("--scale", type=float, default=1.0, help="multiply every n (for a quick try; default 1)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    p.add_argument("--no-prime", action="store_true", help="skip the untimed PyMC runs that fill PyTensor's cache")
    p.add_argument("--out-dir", default=HERE)
    args = p.parse_args(argv)

    t_all = time.perf_counter()
    runs = [(c, m, max(int(n * args.scale), 10)) for c, m, n in cases.RUNS
            if (not args.only or c in args.only) and (not args.pairs or f"{c}:{m}" in args.pairs)]
    python = {"jaxvi": args.jaxvi_python, "peers": args.peers_python}
    meta = {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine_info(),
            "load_start": loadavg(), "runs": runs, "libs": args.libs, "scale": args.scale,
            "python": python, "versions": {}}
    if any(LIBS[lib][1] == "peers" for lib in args.libs) and not os.path.exists(args.peers_python):
        meta["peers_error"] = f"{args.peers_python} does not exist (the peers venv was not created)"

    def log(msg):
        print(msg, flush=True)

    log(f"benchmarks: {len(runs)} case/method pairs x {len(args.libs)} libraries, fresh process each "
        f"(load average {meta['load_start']})")

    if "pymc" in args.libs and not args.no_prime and os.path.exists(args.peers_python):
        t = time.perf_counter()
        primes = run_prime(args.peers_python, "bench_pymc", [(c, m) for c, m, _ in runs
                                                              if "pymc" in _libs_for(c, m)
                                                              and not cases.not_available(c, m, "pymc")],
                           args.timeout)
        log(f"  primed PyTensor's cache (untimed 10-step PyMC fits) in {time.perf_counter() - t:.0f} s: {primes}")
        meta["pymc_prime"] = primes

    results = []
    for case, method, n in runs:
        for lib in args.libs:
            if cases.not_available(case, method, lib):
                if lib in _libs_for(case, method):  # a row that says why
                    results.append({"lib": lib, "case": case, "method": method, "n": n, "na": True,
                                    "error": cases.not_available(case, method, lib)})
                continue
            if lib not in _libs_for(case, method):
                continue
            module, venv, label = LIBS[lib]
            rec = (run_jaxvi_worker if lib in JAXVI_LIBS else run_worker)(
                python[venv], module, case, method, n, args.timeout, cases.WARM_REPEATS_FOR.get((case, method, lib)))
            rec.update(lib=lib, case=case, method=method, n=n)
            rec = derive(rec)
            if "versions" in rec:
                meta["versions"].setdefault(lib, rec["versions"])
            results.append(rec)
            if "error" in rec:
                log(f"  {case}/{method} {label}: ERROR {rec['error']}")
            else:
                log(f"  {case}/{method} {label}: cold {rec['cold_s']:.2f} s, overhead {rec['overhead_s']:.2f} s, "
                    f"warm {rec['warm_s']:.3f} s ({rec['it_per_s']:,.0f} it/s), loss {rec['final_loss']:.4g}")
            # keep the files current, so an interrupted run still leaves its numbers
            meta["total_s"] = time.perf_counter() - t_all
            meta["load_end"] = loadavg()
            _write(args.out_dir, meta, results, args.merge)

    meta["total_s"] = time.perf_counter() - t_all
    meta["load_end"] = loadavg()
    _write(args.out_dir, meta, results, args.merge)
    log(f"wrote {os.path.join(args.out_dir, 'results.md')} and results.json in {meta['total_s']:.0f} s")
    return 0


def _merge(out_dir: str, meta: dict, results: list[dict]) -> tuple[dict, list[dict]]:
    """The existing results.json with this run's records in place of the same (case, method, lib)."""
    path = os.path.join(out_dir, "results.json")
    if not os.path.exists(path):
        return meta, results
    with open(path) as f:
        old = json.load(f)
    new_keys = {(r["case"], r["method"], r["lib"]) for r in results}
    merged = [r for r in old["results"] if (r["case"], r["method"], r["lib"]) not in new_keys] + results
    m = dict(old["meta"])
    order = {(c, mt): i for i, (c, mt, _) in enumerate(cases.RUNS)}
    runs = {(c, mt): [c, mt, n] for c, mt, n in m.get("runs", [])}
    runs.update({(c, mt): [c, mt, n] for c, mt, n in meta["runs"]})
    m["runs"] = sorted(runs.values(), key=lambda r: order.get((r[0], r[1]), len(order)))
    m["libs"] = [lib for lib in LIBS if lib in set(m.get("libs", [])) | set(meta["libs"])]
    versions = dict(m.get("versions", {}))
    for lib, v in meta["versions"].items():
        versions.setdefault(lib, v)
    m["versions"] = versions
    # when and under what load the merged-in records were measured (shown under their tables)
    m.setdefault("measured", {})
    when = {"date": meta["date"], "load_start": meta["load_start"], "load_end": meta["load_end"]}
    for r in results:
        m["measured"].setdefault(f"{r['case']}/{r['method']}", {})[r["lib"]] = when
    return m, merged


def _measured_note(measured: dict) -> str:
    """'Measured separately on ...' for a pair's records merged in by ``--merge`` (lib -> date and load)."""
    groups = {}
    for lib, w in measured.items():
        groups.setdefault((w["date"], w["load_start"], w["load_end"]), []).append(LIBS[lib][2])
    parts, loaded = [], False
    for (date, ls, le), labels in sorted(groups.items()):
        parts.append(f"{', '.join(labels)} on {date} (load average 1/5/15 min at start {ls}, at end {le})")
        try:
            loaded |= max(float(ls.split()[0]), float(le.split()[0])) > 2
        except (ValueError, IndexError):
            pass
    note = "Measured separately (`run.py --pairs ... --merge`): " + "; ".join(parts)
    return note + (": **a loaded machine** (load above 2 on 2 cores: other jobs shared the CPU), so times are "
                   "inflated and scattered." if loaded else ".")


def _write(out_dir: str, meta: dict, results: list[dict], merge: bool = False) -> None:
    os.makedirs(out_dir, exist_ok=True)
    if merge:
        meta, results = _merge(out_dir, meta, results)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    write_markdown(os.path.join(out_dir, "results.md"), meta, results)


if __name__ == "__main__":
    sys.exit(main())
