"""Twelve extra posteriors for the accuracy suite, written for it (jaxvi issue 14).

They cover the kinds the 20 posteriordb posteriors lack: GLMs (logistic with correlated predictors,
Poisson with a predictor in the thousands), a Poisson GLMM, centred and non-centred hierarchies, linear
regressions with strongly correlated and with badly scaled predictors, an ODE (logistic growth by a
fixed-step RK4 in ``jax.lax.scan``), a two-state Gaussian HMM (forward algorithm in a ``jv.Potential``),
heavy-tailed priors (Cauchy coefficients, a horseshoe-lite) and a robust (StudentT) regression.

Each model's data are simulated here with a fixed numpy seed (no files).  ``build_model(name, dtype)``
builds it with the data as ``dtype`` arrays (float32: as a user would have them, for the accuracy suite's
``--defaults`` mode).  The reference posteriors (long NUTS runs, ``make_references.py``) are summaries in
``benchmarks/reference/<name>.json`` in posteriordb's reference format (``param_names``,
``parameters[name] = {mean, sd, q5, q50, q95}``, ``covariance = {order, matrix}``), scored on every free
variable and Deterministic of the model under posteriordb's flattened 1-based names.

The module has the interface of ``benchmarks/posteriordb`` that ``accuracy.py`` uses: ``POSTERIORS``,
``build_model``, ``load_reference``, ``load_reference_draws`` (None: no raw draws) and
``flat_reference_names``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np

import jaxvi as jv

HERE = Path(__file__).resolve().parent
REFERENCE_DIR = HERE / "reference"


def flat_reference_names(var: str, shape) -> list[str]:
    """posteriordb's flattened names (1-based, Stan's order) for a variable of ``shape``."""
    shape = tuple(shape)
    if not shape:
        return [var]
    return [f"{var}[{','.join(str(i + 1) for i in idx)}]" for idx in np.ndindex(*shape)]


# -- data (fixed seeds; float64, cast on build) ------------------------------------------------------
def _corr_normal(rng, n, k, rho):
    """n draws of k standard normals with an AR(1) correlation rho^|i-j|."""
    c = rho ** np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
    return rng.standard_normal((n, k)) @ np.linalg.cholesky(c).T


def data_logistic_glm_corr():
    rng = np.random.default_rng(101)
    X = _corr_normal(rng, 300, 5, 0.85)
    beta = np.array([1.0, -0.5, 0.0, 0.8, -1.2])
    y = (rng.random(300) < 1 / (1 + np.exp(-(-0.4 + X @ beta)))).astype(np.int64)
    return {"X": X, "y": y}


def data_poisson_glm_scaled():
    rng = np.random.default_rng(102)
    n = 120
    x1 = rng.standard_normal(n)
    dist = rng.uniform(200.0, 4000.0, n)  # metres: the badly scaled predictor
    x3 = (rng.random(n) < 0.4).astype(np.float64)
    y = rng.poisson(np.exp(1.2 + 0.3 * x1 - 4e-4 * dist + 0.5 * x3))
    return {"X": np.column_stack([x1, dist, x3]), "y": y}


def data_poisson_glmm():
    rng = np.random.default_rng(103)
    J, n_j = 15, 12
    g = np.repeat(np.arange(J), n_j)
    a = 1.2 + 0.5 * rng.standard_normal(J)
    x = rng.standard_normal(J * n_j)
    y = rng.poisson(np.exp(a[g] + 0.4 * x))
    return {"g": g, "x": x, "y": y, "J": J}


def data_hier_centered():
    rng = np.random.default_rng(104)
    J, n_j = 40, 8
    g = np.repeat(np.arange(J), n_j)
    theta = 2.0 + 1.0 * rng.standard_normal(J)
    y = theta[g] + 1.5 * rng.standard_normal(J * n_j)
    return {"g": g, "y": y, "J": J}


def data_hier_noncentered():
    rng = np.random.default_rng(105)
    J = 16
    s = rng.uniform(8.0, 16.0, J)
    theta = 5.0 + 4.0 * rng.standard_normal(J)
    return {"y": theta + s * rng.standard_normal(J), "s": s, "J": J}


def data_linreg_corr():
    rng = np.random.default_rng(106)
    n = 100
    z = rng.standard_normal(n)
    X = z[:, None] + 0.1 * rng.standard_normal((n, 4))  # pairwise correlation about 0.99
    y = 1.0 + X @ np.array([1.0, 0.5, -0.5, 0.2]) + rng.standard_normal(n)
    return {"X": X, "y": y}


def data_linreg_scaled():
    rng = np.random.default_rng(107)
    n = 80
    x1 = rng.normal(3000.0, 500.0, n)  # in the thousands, uncentred
    x2 = rng.normal(0.5, 0.2, n)
    y = 20.0 + 0.01 * x1 + 3.0 * x2 + 2.0 * rng.standard_normal(n)
    return {"X": np.column_stack([x1, x2]), "y": y}


ODE_T = np.arange(1.0, 21.0)
ODE_SUBSTEPS = 4  # RK4 steps per unit of time


def _logistic_rk4(r, K, n0, n_obs: int, substeps: int = ODE_SUBSTEPS):
    """N(t) at t = 1..n_obs for dN/dt = r N (1 - N / K), N(0) = n0: fixed-step RK4 (h = 1 / substeps)."""
    h = 1.0 / substeps

    def f(n):
        return r * n * (1.0 - n / K)

    def step(n, _):
        k1 = f(n)
        k2 = f(n + 0.5 * h * k1)
        k3 = f(n + 0.5 * h * k2)
        k4 = f(n + h * k3)
        n = n + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        return n, n

    n0 = jnp.asarray(n0)
    _, path = jax.lax.scan(step, n0, None, length=n_obs * substeps)
    return path[substeps - 1::substeps]


def data_ode_logistic_growth():
    rng = np.random.default_rng(108)
    with jax.default_device(jax.devices("cpu")[0]):
        path = np.asarray(_logistic_rk4(0.45, 120.0, 4.0, len(ODE_T), 64), dtype=np.float64)
    return {"y": path * np.exp(0.12 * rng.standard_normal(len(ODE_T)))}


def data_hmm_gaussian2():
    rng = np.random.default_rng(109)
    T, p_stay, mu, sd = 120, np.array([0.9, 0.85]), np.array([-1.0, 1.5]), 0.7
    z = np.zeros(T, dtype=np.int64)
    z[0] = rng.integers(2)
    for t in range(1, T):
        z[t] = z[t - 1] if rng.random() < p_stay[z[t - 1]] else 1 - z[t - 1]
    return {"y": mu[z] + sd * rng.standard_normal(T)}


def data_cauchy_prior_regression():
    rng = np.random.default_rng(110)
    n = 25
    X = rng.standard_normal((n, 6))
    y = 0.5 + X @ np.array([2.0, 0.0, 0.0, -1.0, 0.0, 0.5]) + rng.standard_normal(n)
    return {"X": X, "y": y}


def data_horseshoe_lite():
    rng = np.random.default_rng(111)
    n, D = 80, 12
    X = rng.standard_normal((n, D))
    beta = np.zeros(D)
    beta[:3] = [3.0, -2.0, 1.5]
    return {"X": X, "y": X @ beta + rng.standard_normal(n)}


def data_robust_regression():
    rng = np.random.default_rng(112)
    n = 60
    X = rng.standard_normal((n, 2))
    y = 1.0 + X @ np.array([2.0, -1.0]) + 0.8 * rng.standard_t(3.0, n)
    y[:3] += np.array([12.0, -9.0, 15.0])  # outliers
    return {"X": X, "y": y}


# -- models ----------------------------------------------------------------------------------------------
def _hmm_loglik(mu, sigma, p_stay, y):
    """log p(y | mu, sigma, p_stay) of a 2-state Gaussian HMM, uniform initial state, states marginalised."""
    lstay, lswitch = jnp.log(p_stay), jnp.log1p(-p_stay)
    # log_trans[i, j] = log P(z_t = j | z_{t-1} = i)
    log_trans = jnp.stack([jnp.stack([lstay[0], lswitch[0]]), jnp.stack([lswitch[1], lstay[1]])])
    z = (y[:, None] - mu[None, :]) / sigma
    log_em = -0.5 * z**2 - jnp.log(sigma) - 0.5 * jnp.log(2.0 * jnp.pi)  # (T, 2)
    alpha0 = jnp.log(0.5) + log_em[0]

    def step(alpha, le):
        alpha = jsp.logsumexp(alpha[:, None] + log_trans, axis=0) + le
        return alpha, None

    alpha, _ = jax.lax.scan(step, alpha0, log_em[1:])
    return jsp.logsumexp(alpha)


def logistic_glm_corr(d):
    with jv.Model() as m:
        alpha = jv.Normal("alpha", 0.0, 2.5)
        beta = jv.Normal("beta", 0.0, 2.5, shape=d["X"].shape[1])
        jv.Bernoulli("y", logit_p=alpha + jv.math.dot(d["X"], beta), observed=d["y"])
    return m


def poisson_glm_scaled(d):
    with jv.Model() as m:
        alpha = jv.Normal("alpha", 0.0, 2.0)
        beta = jv.Normal("beta", 0.0, 2.0, shape=d["X"].shape[1])
        jv.Poisson("y", mu=jv.math.exp(alpha + jv.math.dot(d["X"], beta)), observed=d["y"])
    return m


def poisson_glmm(d):
    with jv.Model() as m:
        mu_a = jv.Normal("mu_a", 1.0, 1.0)
        sigma_a = jv.HalfNormal("sigma_a", sigma=1.0)
        a = jv.Normal("a", mu=mu_a, sigma=sigma_a, shape=int(d["J"]))  # centred random intercepts
        b = jv.Normal("b", 0.0, 1.0)
        jv.Poisson("y", mu=jv.math.exp(a[d["g"]] + b * d["x"]), observed=d["y"])
    return m


def hier_centered(d):
    with jv.Model() as m:
        mu = jv.Normal("mu", 0.0, 5.0)
        tau = jv.HalfNormal("tau", sigma=2.0)
        theta = jv.Normal("theta", mu=mu, sigma=tau, shape=int(d["J"]))
        sigma = jv.HalfNormal("sigma", sigma=2.0)
        jv.Normal("y", mu=theta[d["g"]], sigma=sigma, observed=d["y"])
    return m


def hier_noncentered(d):
    with jv.Model() as m:
        mu = jv.Normal("mu", 0.0, 5.0)
        tau = jv.HalfNormal("tau", sigma=5.0)
        z = jv.Normal("z", 0.0, 1.0, shape=int(d["J"]))
        theta = jv.Deterministic("theta", mu + tau * z)
        jv.Normal("y", mu=theta, sigma=d["s"], observed=d["y"])
    return m


def _linreg(d, beta_prior, alpha_sd=10.0, sigma_sd=5.0):
    with jv.Model() as m:
        alpha = jv.Normal("alpha", 0.0, alpha_sd)
        beta = beta_prior("beta", d["X"].shape[1])
        sigma = jv.HalfNormal("sigma", sigma=sigma_sd)
        jv.Normal("y", mu=alpha + jv.math.dot(d["X"], beta), sigma=sigma, observed=d["y"])
    return m


def linreg_corr(d):
    return _linreg(d, lambda n, k: jv.Normal(n, 0.0, 10.0, shape=k))


def linreg_scaled(d):
    return _linreg(d, lambda n, k: jv.Normal(n, 0.0, 10.0, shape=k), alpha_sd=100.0, sigma_sd=10.0)


def cauchy_prior_regression(d):
    return _linreg(d, lambda n, k: jv.Cauchy(n, alpha=0.0, beta=1.0, shape=k), alpha_sd=5.0, sigma_sd=2.0)


def horseshoe_lite(d):
    """beta = tau lambda z (non-centred), lambda ~ HalfStudentT(3), tau ~ HalfCauchy(0.5)."""
    D = d["X"].shape[1]
    with jv.Model() as m:
        alpha = jv.Normal("alpha", 0.0, 5.0)
        tau = jv.HalfCauchy("tau", beta=0.5)
        lam = jv.HalfStudentT("lam", nu=3.0, sigma=1.0, shape=D)
        z = jv.Normal("z", 0.0, 1.0, shape=D)
        beta = jv.Deterministic("beta", tau * lam * z)
        sigma = jv.HalfNormal("sigma", sigma=2.0)
        jv.Normal("y", mu=alpha + jv.math.dot(d["X"], beta), sigma=sigma, observed=d["y"])
    return m


def robust_regression(d):
    with jv.Model() as m:
        alpha = jv.Normal("alpha", 0.0, 5.0)
        beta = jv.Normal("beta", 0.0, 5.0, shape=d["X"].shape[1])
        sigma = jv.HalfNormal("sigma", sigma=2.0)
        nu = jv.Gamma("nu", alpha=2.0, beta=0.1)
        jv.StudentT("y", nu=nu, mu=alpha + jv.math.dot(d["X"], beta), sigma=sigma, observed=d["y"])
    return m


def ode_logistic_growth(d):
    y = d["y"]
    with jv.Model() as m:
        r = jv.LogNormal("r", mu=np.log(0.5), sigma=0.5)
        K = jv.LogNormal("K", mu=np.log(100.0), sigma=0.5)
        n0 = jv.LogNormal("n0", mu=np.log(5.0), sigma=0.5)
        sigma = jv.HalfNormal("sigma", sigma=0.5)
        path = jv.lift(lambda r_, k_, n_: _logistic_rk4(r_, k_, n_, len(y)), label="logistic_rk4")(r, K, n0)
        jv.LogNormal("y", mu=jv.math.log(path), sigma=sigma, observed=y)
    return m


def hmm_gaussian2(d):
    y = d["y"]
    with jv.Model() as m:
        mu_first = jv.Normal("mu_first", 0.0, 3.0)
        mu_gap = jv.HalfNormal("mu_gap", sigma=3.0)  # ordered means: no label switching
        mu = jv.Deterministic("mu", jv.math.stack([mu_first, mu_first + mu_gap]))
        sigma = jv.HalfNormal("sigma", sigma=2.0)
        p_stay = jv.Beta("p_stay", 4.0, 1.5, shape=2)
        jv.Potential("hmm_loglik", jv.lift(_hmm_loglik, label="hmm_forward")(mu, sigma, p_stay, y))
    return m


# name -> (data function, model builder)
MODELS = {
    "logistic_glm_corr": (data_logistic_glm_corr, logistic_glm_corr),
    "poisson_glm_scaled": (data_poisson_glm_scaled, poisson_glm_scaled),
    "poisson_glmm": (data_poisson_glmm, poisson_glmm),
    "hier_centered": (data_hier_centered, hier_centered),
    "hier_noncentered": (data_hier_noncentered, hier_noncentered),
    "linreg_corr": (data_linreg_corr, linreg_corr),
    "linreg_scaled": (data_linreg_scaled, linreg_scaled),
    "ode_logistic_growth": (data_ode_logistic_growth, ode_logistic_growth),
    "hmm_gaussian2": (data_hmm_gaussian2, hmm_gaussian2),
    "cauchy_prior_regression": (data_cauchy_prior_regression, cauchy_prior_regression),
    "horseshoe_lite": (data_horseshoe_lite, horseshoe_lite),
    "robust_regression": (data_robust_regression, robust_regression),
}
POSTERIORS = [f"extra-{k}" for k in MODELS]

# NUTS settings of the reference runs (make_references.py); models not listed use DEFAULT_NUTS
DEFAULT_NUTS = {"draws": 3000, "tune": 1500, "chains": 4, "target_accept": 0.9, "dense_mass": False,
                "init": "jitter+adapt_diag"}
NUTS_SETTINGS = {
    "extra-linreg_corr": {"dense_mass": True},
    "extra-linreg_scaled": {"dense_mass": True},
    # from the jittered start (uniform(-1, 1) on a coefficient of a predictor in the thousands) the chains stuck
    # (R-hat 1.55, ESS 7): start at Pathfinder's draws with its covariance as the (adapted further) dense mass matrix
    "extra-poisson_glm_scaled": {"dense_mass": True, "init": "pathfinder"},
    "extra-logistic_glm_corr": {"dense_mass": True},
    "extra-horseshoe_lite": {"target_accept": 0.99, "draws": 6000},
    "extra-cauchy_prior_regression": {"target_accept": 0.95},
    "extra-hier_noncentered": {"target_accept": 0.95},
}


def nuts_settings(name: str) -> dict:
    return {**DEFAULT_NUTS, **NUTS_SETTINGS.get(name, {})}


def _key(name: str) -> str:
    short = name[len("extra-"):] if name.startswith("extra-") else name
    if short not in MODELS:
        raise KeyError(f"unknown extra posterior {name!r}; known: {', '.join(POSTERIORS)}")
    return short


def load_data(name: str, dtype=np.float64) -> dict:
    """The simulated data, float arrays as ``dtype`` (integer data stay integers)."""
    raw = MODELS[_key(name)][0]()
    return {k: (np.asarray(v, dtype=dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
            for k, v in raw.items()}


def build_model(name: str, data=None, dtype=np.float64) -> jv.Model:
    """The jaxvi model of extra posterior ``name`` (``extra-...``), data as ``dtype``."""
    return MODELS[_key(name)][1](load_data(name, dtype) if data is None else data)


def reference_path(name: str) -> Path:
    _key(name)
    return Path(os.environ.get("JAXVI_EXTRA_REFERENCE", REFERENCE_DIR)) / f"{name}.json"


def load_reference(name: str) -> dict:
    path = reference_path(name)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run benchmarks/make_references.py --posteriors {name}")
    return json.loads(path.read_text())


def load_reference_draws(name: str):
    """None: the references are summaries (the covariance is stored in the reference itself)."""
    return None
