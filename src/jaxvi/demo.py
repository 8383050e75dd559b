"""The main job (``jaxvi demo``): the seed workflows on fresh example data.

Until the inference engine lands this walks the seed models, printing each model's
structure, its unconstrained parameterisation and its log-density (per variable and the
gradient) at the initial point -- real numbers computed by the compiled model.
"""

from __future__ import annotations

import time

import numpy as np

from . import math as jm
from ._config import floatX
from .distributions import Bernoulli, HalfNormal, MvNormal, Normal, NormalMixture
from .model import Deterministic, Model

__all__ = ["seed_models", "run"]


def gaussian_model(seed: int = 0):
    """Mean and sd of 100 standard-normal draws (the ADVI notebook's first model)."""
    data = np.random.default_rng(seed).normal(size=100)
    with Model() as model:
        mu = Normal("mu", mu=0, sigma=1)
        sd = HalfNormal("sd", sigma=1)
        Normal("n", mu=mu, sigma=sd, observed=data)
    return model


def mvnormal_model():
    """A 2-D normal with correlation 0.8 and no data (mean-field vs full-rank)."""
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    with Model() as model:
        MvNormal("density", mu=[0.0, 0.0], cov=cov, shape=2)
    return model


def mixture_model():
    """The bimodal mixture of the quick-start: weights .2/.8, means -.3/.5, sds .1."""
    w, mu, sd = floatX([0.2, 0.8]), floatX([-0.3, 0.5]), floatX([0.1, 0.1])
    with Model() as model:
        x = NormalMixture("x", w=w, mu=mu, sigma=sd)
        Deterministic("x2", x**2)
        Deterministic("sin_x", jm.sin(x))
    return model


def logistic_model(seed: int = 0, n: int = 100):
    """Logistic regression with intercept mu and slope beta on one standardised predictor."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-(0.5 + 1.5 * x)))
    with Model() as model:
        mu = Normal("mu", 0, sigma=5)
        beta = Normal("beta", 0, sigma=5)
        theta = Deterministic("theta", mu + beta * x)
        Bernoulli("y", p=jm.invlogit(theta), observed=y)
    return model


def hierarchical_model(seed: int = 0, groups: int = 8, per_group: int = 50):
    """Group means drawn around a common mean, observed with unit noise (indexing by group)."""
    rng = np.random.default_rng(seed)
    true_means = rng.normal(1.0, 2.0, size=groups)
    idx = np.repeat(np.arange(groups), per_group)
    y = rng.normal(true_means[idx], 1.0)
    with Model(coords={"group": [f"g{i}" for i in range(groups)]}) as model:
        mu_mu = Normal("mu_mu", mu=0, sigma=10)
        sigma_mu = HalfNormal("sigma_mu", sigma=5)
        group_mu = Normal("group_mu", mu=mu_mu, sigma=sigma_mu, dims="group")
        Normal("y_obs", mu=group_mu[idx], sigma=1, observed=y)
    return model


def seed_models() -> dict:
    return {
        "gaussian": gaussian_model(),
        "mvnormal": mvnormal_model(),
        "mixture": mixture_model(),
        "logistic": logistic_model(),
        "hierarchical": hierarchical_model(),
    }


def run(out=print) -> None:
    out("jaxvi demo: the seed models, compiled to JAX\n")
    for name, model in seed_models().items():
        t0 = time.perf_counter()
        cm = model.compile()
        flat = cm.initial_point()
        logp, grad = cm.logp_and_grad(flat)
        secs = time.perf_counter() - t0
        out(f"== {name} ==")
        out(str(model))
        out(f"unconstrained parameters ({cm.size}): {', '.join(cm.value_names)}")
        out(f"log-density at the initial point, by variable: {model.point_logps()}")
        out(f"joint log-density {float(logp):.4f}; gradient norm {float(np.linalg.norm(grad)):.4f}"
            f" (compiled and evaluated in {secs:.2f} s)\n")
    out("Variational fitting (jv.fit) arrives with the inference engine; this demo prints only computed values.")
