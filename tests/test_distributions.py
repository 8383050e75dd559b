"""Distributions against independent references (scipy.stats, numerical Jacobians, quadrature).

1. observed log-densities vs scipy.stats (one model per case, scalar and batched shapes);
2. unconstrained densities of the transformed scalar distributions integrate to 1;
3. Dirichlet and LKJCholeskyCov: constrained vs unconstrained density, independent Jacobians;
4. parameter, parameterisation and support checks;
5. initial points are finite, inside the support and at PyMC's central values.

Everything runs in float64 (``jax.enable_x64`` around model building *and* evaluation).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate
import scipy.special as sp
import scipy.stats as st

import jax
import jax.numpy as jnp
import numpyro.distributions as npd

import jaxvi as jv
from jaxvi.model.transforms import diag_indices

RTOL = 1e-6
ATOL = 1e-9


@pytest.fixture(autouse=True, scope="module")
def _x64():
    with jax.enable_x64(True):
        yield


# ---------------------------------------------------------------------------------------------
# 1. observed log-densities vs scipy.stats
# ---------------------------------------------------------------------------------------------
rng = np.random.default_rng(20240917)


def u(lo, hi, size=None):
    return rng.uniform(lo, hi, size)


def pos(size=None):
    return rng.uniform(0.3, 3.0, size)


def normal(size=None):
    return rng.normal(size=size)


def spd(k, n=None):
    """A random symmetric positive-definite matrix (or a stack of n)."""
    a = rng.normal(size=(k, k) if n is None else (n, k, k))
    return a @ np.swapaxes(a, -1, -2) + k * np.eye(k)


def simplex(size):
    x = rng.gamma(2.0, size=size)
    return x / x.sum(-1, keepdims=True)


def mvn_ref(x, mu, cov):
    x, mu = np.broadcast_arrays(x, mu)
    cov = np.broadcast_to(cov, x.shape[:-1] + cov.shape[-2:])
    flat_x, flat_mu = x.reshape(-1, x.shape[-1]), mu.reshape(-1, x.shape[-1])
    flat_cov = cov.reshape(-1, *cov.shape[-2:])
    return np.array([st.multivariate_normal(m, c).logpdf(v) for v, m, c in zip(flat_x, flat_mu, flat_cov)])


def dirichlet_ref(x, a):
    x, a = np.broadcast_arrays(x, a)
    k = x.shape[-1]
    return np.array([st.dirichlet(aa).logpdf(xx) for xx, aa in zip(x.reshape(-1, k), a.reshape(-1, k))])


def mixture_ref(x, w, comp_logpdfs):
    """log sum_k w_k p_k(x); comp_logpdfs: list of functions of x."""
    terms = np.stack([np.log(wk) + f(x) for wk, f in zip(np.moveaxis(np.asarray(w), -1, 0), comp_logpdfs)])
    return sp.logsumexp(terms, axis=0)


def grw_ref(x, mu, sigma, init_logpdf):
    mu, sigma = np.asarray(mu)[..., None], np.asarray(sigma)[..., None]
    return init_logpdf(x[..., 0]) + st.norm(mu, sigma).logpdf(np.diff(x, axis=-1)).sum(-1)


def case(id_, cls, kwargs, value, ref):
    return pytest.param(cls, kwargs, value, ref, id=id_)


def _table():
    C = []
    add = C.append

    # Normal / tau
    mu, s, x = normal(), pos(), normal()
    add(case("Normal", jv.Normal, dict(mu=mu, sigma=s), x, lambda v, mu=mu, s=s: st.norm(mu, s).logpdf(v)))
    mu, s, x = normal(3), pos(3), normal((4, 3))
    add(case("Normal-batched", jv.Normal, dict(mu=mu, sigma=s), x, lambda v, mu=mu, s=s: st.norm(mu, s).logpdf(v)))
    mu, t, x = normal(), pos(), normal()
    add(case("Normal-tau", jv.Normal, dict(mu=mu, tau=t), x, lambda v, mu=mu, t=t: st.norm(mu, t**-0.5).logpdf(v)))
    mu, t, x = normal(3), pos(3), normal((4, 3))
    add(case("Normal-tau-batched", jv.Normal, dict(mu=mu, tau=t), x,
             lambda v, mu=mu, t=t: st.norm(mu, t**-0.5).logpdf(v)))
    # HalfNormal
    s, x = pos(), pos()
    add(case("HalfNormal", jv.HalfNormal, dict(sigma=s), x, lambda v, s=s: st.halfnorm(scale=s).logpdf(v)))
    s, x = pos(3), pos((4, 3))
    add(case("HalfNormal-batched", jv.HalfNormal, dict(sigma=s), x, lambda v, s=s: st.halfnorm(scale=s).logpdf(v)))
    t, x = pos(), pos()
    add(case("HalfNormal-tau", jv.HalfNormal, dict(tau=t), x, lambda v, t=t: st.halfnorm(scale=t**-0.5).logpdf(v)))
    # Cauchy / HalfCauchy
    a, b, x = normal(), pos(), 3 * normal()
    add(case("Cauchy", jv.Cauchy, dict(alpha=a, beta=b), x, lambda v, a=a, b=b: st.cauchy(a, b).logpdf(v)))
    a, b, x = normal(3), pos(3), 3 * normal((4, 3))
    add(case("Cauchy-batched", jv.Cauchy, dict(alpha=a, beta=b), x, lambda v, a=a, b=b: st.cauchy(a, b).logpdf(v)))
    b, x = pos(), pos()
    add(case("HalfCauchy", jv.HalfCauchy, dict(beta=b), x, lambda v, b=b: st.halfcauchy(scale=b).logpdf(v)))
    b, x = pos(3), pos((4, 3))
    add(case("HalfCauchy-batched", jv.HalfCauchy, dict(beta=b), x, lambda v, b=b: st.halfcauchy(scale=b).logpdf(v)))
    # StudentT / lam / HalfStudentT
    nu, mu, s, x = u(1, 10), normal(), pos(), 2 * normal()
    add(case("StudentT", jv.StudentT, dict(nu=nu, mu=mu, sigma=s), x,
             lambda v, nu=nu, mu=mu, s=s: st.t(nu, mu, s).logpdf(v)))
    nu, mu, s, x = u(1, 10, 3), normal(3), pos(3), 2 * normal((4, 3))
    add(case("StudentT-batched", jv.StudentT, dict(nu=nu, mu=mu, sigma=s), x,
             lambda v, nu=nu, mu=mu, s=s: st.t(nu, mu, s).logpdf(v)))
    nu, mu, lam, x = u(1, 10), normal(), pos(), 2 * normal()
    add(case("StudentT-lam", jv.StudentT, dict(nu=nu, mu=mu, lam=lam), x,
             lambda v, nu=nu, mu=mu, lam=lam: st.t(nu, mu, lam**-0.5).logpdf(v)))
    nu, mu, lam, x = u(1, 10, 3), normal(3), pos(3), 2 * normal((4, 3))
    add(case("StudentT-lam-batched", jv.StudentT, dict(nu=nu, mu=mu, lam=lam), x,
             lambda v, nu=nu, mu=mu, lam=lam: st.t(nu, mu, lam**-0.5).logpdf(v)))
    nu, s, x = u(1, 10), pos(), pos()
    add(case("HalfStudentT", jv.HalfStudentT, dict(nu=nu, sigma=s), x,
             lambda v, nu=nu, s=s: np.log(2) + st.t(nu, 0, s).logpdf(v)))
    nu, s, x = u(1, 10, 3), pos(3), pos((4, 3))
    add(case("HalfStudentT-batched", jv.HalfStudentT, dict(nu=nu, sigma=s), x,
             lambda v, nu=nu, s=s: np.log(2) + st.t(nu, 0, s).logpdf(v)))
    nu, lam, x = u(1, 10), pos(), pos()
    add(case("HalfStudentT-lam", jv.HalfStudentT, dict(nu=nu, lam=lam), x,
             lambda v, nu=nu, lam=lam: np.log(2) + st.t(nu, 0, lam**-0.5).logpdf(v)))
    # Laplace / Logistic
    mu, b, x = normal(), pos(), 2 * normal()
    add(case("Laplace", jv.Laplace, dict(mu=mu, b=b), x, lambda v, mu=mu, b=b: st.laplace(mu, b).logpdf(v)))
    mu, b, x = normal(3), pos(3), 2 * normal((4, 3))
    add(case("Laplace-batched", jv.Laplace, dict(mu=mu, b=b), x, lambda v, mu=mu, b=b: st.laplace(mu, b).logpdf(v)))
    mu, s_, x = normal(), pos(), 2 * normal()
    add(case("Logistic", jv.Logistic, dict(mu=mu, s=s_), x, lambda v, mu=mu, s=s_: st.logistic(mu, s).logpdf(v)))
    mu, s_, x = normal(3), pos(3), 2 * normal((4, 3))
    add(case("Logistic-batched", jv.Logistic, dict(mu=mu, s=s_), x,
             lambda v, mu=mu, s=s_: st.logistic(mu, s).logpdf(v)))
    # LogNormal
    mu, s, x = normal(), pos(), pos()
    add(case("LogNormal", jv.LogNormal, dict(mu=mu, sigma=s), x,
             lambda v, mu=mu, s=s: st.lognorm(s, scale=np.exp(mu)).logpdf(v)))
    mu, s, x = normal(3), pos(3), pos((4, 3))
    add(case("LogNormal-batched", jv.LogNormal, dict(mu=mu, sigma=s), x,
             lambda v, mu=mu, s=s: st.lognorm(s, scale=np.exp(mu)).logpdf(v)))
    mu, t, x = normal(), pos(), pos()
    add(case("LogNormal-tau", jv.LogNormal, dict(mu=mu, tau=t), x,
             lambda v, mu=mu, t=t: st.lognorm(t**-0.5, scale=np.exp(mu)).logpdf(v)))
    # Exponential
    lam, x = pos(), pos()
    add(case("Exponential", jv.Exponential, dict(lam=lam), x, lambda v, lam=lam: st.expon(scale=1 / lam).logpdf(v)))
    lam, x = pos(3), pos((4, 3))
    add(case("Exponential-batched", jv.Exponential, dict(lam=lam), x,
             lambda v, lam=lam: st.expon(scale=1 / lam).logpdf(v)))
    sc, x = pos(), pos()
    add(case("Exponential-scale", jv.Exponential, dict(scale=sc), x, lambda v, sc=sc: st.expon(scale=sc).logpdf(v)))
    sc, x = pos(3), pos((4, 3))
    add(case("Exponential-scale-batched", jv.Exponential, dict(scale=sc), x,
             lambda v, sc=sc: st.expon(scale=sc).logpdf(v)))
    # Gamma
    a, b, x = pos(), pos(), pos()
    add(case("Gamma", jv.Gamma, dict(alpha=a, beta=b), x, lambda v, a=a, b=b: st.gamma(a, scale=1 / b).logpdf(v)))
    a, b, x = pos(3), pos(3), pos((4, 3))
    add(case("Gamma-batched", jv.Gamma, dict(alpha=a, beta=b), x,
             lambda v, a=a, b=b: st.gamma(a, scale=1 / b).logpdf(v)))
    m_, s, x = pos(), pos(), pos()
    add(case("Gamma-mu-sigma", jv.Gamma, dict(mu=m_, sigma=s), x,
             lambda v, m=m_, s=s: st.gamma(m**2 / s**2, scale=s**2 / m).logpdf(v)))
    m_, s, x = pos(3), pos(3), pos((4, 3))
    add(case("Gamma-mu-sigma-batched", jv.Gamma, dict(mu=m_, sigma=s), x,
             lambda v, m=m_, s=s: st.gamma(m**2 / s**2, scale=s**2 / m).logpdf(v)))
    # InverseGamma
    a, b, x = pos(), pos(), pos()
    add(case("InverseGamma", jv.InverseGamma, dict(alpha=a, beta=b), x,
             lambda v, a=a, b=b: st.invgamma(a, scale=b).logpdf(v)))
    a, b, x = pos(3), pos(3), pos((4, 3))
    add(case("InverseGamma-batched", jv.InverseGamma, dict(alpha=a, beta=b), x,
             lambda v, a=a, b=b: st.invgamma(a, scale=b).logpdf(v)))

    def invgamma_ms(v, m, s):
        alpha = m**2 / s**2 + 2
        return st.invgamma(alpha, scale=m * (alpha - 1)).logpdf(v)

    m_, s, x = pos(), pos(), pos()
    add(case("InverseGamma-mu-sigma", jv.InverseGamma, dict(mu=m_, sigma=s), x,
             lambda v, m=m_, s=s: invgamma_ms(v, m, s)))
    m_, s, x = pos(3), pos(3), pos((4, 3))
    add(case("InverseGamma-mu-sigma-batched", jv.InverseGamma, dict(mu=m_, sigma=s), x,
             lambda v, m=m_, s=s: invgamma_ms(v, m, s)))
    # Beta
    a, b, x = pos(), pos(), u(0.02, 0.98)
    add(case("Beta", jv.Beta, dict(alpha=a, beta=b), x, lambda v, a=a, b=b: st.beta(a, b).logpdf(v)))
    a, b, x = pos(3), pos(3), u(0.02, 0.98, (4, 3))
    add(case("Beta-batched", jv.Beta, dict(alpha=a, beta=b), x, lambda v, a=a, b=b: st.beta(a, b).logpdf(v)))

    def beta_ms(v, m, s):
        kappa = m * (1 - m) / s**2 - 1
        return st.beta(m * kappa, (1 - m) * kappa).logpdf(v)

    m_, s, x = u(0.2, 0.8), u(0.05, 0.15), u(0.02, 0.98)
    add(case("Beta-mu-sigma", jv.Beta, dict(mu=m_, sigma=s), x, lambda v, m=m_, s=s: beta_ms(v, m, s)))
    m_, s, x = u(0.2, 0.8, 3), u(0.05, 0.15, 3), u(0.02, 0.98, (4, 3))
    add(case("Beta-mu-sigma-batched", jv.Beta, dict(mu=m_, sigma=s), x, lambda v, m=m_, s=s: beta_ms(v, m, s)))
    m_, nu, x = u(0.2, 0.8), pos(), u(0.02, 0.98)
    add(case("Beta-mu-nu", jv.Beta, dict(mu=m_, nu=nu), x,
             lambda v, m=m_, nu=nu: st.beta(m * nu, (1 - m) * nu).logpdf(v)))
    # Uniform, Flat, HalfFlat
    lo, hi = -1.5, 2.5
    add(case("Uniform", jv.Uniform, dict(lower=lo, upper=hi), u(lo, hi),
             lambda v, lo=lo, hi=hi: st.uniform(lo, hi - lo).logpdf(v)))
    lo3, hi3 = u(-2, 0, 3), u(1, 3, 3)
    add(case("Uniform-batched", jv.Uniform, dict(lower=lo3, upper=hi3), u(lo3, hi3, (4, 3)),
             lambda v, lo=lo3, hi=hi3: st.uniform(lo, hi - lo).logpdf(v)))
    add(case("Flat", jv.Flat, {}, 3 * normal(), lambda v: np.zeros_like(v)))
    add(case("Flat-batched", jv.Flat, {}, 3 * normal((4, 3)), lambda v: np.zeros_like(v)))
    add(case("HalfFlat", jv.HalfFlat, {}, pos(), lambda v: np.zeros_like(v)))
    add(case("HalfFlat-batched", jv.HalfFlat, {}, pos((4, 3)), lambda v: np.zeros_like(v)))

    # TruncatedNormal: lower only, upper only, both
    def tn(v, mu, s, lo=-np.inf, hi=np.inf):
        return st.truncnorm((lo - mu) / s, (hi - mu) / s, loc=mu, scale=s).logpdf(v)

    mu, s, lo = normal(), pos(), 0.5
    add(case("TruncatedNormal-lower", jv.TruncatedNormal, dict(mu=mu, sigma=s, lower=lo), lo + pos(),
             lambda v, mu=mu, s=s, lo=lo: tn(v, mu, s, lo=lo)))
    mu, s, hi = normal(), pos(), -0.3
    add(case("TruncatedNormal-upper", jv.TruncatedNormal, dict(mu=mu, sigma=s, upper=hi), hi - pos(),
             lambda v, mu=mu, s=s, hi=hi: tn(v, mu, s, hi=hi)))
    mu, s, lo, hi = normal(), pos(), -1.0, 2.0
    add(case("TruncatedNormal-both", jv.TruncatedNormal, dict(mu=mu, sigma=s, lower=lo, upper=hi), u(lo, hi),
             lambda v, mu=mu, s=s, lo=lo, hi=hi: tn(v, mu, s, lo, hi)))
    mu, s, lo3 = normal(3), pos(3), u(-1, 0, 3)
    add(case("TruncatedNormal-lower-batched", jv.TruncatedNormal, dict(mu=mu, sigma=s, lower=lo3),
             lo3 + pos((4, 3)), lambda v, mu=mu, s=s, lo=lo3: tn(v, mu, s, lo=lo)))
    mu, t, lo3, hi = normal(3), pos(3), u(-2, -1, 3), 1.5
    add(case("TruncatedNormal-both-tau-batched", jv.TruncatedNormal, dict(mu=mu, tau=t, lower=lo3, upper=hi),
             u(lo3, hi, (4, 3)), lambda v, mu=mu, t=t, lo=lo3, hi=hi: tn(v, mu, t**-0.5, lo, hi)))
    mu, s, hi3 = normal(3), pos(3), u(0, 1, 3)
    add(case("TruncatedNormal-upper-batched", jv.TruncatedNormal, dict(mu=mu, sigma=s, upper=hi3),
             hi3 - pos((4, 3)), lambda v, mu=mu, s=s, hi=hi3: tn(v, mu, s, hi=hi)))
    # far in the tails, where a difference of CDFs underflows (scipy's truncnorm stays accurate there)
    for id_, lo_, hi_, x_ in [("both-upper-tail", 8.0, 10.0, 8.3), ("both-lower-tail", -12.0, -9.0, -9.2),
                              ("both-far", 30.0, 31.0, 30.2), ("lower-far", 40.0, None, 40.01),
                              ("upper-far", None, -40.0, -40.02)]:
        kw = {k: v for k, v in dict(lower=lo_, upper=hi_).items() if v is not None}
        add(case(f"TruncatedNormal-{id_}", jv.TruncatedNormal, dict(mu=0.5, sigma=1.0, **kw), x_,
                 lambda v, kw=kw: tn(v, 0.5, 1.0, kw.get("lower", -np.inf), kw.get("upper", np.inf))))
    # Weibull, ChiSquared, SkewNormal
    a, b, x = pos(), pos(), pos()
    add(case("Weibull", jv.Weibull, dict(alpha=a, beta=b), x, lambda v, a=a, b=b: st.weibull_min(a, scale=b).logpdf(v)))
    a, b, x = pos(3), pos(3), pos((4, 3))
    add(case("Weibull-batched", jv.Weibull, dict(alpha=a, beta=b), x,
             lambda v, a=a, b=b: st.weibull_min(a, scale=b).logpdf(v)))
    nu, x = u(1, 6), pos()
    add(case("ChiSquared", jv.ChiSquared, dict(nu=nu), x, lambda v, nu=nu: st.chi2(nu).logpdf(v)))
    nu, x = u(1, 6, 3), pos((4, 3))
    add(case("ChiSquared-batched", jv.ChiSquared, dict(nu=nu), x, lambda v, nu=nu: st.chi2(nu).logpdf(v)))
    mu, s, al, x = normal(), pos(), 2 * normal(), normal()
    add(case("SkewNormal", jv.SkewNormal, dict(mu=mu, sigma=s, alpha=al), x,
             lambda v, mu=mu, s=s, al=al: st.skewnorm(al, mu, s).logpdf(v)))
    mu, s, al, x = normal(3), pos(3), 2 * normal(3), normal((4, 3))
    add(case("SkewNormal-batched", jv.SkewNormal, dict(mu=mu, sigma=s, alpha=al), x,
             lambda v, mu=mu, s=s, al=al: st.skewnorm(al, mu, s).logpdf(v)))
    mu, t, x = normal(), pos(), normal()
    add(case("SkewNormal-tau-default-alpha", jv.SkewNormal, dict(mu=mu, tau=t), x,  # PyMC's default alpha=1
             lambda v, mu=mu, t=t: st.skewnorm(1.0, mu, t**-0.5).logpdf(v)))

    # MvNormal: cov / chol (lower and upper) / tau
    mu, cov = normal(3), spd(3)
    add(case("MvNormal-cov", jv.MvNormal, dict(mu=mu, cov=cov), normal(3),
             lambda v, mu=mu, cov=cov: mvn_ref(v, mu, cov)))
    mu, cov = normal(3), spd(3)
    add(case("MvNormal-cov-batched", jv.MvNormal, dict(mu=mu, cov=cov), normal((4, 3)),
             lambda v, mu=mu, cov=cov: mvn_ref(v, mu, cov)))
    mu, cov = normal((2, 3)), spd(3, 2)
    add(case("MvNormal-cov-stack", jv.MvNormal, dict(mu=mu, cov=cov), normal((2, 3)),
             lambda v, mu=mu, cov=cov: mvn_ref(v, mu, cov)))
    mu, cov = normal(3), spd(3)
    add(case("MvNormal-chol", jv.MvNormal, dict(mu=mu, chol=np.linalg.cholesky(cov)), normal(3),
             lambda v, mu=mu, cov=cov: mvn_ref(v, mu, cov)))
    mu, cov = normal((4, 3)), spd(3)
    add(case("MvNormal-chol-batched", jv.MvNormal, dict(mu=mu, chol=np.linalg.cholesky(cov)), normal((4, 3)),
             lambda v, mu=mu, cov=cov: mvn_ref(v, mu, cov)))
    mu, cov = normal(3), spd(3)
    add(case("MvNormal-chol-upper", jv.MvNormal, dict(mu=mu, chol=np.linalg.cholesky(cov).T, lower=False),
             normal(3), lambda v, mu=mu, cov=cov: mvn_ref(v, mu, cov)))
    mu, cov = normal(3), spd(3)
    add(case("MvNormal-tau", jv.MvNormal, dict(mu=mu, tau=np.linalg.inv(cov)), normal(3),
             lambda v, mu=mu, cov=cov: mvn_ref(v, mu, cov)))
    mu, cov = normal(3), spd(3)
    add(case("MvNormal-tau-batched", jv.MvNormal, dict(mu=mu, tau=np.linalg.inv(cov)), normal((4, 3)),
             lambda v, mu=mu, cov=cov: mvn_ref(v, mu, cov)))
    # Dirichlet
    a = pos(4)
    add(case("Dirichlet", jv.Dirichlet, dict(a=a), simplex(4), lambda v, a=a: dirichlet_ref(v, a)))
    a = pos(3)
    add(case("Dirichlet-batched", jv.Dirichlet, dict(a=a), simplex((5, 3)), lambda v, a=a: dirichlet_ref(v, a)))
    a = pos((2, 3))
    add(case("Dirichlet-batched-a", jv.Dirichlet, dict(a=a), simplex((2, 3)), lambda v, a=a: dirichlet_ref(v, a)))

    # Discrete
    p = u(0.1, 0.9)
    add(case("Bernoulli", jv.Bernoulli, dict(p=p), 1, lambda v, p=p: st.bernoulli(p).logpmf(v)))
    p = u(0.1, 0.9, 3)
    add(case("Bernoulli-batched", jv.Bernoulli, dict(p=p), rng.integers(0, 2, (4, 3)),
             lambda v, p=p: st.bernoulli(p).logpmf(v)))
    lp = normal()
    add(case("Bernoulli-logit", jv.Bernoulli, dict(logit_p=lp), 0,
             lambda v, lp=lp: st.bernoulli(sp.expit(lp)).logpmf(v)))
    lp = 2 * normal(3)
    add(case("Bernoulli-logit-batched", jv.Bernoulli, dict(logit_p=lp), rng.integers(0, 2, (4, 3)),
             lambda v, lp=lp: st.bernoulli(sp.expit(lp)).logpmf(v)))
    p = u(0.1, 0.9)
    add(case("Binomial", jv.Binomial, dict(n=10, p=p), 4, lambda v, p=p: st.binom(10, p).logpmf(v)))
    n3, p = np.array([3, 7, 12]), u(0.1, 0.9, 3)
    add(case("Binomial-batched", jv.Binomial, dict(n=n3, p=p), rng.integers(0, n3 + 1, (4, 3)),
             lambda v, n=n3, p=p: st.binom(n, p).logpmf(v)))
    lp = normal(3)
    add(case("Binomial-logit-batched", jv.Binomial, dict(n=n3, logit_p=lp), rng.integers(0, n3 + 1, (4, 3)),
             lambda v, n=n3, lp=lp: st.binom(n, sp.expit(lp)).logpmf(v)))
    a, b = pos(), pos()
    add(case("BetaBinomial", jv.BetaBinomial, dict(alpha=a, beta=b, n=9), 5,
             lambda v, a=a, b=b: st.betabinom(9, a, b).logpmf(v)))
    a, b = pos(3), pos(3)
    add(case("BetaBinomial-batched", jv.BetaBinomial, dict(alpha=a, beta=b, n=n3), rng.integers(0, n3 + 1, (4, 3)),
             lambda v, a=a, b=b, n=n3: st.betabinom(n, a, b).logpmf(v)))
    mu = pos()
    add(case("Poisson", jv.Poisson, dict(mu=mu), 2, lambda v, mu=mu: st.poisson(mu).logpmf(v)))
    mu = 3 * pos(3)
    add(case("Poisson-batched", jv.Poisson, dict(mu=mu), rng.integers(0, 8, (4, 3)),
             lambda v, mu=mu: st.poisson(mu).logpmf(v)))
    mu, al = 3 * pos(), pos()
    add(case("NegativeBinomial-mu-alpha", jv.NegativeBinomial, dict(mu=mu, alpha=al), 3,
             lambda v, mu=mu, al=al: st.nbinom(al, al / (mu + al)).logpmf(v)))
    mu, al = 3 * pos(3), pos(3)
    add(case("NegativeBinomial-mu-alpha-batched", jv.NegativeBinomial, dict(mu=mu, alpha=al),
             rng.integers(0, 10, (4, 3)), lambda v, mu=mu, al=al: st.nbinom(al, al / (mu + al)).logpmf(v)))
    p, n = u(0.2, 0.8), 3 * pos()
    add(case("NegativeBinomial-p-n", jv.NegativeBinomial, dict(p=p, n=n), 4,
             lambda v, p=p, n=n: st.nbinom(n, p).logpmf(v)))
    p, n = u(0.2, 0.8, 3), 3 * pos(3)
    add(case("NegativeBinomial-p-n-batched", jv.NegativeBinomial, dict(p=p, n=n), rng.integers(0, 10, (4, 3)),
             lambda v, p=p, n=n: st.nbinom(n, p).logpmf(v)))

    def cat_ref(v, logp):
        logp = np.broadcast_to(logp, np.shape(v) + logp.shape[-1:])
        return np.take_along_axis(logp, np.asarray(v)[..., None], -1)[..., 0]

    p = pos(4)  # unnormalised, as PyMC allows
    add(case("Categorical", jv.Categorical, dict(p=p), 2, lambda v, p=p: cat_ref(v, np.log(p / p.sum()))))
    p = simplex((4, 3))
    add(case("Categorical-batched-p", jv.Categorical, dict(p=p), rng.integers(0, 3, 4),
             lambda v, p=p: cat_ref(v, np.log(p))))
    p = simplex(3)
    add(case("Categorical-batched-obs", jv.Categorical, dict(p=p), rng.integers(0, 3, (2, 5)),
             lambda v, p=p: cat_ref(v, np.log(p))))
    lp = normal(4)
    add(case("Categorical-logit", jv.Categorical, dict(logit_p=lp), 3, lambda v, lp=lp: cat_ref(v, sp.log_softmax(lp))))
    lp = normal((4, 3))
    add(case("Categorical-logit-batched", jv.Categorical, dict(logit_p=lp), rng.integers(0, 3, 4),
             lambda v, lp=lp: cat_ref(v, sp.log_softmax(lp, axis=-1))))
    p = u(0.1, 0.9)
    add(case("Geometric", jv.Geometric, dict(p=p), 3, lambda v, p=p: st.geom(p).logpmf(v)))  # support 1, 2, ...
    p = u(0.1, 0.9, 3)
    add(case("Geometric-batched", jv.Geometric, dict(p=p), rng.integers(1, 8, (4, 3)),
             lambda v, p=p: st.geom(p).logpmf(v)))
    add(case("DiscreteUniform", jv.DiscreteUniform, dict(lower=-2, upper=5), 3,
             lambda v: st.randint(-2, 6).logpmf(v)))
    lo3, hi3 = np.array([0, -3, 2]), np.array([4, 0, 9])
    add(case("DiscreteUniform-batched", jv.DiscreteUniform, dict(lower=lo3, upper=hi3),
             rng.integers(lo3, hi3 + 1, (4, 3)), lambda v, lo=lo3, hi=hi3: st.randint(lo, hi + 1).logpmf(v)))

    # NormalMixture
    w, mu, s = simplex(3), normal(3), pos(3)

    def nm_ref(v, w, mu, s):
        return mixture_ref(v, w, [lambda x, m=m, sk=sk: st.norm(m, sk).logpdf(x)
                                  for m, sk in zip(np.moveaxis(mu, -1, 0), np.moveaxis(s, -1, 0))])

    add(case("NormalMixture", jv.NormalMixture, dict(w=w, mu=mu, sigma=s), normal(),
             lambda v, w=w, mu=mu, s=s: nm_ref(v, w, mu, s)))
    add(case("NormalMixture-batched-obs", jv.NormalMixture, dict(w=w, mu=mu, sigma=s), 2 * normal(5),
             lambda v, w=w, mu=mu, s=s: nm_ref(v, w, mu, s)))
    w2, mu2, t2 = simplex(2), normal((3, 2)), pos((3, 2))
    add(case("NormalMixture-batched-tau", jv.NormalMixture, dict(w=w2, mu=mu2, tau=t2), normal((4, 3)),
             lambda v, w=w2, mu=mu2, t=t2: nm_ref(v, w, mu, t**-0.5)))
    # Mixture of a list of components
    w = simplex(2)
    m0, s0, nu1, m1, s1 = normal(), pos(), u(2, 6), normal(), pos()
    comps = lambda m0=m0, s0=s0, nu1=nu1, m1=m1, s1=s1: [  # noqa: E731
        jv.Normal.dist(m0, s0), jv.StudentT.dist(nu1, m1, s1)]
    refs = [lambda x, m0=m0, s0=s0: st.norm(m0, s0).logpdf(x),
            lambda x, nu1=nu1, m1=m1, s1=s1: st.t(nu1, m1, s1).logpdf(x)]
    add(case("Mixture-list", jv.Mixture, dict(w=w, comp_dists=comps), normal(),
             lambda v, w=w, refs=refs: mixture_ref(v, w, refs)))
    add(case("Mixture-list-batched-obs", jv.Mixture, dict(w=w, comp_dists=comps), 2 * normal(5),
             lambda v, w=w, refs=refs: mixture_ref(v, w, refs)))
    w = simplex(2)
    mu3, a3, b3 = normal(3), pos(3), pos(3)
    comps3 = lambda mu3=mu3, b3=b3: [jv.Normal.dist(mu3, 1.5), jv.Laplace.dist(0.0, b3)]  # noqa: E731
    refs3 = [lambda x, mu3=mu3: st.norm(mu3, 1.5).logpdf(x), lambda x, b3=b3: st.laplace(0.0, b3).logpdf(x)]
    add(case("Mixture-list-batched-params", jv.Mixture, dict(w=w, comp_dists=comps3), normal((4, 3)),
             lambda v, w=w, refs=refs3: mixture_ref(v, w, refs)))
    w, r = simplex(2), np.array([0.7, 5.0])
    add(case("Mixture-list-Poisson", jv.Mixture,
             dict(w=w, comp_dists=lambda r=r: [jv.Poisson.dist(r[0]), jv.Poisson.dist(r[1])]), rng.integers(0, 9, 6),
             lambda v, w=w, r=r: mixture_ref(v, w, [lambda x, k=k: st.poisson(k).logpmf(x) for k in r])))
    # Mixture of one batched component (last axis indexes the components)
    w, muK, sK = simplex(3), normal(3), pos(3)
    compK = lambda muK=muK, sK=sK: jv.Normal.dist(muK, sK)  # noqa: E731
    refsK = [lambda x, m=m, sk=sk: st.norm(m, sk).logpdf(x) for m, sk in zip(muK, sK)]
    add(case("Mixture-batched-component", jv.Mixture, dict(w=w, comp_dists=compK), normal(),
             lambda v, w=w, refs=refsK: mixture_ref(v, w, refs)))
    add(case("Mixture-batched-component-obs", jv.Mixture, dict(w=w, comp_dists=compK), 2 * normal(5),
             lambda v, w=w, refs=refsK: mixture_ref(v, w, refs)))
    w, aK, bK = simplex(2), pos(2), pos(2)
    compG = lambda aK=aK, bK=bK: jv.Gamma.dist(alpha=aK, beta=bK)  # noqa: E731
    refsG = [lambda x, a=a, b=b: st.gamma(a, scale=1 / b).logpdf(x) for a, b in zip(aK, bK)]
    add(case("Mixture-batched-Gamma", jv.Mixture, dict(w=w, comp_dists=compG), pos((4, 3)),
             lambda v, w=w, refs=refsG: mixture_ref(v, w, refs)))
    # GaussianRandomWalk: init logpdf + normal logpdf of the differences
    m, s, s0 = normal(), pos(), pos()
    init = lambda s0=s0: jv.Normal.dist(0.5, s0)  # noqa: E731
    add(case("GaussianRandomWalk", jv.GaussianRandomWalk, dict(mu=m, sigma=s, init_dist=init), 2 * normal(6),
             lambda v, m=m, s=s, s0=s0: grw_ref(v, m, s, st.norm(0.5, s0).logpdf)))
    add(case("GaussianRandomWalk-steps", jv.GaussianRandomWalk, dict(mu=m, sigma=s, init_dist=init, steps=4),
             2 * normal(5), lambda v, m=m, s=s, s0=s0: grw_ref(v, m, s, st.norm(0.5, s0).logpdf)))
    m3, s3, c3 = normal(3), pos(3), normal(3)
    add(case("GaussianRandomWalk-batched", jv.GaussianRandomWalk,
             dict(mu=m3, sigma=s3, init_dist=lambda c3=c3: jv.Cauchy.dist(c3, 2.0)), 2 * normal((3, 6)),
             lambda v, m=m3, s=s3, c=c3: grw_ref(v, m, s, st.cauchy(c, 2.0).logpdf)))
    return C


def _materialise(kwargs):
    """Component distributions are built lazily (in float64, inside the test)."""
    return {k: (v() if callable(v) else v) for k, v in kwargs.items()}


@pytest.mark.parametrize("cls, kwargs, value, ref", _table())
def test_observed_logp_matches_scipy(cls, kwargs, value, ref):
    with jv.Model() as m:
        cls("x", observed=value, **_materialise(kwargs))
    got = jax.jit(m.compile().logp_terms)(jnp.zeros(0))["x"]
    expected = np.sum(ref(value))
    assert np.isfinite(expected)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(float(got), expected, rtol=RTOL, atol=ATOL)


def test_parameters_given_as_nodes():
    """Data nodes and expressions as parameters (upper chol, truncation bounds, weights) give the same densities."""
    r = np.random.default_rng(5)
    A = r.normal(size=(3, 3))
    cov, mu = A @ A.T + 3 * np.eye(3), r.normal(size=3)
    x = r.normal(size=(4, 3))
    w, muK = np.array([0.3, 0.7]), r.normal(size=2)
    with jv.Model() as m:
        U = jv.Data("U", np.linalg.cholesky(cov).T)
        jv.MvNormal("mv", mu=jv.Data("mu", mu), chol=U, lower=False, observed=x)
        lo = jv.Data("lo", np.array([-1.0, 0.0, 0.5]))
        jv.TruncatedNormal("tn", mu=0.2, sigma=jv.Data("s", 2.0) * 0.5, lower=lo, upper=lo + 2.0,
                           observed=np.array([0.0, 1.0, 2.0]))
        jv.NormalMixture("nm", w=jv.Data("w", w), mu=jv.Data("muK", muK), sigma=1.0, observed=x[0])
    terms = jax.jit(m.compile().logp_terms)(jnp.zeros(0))
    np.testing.assert_allclose(float(terms["mv"]), mvn_ref(x, mu, cov).sum(), rtol=RTOL)
    lo_ = np.array([-1.0, 0.0, 0.5])
    np.testing.assert_allclose(float(terms["tn"]),
                               st.truncnorm((lo_ - 0.2), (lo_ + 2 - 0.2), 0.2, 1.0).logpdf([0.0, 1.0, 2.0]).sum(),
                               rtol=RTOL)
    ref_nm = mixture_ref(x[0], w, [lambda v, m=m_: st.norm(m, 1.0).logpdf(v) for m_ in muK])
    np.testing.assert_allclose(float(terms["nm"]), ref_nm.sum(), rtol=RTOL)


# ---------------------------------------------------------------------------------------------
# 2. unconstrained densities integrate to 1 (and carry PyMC's value-variable suffix)
# ---------------------------------------------------------------------------------------------
UNCONSTRAINED = [
    pytest.param(jv.HalfNormal, dict(sigma=2.0), "log", id="HalfNormal"),
    pytest.param(jv.HalfCauchy, dict(beta=1.5), "log", id="HalfCauchy"),
    pytest.param(jv.HalfStudentT, dict(nu=3.0, sigma=2.0), "log", id="HalfStudentT"),
    pytest.param(jv.LogNormal, dict(mu=0.5, sigma=0.8), "log", id="LogNormal"),
    pytest.param(jv.Exponential, dict(lam=1.7), "log", id="Exponential"),
    pytest.param(jv.Exponential, dict(scale=0.3), "log", id="Exponential-scale"),
    pytest.param(jv.Gamma, dict(alpha=2.5, beta=1.5), "log", id="Gamma"),
    pytest.param(jv.Gamma, dict(mu=2.0, sigma=1.0), "log", id="Gamma-mu-sigma"),
    pytest.param(jv.InverseGamma, dict(alpha=3.0, beta=2.0), "log", id="InverseGamma"),
    pytest.param(jv.Beta, dict(alpha=2.0, beta=3.0), "logodds", id="Beta"),
    pytest.param(jv.Beta, dict(alpha=0.8, beta=1.5), "logodds", id="Beta-small"),
    pytest.param(jv.Uniform, dict(lower=-1.0, upper=3.0), "interval", id="Uniform"),
    pytest.param(jv.TruncatedNormal, dict(mu=1.0, sigma=2.0, lower=-1.0, upper=2.0), "interval",
                 id="TruncatedNormal-both"),
    pytest.param(jv.TruncatedNormal, dict(mu=0.0, sigma=1.0, lower=0.5), "lowerbound", id="TruncatedNormal-lower"),
    pytest.param(jv.TruncatedNormal, dict(mu=0.0, sigma=1.5, upper=0.5), "upperbound", id="TruncatedNormal-upper"),
    pytest.param(jv.Weibull, dict(alpha=1.5, beta=2.0), "log", id="Weibull"),
    pytest.param(jv.ChiSquared, dict(nu=4.0), "log", id="ChiSquared"),
]


@pytest.mark.parametrize("cls, kwargs, suffix", UNCONSTRAINED)
def test_unconstrained_density_normalised(cls, kwargs, suffix):
    with jv.Model() as m:
        cls("x", **kwargs)
    cm = m.compile()
    assert cm.value_names == [f"x_{suffix}__"]
    assert m.value_vars == [f"x_{suffix}__"]
    logp = jax.jit(lambda v: cm.logp(jnp.reshape(v, (1,))))

    def f(v):
        return float(np.exp(logp(v)))

    u0 = float(cm.initial_point()[0])
    assert np.isfinite(logp(u0))
    # the tails beyond |u| = 40 carry < 1e-15 of the mass for these parameters
    total, err = scipy.integrate.quad(f, -40.0, 40.0, points=[u0], limit=400, epsabs=1e-12, epsrel=1e-10)
    assert abs(total - 1.0) < 1e-5, (total, err)
    # and the Jacobian-free density is the constrained one at the transformed point
    x = float(cm.unravel(jnp.array([u0 + 0.3]))["x"])
    with jv.Model() as mo:
        cls("x", observed=x, **kwargs)
    np.testing.assert_allclose(float(cm.logp(jnp.array([u0 + 0.3]), jacobian=False)),
                               float(mo.compile().logp(jnp.zeros(0))), rtol=RTOL)


def test_unconstrained_density_vmap_grid_matches_quad():
    """cm.logp is vmappable over a grid: a trapezoid rule on it integrates the Gamma density to 1."""
    with jv.Model() as m:
        jv.Gamma("x", alpha=2.0, beta=3.0)
    cm = m.compile()
    grid = jnp.linspace(-30.0, 6.0, 4001)
    dens = jnp.exp(jax.jit(jax.vmap(cm.logp))(grid[:, None]))
    assert abs(float(jnp.trapezoid(dens, grid)) - 1.0) < 1e-8


# ---------------------------------------------------------------------------------------------
# 3. constrained vs unconstrained: Dirichlet, LKJCholeskyCov
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a", [np.array([0.7, 2.0, 1.3, 3.1]), np.array([[1.5, 0.5, 2.0], [3.0, 1.0, 0.8]])],
                         ids=["K4", "batched-2x3"])
def test_dirichlet_unconstrained_consistency(a):
    with jv.Model() as m:
        jv.Dirichlet("w", a=a)
    cm = m.compile()
    K = a.shape[-1]
    assert cm.value_names == ["w_simplex__"]
    assert cm.size == a.size // K * (K - 1)

    @jax.jit
    def evaluate(flat):
        # independent log-Jacobian: u -> first K-1 coordinates of each simplex, by forward-mode AD
        jac = jax.jacfwd(lambda f: cm.unravel(f)["w"][..., :-1].reshape(-1))(flat)
        return cm.unravel(flat)["w"], cm.logp(flat), cm.logp(flat, jacobian=False), jnp.linalg.slogdet(jac)[1]

    r = np.random.default_rng(7)
    for _ in range(3):
        x, lp, lp_nojac, logjac = evaluate(jnp.asarray(r.normal(size=cm.size)))
        x = np.asarray(x)
        assert x.shape == a.shape
        assert np.all(x > 0) and np.allclose(x.sum(-1), 1.0)
        ref = np.sum(dirichlet_ref(x, a))
        np.testing.assert_allclose(float(lp_nojac), ref, rtol=RTOL)
        np.testing.assert_allclose(float(lp) - float(logjac), ref, rtol=RTOL)


def test_numpyro_lkj_cholesky_measure_n2():
    """The reference below uses numpyro's LKJCholesky density w.r.t. the strictly lower entries: check n=2."""
    eta = 2.0
    logp = jax.jit(lambda w: npd.LKJCholesky(2, eta).log_prob(jnp.array([[1.0, 0.0], [w, jnp.sqrt(1 - w * w)]])))
    total, _ = scipy.integrate.quad(lambda w: float(np.exp(logp(w))), -1, 1)
    assert abs(total - 1) < 1e-8


