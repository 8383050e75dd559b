"""How jaxvi's fit time scales with the data and with the model (``make scaling``).

Two sweeps, mean-field ADVI ("advi") and full-rank ADVI ("fullrank_advi") in each, float32:

* **observations**: a linear regression ``y ~ Normal(X @ beta, sigma)`` with ``X`` of N rows and
  5 columns (6 free parameters), full data every step, N = 1e3 .. 1e7.  A step evaluates the
  likelihood and its gradient over all N rows, so once N dominates the fixed cost of a step the
  time per iteration should grow as N (log-log slope 1) for both families.
* **parameters**: d independent normals with one observation each, ``theta ~ Normal(0, 10, shape=d)``,
  ``y ~ Normal(theta, 1, observed=y)``, d = 10 .. 10,000.  Mean-field: O(d) per step (slope 1).
  Full-rank: q's scale is a dense lower-triangular L (d(d+1)/2 free entries); a step builds L,
  draws ``mu + L @ eps`` and takes the gradient, all O(d^2) (slope 2).

Every (sweep, method, size) point runs in a fresh process (``--worker``), so one point's memory and
compilation do not affect another.  The worker builds the model and an Inference (``jv.ADVI`` /
``jv.FullRankADVI``, k-hat diagnostic off, no progress bar, JAX's persistent compilation cache off so
"compile" means compile) and then:

1. fits ``N0`` steps: the first, compiling fit;
2. fits ``N0`` steps again: warm; ``compile s = first - warm`` (same number of steps);
3. picks ``n`` so a warm fit takes about ``--target`` seconds (calibrating once more if needed) and
   times ``--repeats`` warm fits of ``n`` steps: seconds/iteration = best warm fit / n;
4. reports the peak resident memory of the process (``ru_maxrss``, includes the interpreter, JAX and
   the data) and the data's own bytes.

Outputs ``benchmarks/scaling.json`` (raw numbers, machine, versions, load averages) and
``benchmarks/scaling.md`` (a table per sweep with the local log-log slopes and a reading).

    python benchmarks/scaling.py [--quick] [--sweeps obs params] [--methods advi fullrank_advi]
                                 [--obs-sizes 1000 ...] [--param-sizes 10 ...] [--target 1.5]
                                 [--repeats 2] [--timeout 600] [--out-dir DIR]

``--quick`` is a smoke run (tiny sizes, short timings) written to a temporary folder unless
``--out-dir`` is given: it never overwrites the committed table.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = "SCALING_RESULT "

OBS_SIZES = [1_000, 10_000, 100_000, 1_000_000, 10_000_000]
PARAM_SIZES = [10, 100, 1_000, 3_000, 10_000]
QUICK_OBS_SIZES = [1_000, 4_000]
QUICK_PARAM_SIZES = [10, 40]
METHODS = ["advi", "fullrank_advi"]
OBS_COLS = 5  # columns of X in the observations sweep
N0 = 3  # steps of the compiling fit and of the warm fit it is compared with
MAX_STEPS = 2_000_000
# expected log-log slope of seconds/iteration against size, per (sweep, method)
EXPECTED = {("obs", "advi"): 1, ("obs", "fullrank_advi"): 1, ("params", "advi"): 1, ("params", "fullrank_advi"): 2}
SWEEP_TITLE = {"obs": "Observations: y ~ Normal(X @ beta, sigma), X with N rows x 5 columns (6 free parameters), full data",
               "params": "Parameters: theta ~ Normal(0, 10, shape=d), y ~ Normal(theta, 1) observed (d free parameters)"}
SIZE_LABEL = {"obs": "N (rows)", "params": "d (parameters)"}
METHOD_LABEL = {"advi": "mean-field ADVI", "fullrank_advi": "full-rank ADVI"}


# -- worker: one point in this (fresh) process -------------------------------------------------------
def _vm(field: str) -> float:
    """A /proc/self/status memory field in MB (VmRSS, VmHWM); nan where there is no /proc."""
    from worker import rss_mb  # the benchmark harness's reader

    return rss_mb(field)


def build(sweep: str, size: int):
    import numpy as np

    import jaxvi as jv

    rng = np.random.default_rng(0)
    if sweep == "obs":
        beta_true = np.linspace(-1.0, 1.0, OBS_COLS).astype(np.float32)
        X = rng.standard_normal((size, OBS_COLS), dtype=np.float32)
        y = X @ beta_true + np.float32(0.5) * rng.standard_normal(size, dtype=np.float32)
        data_bytes = X.nbytes + y.nbytes
        with jv.Model() as model:
            beta = jv.Normal("beta", 0.0, 10.0, shape=OBS_COLS)
            sigma = jv.HalfNormal("sigma", 1.0)
            jv.Normal("y", jv.math.dot(X, beta), sigma, observed=y)
        n_free = OBS_COLS + 1
    elif sweep == "params":
        y = (rng.standard_normal(size) * 3.0).astype(np.float32)
        data_bytes = y.nbytes
        with jv.Model() as model:
            theta = jv.Normal("theta", 0.0, 10.0, shape=size)
            jv.Normal("y", theta, 1.0, observed=y)
        n_free = size
    else:
        raise KeyError(sweep)
    return model, data_bytes, n_free


def measure(sweep: str, method: str, size: int, target: float, repeats: int) -> dict:
    import resource

    t0 = time.perf_counter()
    import jax

    import jaxvi as jv

    jax.config.update("jax_enable_compilation_cache", False)  # compile time, not a cache hit
    jax.jit(lambda x: x + 1)(jax.numpy.zeros(2)).block_until_ready()  # start the backend: not the model's compile
    out = {"sweep": sweep, "method": method, "size": size, "import_s": time.perf_counter() - t0,
           "versions": {"jaxvi": jv.__version__, "jax": jax.__version__},
           "backend": jax.default_backend(), "rss_after_import_mb": _vm("VmRSS")}

    t = time.perf_counter()
    model, data_bytes, n_free = build(sweep, size)
    out.update(build_s=time.perf_counter() - t, data_mb=data_bytes / 2**20, n_free=n_free,
               rss_after_build_mb=_vm("VmRSS"))

    cls = {"advi": jv.ADVI, "fullrank_advi": jv.FullRankADVI}[method]
    inference = cls(model=model, random_seed=0)
    inference.khat_draws = 0  # the k-hat diagnostic's 1000 draws would evaluate the model on all the data 1000 times

    def timed_fit(n: int) -> float:
        t = time.perf_counter()
        approx = inference.fit(n, progressbar=False)
        jax.block_until_ready(approx.vparams)
        return time.perf_counter() - t

    first = timed_fit(N0)
    warm0 = timed_fit(N0)
    out.update(first_fit_s=first, first_fit_steps=N0, warm_probe_s=warm0, compile_s=max(first - warm0, 0.0))

    # calibrate n so a warm fit takes about `target` seconds; the probe's fixed cost (a fresh optimizer
    # state, host<->device copies) makes its per-step estimate an upper bound, so look once more
    n = int(min(MAX_STEPS, max(N0, target / max(warm0 / N0, 1e-9))))
    calib = [(N0, warm0)]
    for _ in range(3):
        s = timed_fit(n)
        calib.append((n, s))
        if s >= target / 2 or n >= MAX_STEPS:
            break
        n = int(min(MAX_STEPS, max(n + 1, n * target / max(s, 1e-9))))
    out["calibration"] = calib

    runs = [timed_fit(n) for _ in range(repeats)]
    best = min(runs)
    out.update(steps=n, warm_runs_s=runs, warm_s=best, s_per_iter=best / n, iter_per_s=n / best,
               small_fit_s=warm0, final_loss=float(inference.approx.hist[-min(100, n):].mean()))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB
    out["vm_hwm_mb"] = _vm("VmHWM")
    return out


def worker(argv: list[str]) -> None:
    """``--worker TARGET REPEATS SWEEP:METHOD:SIZE ...``: one result line per point, in this process."""
    target, repeats = float(argv[0]), int(argv[1])
    for point in argv[2:]:
        sweep, method, size = point.split(":")
        size = int(float(size))
        load = loadavg()
        try:
            out = measure(sweep, method, size, target, repeats)
        except Exception as exc:  # noqa: BLE001 - the parent records the error in the table
            import traceback

            out = {"sweep": sweep, "method": method, "size": size, "error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc()[-2000:]}
        out["load_before"] = load
        print(MARK + json.dumps(out), flush=True)


# -- parent: spawn the points, write the tables -------------------------------------------------------
def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict:
    try:
        sys.path.insert(0, HERE)
        from run import machine_info  # the benchmark harness's description of the machine

        info = machine_info()
    except Exception:  # noqa: BLE001
        import platform

        info = {"nproc": str(os.cpu_count()), "platform": platform.platform(), "python": platform.python_version()}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_total_gb"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("jaxvi", "jax", "jaxlib", "optax", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "n/a"
    info["versions"] = versions
    return info


def spawn(points: list[tuple[str, str, int]], target: float, repeats: int, timeout: float) -> list[dict]:
    """Measure ``points`` (sweep, method, size) in one fresh process; one record per point."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", repr(target), str(repeats),
           *(f"{sw}:{me}:{si}" for sw, me, si in points)]
    env = dict(os.environ)
    env.pop("JAX_ENABLE_X64", None)  # float32, the default
    env.setdefault("JAX_ENABLE_COMPILATION_CACHE", "false")
    load_before = loadavg()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * len(points), env=env, cwd=HERE)
        stdout, err = proc.stdout, f"exit {proc.returncode}: " + " | ".join(proc.stderr.strip().splitlines()[-3:])[-400:]
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = f"timed out after {timeout * len(points):.0f} s"
    wall = time.perf_counter() - t0
    got = {}
    for line in stdout.splitlines():
        if line.startswith(MARK):
            rec = json.loads(line[len(MARK):])
            got[(rec["sweep"], rec["method"], rec["size"])] = rec
    out = []
    for sw, me, si in points:
        rec = got.get((sw, me, si)) or {"sweep": sw, "method": me, "size": si, "error": err, "load_before": load_before}
        rec.update(process_wall_s=wall, load_after=loadavg())
        out.append(rec)
    return out


