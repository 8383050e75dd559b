"""Reference posteriors of the extra models (``models_extra.py``) from long NUTS runs.

    nice -n 10 python benchmarks/make_references.py [--posteriors extra-NAME ...] [--force] [--seed 0]

float64, NumPyro's NUTS on the jaxvi model's unconstrained log density (``jv.sample``: numpyro's
``hmc(potential_fn_gen=...)`` on ``-cm.logp``), 4 chains vectorised, the settings of
``models_extra.NUTS_SETTINGS``.  The draws are mapped to the constrained scale (free variables and
Deterministics, as ``accuracy.py`` scores the approximations) and summarised in
``benchmarks/reference/<name>.json``: per flattened parameter mean, sd, q5/q50/q95, the covariance of
all of them, n draws, R-hat max and bulk/tail ESS min (arviz), divergences, the NUTS settings, seed and
versions.  A run that misses R-hat <= 1.01 or bulk ESS >= 4000 for any parameter is retried once with
twice the draws, then fails loudly (nothing stored).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from importlib.metadata import version

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

RHAT_MAX = 1.01
ESS_MIN = 4000


class ReferenceNotConverged(RuntimeError):
    pass


def posterior_names(idata) -> list[str]:
    """The flattened (posteriordb-style) names of every variable in ``idata.posterior``."""
    import models_extra as mx

    post = idata.posterior
    return [n for var in post.data_vars for n in mx.flat_reference_names(var, post[var].shape[2:])]


def run_nuts(name: str, seed: int, draws_factor: int = 1):
    import jaxvi as jv
    import models_extra as mx

    st = mx.nuts_settings(name)
    st["draws"] *= draws_factor
    model = mx.build_model(name)
    t0 = time.perf_counter()
    with model:
        idata = jv.sample(draws=st["draws"], tune=st["tune"], chains=st["chains"], target_accept=st["target_accept"],
                          dense_mass=st["dense_mass"], init=st["init"], random_seed=seed, progressbar=False)
    return idata, st, time.perf_counter() - t0


def summarise(name: str, idata, st: dict, seed: int, seconds: float) -> dict:
    import arviz as az
    from accuracy import flatten_draws  # the accuracy suite's flattening: the same names and order
    import models_extra as mx

    rhat = az.rhat(idata.posterior)
    ess_bulk = az.ess(idata.posterior, method="bulk")
    ess_tail = az.ess(idata.posterior, method="tail")

    def flat_stat(ds):
        return np.concatenate([np.asarray(ds[v].values).reshape(-1) for v in idata.posterior.data_vars])

    names = posterior_names(idata)
    r, eb, et = flat_stat(rhat), flat_stat(ess_bulk), flat_stat(ess_tail)
    X = flatten_draws(mx, idata, names)
    q = np.quantile(X, [0.05, 0.5, 0.95], axis=0)
    params = {n: {"mean": float(X[:, j].mean()), "sd": float(X[:, j].std(ddof=1)), "q5": float(q[0, j]),
                  "q50": float(q[1, j]), "q95": float(q[2, j]), "rhat": float(r[j]), "ess_bulk": float(eb[j]),
                  "ess_tail": float(et[j])} for j, n in enumerate(names)}
    div = int(np.asarray(idata.sample_stats["diverging"]).sum())
    return {"name": name, "param_names": names, "parameters": params,
            "covariance": {"order": names, "matrix": np.cov(X, rowvar=False).reshape(len(names), len(names)).tolist()},
            "n_draws": int(X.shape[0]), "rhat_max": float(r.max()), "ess_bulk_min": float(eb.min()),
            "ess_tail_min": float(et.min()), "divergences": div,
            "nuts": {**st, "sampler": "numpyro NUTS via jv.sample"},
            "seed": seed, "seconds": seconds, "float": "float64",
            "versions": {p: version(p) for p in ("jax", "jaxlib", "numpyro", "arviz", "jaxvi")},
            "date": _dt.datetime.now().isoformat(timespec="seconds")}


def check(ref: dict):
    bad = [n for n, p in ref["parameters"].items() if not (p["rhat"] <= RHAT_MAX and p["ess_bulk"] >= ESS_MIN)]
    if bad:
        worst = ", ".join(f"{n} (R-hat {ref['parameters'][n]['rhat']:.4f}, ESS {ref['parameters'][n]['ess_bulk']:.0f})"
                          for n in bad[:5])
        raise ReferenceNotConverged(f"{ref['name']}: {len(bad)} parameters miss R-hat <= {RHAT_MAX} / bulk ESS >= "
                                    f"{ESS_MIN}: {worst}")


def make_reference(name: str, seed: int = 0) -> dict:
    """Run NUTS (retried once with twice the draws), check R-hat/ESS, return the summary (raises if unmet)."""
    for factor in (1, 2):
        idata, st, seconds = run_nuts(name, seed, factor)
        ref = summarise(name, idata, st, seed, seconds)
        try:
            check(ref)
            return ref
        except ReferenceNotConverged as exc:
            if factor == 2:
                raise
            print(f"{exc}; retrying with {2 * st['draws']} draws per chain", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posteriors", nargs="*", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="rerun even if the reference file exists")
    args = ap.parse_args(argv)
    import jaxvi as jv
    import models_extra as mx

    jv.enable_x64()
    names = args.posteriors or mx.POSTERIORS
    failed = []
    for name in names:
        path = mx.reference_path(name)
        if path.exists() and not args.force:
            print(f"{name}: exists, skipped", flush=True)
            continue
        try:
            ref = make_reference(name, args.seed)
        except ReferenceNotConverged as exc:
            print(f"FAILED {exc}", flush=True)
            failed.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ref, indent=1))
        print(f"{name}: {ref['n_draws']} draws, R-hat max {ref['rhat_max']:.4f}, bulk ESS min {ref['ess_bulk_min']:.0f}, "
              f"{ref['divergences']} divergences, {ref['seconds']:.0f} s -> {path}", flush=True)
    if failed:
        sys.exit(f"references not converged (not stored): {', '.join(failed)}")


if __name__ == "__main__":
    main()