_lkj_logpdf = jax.jit(lambda L, eta: npd.LKJCholesky(L.shape[-1], eta).log_prob(L))


def _lkj_reference(L, eta, sd_logpdf):
    """log p(packed L) = sd density + LKJ(L_corr) + sum_i (log corr_diag_i - i log std_i)."""
    n = L.shape[-1]
    stds = np.sqrt((L**2).sum(-1))
    Lc = L / stds[:, None]
    lkj = float(_lkj_logpdf(jnp.asarray(Lc), eta))
    return np.sum(sd_logpdf(stds)) + lkj + np.sum(np.log(np.diag(Lc)) - np.arange(n) * np.log(stds))


def _packed_from(sd, w, n):
    """Packed L from the stds and the strictly-lower entries of the correlation Cholesky factor."""
    rows, cols = np.tril_indices(n, -1)
    Lc = jnp.zeros((n, n)).at[rows, cols].set(w)
    Lc = Lc.at[jnp.arange(n), jnp.arange(n)].set(jnp.sqrt(1 - jnp.sum(Lc**2, -1)))
    L = Lc * sd[:, None]
    r, c = np.tril_indices(n)
    return L[r, c]


def test_lkj_cholesky_cov_density():
    eta, n = 2.0, 3
    with jv.Model() as m:
        chol, corr, stds = jv.LKJCholeskyCov("chol", eta=eta, n=n, sd_dist=jv.Exponential.dist(1.0))
    cm = m.compile()
    assert cm.value_names == ["chol_cholesky-cov-packed__"]
    assert cm.size == 6 and chol.shape == (3, 3) and corr.shape == (3, 3) and stds.shape == (3,)
    assert {d.name for d in m.deterministics} == {"chol_corr", "chol_stds"}
    r = np.random.default_rng(11)
    rows, cols = np.tril_indices(n)
    evaluate = jax.jit(lambda f: (cm.unravel(f)["chol"], cm.logp(f), cm.logp(f, jacobian=False),
                                  *cm.evaluate([chol, corr, stds], f)))
    packed_jac = jax.jit(jax.jacfwd(lambda th: _packed_from(th[:n], th[n:], n)))
    for _ in range(3):
        flat = jnp.asarray(r.normal(scale=0.7, size=6))
        packed, lp, lp_nojac, got_chol, got_corr, got_stds = evaluate(flat)
        packed = np.asarray(packed)
        L = np.zeros((n, n))
        L[rows, cols] = packed
        ref = _lkj_reference(L, eta, st.expon().logpdf)
        np.testing.assert_allclose(float(lp_nojac), ref, rtol=RTOL)
        # unconstrained: + log-Jacobian of exp on the diagonal entries
        np.testing.assert_allclose(float(lp), ref + float(np.sum(np.asarray(flat)[diag_indices(n)])), rtol=RTOL)
        # independent Jacobian of (stds, strictly-lower L_corr) -> packed L, by forward-mode AD
        sd = np.sqrt((L**2).sum(-1))
        w = (L / sd[:, None])[np.tril_indices(n, -1)]
        theta = jnp.concatenate([jnp.asarray(sd), jnp.asarray(w)])
        J = packed_jac(theta)
        np.testing.assert_allclose(np.asarray(_packed_from(jnp.asarray(sd), jnp.asarray(w), n)), packed, rtol=1e-10)
        Lc = L / sd[:, None]
        ref2 = (np.sum(st.expon().logpdf(sd)) + float(_lkj_logpdf(jnp.asarray(Lc), eta))
                - np.linalg.slogdet(np.asarray(J))[1])
        np.testing.assert_allclose(ref, ref2, rtol=RTOL)
        # the Deterministics
        np.testing.assert_allclose(np.asarray(got_chol), L, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(got_stds), sd, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(got_corr), Lc @ Lc.T, rtol=1e-12, atol=1e-14)


