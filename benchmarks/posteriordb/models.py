"""The 20 posteriordb posteriors of ``../shared/posteriordb`` written as jaxvi models.

Each builder follows the posterior's ``model.md`` (the mathematical description of the Stan program):
same priors, same parameterisation and the parameter names of the reference draws.  Constrained
parameters use the jaxvi distribution whose support gives the right transform; where the reference
parameter is not a free variable of the program (eight schools non-centred ``theta``, the GP's ``f``,
radon's ``alpha``) or needs a bijection jaxvi has no distribution for (the ordered ``mu`` of the
mixture, garch's ``beta1 < 1 - alpha1``), it is a ``jv.Deterministic`` of free variables, with the
log-Jacobian added as a ``jv.Potential`` where the change of variables needs one.

Data location: ``$JAXVI_POSTERIORDB`` if set, else ``<repo>/../shared/posteriordb`` if it exists, else
the small bundled copy in ``benchmarks/posteriordb/data`` (only the posteriors the test suite uses; the
posteriordb licence and citation are in that folder).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxvi as jv

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUNDLED_ROOT = HERE / "data"
SHARED_ROOT = REPO.parent / "shared" / "posteriordb"

# in the order of the folder's README (by number of parameters)
POSTERIORS = [
    "kidiq-kidscore_momiq",
    "earnings-earn_height",
    "kilpisjarvi_mod-kilpisjarvi",
    "gp_pois_regr-gp_regr",
    "arma-arma11",
    "garch-garch11",
    "kidiq-kidscore_interaction",
    "earnings-logearn_interaction",
    "low_dim_gauss_mix-low_dim_gauss_mix",
    "sblrc-blr",
    "arK-arK",
    "mesquite-logmesquite",
    "eight_schools-eight_schools_noncentered",
    "eight_schools-eight_schools_centered",
    "nes2000-nes",
    "gp_pois_regr-gp_pois_regr",
    "diamonds-diamonds",
    "mcycle_gp-accel_gp",
    "radon_mn-radon_variable_intercept_noncentered",
    "radon_all-radon_variable_intercept_noncentered",
]


# -- data -----------------------------------------------------------------------------------------
def data_root(root=None) -> Path:
    """Where the posteriordb folders are: ``root``, ``$JAXVI_POSTERIORDB``, ../shared, or the bundled copy."""
    if root is not None:
        return Path(root)
    env = os.environ.get("JAXVI_POSTERIORDB")
    if env:
        return Path(env)
    return SHARED_ROOT if SHARED_ROOT.is_dir() else BUNDLED_ROOT


def _folder(name, root=None) -> Path:
    if name not in MODELS:
        raise KeyError(f"unknown posterior {name!r}; known: {', '.join(POSTERIORS)}")
    path = data_root(root) / name
    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found (set JAXVI_POSTERIORDB to the posteriordb folder)")
    return path


def load_data(name, root=None) -> dict:
    """The posterior's data.json, lists turned into float64 arrays."""
    raw = json.loads((_folder(name, root) / "data.json").read_text())
    return {k: np.asarray(v, dtype=np.float64) if isinstance(v, list) else v for k, v in raw.items()}


def load_reference(name, root=None) -> dict:
    return json.loads((_folder(name, root) / "reference.json").read_text())


def load_reference_draws(name, root=None):
    """(names, draws[n, p]) from draws.json.gz, or None when the folder has no draws."""
    path = _folder(name, root) / "draws.json.gz"
    if not path.exists():
        return None
    chains = json.loads(gzip.open(path).read())
    names = list(chains[0])
    draws = np.concatenate([np.array([c[n] for n in names], dtype=np.float64).T for c in chains])
    return names, draws


def flat_reference_names(var: str, shape) -> list[str]:
    """posteriordb's flattened names (1-based, Stan's order) for a variable of ``shape``."""
    shape = tuple(shape)
    if not shape:
        return [var]
    return [f"{var}[{','.join(str(i + 1) for i in idx)}]" for idx in np.ndindex(*shape)]


# -- helpers ----------------------------------------------------------------------------------------
def _i(x) -> int:
    return int(np.asarray(x).reshape(-1)[0])


