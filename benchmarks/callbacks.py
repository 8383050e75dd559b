"""Callbacks block of ``make bench``: it/s of an ADVI fit without callbacks (fused), with the seed's
``Tracker(mean=approx.mean.eval, std=approx.std.eval)`` and with a no-op callable, jaxvi and PyMC.

    python benchmarks/callbacks.py [--jaxvi-python .venv/bin/python]
                                   [--peers-python benchmarks/.venv-peers/bin/python]

Each library runs in its own fresh process (``callbacks.py --worker LIB``), builds the case with the
runner module (``bench_jaxvi`` / ``bench_pymc``), fits once untimed (compilation), then takes the
best of ``REPEATS`` timed fits of each kind.  Writes ``callbacks.json`` and ``callbacks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CASES = [("mixture", 10_000), ("gaussian", 50_000)]
KINDS = ("fused", "tracker", "noop")
REPEATS = 3
MARK = "CALLBACKS_RESULT "


def _fit(lib: str, model, n: int, kind: str) -> float:
    if lib == "jaxvi":
        import jaxvi as jv

        inference = jv.ADVI(model=model, random_seed=0)
        inference.khat_draws = 0  # the fit alone (PyMC computes no k-hat)
        ns = jv
    else:
        import pymc as pm

        with model:
            inference = pm.ADVI(random_seed=0)
        ns = pm
    callbacks = None
    if kind == "tracker":
        callbacks = [ns.callbacks.Tracker(mean=inference.approx.mean.eval, std=inference.approx.std.eval)]
    elif kind == "noop":
        callbacks = [lambda approx, hist, i: None]
    t = time.perf_counter()
    inference.fit(n, callbacks=callbacks, progressbar=False)
    return time.perf_counter() - t


def worker(lib: str) -> None:
    sys.path.insert(0, HERE)
    runner = __import__("bench_jaxvi" if lib == "jaxvi" else "bench_pymc")
    out = {"lib": lib, "versions": runner.versions(), "rows": []}
    for case, n in CASES:
        model = runner.build(case)
        for kind in KINDS:
            _fit(lib, model, min(n, 500), kind)  # compile / warm up
            best = min(_fit(lib, model, n, kind) for _ in range(REPEATS))
            out["rows"].append({"case": case, "n": n, "kind": kind, "s": best, "it_per_s": n / best})
    print(MARK + json.dumps(out), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--jaxvi-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    ap.add_argument("--peers-python", default=os.path.join(HERE, ".venv-peers", "bin", "python"))
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)
    results = {}
    for lib, python in (("jaxvi", args.jaxvi_python), ("pymc", args.peers_python)):
        proc = subprocess.run([python, os.path.abspath(__file__), "--worker", lib], capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
        results[lib] = json.loads(lines[-1][len(MARK):]) if lines else {"error": proc.stderr[-2000:]}
    with open(os.path.join(HERE, "callbacks.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(HERE, "callbacks.md"), "w") as f:
        f.write(render(results))
    print(render(results))


def render(results: dict) -> str:
    def rate(lib, case, kind):
        rows = results.get(lib, {}).get("rows", [])
        return next((r["it_per_s"] for r in rows if r["case"] == case and r["kind"] == kind), None)

    lines = ["# Callbacks: it/s of ADVI with and without per-step callbacks", "",
             "`python benchmarks/callbacks.py` (part of `make bench`). Tracker = the seed's "
             "`Tracker(mean=approx.mean.eval, std=approx.std.eval)`; no-op = `lambda approx, hist, i: None`; "
             f"best of {REPEATS} warm fits in one fresh process per library; jaxvi without its k-hat. "
             "jaxvi runs the fused loop and replays the callbacks on the host from each chunk's recorded "
             "parameters (Tracker's live values: one vectorised call per chunk).", "",
             "| case | n | jaxvi fused | jaxvi Tracker | jaxvi no-op | PyMC fused | PyMC Tracker | PyMC no-op | "
             "jaxvi fused ÷ Tracker | jaxvi fused ÷ no-op | jaxvi ÷ PyMC, Tracker | jaxvi ÷ PyMC, no-op |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fmt = lambda x: "error" if x is None else f"{x:,.0f}"  # noqa: E731
    ratio = lambda a, b: "—" if a is None or b is None else f"{a / b:.2f}×"  # noqa: E731
    for case, n in CASES:
        j = {k: rate("jaxvi", case, k) for k in KINDS}
        p = {k: rate("pymc", case, k) for k in KINDS}
        lines.append(f"| {case} | {n:,} | " + " | ".join(fmt(j[k]) for k in KINDS) + " | "
                     + " | ".join(fmt(p[k]) for k in KINDS) + " | "
                     + " | ".join([ratio(j["fused"], j["tracker"]), ratio(j["fused"], j["noop"]),
                                   ratio(j["tracker"], p["tracker"]), ratio(j["noop"], p["noop"])]) + " |")
    for lib in ("jaxvi", "pymc"):
        if "error" in results.get(lib, {}):
            lines += ["", f"{lib} failed: ```{results[lib]['error']}```"]
    vers = "; ".join(f"{lib}: " + ", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items())
                     for lib, r in results.items())
    lines += ["", f"Versions: {vers}. Load average at the end: {os.getloadavg()[0]:.1f} (2 cores, shared).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