def test_lkj_cholesky_cov_observed_and_compute_corr_false():
    eta, n = 1.5, 3
    r = np.random.default_rng(3)
    A = r.normal(size=(n, n + 2))
    cov = A @ A.T
    Lc = np.linalg.cholesky(cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov))))  # a random correlation factor
    sd = r.gamma(2.0, size=n)
    L = Lc * sd[:, None]
    packed = L[np.tril_indices(n)]
    with jv.Model() as m:
        out = jv.LKJCholeskyCov("chol", eta=eta, n=n, sd_dist=jv.HalfNormal.dist(2.0), compute_corr=False,
                                observed=packed)
    assert out.shape == (6,)
    got = float(jax.jit(m.compile().logp_terms)(jnp.zeros(0))["chol"])
    np.testing.assert_allclose(got, _lkj_reference(L, eta, st.halfnorm(scale=2.0).logpdf), rtol=RTOL)


def test_lkj_cholesky_cov_normalised_n2():
    """For n=2 the unconstrained density integrates to 1 (trapezoid on a smooth reparametrisation).

    x = (log sd0, log sd1, atanh(w)) -> u = (log L00, L10, log L11); the integrand is
    exp(logp(u(x))) |det du/dx| with the Jacobian from forward-mode AD.
    """
    with jv.Model() as m:
        jv.LKJCholeskyCov("chol", eta=2.0, n=2, sd_dist=jv.Exponential.dist(1.0))
    cm = m.compile()

    def u_of(x):
        sd1, w = jnp.exp(x[1]), jnp.tanh(x[2])
        return jnp.stack([x[0], sd1 * w, x[1] + 0.5 * jnp.log1p(-w * w)])

    def integrand(x):
        J = jax.jacfwd(u_of)(x)
        return jnp.exp(cm.logp(u_of(x)) + jnp.linalg.slogdet(J)[1])

    h = 0.5  # trapezoid error ~ exp(-pi^2 / h) for integrands analytic in a strip of half-width pi/2
    a = jnp.arange(-25.0, 4.0 + h / 2, h)
    z = jnp.arange(-12.0, 12.0 + h / 2, h)
    X0, X1, X2 = jnp.meshgrid(a, a, z, indexing="ij")
    pts = jnp.stack([X0.ravel(), X1.ravel(), X2.ravel()], -1)
    vals = jax.jit(jax.vmap(integrand))(pts)
    total = float(jnp.sum(vals)) * h**3
    assert abs(total - 1.0) < 1e-5, total