def _vec(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def _linear_regression(y, X, beta_prior=None, sigma_prior="flat"):
    """beta (flat or given prior) and sigma; y ~ Normal(X beta, sigma).  Call inside a model."""
    k = X.shape[1]
    beta = jv.Flat("beta", shape=k) if beta_prior is None else beta_prior("beta", shape=k)
    sigma = jv.HalfFlat("sigma") if sigma_prior == "flat" else sigma_prior("sigma")
    jv.Normal("y", mu=jv.math.dot(X, beta), sigma=sigma, observed=y)


# -- the models ---------------------------------------------------------------------------------------
def kidiq_kidscore_momiq(d):
    X = np.column_stack([np.ones(_i(d["N"])), _vec(d["mom_iq"])])
    with jv.Model() as m:
        _linear_regression(_vec(d["kid_score"]), X, sigma_prior=lambda n: jv.HalfCauchy(n, beta=2.5))
    return m


def kidiq_kidscore_interaction(d):
    hs, iq = _vec(d["mom_hs"]), _vec(d["mom_iq"])
    X = np.column_stack([np.ones_like(hs), hs, iq, hs * iq])
    with jv.Model() as m:
        _linear_regression(_vec(d["kid_score"]), X, sigma_prior=lambda n: jv.HalfCauchy(n, beta=2.5))
    return m


def earnings_earn_height(d):
    X = np.column_stack([np.ones(_i(d["N"])), _vec(d["height"])])
    with jv.Model() as m:
        _linear_regression(_vec(d["earn"]), X)
    return m


def earnings_logearn_interaction(d):
    h, male = _vec(d["height"]), _vec(d["male"])
    X = np.column_stack([np.ones_like(h), h, male, h * male])
    with jv.Model() as m:
        _linear_regression(np.log(_vec(d["earn"])), X)
    return m


def mesquite_logmesquite(d):
    cols = [np.log(_vec(d[k])) for k in ("diam1", "diam2", "canopy_height", "total_height", "density")]
    X = np.column_stack([np.ones(_i(d["N"])), *cols, _vec(d["group"])])
    with jv.Model() as m:
        _linear_regression(np.log(_vec(d["weight"])), X)
    return m


def nes2000_nes(d):
    age = _vec(d["age_discrete"])
    X = np.column_stack([np.ones(_i(d["N"])), _vec(d["real_ideo"]), _vec(d["race_adj"]),
                         age == 2, age == 3, age == 4,
                         _vec(d["educ1"]), _vec(d["gender"]), _vec(d["income"])]).astype(np.float64)
    with jv.Model() as m:
        _linear_regression(_vec(d["partyid7"]), X)
    return m


def sblrc_blr(d):
    X = np.asarray(d["X"], dtype=np.float64)
    with jv.Model() as m:
        _linear_regression(_vec(d["y"]), X, beta_prior=lambda n, shape: jv.Normal(n, 0.0, 10.0, shape=shape),
                           sigma_prior=lambda n: jv.HalfNormal(n, sigma=10.0))
    return m


def kilpisjarvi_mod_kilpisjarvi(d):
    x, y = _vec(d["x"]), _vec(d["y"])
    with jv.Model() as m:
        alpha = jv.Normal("alpha", mu=float(d["pmualpha"]), sigma=float(d["psalpha"]))
        beta = jv.Normal("beta", mu=float(d["pmubeta"]), sigma=float(d["psbeta"]))
        sigma = jv.HalfFlat("sigma")
        jv.Normal("y", mu=alpha + beta * x, sigma=sigma, observed=y)
    return m


def diamonds_diamonds(d):
    X = np.asarray(d["X"], dtype=np.float64)
    Xc = X[:, 1:] - X[:, 1:].mean(axis=0)
    with jv.Model() as m:
        b = jv.Normal("b", 0.0, 1.0, shape=Xc.shape[1])
        intercept = jv.StudentT("Intercept", nu=3.0, mu=8.0, sigma=10.0)
        sigma = jv.HalfStudentT("sigma", nu=3.0, sigma=10.0)
        if not int(d.get("prior_only", 0)):
            jv.Normal("Y", mu=intercept + jv.math.dot(Xc, b), sigma=sigma, observed=_vec(d["Y"]))
    return m


def arK_arK(d):
    K, y = _i(d["K"]), _vec(d["y"])
    T = len(y)
    lags = np.column_stack([y[K - k: T - k] for k in range(1, K + 1)])  # lags[t-K, k-1] = y[t-k]
    with jv.Model() as m:
        alpha = jv.Normal("alpha", 0.0, 10.0)
        beta = jv.Normal("beta", 0.0, 10.0, shape=K)
        sigma = jv.HalfCauchy("sigma", beta=2.5)
        jv.Normal("y", mu=alpha + jv.math.dot(lags, beta), sigma=sigma, observed=y[K:])
    return m


def _arma11_errors(mu, phi, theta, y):
    """err[1] = y[1] - (mu + phi mu); err[t] = y[t] - mu - phi y[t-1] - theta err[t-1]."""
    a = y[1:] - mu - phi * y[:-1]
    err1 = y[0] - (mu + phi * mu)

    def step(prev, a_t):
        e = a_t - theta * prev
        return e, e

    _, rest = jax.lax.scan(step, err1, a)
    return jnp.concatenate([err1[None], rest])


def arma_arma11(d):
    y = _vec(d["y"])
    with jv.Model() as m:
        mu = jv.Normal("mu", 0.0, 10.0)
        phi = jv.Normal("phi", 0.0, 2.0)
        theta = jv.Normal("theta", 0.0, 2.0)
        sigma = jv.HalfCauchy("sigma", beta=2.5)
        err = jv.lift(_arma11_errors, label="arma11_errors")(mu, phi, theta, y)
        # err[t] ~ Normal(0, sigma)  <=>  y[t] ~ Normal(nu[t], sigma) with nu = y - err
        jv.Normal("y", mu=y - err, sigma=sigma, observed=y)
    return m


def _garch11_sd(mu, alpha0, alpha1, beta1, y, sigma1):
    """s[1] = sigma1; s[t]^2 = alpha0 + alpha1 (y[t-1] - mu)^2 + beta1 s[t-1]^2."""
    sq = (y[:-1] - mu) ** 2

    def step(var_prev, sq_t):
        v = alpha0 + alpha1 * sq_t + beta1 * var_prev
        return v, v

    s1 = jnp.asarray(sigma1, jnp.result_type(alpha0))
    _, var = jax.lax.scan(step, s1**2, sq)
    return jnp.concatenate([s1[None], jnp.sqrt(var)])


def garch_garch11(d):
    y, sigma1 = _vec(d["y"]), float(d["sigma1"])
    with jv.Model() as m:
        # flat prior over {alpha0 > 0, 0 < alpha1 < 1, 0 < beta1 < 1 - alpha1}
        mu = jv.Flat("mu")
        alpha0 = jv.HalfFlat("alpha0")
        alpha1 = jv.Uniform("alpha1", 0.0, 1.0)
        beta1_frac = jv.Uniform("beta1_frac", 0.0, 1.0)  # beta1 / (1 - alpha1)
        beta1 = jv.Deterministic("beta1", (1.0 - alpha1) * beta1_frac)
        # flat density in (alpha1, beta1) -> density (1 - alpha1) in (alpha1, beta1_frac)
        jv.Potential("beta1_jacobian", jv.math.log1p(-alpha1))
        s = jv.lift(_garch11_sd, label="garch11_sd")(mu, alpha0, alpha1, beta1, y, sigma1)
        jv.Normal("y", mu=mu, sigma=s, observed=y)
    return m


def low_dim_gauss_mix(d):
    y = _vec(d["y"])
    with jv.Model() as m:
        # ordered mu: mu[1] = mu_first, mu[2] = mu_first + mu_gap (mu_gap > 0, log transform), unit Jacobian
        mu_first = jv.Normal("mu_first", 0.0, 2.0)
        mu_gap = jv.HalfFlat("mu_gap")
        mu_second = mu_first + mu_gap
        jv.Potential("mu_second_prior", -0.5 * (mu_second / 2.0) ** 2)  # Normal(0, 2) on mu[2]
        mu = jv.Deterministic("mu", jv.math.stack([mu_first, mu_second]))
        sigma = jv.HalfNormal("sigma", sigma=2.0, shape=2)
        theta = jv.Beta("theta", 5.0, 5.0)
        w = jv.math.stack([theta, 1.0 - theta])
        jv.NormalMixture("y", w=w, mu=mu, sigma=sigma, observed=y)
    return m


def _eight_schools_data(d):
    return _vec(d["y"]), _vec(d["sigma"]), _i(d["J"])


def eight_schools_centered(d):
    y, s, J = _eight_schools_data(d)
    with jv.Model() as m:
        mu = jv.Normal("mu", 0.0, 5.0)
        tau = jv.HalfCauchy("tau", beta=5.0)
        theta = jv.Normal("theta", mu=mu, sigma=tau, shape=J)
        jv.Normal("y", mu=theta, sigma=s, observed=y)
    return m


def eight_schools_noncentered(d):
    y, s, J = _eight_schools_data(d)
    with jv.Model() as m:
        theta_trans = jv.Normal("theta_trans", 0.0, 1.0, shape=J)
        mu = jv.Normal("mu", 0.0, 5.0)
        tau = jv.HalfCauchy("tau", beta=5.0)
        theta = jv.Deterministic("theta", mu + tau * theta_trans)
        jv.Normal("y", mu=theta, sigma=s, observed=y)
    return m


def _se_kernel(x, alpha, rho):
    d2 = (x[:, None] - x[None, :]) ** 2
    return alpha**2 * jnp.exp(-d2 / (2.0 * rho**2))


def gp_regr(d):
    x, y = _vec(d["x"]), _vec(d["y"])
    with jv.Model() as m:
        rho = jv.Gamma("rho", alpha=25.0, beta=4.0)
        alpha = jv.HalfNormal("alpha", sigma=2.0)
        sigma = jv.HalfNormal("sigma", sigma=1.0)
        # posteriordb's program adds sigma itself (a variance) to the diagonal
        cov = jv.lift(lambda a, r, s: _se_kernel(x, a, r) + s * jnp.eye(len(x)), label="gp_regr_cov")(alpha, rho, sigma)
        jv.MvNormal("y", mu=np.zeros(len(x)), cov=cov, observed=y)
    return m


def _gp_latent(x, alpha, rho, f_tilde):
    K = _se_kernel(x, alpha, rho) + 1e-10 * jnp.eye(len(x))
    return jnp.linalg.cholesky(K) @ f_tilde


def gp_pois_regr(d):
    x, k = _vec(d["x"]), np.asarray(d["k"]).astype(np.int64)
    with jv.Model() as m:
        rho = jv.Gamma("rho", alpha=25.0, beta=4.0)
        alpha = jv.HalfNormal("alpha", sigma=2.0)
        f_tilde = jv.Normal("f_tilde", 0.0, 1.0, shape=len(x))
        f = jv.Deterministic("f", jv.lift(lambda a, r, z: _gp_latent(x, a, r, z), label="gp_latent")(alpha, rho, f_tilde))
        jv.Poisson("k", mu=jv.math.exp(f), observed=k)
    return m


def _spd_sqrt(slambda, sdgp, lscale):
    """sqrt of the 1-D squared-exponential spectral density S(w) = s^2 sqrt(2 pi) l exp(-l^2 w^2 / 2)."""
    return sdgp * jnp.sqrt(jnp.sqrt(2.0 * jnp.pi) * lscale) * jnp.exp(-0.25 * lscale**2 * slambda**2)


def mcycle_gp_accel_gp(d):
    Y = _vec(d["Y"])
    Xgp = np.asarray(d["Xgp_1"], dtype=np.float64)
    Xgp_s = np.asarray(d["Xgp_sigma_1"], dtype=np.float64)
    slam, slam_s = _vec(d["slambda_1"]), _vec(d["slambda_sigma_1"])
    with jv.Model() as m:
        intercept = jv.StudentT("Intercept", nu=3.0, mu=-13.0, sigma=36.0)
        sdgp = jv.HalfStudentT("sdgp_1", nu=3.0, sigma=36.0)
        lscale = jv.InverseGamma("lscale_1", alpha=1.124909, beta=0.0177)
        zgp = jv.Normal("zgp_1", 0.0, 1.0, shape=Xgp.shape[1])
        intercept_s = jv.StudentT("Intercept_sigma", nu=3.0, mu=0.0, sigma=10.0)
        sdgp_s = jv.HalfStudentT("sdgp_sigma_1", nu=3.0, sigma=36.0)
        lscale_s = jv.InverseGamma("lscale_sigma_1", alpha=1.124909, beta=0.0177)
        zgp_s = jv.Normal("zgp_sigma_1", 0.0, 1.0, shape=Xgp_s.shape[1])
        spd = jv.lift(_spd_sqrt, label="spd_sqrt")
        mu = intercept + jv.math.dot(Xgp, spd(slam, sdgp, lscale) * zgp)
        log_sd = intercept_s + jv.math.dot(Xgp_s, spd(slam_s, sdgp_s, lscale_s) * zgp_s)
        if not int(d.get("prior_only", 0)):
            jv.Normal("Y", mu=mu, sigma=jv.math.exp(log_sd), observed=Y)
    return m


def radon_variable_intercept_noncentered(d):
    J = _i(d["J"])
    idx = np.asarray(d["county_idx"]).astype(np.int64) - 1
    floor = _vec(d["floor_measure"])
    with jv.Model() as m:
        alpha_raw = jv.Normal("alpha_raw", 0.0, 1.0, shape=J)
        beta = jv.Normal("beta", 0.0, 10.0)
        mu_alpha = jv.Normal("mu_alpha", 0.0, 10.0)
        sigma_alpha = jv.HalfNormal("sigma_alpha", sigma=1.0)
        sigma_y = jv.HalfNormal("sigma_y", sigma=1.0)
        alpha = jv.Deterministic("alpha", mu_alpha + sigma_alpha * alpha_raw)
        jv.Normal("log_radon", mu=alpha[idx] + beta * floor, sigma=sigma_y, observed=_vec(d["log_radon"]))
    return m


MODELS = {
    "kidiq-kidscore_momiq": kidiq_kidscore_momiq,
    "earnings-earn_height": earnings_earn_height,
    "kilpisjarvi_mod-kilpisjarvi": kilpisjarvi_mod_kilpisjarvi,
    "gp_pois_regr-gp_regr": gp_regr,
    "arma-arma11": arma_arma11,
    "garch-garch11": garch_garch11,
    "kidiq-kidscore_interaction": kidiq_kidscore_interaction,
    "earnings-logearn_interaction": earnings_logearn_interaction,
    "low_dim_gauss_mix-low_dim_gauss_mix": low_dim_gauss_mix,
    "sblrc-blr": sblrc_blr,
    "arK-arK": arK_arK,
    "mesquite-logmesquite": mesquite_logmesquite,
    "eight_schools-eight_schools_noncentered": eight_schools_noncentered,
    "eight_schools-eight_schools_centered": eight_schools_centered,
    "nes2000-nes": nes2000_nes,
    "gp_pois_regr-gp_pois_regr": gp_pois_regr,
    "diamonds-diamonds": diamonds_diamonds,
    "mcycle_gp-accel_gp": mcycle_gp_accel_gp,
    "radon_mn-radon_variable_intercept_noncentered": radon_variable_intercept_noncentered,
    "radon_all-radon_variable_intercept_noncentered": radon_variable_intercept_noncentered,
}
assert list(MODELS) == POSTERIORS


def build_model(name, data=None, root=None) -> jv.Model:
    """The jaxvi model of posterior ``name`` (data from ``data`` or loaded from ``root``)."""
    if name not in MODELS:
        raise KeyError(f"unknown posterior {name!r}; known: {', '.join(POSTERIORS)}")
    return MODELS[name](load_data(name, root) if data is None else data)