def slope(a: dict, b: dict) -> float | None:
    """Log-log slope of seconds/iteration between two points."""
    if not (a.get("s_per_iter") and b.get("s_per_iter")):
        return None
    return math.log(b["s_per_iter"] / a["s_per_iter"]) / math.log(b["size"] / a["size"])


def fitted_slope(points: list[dict]) -> float | None:
    """Least-squares log-log slope through ``points``."""
    pts = [(math.log(p["size"]), math.log(p["s_per_iter"])) for p in points if p.get("s_per_iter")]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else None


def reading(sweep: str, method: str, points: list[dict]) -> str:
    """One line: does the cost grow as expected, and where does it depart."""
    expected = EXPECTED[(sweep, method)]
    shape = {1: "linear", 2: "quadratic"}[expected]
    ok = [p for p in points if p.get("s_per_iter")]
    failed = [p for p in points if not p.get("s_per_iter")]
    if len(ok) < 2:
        return "too few points measured to read a slope" + (f" ({failed[0]['error']})" if failed else "")
    tail = fitted_slope(ok[-3:]) if len(ok) >= 3 else slope(ok[-2], ok[-1])
    locals_ = [(ok[i], ok[i + 1], slope(ok[i], ok[i + 1])) for i in range(len(ok) - 1)]
    flat = [(a, b) for a, b, s in locals_ if s is not None and s < expected - 0.35]
    steep = [(a, b) for a, b, s in locals_ if s is not None and s > expected + 0.35]
    n_last = min(3, len(ok))
    if abs(tail - expected) <= 0.25:
        text = f"{shape} as expected: slope {tail:.2f} over the last {n_last} sizes"
    elif tail < expected:
        text = f"sub-{shape} at the top (slope {tail:.2f} over the last {n_last} sizes): fixed per-step cost still dominates"
    else:
        text = f"super-{shape} at the top (slope {tail:.2f} over the last {n_last} sizes)"
    if flat:
        upto = max(b["size"] for a, b in flat)
        text += f"; flatter below {upto:,} (fixed per-step cost -- dispatch, optimizer, loop -- dominates)"
    top = locals_[-1]
    if not steep and top[2] is not None and top[2] > expected + 0.15:
        text += f"; the last step ({top[0]['size']:,} -> {top[1]['size']:,}) is steeper, {top[2]:.2f} (see the notes)"
    if steep:
        spans = ", ".join(f"{a['size']:,}->{b['size']:,}" for a, b in steep)
        text += f"; steeper than {shape} over {spans} (see the notes)"
    if failed:
        text += "; not measured: " + ", ".join(f"{p['size']:,} ({p.get('error', '?')[:80]})" for p in failed)
    return text