def test_truncated_normal_infinite_bounds_mean_no_bound():
    """As in PyMC, lower=-inf / upper=inf are the same as no bound."""
    with jv.Model() as m:
        jv.TruncatedNormal("a", mu=0.3, sigma=2.0, lower=-np.inf, upper=np.inf)
        jv.TruncatedNormal("b", mu=0.3, sigma=2.0, lower=-np.inf, upper=1.0)
        jv.TruncatedNormal("c", mu=0.3, sigma=2.0, lower=0.0, upper=np.inf)
        jv.TruncatedNormal("y", mu=0.3, sigma=2.0, lower=-np.inf, upper=1.0, observed=np.array([0.5, -3.0]))
    cm = m.compile()
    assert cm.value_names == ["a", "b_upperbound__", "c_lowerbound__"]
    np.testing.assert_allclose(float(jax.jit(cm.logp_terms)(cm.initial_point())["y"]),
                               st.truncnorm(-np.inf, (1.0 - 0.3) / 2.0, 0.3, 2.0).logpdf([0.5, -3.0]).sum(),
                               rtol=RTOL)


# ---------------------------------------------------------------------------------------------
# 4. parameter checks, parameterisations, free discrete variables, observed support
# ---------------------------------------------------------------------------------------------
BAD_PARAMS = [
    pytest.param(lambda: jv.Normal("x", 0, -1.0), "sigma", id="Normal-sigma"),
    pytest.param(lambda: jv.Normal("x", mu=np.inf), "mu", id="Normal-mu-inf"),
    pytest.param(lambda: jv.Normal("x", 0, tau=0.0), "tau", id="Normal-tau"),
    pytest.param(lambda: jv.HalfNormal("x", sigma=np.array([1.0, -2.0])), "sigma", id="HalfNormal-array"),
    pytest.param(lambda: jv.Cauchy("x", 0, 0), "beta", id="Cauchy"),
    pytest.param(lambda: jv.StudentT("x", nu=-1.0), "nu", id="StudentT"),
    pytest.param(lambda: jv.Exponential("x", lam=0.0), "lam", id="Exponential"),
    pytest.param(lambda: jv.Exponential("x", scale=-1.0), "scale", id="Exponential-scale"),
    pytest.param(lambda: jv.Gamma("x", alpha=-1.0, beta=1.0), "alpha", id="Gamma"),
    pytest.param(lambda: jv.InverseGamma("x", alpha=1.0, beta=-1.0), "beta", id="InverseGamma"),
    pytest.param(lambda: jv.Beta("x", 1.0, -2.0), "beta", id="Beta"),
    pytest.param(lambda: jv.Beta("x", mu=1.5, sigma=0.1), "mu", id="Beta-mu"),
    pytest.param(lambda: jv.Beta("x", mu=0.5, sigma=0.6), "sigma", id="Beta-sigma-too-large"),
    pytest.param(lambda: jv.Uniform("x", 3.0, 1.0), "lower", id="Uniform-reversed"),
    pytest.param(lambda: jv.Uniform("x", np.zeros(2), np.array([1.0, 0.0])), "lower", id="Uniform-empty"),
    pytest.param(lambda: jv.TruncatedNormal("x", lower=2.0, upper=1.0), "lower", id="TruncatedNormal-reversed"),
    pytest.param(lambda: jv.TruncatedNormal("x", lower=np.nan), "lower", id="TruncatedNormal-nan-bound"),
    pytest.param(lambda: jv.TruncatedNormal("x", upper=-np.inf), "upper", id="TruncatedNormal-upper-minus-inf"),
    pytest.param(lambda: jv.Weibull("x", alpha=0.0, beta=1.0), "alpha", id="Weibull"),
    pytest.param(lambda: jv.ChiSquared("x", nu=-3.0), "nu", id="ChiSquared"),
    pytest.param(lambda: jv.TruncatedNormal("x", sigma=-1.0, lower=0.0), "sigma", id="TruncatedNormal"),
    pytest.param(lambda: jv.MvNormal("x", mu=np.zeros(2), cov=np.array([[1.0, 2.0], [2.0, 1.0]])), "cov",
                 id="MvNormal-cov"),
    pytest.param(lambda: jv.Dirichlet("x", a=np.array([1.0, 0.0])), "a", id="Dirichlet"),
    pytest.param(lambda: jv.NormalMixture("x", w=np.array([0.5, 0.6]), mu=np.zeros(2), sigma=np.ones(2)), "w",
                 id="NormalMixture-w"),
    pytest.param(lambda: jv.Mixture("x", w=np.array([0.2, 0.3]), comp_dists=jv.Normal.dist(np.zeros(2), 1.0)), "w",
                 id="Mixture-w"),
    pytest.param(lambda: jv.GaussianRandomWalk("x", sigma=-1.0, init_dist=jv.Normal.dist(0, 1), steps=3), "sigma",
                 id="GaussianRandomWalk"),
    pytest.param(lambda: jv.LKJCholeskyCov("x", eta=-1.0, n=2, sd_dist=jv.Exponential.dist(1.0)), "eta", id="LKJ"),
    pytest.param(lambda: jv.Poisson("x", mu=-1.0, observed=[1]), "mu", id="Poisson"),
    pytest.param(lambda: jv.Bernoulli("x", p=1.5, observed=[1]), "p", id="Bernoulli"),
    pytest.param(lambda: jv.Binomial("x", n=-2, p=0.5, observed=[0]), "n", id="Binomial-n"),
    pytest.param(lambda: jv.Binomial("x", n=2.5, p=0.5, observed=[0]), "n", id="Binomial-n-int"),
    pytest.param(lambda: jv.Categorical("x", p=np.array([0.5, -0.1]), observed=[0]), "p", id="Categorical"),
    pytest.param(lambda: jv.Geometric("x", p=2.0, observed=[1]), "p", id="Geometric"),
    pytest.param(lambda: jv.NegativeBinomial("x", mu=1.0, alpha=0.0, observed=[1]), "alpha", id="NegativeBinomial"),
]


