"""PyMC runner (peers venv): the same models with ``pm.`` (float64, PyMC's default)."""

from __future__ import annotations

import numpy as np

import pymc as pm

import cases

LABEL = "PyMC"


def versions() -> dict:
    import pytensor

    return {"pymc": pm.__version__, "pytensor": pytensor.__version__,
            "floatX": pytensor.config.floatX, "cxx": bool(pytensor.config.cxx)}


def build(case: str):
    d = cases.data(case)
    if case == "gaussian":
        with pm.Model() as model:
            mu = pm.Normal("mu", mu=0, sigma=1)
            sd = pm.HalfNormal("sd", sigma=1)
            pm.Normal("n", mu=mu, sigma=sd, observed=d["data"])
    elif case == "mvnormal":
        with pm.Model() as model:
            pm.MvNormal("density", mu=d["mu"], cov=d["cov"], shape=2)
    elif case == "mixture":
        with pm.Model() as model:
            x = pm.NormalMixture("x", w=d["w"], mu=d["mu"], sigma=d["sigma"])
            pm.Deterministic("x2", x**2)
            pm.Deterministic("sin_x", pm.math.sin(x))
    elif case == "logistic":
        with pm.Model() as model:
            mu = pm.Normal("mu", 0, sigma=5)
            beta = pm.Normal("beta", 0, sigma=5)
            theta = pm.Deterministic("theta", mu + beta * d["x"])
            pm.Bernoulli("y", p=pm.math.invlogit(theta), observed=d["y"])
    elif case == "minibatch":
        X = pm.Minibatch(d["data"], batch_size=d["batch_size"])
        with pm.Model() as model:
            mu = pm.Normal("mu", mu=0.0, sigma=1e5, shape=cases.MINIBATCH_COLS)
            sd = pm.HalfNormal("sd", shape=cases.MINIBATCH_COLS)
            pm.Normal("likelihood", mu, sd, observed=X, total_size=len(d["data"]))
    elif case == "hierarchical":
        g = d["groups"]
        with pm.Model(coords={"group": [f"g{i}" for i in range(g)]}) as model:
            mu_mu = pm.Normal("mu_mu", mu=0, sigma=10)
            sigma_mu = pm.HalfNormal("sigma_mu", sigma=5)
            group_mu = pm.Normal("group_mu", mu=mu_mu, sigma=sigma_mu, dims="group")
            pm.Normal("y_obs", mu=group_mu[d["idx"]], sigma=1, observed=d["y"])
    else:
        raise KeyError(case)
    return model


def fit(model, case: str, method: str, n: int):
    with model:
        if method == "svgd":
            approx = pm.fit(n, method="svgd", inf_kwargs=dict(n_particles=cases.SVGD_PARTICLES),
                            obj_optimizer=pm.sgd(learning_rate=cases.SVGD_LR), progressbar=False, random_seed=0)
        else:
            approx = pm.fit(n, method=method, progressbar=False, random_seed=0)
    return approx, np.asarray(approx.hist, dtype=float)


def draw(model, fitted, case: str, draws: int) -> dict:
    idata = fitted.sample(draws, random_seed=0)
    post = idata.posterior
    flat = {v: np.asarray(post[v]).reshape(-1, *np.shape(post[v])[2:]) for v in cases.REPORT_VARS[case]}
    out = {v: a.mean(0).tolist() for v, a in flat.items()}
    out["_stats"] = cases.stats(case, flat)
    return out


def extra(model, case: str, method: str, n: int) -> dict:
    """minibatch: seconds per iteration of the same model on the full data (no minibatch)."""
    if case != "minibatch":
        return {}
    d = cases.data(case)
    with pm.Model():
        mu = pm.Normal("mu", mu=0.0, sigma=1e5, shape=cases.MINIBATCH_COLS)
        sd = pm.HalfNormal("sd", shape=cases.MINIBATCH_COLS)
        pm.Normal("likelihood", mu, sd, observed=d["data"])
        advi = pm.ADVI(random_seed=0)
        per_it = cases.per_iteration(lambda k: advi.fit(k, progressbar=False), 2, 12)
    return {"full_data_s_per_it": per_it, "full_data_it_per_s": 1.0 / per_it}