def fmt(x, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def sci(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if 1e-3 <= x < 1e4 else f"{x:.2e}"


def rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def table(sweep: str, method: str, points: list[dict]) -> list[str]:
    lines = [f"#### {METHOD_LABEL[method]}", "",
             f"| {SIZE_LABEL[sweep]} | s / iteration | iterations / s | compile s | peak RSS MB | data MB "
             f"| steps timed | local slope | load avg (1, 5, 15 min) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    prev = None
    for p in points:
        load = " ".join(f"{x:.2f}" for x in p.get("load_before", []))
        if p.get("s_per_iter"):
            s = slope(prev, p) if prev else None
            lines.append(f"| {p['size']:,} | {sci(p['s_per_iter'])} | {rate(p['iter_per_s'])} | {fmt(p['compile_s'], '.2f')} "
                         f"| {fmt(p['peak_rss_mb'], ',.0f')} | {fmt(p['data_mb'], ',.1f')} | {p['steps']:,} "
                         f"| {fmt(s, '.2f')} | {load} |")
            prev = p
        else:
            lines.append(f"| {p['size']:,} | not measured: {p.get('error', '?')[:120]} | | | | | | | {load} |")
    lines += ["", f"Reading: {reading(sweep, method, points)}.", ""]
    return lines


NOTES = """\
## How to read this

* *s / iteration* is the best of the warm fits of *steps timed* steps divided by that number of steps
  (the whole `fit()` call: the compiled loop plus its per-call cost, which is negligible at these lengths);
  *compile s* is the first `fit()` of 3 steps minus a second, warm `fit()` of 3 steps.
* *peak RSS* is the whole process (Python, JAX/XLA, the data and the compiled program): about 400-500 MB
  is the floor of a process that has imported JAX and jaxvi and compiled a fit.  *data MB* is the data's
  own size (float32).
* *local slope* is d log(s/iteration) / d log(size) from the previous row; the reading's slope is a
  least-squares fit over the last three sizes.  1 = linear, 2 = quadratic.  At the small sizes a step is
  a few microseconds of fixed work (the loop, the optimizer update, the noise draw), so the slope there is
  near 0 until the size-dependent work dominates.
* Measured on a shared 2-core machine (load averages before each point are in the last column);
  numbers from a busy machine are slower, not differently shaped, but one point can be noisy.
"""


def write_outputs(out_dir: str, records: list[dict], meta: dict) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "scaling.json")
    md_path = os.path.join(out_dir, "scaling.md")
    with open(json_path, "w") as f:
        json.dump({**meta, "points": records}, f, indent=1)
    versions = next((r["versions"] for r in records if r.get("versions")), meta["machine"]["versions"])
    m = meta["machine"]
    lines = ["# jaxvi scaling: fit time vs observations and vs parameters", "",
             f"Measured {meta['date']} by `benchmarks/scaling.py`{' --quick' if meta['quick'] else ''} "
             f"(`make scaling`); raw numbers in `scaling.json`.",
             f"jaxvi {versions.get('jaxvi')}, jax {versions.get('jax')}, float32, backend "
             f"{next((r['backend'] for r in records if r.get('backend')), '?')}; {m.get('cpu', '?')}, "
             f"{m.get('nproc', '?')} cores, {m.get('mem_total_gb', '?')} GB; Python {m.get('python', '?')}.",
             f"{'All points in one process (--inline)' if meta.get('inline') else 'Every point in a fresh process'}; "
             f"Adam (jaxvi's default optimizer), 1 Monte Carlo draw per step; "
             f"load averages at start {' '.join(map(str, meta['load_start']))}, at end "
             f"{' '.join(map(str, meta.get('load_end', [])))}; total wall {meta.get('wall_s', 0):.0f} s.", ""]
    for sweep in meta["sweeps"]:
        lines += [f"## {SWEEP_TITLE[sweep]}", ""]
        for method in meta["methods"]:
            pts = sorted((r for r in records if r["sweep"] == sweep and r["method"] == method), key=lambda r: r["size"])
            if pts:
                lines += table(sweep, method, pts)
    lines.append(NOTES)
    extra = meta.get("notes")
    if extra:
        lines += ["## Notes on this run", "", extra.strip(), ""]
    with open(md_path, "w") as f:
        f.write("\n".join(lines))
    return json_path, md_path


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, short timings, temporary output")
    ap.add_argument("--sweeps", nargs="+", choices=["obs", "params"], default=["obs", "params"])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    ap.add_argument("--obs-sizes", nargs="+", type=lambda s: int(float(s)), default=None)
    ap.add_argument("--param-sizes", nargs="+", type=lambda s: int(float(s)), default=None)
    ap.add_argument("--target", type=float, default=None, help="seconds per timed warm fit (default 1.5; quick 0.1)")
    ap.add_argument("--repeats", type=int, default=None, help="timed warm fits per point, best taken (default 2; quick 1)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per point before it is abandoned")
    ap.add_argument("--no-skip", action="store_true",
                    help="measure a point even when the previous one projects it over --timeout")
    ap.add_argument("--out-dir", default=None, help="where scaling.md/.json go (default benchmarks/; quick: a temp folder)")
    ap.add_argument("--inline", action=argparse.BooleanOptionalAction, default=None,
                    help="all points in one process (default: only with --quick; otherwise a fresh process per point)")
    ap.add_argument("--notes-file", default=None, help="a text appended to the report as 'Notes on this run'")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite scaling.md from the scaling.json in --out-dir (with --notes-file), measuring nothing")
    args = ap.parse_args()
    if args.report_only:
        out_dir = args.out_dir or HERE
        with open(os.path.join(out_dir, "scaling.json")) as f:
            meta = json.load(f)
        records = meta.pop("points")
        if args.notes_file:
            with open(args.notes_file) as f:
                meta["notes"] = f.read()
        print("wrote %s and %s" % write_outputs(out_dir, records, meta))
        return

    inline = args.quick if args.inline is None else args.inline
    target = args.target or (0.1 if args.quick else 1.5)
    repeats = args.repeats or (1 if args.quick else 2)
    sizes = {"obs": args.obs_sizes or (QUICK_OBS_SIZES if args.quick else OBS_SIZES),
             "params": args.param_sizes or (QUICK_PARAM_SIZES if args.quick else PARAM_SIZES)}
    out_dir = args.out_dir or (os.path.join(tempfile.gettempdir(), "jaxvi-scaling-quick") if args.quick else HERE)
    meta = {"date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "quick": args.quick, "sweeps": args.sweeps,
            "methods": args.methods, "sizes": {k: sizes[k] for k in args.sweeps}, "target_s": target,
            "repeats": repeats, "inline": inline, "first_fit_steps": N0, "obs_cols": OBS_COLS, "machine": machine(),
            "load_start": loadavg()}
    if args.notes_file:
        with open(args.notes_file) as f:
            meta["notes"] = f.read()
    else:  # keep the previous run's notes, marked as such: the numbers they discuss have been re-measured
        try:
            with open(os.path.join(out_dir, "scaling.json")) as f:
                old = json.load(f)
            if old.get("notes") and not old.get("quick") and not args.quick:
                note = old["notes"]
                if not note.startswith("*From the run of"):
                    note = (f"*From the run of {old.get('date', '?')}; the tables above are a newer run, so "
                            f"the numbers quoted here may differ.*\n\n{note}")
                meta["notes"] = note
        except (OSError, ValueError):
            pass
    t_start = time.perf_counter()
    records = []

    def report(rec):
        records.append(rec)
        msg = (f"{rec['s_per_iter']:.3e} s/it, {rec['iter_per_s']:,.0f} it/s, compile {rec['compile_s']:.2f} s, "
               f"peak RSS {rec['peak_rss_mb']:,.0f} MB" if rec.get("s_per_iter") else rec.get("error"))
        print(f"[{time.perf_counter() - t_start:6.0f} s] {rec['sweep']:6s} {rec['method']:13s} {rec['size']:>10,}: {msg} "
              f"(load {' '.join(map(str, rec.get('load_before', [])))})", flush=True)
        meta.update(wall_s=time.perf_counter() - t_start, load_end=loadavg())
        write_outputs(out_dir, records, meta)  # after every point: an interrupted run keeps what it has

    plan = [(sweep, method, size) for sweep in args.sweeps for method in args.methods for size in sizes[sweep]]
    if inline:  # one process for every point (the smoke run: a fresh process costs an import and a JAX start)
        for rec in spawn(plan, target, repeats, args.timeout):
            report(rec)
    else:
        given_up, last = {}, {}
        for sweep, method, size in plan:
            if (sweep, method) in given_up:  # a smaller size failed or timed out: a larger one would too
                report({"sweep": sweep, "method": method, "size": size,
                        "error": f"skipped after {given_up[sweep, method]}"})
                continue
            prev = last.get((sweep, method))
            if prev is not None and not args.no_skip:
                # the previous point's size-dependent work grown by the expected exponent: its at least
                # 5 * N0 steps, and its compile time beyond a 10 s floor (full-rank's grows with d^2)
                grow = (size / prev["size"]) ** EXPECTED[sweep, method]
                dependent = 5 * N0 * prev["s_per_iter"] + max(prev["compile_s"] - 10.0, 0.0)
                projected = prev["process_wall_s"] + dependent * (grow - 1)
                if projected > args.timeout:
                    given_up[sweep, method] = f"projection from {prev['size']:,}"
                    report({"sweep": sweep, "method": method, "size": size, "projected_s": projected,
                            "error": f"skipped: projected ~{projected:.0f} s from the {prev['size']:,} point, over "
                                     f"--timeout {args.timeout:.0f} s (try it with --no-skip --timeout N)"})
                    continue
            rec = spawn([(sweep, method, size)], target, repeats, args.timeout)[0]
            if rec.get("error"):
                given_up[sweep, method] = f"{size:,} failed"
            else:
                last[sweep, method] = rec
            report(rec)
    json_path, md_path = write_outputs(out_dir, records, meta)
    print(f"wrote {md_path} and {json_path}")


if __name__ == "__main__":
    main()