@pytest.mark.parametrize("make, pname", BAD_PARAMS)
def test_invalid_constant_parameter_raises(make, pname):
    with jv.Model():
        with pytest.raises(ValueError) as info:
            make()
    msg = str(info.value)
    assert "'x'" in msg and pname in msg, msg


CONFLICTS = [
    pytest.param(lambda: jv.Normal("x", 0, sigma=1.0, tau=1.0), id="Normal-sigma-tau"),
    pytest.param(lambda: jv.HalfNormal("x", sigma=1.0, tau=1.0), id="HalfNormal-sigma-tau"),
    pytest.param(lambda: jv.LogNormal("x", sigma=1.0, tau=1.0), id="LogNormal-sigma-tau"),
    pytest.param(lambda: jv.StudentT("x", nu=3, sigma=1.0, lam=1.0), id="StudentT-sigma-lam"),
    pytest.param(lambda: jv.HalfStudentT("x", sigma=1.0, lam=1.0), id="HalfStudentT-sigma-lam"),
    pytest.param(lambda: jv.TruncatedNormal("x", sigma=1.0, tau=1.0, lower=0.0), id="TruncatedNormal-sigma-tau"),
    pytest.param(lambda: jv.Exponential("x", lam=1.0, scale=1.0), id="Exponential-lam-scale"),
    pytest.param(lambda: jv.Gamma("x", alpha=1.0, beta=1.0, mu=1.0), id="Gamma-alpha-mu"),
    pytest.param(lambda: jv.Gamma("x", mu=1.0), id="Gamma-mu-only"),
    pytest.param(lambda: jv.InverseGamma("x", alpha=1.0, sigma=1.0), id="InverseGamma-alpha-sigma"),
    pytest.param(lambda: jv.Beta("x", alpha=1.0, beta=1.0, mu=0.5, sigma=0.1), id="Beta-alpha-mu"),
    pytest.param(lambda: jv.Beta("x", mu=0.5, sigma=0.1, nu=3.0), id="Beta-sigma-nu"),
    pytest.param(lambda: jv.MvNormal("x", mu=np.zeros(2), cov=np.eye(2), chol=np.eye(2)), id="MvNormal-cov-chol"),
    pytest.param(lambda: jv.MvNormal("x", mu=np.zeros(2)), id="MvNormal-none"),
    pytest.param(lambda: jv.NormalMixture("x", w=np.array([0.5, 0.5]), mu=np.zeros(2), sigma=np.ones(2),
                                          tau=np.ones(2)), id="NormalMixture-sigma-tau"),
    pytest.param(lambda: jv.Bernoulli("x", p=0.5, logit_p=0.0, observed=[1]), id="Bernoulli-p-logit"),
    pytest.param(lambda: jv.Bernoulli("x", observed=[1]), id="Bernoulli-none"),
    pytest.param(lambda: jv.Binomial("x", n=3, p=0.5, logit_p=0.0, observed=[1]), id="Binomial-p-logit"),
    pytest.param(lambda: jv.Categorical("x", p=np.ones(2) / 2, logit_p=np.zeros(2), observed=[1]),
                 id="Categorical-p-logit"),
    pytest.param(lambda: jv.NegativeBinomial("x", mu=1.0, alpha=1.0, p=0.5, observed=[1]), id="NegativeBinomial-mu-p"),
    pytest.param(lambda: jv.NegativeBinomial("x", mu=1.0, n=1.0, observed=[1]), id="NegativeBinomial-mu-n"),
]


