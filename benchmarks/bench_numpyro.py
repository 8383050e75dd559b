"""NumPyro runner (peers venv): the same models as numpyro model functions, fitted with SVI.

Guides: ``AutoNormal`` (mean-field, for "advi") and ``AutoMultivariateNormal`` (full-rank, for
"fullrank_advi"), started at PyMC's initial point with PyMC's starting scale; the optimiser is
PyMC's default ``adagrad_window`` written in optax (``optim.py``), unless ``BENCH_NUMPYRO_OPTIM``
names another (``adam``/``adagrad``).  Float32, NumPyro's default.

"svgd": ``numpyro.contrib.einstein.SVGD`` (SteinVI with an AutoDelta guide) and ``RBFKernel``, the
particles started as PyMC's (initial point + N(0, 1)), ``numpyro.optim.SGD``.  "nfvi": SVI with
``AutoIAFNormal`` (``VARIANT = "bnaf"``: ``AutoBNAFNormal``), ``Trace_ELBO(num_particles=256)`` and
optax adam with a cosine decay (``cases.NFVI_*``).
"""

from __future__ import annotations

import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Predictive, Trace_ELBO
from numpyro.infer.autoguide import AutoMultivariateNormal, AutoNormal
from numpyro.infer.initialization import init_to_value

import cases
from optim import make_optimizer

LABEL = "NumPyro"
OPTIMIZER = os.environ.get("BENCH_NUMPYRO_OPTIM", "adagrad_window")
VARIANT = ""  # "bnaf": "nfvi" with AutoBNAFNormal instead of AutoIAFNormal (set by worker.py)


def versions() -> dict:
    import optax

    return {"numpyro": numpyro.__version__, "jax": jax.__version__, "optax": optax.__version__,
            "numpyro_optimizer": OPTIMIZER}


def _models():
    def gaussian(data):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        sd = numpyro.sample("sd", dist.HalfNormal(1.0))
        with numpyro.plate("obs", data.shape[0]):
            numpyro.sample("n", dist.Normal(mu, sd), obs=data)

    def mvnormal(mu, cov):
        numpyro.sample("density", dist.MultivariateNormal(mu, covariance_matrix=cov))

    def mixture(w, mu, sigma):
        x = numpyro.sample("x", dist.MixtureSameFamily(dist.Categorical(probs=w), dist.Normal(mu, sigma)))
        numpyro.deterministic("x2", x**2)
        numpyro.deterministic("sin_x", jnp.sin(x))

    def logistic(x, y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        beta = numpyro.sample("beta", dist.Normal(0.0, 5.0))
        theta = numpyro.deterministic("theta", mu + beta * x)
        with numpyro.plate("obs", x.shape[0]):
            numpyro.sample("y", dist.Bernoulli(logits=theta), obs=y)

    def hierarchical(idx, y, groups):
        mu_mu = numpyro.sample("mu_mu", dist.Normal(0.0, 10.0))
        sigma_mu = numpyro.sample("sigma_mu", dist.HalfNormal(5.0))
        with numpyro.plate("group", groups):
            group_mu = numpyro.sample("group_mu", dist.Normal(mu_mu, sigma_mu))
        with numpyro.plate("obs", y.shape[0]):
            numpyro.sample("y_obs", dist.Normal(group_mu[idx], 1.0), obs=y)

    def minibatch(data, batch_size):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1e5).expand([data.shape[1]]).to_event(1))
        sd = numpyro.sample("sd", dist.HalfNormal(1.0).expand([data.shape[1]]).to_event(1))
        with numpyro.plate("obs", data.shape[0], subsample_size=batch_size) as idx:
            numpyro.sample("likelihood", dist.Normal(mu, sd).to_event(1), obs=data[idx])

    return locals()


MODELS = _models()
DETERMINISTICS = {"mixture": ["x2", "sin_x"], "logistic": ["theta"]}


class Built:
    def __init__(self, case):
        d = cases.data(case)
        f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
        if case == "gaussian":
            self.kwargs = {"data": f32(d["data"])}
        elif case == "mvnormal":
            self.kwargs = {"mu": f32(d["mu"]), "cov": f32(d["cov"])}
        elif case == "mixture":
            self.kwargs = {"w": f32(d["w"]), "mu": f32(d["mu"]), "sigma": f32(d["sigma"])}
        elif case == "logistic":
            self.kwargs = {"x": f32(d["x"]), "y": f32(d["y"])}
        elif case == "minibatch":
            self.kwargs = {"data": f32(d["data"]), "batch_size": d["batch_size"]}
        elif case == "hierarchical":
            self.kwargs = {"idx": jnp.asarray(d["idx"], jnp.int32), "y": f32(d["y"]), "groups": d["groups"]}
        self.model = MODELS[case]
        self.case = case
        self.svi = {}  # method -> (guide, svi): a second fit of the same model reuses them


def build(case: str):
    return Built(case)


