"""jaxvi runner (jaxvi venv): the seed models, written the PyMC way with ``jv.``."""

from __future__ import annotations

import numpy as np

import jaxvi as jv

import cases

LABEL = "jaxvi"


def versions() -> dict:
    import jax

    return {"jaxvi": jv.__version__, "jax": jax.__version__}


def build(case: str):
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
    approx = jv.fit(n, method=method, model=model, progressbar=False, random_seed=0)
    return approx, np.asarray(approx.hist, dtype=float)


def draw(model, fitted, case: str, draws: int) -> dict:
    idata = fitted.sample(draws)
    post = idata.posterior
    return {v: np.asarray(post[v]).reshape(-1, *np.shape(post[v])[2:]).mean(0).tolist()
            for v in cases.REPORT_VARS[case]}