@pytest.mark.parametrize("make", CONFLICTS)
def test_conflicting_parameterisations_raise(make):
    with jv.Model():
        with pytest.raises(ValueError) as info:
            make()
    assert "'x'" in str(info.value)


FREE_DISCRETE = [
    pytest.param(lambda: jv.Poisson("k", 3.0), id="Poisson"),
    pytest.param(lambda: jv.Bernoulli("k", p=0.3), id="Bernoulli"),
    pytest.param(lambda: jv.Binomial("k", n=5, p=0.3), id="Binomial"),
    pytest.param(lambda: jv.BetaBinomial("k", alpha=1.0, beta=2.0, n=5), id="BetaBinomial"),
    pytest.param(lambda: jv.NegativeBinomial("k", mu=2.0, alpha=1.0), id="NegativeBinomial"),
    pytest.param(lambda: jv.Categorical("k", p=np.ones(3) / 3), id="Categorical"),
    pytest.param(lambda: jv.Geometric("k", p=0.3), id="Geometric"),
    pytest.param(lambda: jv.DiscreteUniform("k", 0, 4), id="DiscreteUniform"),
    pytest.param(lambda: jv.Mixture("k", w=np.ones(2) / 2, comp_dists=[jv.Poisson.dist(1.0), jv.Poisson.dist(4.0)]),
                 id="Mixture-Poisson"),
]


