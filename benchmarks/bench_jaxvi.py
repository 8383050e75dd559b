"""jaxvi runner (jaxvi venv): the seed models, written the PyMC way with ``jv.``."""

from __future__ import annotations

import os

import numpy as np

import jaxvi as jv

import cases

LABEL = "jaxvi"
VARIANT = ""  # "x64": float64 (``jv.enable_x64()`` before building; set by worker.py)


def versions() -> dict:
    import jax

    return {"jaxvi": jv.__version__, "jax": jax.__version__, "dtype": "float64" if VARIANT == "x64" else "float32"}


def build(case: str):
    if VARIANT == "x64":
        jv.enable_x64()
    d = cases.data(case)
    if case == "gaussian":
        with jv.Model() as model:
            mu = jv.Normal("mu", mu=0, sigma=1)
            sd = jv.HalfNormal("sd", sigma=1)
            jv.Normal("n", mu=mu, sigma=sd, observed=d["data"])
    elif case == "mvnormal":
        with jv.Model() as model:
            jv.MvNormal("density", mu=d["mu"], cov=d["cov"], shape=2)
    elif case == "mixture":
        w, mu, sd = jv.floatX(d["w"]), jv.floatX(d["mu"]), jv.floatX(d["sigma"])
        with jv.Model() as model:
            x = jv.NormalMixture("x", w=w, mu=mu, sigma=sd)
            jv.Deterministic("x2", x**2)
            jv.Deterministic("sin_x", jv.math.sin(x))
    elif case == "logistic":
        with jv.Model() as model:
            mu = jv.Normal("mu", 0, sigma=5)
            beta = jv.Normal("beta", 0, sigma=5)
            theta = jv.Deterministic("theta", mu + beta * d["x"])
            jv.Bernoulli("y", p=jv.math.invlogit(theta), observed=d["y"])
    elif case == "minibatch":
        X = jv.Minibatch(d["data"], batch_size=d["batch_size"])
        with jv.Model() as model:
            mu = jv.Normal("mu", mu=0.0, sigma=1e5, shape=cases.MINIBATCH_COLS)
            sd = jv.HalfNormal("sd", shape=cases.MINIBATCH_COLS)
            jv.Normal("likelihood", mu, sd, observed=X, total_size=len(d["data"]))
    elif case == "stream":
        X, y = jv.Minibatch(np.load(d["X"], mmap_mode="r"), np.load(d["y"], mmap_mode="r"),
                            batch_size=d["batch_size"])
        with jv.Model() as model:
            beta = jv.Normal("beta", 0.0, 10.0, shape=cases.STREAM_COLS)
            sigma = jv.HalfNormal("sigma", 1.0)
            jv.Normal("y", jv.math.dot(X, beta), sigma, observed=y, total_size=cases.STREAM_ROWS)
    elif case == "hierarchical":
        g = d["groups"]
        with jv.Model(coords={"group": [f"g{i}" for i in range(g)]}) as model:
            mu_mu = jv.Normal("mu_mu", mu=0, sigma=10)
            sigma_mu = jv.HalfNormal("sigma_mu", sigma=5)
            group_mu = jv.Normal("group_mu", mu=mu_mu, sigma=sigma_mu, dims="group")
            jv.Normal("y_obs", mu=group_mu[d["idx"]], sigma=1, observed=d["y"])
    else:
        raise KeyError(case)
    return model


def fit(model, case: str, method: str, n: int):
    if method == "svgd":
        approx = jv.fit(n, method="svgd", model=model, inf_kwargs=dict(n_particles=cases.SVGD_PARTICLES),
                        obj_optimizer=jv.sgd(learning_rate=cases.SVGD_LR), random_seed=0, progressbar=False)
    elif method == "nfvi":
        import optax

        lr = optax.cosine_decay_schedule(cases.NFVI_LR, n, 0.01)
        approx = jv.NFVI(flow=cases.NFVI_FLOW[case], model=model, random_seed=0).fit(
            n, obj_optimizer=jv.adam(learning_rate=lr), obj_n_mc=cases.NFVI_N_MC, progressbar=False)
    else:
        approx = jv.fit(n, method=method, model=model, progressbar=False, random_seed=0)
    return approx, np.asarray(approx.hist, dtype=float)


def start_grad_evals(fitted) -> int:
    """Gradient evaluations of the default start (the mode search) before the fit's steps; 0 without one."""
    return int((getattr(fitted, "start_info", None) or {}).get("n_grad_evals", 0))


def draw(model, fitted, case: str, draws: int) -> dict:
    if case == "stream":  # sampling evaluates with the full data (10M rows); report q's centre instead
        m = fitted.mean_dict
        return {"beta": np.asarray(m["beta"]).tolist(), "sigma": float(np.exp(m["sigma_log__"]))}
    idata = fitted.sample(draws)
    post = idata.posterior
    flat = {v: np.asarray(post[v]).reshape(-1, *np.shape(post[v])[2:]) for v in cases.REPORT_VARS[case]}
    out = {v: a.mean(0).tolist() for v, a in flat.items()}
    out["_stats"] = cases.stats(case, flat)
    return out


def extra(model, case: str, method: str, n: int) -> dict:
    """minibatch: a full-data step's time; stream: rows/s and peak RSS (the data stay on disk)."""
    import resource
    import time

    if method == "svgd":  # the same fit from PyMC's plain jittered start (jaxvi's default resamples it)
        approx = jv.fit(n, method="svgd", model=model, random_seed=0, progressbar=False,
                        inf_kwargs=dict(n_particles=cases.SVGD_PARTICLES, init="jitter"),
                        obj_optimizer=jv.sgd(learning_rate=cases.SVGD_LR))
        post = approx.sample(cases.DRAWS).posterior
        flat = {v: np.asarray(post[v]).reshape(-1, *np.shape(post[v])[2:]) for v in cases.REPORT_VARS[case]}
        return {"init_jitter_stats": cases.stats(case, flat),
                "init_jitter_mean": {v: a.mean(0).tolist() for v, a in flat.items()}}
    if case == "minibatch":
        d = cases.data(case)
        with jv.Model() as full:
            mu = jv.Normal("mu", mu=0.0, sigma=1e5, shape=cases.MINIBATCH_COLS)
            sd = jv.HalfNormal("sd", shape=cases.MINIBATCH_COLS)
            jv.Normal("likelihood", mu, sd, observed=d["data"])
        advi = jv.ADVI(model=full, random_seed=0)
        advi.khat_draws = 0  # not part of an iteration (k-hat would skip these 40M values anyway)
        per_it = cases.per_iteration(lambda k: advi.fit(k, progressbar=False), 10, 60)
        return {"full_data_s_per_it": per_it, "full_data_it_per_s": 1.0 / per_it}
    if case == "stream":
        d = cases.data(case)
        with open("/proc/self/clear_refs", "w") as f:  # reset the peak RSS (VmHWM) to the current RSS
            f.write("5")
        t = time.perf_counter()
        jv.fit(n, model=model, progressbar=False, random_seed=1)
        secs = time.perf_counter() - t
        data_bytes = sum(os.path.getsize(d[k]) for k in ("X", "y"))
        with open("/proc/self/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        return {"rows_per_s": n * d["batch_size"] / secs, "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024,
                "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "data_mb": data_bytes / 2**20, "rows": cases.STREAM_ROWS}
    return {}
