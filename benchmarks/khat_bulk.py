"""k-hat against the bulk of the log ratios on default fits (the evidence behind diagnostics.KHAT_BULK_SD).

``python benchmarks/khat_bulk.py METHOD OUT.jsonl [SKIP,...]``: for every accuracy posterior, ``jv.fit(method=METHOD,
random_seed=0)`` in float32, scored as in accuracy.py (4000 draws), with the fit's k-hat and the robust sd
(interquartile range / 1.349) of 4000 fresh log ratios.  ``khat_bulk_<method>.jsonl`` hold the run at f1f504f
(radon_all skipped: its fits take minutes)."""
import sys, os, json, time, warnings
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np, jax
import jaxvi as jv
from jaxvi.results import diagnostics as dg
import accuracy
method, outp = sys.argv[1], sys.argv[2]
names = accuracy.all_posteriors()
skip = set(sys.argv[3].split(",")) if len(sys.argv) > 3 else set()
done = set()
if os.path.exists(outp):
    done = {json.loads(l)["posterior"] for l in open(outp)}
for name in names:
    if name in done or name in skip:
        continue
    t0 = time.time()
    src = accuracy.source(name); ref = src.load_reference(name)
    rec = {"posterior": name, "method": method}
    try:
        model = accuracy.build_float32(name)
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            with model:
                approx = jv.fit(method=method, random_seed=0, progressbar=False)
            idata = approx.sample(4000, random_seed=1)
        rec["warnings"] = sorted({w.category.__name__ for w in ws})
        X = accuracy.flatten_draws(src, idata, ref["param_names"])
        s = accuracy.score(src, name, ref, X); s.pop("per_param")
        rec.update(outcome="meets" if s["frac_good"] >= accuracy.TARGET_FRAC else "miss", frac_good=s["frac_good"],
                   err=s["max_std_mean_err"], rmin=s["min_sd_ratio"], rmax=s["max_sd_ratio"], khat=approx.khat,
                   resampled=bool(getattr(approx, "importance_resample_default", False)))
        z, lr = dg.approx_log_ratios(approx, 4000, jax.random.key(7))
        lr = lr[np.isfinite(lr)]
        q50, q99 = np.percentile(lr, [50, 99])
        rec.update(lr_sd=float(lr.std()), lr_iqr_sd=dg.log_ratio_bulk_sd(lr), lr_p99_minus_med=float(q99 - q50),
                   lr_max_minus_med=float(lr.max() - q50), khat4000=dg.psis(lr)[1], d=int(approx.cm.size))
    except Exception as exc:
        rec.update(outcome="raised", error=f"{type(exc).__name__}: {exc}"[:300])
    rec["seconds"] = round(time.time() - t0, 1)
    with open(outp, "a") as f:
        f.write(json.dumps(rec, default=float) + "\n")
    print(name, rec.get("outcome"), rec.get("khat"), rec.get("lr_iqr_sd"), rec["seconds"], flush=True)