@pytest.mark.parametrize("make", FREE_DISCRETE)
def test_free_discrete_variable_raises(make):
    with jv.Model() as m:
        with pytest.raises(TypeError) as info:
            make()
    assert "'k'" in str(info.value)
    assert m.free_RVs == [] and "k" not in m


OUT_OF_SUPPORT = [
    pytest.param(lambda: jv.Poisson("y", 2.0, observed=np.array([1, -1, 3])), id="Poisson-negative"),
    pytest.param(lambda: jv.Poisson("y", 2.0, observed=np.array([1.5])), id="Poisson-non-integer"),
    pytest.param(lambda: jv.Bernoulli("y", p=0.3, observed=np.array([0, 2])), id="Bernoulli-2"),
    pytest.param(lambda: jv.Beta("y", 2.0, 2.0, observed=np.array([0.5, 1.5])), id="Beta-1.5"),
    pytest.param(lambda: jv.Categorical("y", p=np.ones(3) / 3, observed=np.array([0, 3])), id="Categorical-K"),
    pytest.param(lambda: jv.Categorical("y", logit_p=np.zeros(3), observed=np.array([-1])), id="Categorical-negative"),
    pytest.param(lambda: jv.Binomial("y", n=4, p=0.3, observed=np.array([5])), id="Binomial-above-n"),
    pytest.param(lambda: jv.Geometric("y", p=0.3, observed=np.array([0])), id="Geometric-0"),
    pytest.param(lambda: jv.DiscreteUniform("y", 1, 3, observed=np.array([4])), id="DiscreteUniform"),
    pytest.param(lambda: jv.HalfNormal("y", 1.0, observed=np.array([-0.1])), id="HalfNormal-negative"),
    pytest.param(lambda: jv.Exponential("y", 1.0, observed=np.array([-1.0])), id="Exponential-negative"),
    pytest.param(lambda: jv.Uniform("y", 0.0, 1.0, observed=np.array([1.2])), id="Uniform"),
    pytest.param(lambda: jv.TruncatedNormal("y", 0.0, 1.0, lower=0.0, observed=np.array([-0.5])),
                 id="TruncatedNormal"),
    pytest.param(lambda: jv.Dirichlet("y", a=np.ones(3), observed=np.array([0.5, 0.5, 0.5])), id="Dirichlet"),
]