def _init_jitter(site=None, case=None):
    """PyMC's SVGD start: every particle at the initial point plus N(0, 1) noise (jitter 1).
    (NumPyro wants an init strategy as a functools.partial.)"""
    if site is None:
        return partial(_init_jitter, case=case)
    if site["type"] == "sample" and not site["is_observed"] and site["name"] in cases.INITIAL_POINT[case]:
        v = jnp.asarray(cases.INITIAL_POINT[case][site["name"]], jnp.float32)
        return v + jax.random.normal(site["kwargs"]["rng_key"], jnp.shape(v), jnp.float32)
    return None


def _jitter_init(case: str):
    return partial(_init_jitter, case=case)


def _fit_stein(model: Built, case: str, n: int):
    from numpyro.contrib.einstein import SVGD, RBFKernel
    from numpyro.optim import SGD

    # SVGD = SteinVI with an AutoDelta guide (one point per particle), as numpyro.contrib.einstein builds it
    stein = SVGD(model.model, SGD(cases.SVGD_LR), RBFKernel(), num_stein_particles=cases.SVGD_PARTICLES,
                 guide_kwargs={"init_loc_fn": _jitter_init(case)})
    res = stein.run(jax.random.PRNGKey(0), n, progress_bar=False, **model.kwargs)
    losses = np.asarray(res.losses, dtype=float)
    return ("stein", stein, res.params), losses


def _fit_flow(model: Built, case: str, n: int):
    import optax
    from numpyro.infer.autoguide import AutoBNAFNormal, AutoIAFNormal
    from numpyro.optim import optax_to_numpyro

    init = init_to_value(values={k: jnp.asarray(v, jnp.float32) for k, v in cases.INITIAL_POINT[case].items()})
    cls = AutoBNAFNormal if VARIANT == "bnaf" else AutoIAFNormal
    guide = cls(model.model, init_loc_fn=init)
    opt = optax_to_numpyro(optax.adam(optax.cosine_decay_schedule(cases.NFVI_LR, n, 0.01)))
    svi = SVI(model.model, guide, opt, Trace_ELBO(num_particles=cases.NFVI_N_MC))
    res = svi.run(jax.random.PRNGKey(0), n, progress_bar=False, **model.kwargs)
    losses = np.asarray(res.losses, dtype=float)
    return (guide, res.params), losses


def fit(model: Built, case: str, method: str, n: int):
    if method == "svgd":
        return _fit_stein(model, case, n)
    if method == "nfvi":
        return _fit_flow(model, case, n)
    if method not in model.svi:
        init = init_to_value(values={k: jnp.asarray(v, jnp.float32) for k, v in cases.INITIAL_POINT[case].items()})
        cls = {"advi": AutoNormal, "fullrank_advi": AutoMultivariateNormal}[method]
        guide = cls(model.model, init_loc_fn=init, init_scale=cases.START_SIGMA[method])
        model.svi[method] = (guide, SVI(model.model, guide, make_optimizer(OPTIMIZER), Trace_ELBO()))
    guide, svi = model.svi[method]
    res = svi.run(jax.random.PRNGKey(0), n, progress_bar=False, **model.kwargs)
    losses = np.asarray(res.losses, dtype=float)  # blocks until the fit is done
    return (guide, res.params), losses


def draw(model: Built, fitted, case: str, draws: int) -> dict:
    sites = cases.REPORT_VARS[case] + DETERMINISTICS.get(case, [])
    if fitted[0] == "stein":  # one draw per particle (1000 particles), as in NumPyro's SVGD example
        _, stein, params = fitted
        pred = Predictive(model.model, guide=stein.guide, params=params, num_samples=1, batch_ndims=1,
                          return_sites=sites)
    else:
        guide, params = fitted
        pred = Predictive(model.model, guide=guide, params=params, num_samples=draws, return_sites=sites)
    samples = pred(jax.random.PRNGKey(1), **model.kwargs)
    samples = jax.block_until_ready(samples)
    flat = {v: np.asarray(samples[v]).reshape(-1, *np.shape(samples[v])[2 if fitted[0] == "stein" else 1:])
            for v in cases.REPORT_VARS[case]}
    out = {v: a.mean(0).tolist() for v, a in flat.items()}
    out["_stats"] = cases.stats(case, flat)
    return out


def extra(model: Built, case: str, method: str, n: int) -> dict:
    """minibatch: seconds per SVI step of the same model on the full data (plate without subsample_size),
    the step jitted once (``jax.jit(svi.update)``, data as an argument)."""
    if case != "minibatch":
        return {}
    init = init_to_value(values={k: jnp.asarray(v, jnp.float32) for k, v in cases.INITIAL_POINT[case].items()})
    guide = AutoNormal(model.model, init_loc_fn=init, init_scale=cases.START_SIGMA[method])
    svi = SVI(model.model, guide, make_optimizer(OPTIMIZER), Trace_ELBO())
    data = model.kwargs["data"]
    state = [svi.init(jax.random.PRNGKey(0), data=data, batch_size=None)]
    step = jax.jit(lambda st, x: svi.update(st, data=x, batch_size=None))

    def fit(k):
        for _ in range(k):
            state[0], loss = step(state[0], data)
        jax.block_until_ready(loss)

    per_it = cases.per_iteration(fit, 2, 12)
    return {"full_data_s_per_it": per_it, "full_data_it_per_s": 1.0 / per_it}