@pytest.mark.parametrize("make", OUT_OF_SUPPORT)
def test_observed_outside_support_raises(make):
    with jv.Model():
        with pytest.raises(ValueError) as info:
            make()
    assert "'y'" in str(info.value)


def test_observed_support_checked_with_free_parent_when_parameter_free():
    with jv.Model():
        lam = jv.Exponential("lam", 1.0)
        with pytest.raises(ValueError, match="'y'"):
            jv.Poisson("y", lam, observed=np.array([2, -1]))
        jv.Poisson("y_ok", lam, observed=np.array([2, 0]))


# ---------------------------------------------------------------------------------------------
# 5. initial points
# ---------------------------------------------------------------------------------------------
INITIAL = [
    # name, constructor, expected constrained value (None: only finite and inside the support)
    ("normal", lambda: jv.Normal("normal", mu=1.3, sigma=2.0), 1.3),
    ("halfnormal", lambda: jv.HalfNormal("halfnormal", sigma=2.0), None),
    ("cauchy", lambda: jv.Cauchy("cauchy", 1.5, 2.0), 1.5),
    ("halfcauchy", lambda: jv.HalfCauchy("halfcauchy", 2.5), None),
    ("studentt", lambda: jv.StudentT("studentt", nu=1.0, mu=-0.7), -0.7),
    ("halfstudentt", lambda: jv.HalfStudentT("halfstudentt", nu=1.0, sigma=2.0), None),
    ("laplace", lambda: jv.Laplace("laplace", 0.4, 1.0), 0.4),
    ("logistic", lambda: jv.Logistic("logistic", -2.0, 1.0), -2.0),
    ("lognormal", lambda: jv.LogNormal("lognormal", 0.2, 0.5), None),
    ("exponential", lambda: jv.Exponential("exponential", 2.0), 0.5),
    ("gamma", lambda: jv.Gamma("gamma", 2.0, 4.0), 0.5),
    ("invgamma", lambda: jv.InverseGamma("invgamma", 3.0, 4.0), 2.0),
    ("invgamma_heavy", lambda: jv.InverseGamma("invgamma_heavy", 0.5, 1.0), None),  # mean infinite
    ("beta", lambda: jv.Beta("beta", 2.0, 3.0), 0.4),
    ("uniform", lambda: jv.Uniform("uniform", 2.0, 5.0), 3.5),
    ("flat", lambda: jv.Flat("flat"), 0.0),
    ("halfflat", lambda: jv.HalfFlat("halfflat"), None),
    ("tn_both", lambda: jv.TruncatedNormal("tn_both", mu=0.0, sigma=1.0, lower=-1.0, upper=1.0), 0.0),
    ("tn_lower", lambda: jv.TruncatedNormal("tn_lower", mu=0.0, sigma=1.0, lower=1.0), None),
    ("tn_upper", lambda: jv.TruncatedNormal("tn_upper", mu=0.0, sigma=1.0, upper=-1.0), None),
    ("tn_far", lambda: jv.TruncatedNormal("tn_far", mu=0.0, sigma=1.0, lower=30.0, upper=31.0), None),
    ("weibull", lambda: jv.Weibull("weibull", 1.5, 2.0), None),
    ("chisquared", lambda: jv.ChiSquared("chisquared", 3.0), 3.0),
    ("skewnormal", lambda: jv.SkewNormal("skewnormal", 0.0, 1.0, alpha=2.0), None),
    ("mvnormal", lambda: jv.MvNormal("mvnormal", mu=np.array([1.0, -1.0]), cov=np.eye(2)), np.array([1.0, -1.0])),
    ("dirichlet", lambda: jv.Dirichlet("dirichlet", a=np.array([1.0, 2.0, 1.0])), np.array([0.25, 0.5, 0.25])),
    ("normalmixture", lambda: jv.NormalMixture("normalmixture", w=np.array([0.5, 0.5]), mu=np.array([-1.0, 3.0]),
                                               sigma=np.ones(2)), 1.0),
    ("mixture", lambda: jv.Mixture("mixture", w=np.array([0.25, 0.75]),
                                   comp_dists=[jv.Normal.dist(0.0, 1.0), jv.Normal.dist(4.0, 1.0)]), 3.0),
    ("grw", lambda: jv.GaussianRandomWalk("grw", mu=0.5, sigma=1.0, init_dist=jv.Normal.dist(1.0, 1.0), steps=3),
     np.array([1.0, 1.5, 2.0, 2.5])),
    ("batched", lambda: jv.Gamma("batched", alpha=np.array([1.0, 2.0, 3.0]), beta=2.0), np.array([0.5, 1.0, 1.5])),
]


@pytest.fixture(scope="module")
def initial_model(_x64):
    with jv.Model() as m:
        for _, make, _ in INITIAL:
            make()
    cm = m.compile()
    point = m.initial_point()
    return m, cm, point, cm.unravel(cm.ravel(point))


@pytest.mark.parametrize("name, expected", [pytest.param(n, e, id=n) for n, _, e in INITIAL])
def test_initial_point(initial_model, name, expected):
    m, cm, point, values = initial_model
    rv = m[name]
    u_ = point[rv.value_name]
    assert np.all(np.isfinite(u_))
    x = np.asarray(values[name])
    assert x.shape == rv.shape
    assert np.all(np.isfinite(x))
    d = rv.spec.build(lambda node: jnp.asarray(node.value))  # constants only in this model
    assert bool(np.all(np.asarray(d.support(jnp.asarray(x)))))
    assert np.isfinite(float(jnp.sum(d.log_prob(jnp.asarray(x)))))
    if expected is not None:
        np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-12)


def test_initial_point_joint_logp_finite(initial_model):
    m, cm, point, _ = initial_model
    assert np.isfinite(m.logp())
    assert np.isfinite(float(cm.logp(cm.initial_point())))


def test_lkj_initial_point_is_identity():
    with jv.Model() as m:
        jv.LKJCholeskyCov("chol", eta=2.0, n=3, sd_dist=jv.Exponential.dist(1.0))
    cm = m.compile()
    packed = np.asarray(cm.unravel(cm.initial_point())["chol"])
    assert np.all(np.isfinite(packed)) and np.all(packed[diag_indices(3)] > 0)


def test_logp_of_a_variable_or_dist_is_a_lazy_node():
    """``jv.logp(rv, value)`` as PyMC's ``pm.logp``: elementwise, broadcast to the variable's shape, lazy
    in the variable's parameters (here a free variable's draws) and usable on unnamed dists."""
    with jv.Model() as m:
        mu = jv.Normal("mu", 0.0, 1.0)
        x = jv.Normal("x", mu, 2.0, shape=3)
        lp = jv.logp(x, np.array([0.0, 1.0, -2.0]))
    cm = m.compile()
    flat = np.array([0.5, 0, 0, 0], np.float32)  # mu = 0.5
    got = np.asarray(cm.evaluate([lp], flat)[0])
    np.testing.assert_allclose(got, st.norm(0.5, 2.0).logpdf([0.0, 1.0, -2.0]), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(jv.draw(jv.logp(jv.Gamma.dist(2.0, 3.0), 0.7))),
                               st.gamma(2.0, scale=1 / 3.0).logpdf(0.7), rtol=1e-5)
    with pytest.raises(TypeError, match="random variable"):
        jv.logp(np.ones(3), 1.0)


def test_distributions_namespace_as_pymcs():
    """``jv.distributions.__all__`` lists the distributions, as ``pm.distributions.__all__`` (the intro tutorial)."""
    assert {"Normal", "HalfNormal", "MvNormal", "Bernoulli", "Mixture"} <= set(jv.distributions.__all__)
    assert jv.distributions.Normal is jv.Normal
