"""The main job (``jaxvi demo``): the seed workflows on fresh example data.

It walks the seed notebooks' workflows: ADVI vs NUTS on a Gaussian, mean-field vs full-rank
on a correlated 2-D normal, logistic regression, and the bimodal mixture with a convergence
callback and a Tracker, printing ArviZ summaries and writing PNG plots into a folder.
"""

from __future__ import annotations

import time

import numpy as np
import optax

from jaxvi.model import math as jm
from jaxvi.model.config import floatX
from jaxvi.model.distributions import Bernoulli, HalfNormal, MvNormal, Normal, NormalMixture
from jaxvi.model.context import Deterministic, Model
from jaxvi.model.math import sin
from jaxvi.results.predictive import sample_posterior_predictive
from jaxvi.variational.callbacks import CheckParametersConvergence, Tracker
from jaxvi.variational.inference import ADVI, NFVI, fit
from jaxvi.variational.sampling import sample
from jaxvi.vi.optimizers import adam, sgd
from jaxvi.faces.plots import plot_compare, plot_hist, plot_tracker

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


def _summary(idata, var_names=None) -> str:
    import warnings

    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.summary(idata, var_names=var_names, kind="stats", round_to=3).to_string()


class _Run:
    """What every section of the demo shares: where plots go, how to print, the NUTS settings."""

    def __init__(self, out_dir: str, quick: bool, progressbar: bool, out):
        import os

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(out_dir, exist_ok=True)
        self.plt, self.out_dir, self.quick, self.progressbar, self.out = plt, out_dir, quick, progressbar, out
        self.scale = 10 if quick else 1  # quick mode cuts MCMC and draws; VI steps are cheap once compiled
        self.nuts = dict(draws=1000 // self.scale, tune=1000 // self.scale, chains=2, progressbar=False)
        self.written, self.numbers = [], {}

    def save(self, fig, name):
        import os

        path = os.path.join(self.out_dir, name)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        self.plt.close(fig)
        self.written.append(path)


def run(out_dir: str = "jaxvi-demo-output", quick: bool = False, progressbar: bool = True, out=print) -> dict:
    """Walk the seed workflows; print summaries and write PNG plots into ``out_dir``."""
    import os

    r = _Run(out_dir, quick, progressbar, out)
    _gaussian(r)
    _mvnormal(r)
    _logistic(r)
    model, nuts_x = _mixture(r)
    _mixture_methods(r, model, nuts_x)
    out(f"\nplots written to {os.path.abspath(out_dir)}:")
    for path in r.written:
        out(f"  {os.path.basename(path)}")
    r.numbers["files"] = r.written
    return r.numbers


def _gaussian(r):
    """1. ADVI vs NUTS on the mean and sd of normal data."""
    out, save, nuts, progressbar, numbers = r.out, r.save, r.nuts, r.progressbar, r.numbers
    out("== 1. ADVI on a Gaussian: mean and sd of 100 normal draws ==")
    model = gaussian_model()
    t0 = time.perf_counter()
    approx = fit(50000, model=model, random_seed=1, progressbar=progressbar)
    out(f"ADVI: {len(approx.hist)} steps in {time.perf_counter() - t0:.2f} s (including compilation)")
    out(f"approx.mean (unconstrained mu, log sd) = {np.round(approx.mean, 4)}, approx.std = {np.round(approx.std, 4)}")
    vi = approx.sample(10000 // r.scale, random_seed=2)
    with model:
        mcmc = sample(random_seed=3, **nuts)
        ppc = sample_posterior_predictive(vi, random_seed=4)
    out("ADVI posterior:\n" + _summary(vi))
    out("NUTS posterior:\n" + _summary(mcmc))
    out(f"posterior predictive draws of n: shape {tuple(ppc.posterior_predictive['n'].shape)}\n")
    numbers["gaussian"] = {"advi_mu": float(vi.posterior["mu"].mean()), "nuts_mu": float(mcmc.posterior["mu"].mean())}
    fig, ax = r.plt.subplots(figsize=(7, 3.5))
    plot_hist(approx, ax=ax)
    ax.set_title("Gaussian model: ADVI loss history")
    save(fig, "gaussian_loss.png")
    axes = plot_compare({"ADVI": vi, "NUTS": mcmc}, var_names=["mu", "sd"])
    save(axes[0].figure, "gaussian_advi_vs_nuts.png")


def _mvnormal(r):
    """2. Mean-field vs full-rank ADVI on a correlated 2-D normal."""
    out, save, progressbar, numbers = r.out, r.save, r.progressbar, r.numbers
    out("== 2. Mean-field vs full-rank ADVI on a 2-D normal with correlation 0.8 ==")
    model = mvnormal_model()
    fig, axes = r.plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    for ax, method in zip(axes, ("advi", "fullrank_advi")):
        approx = fit(40000, method=method, model=model, random_seed=5, progressbar=progressbar)
        draws = approx.sample(5000, random_seed=6).posterior["density"].values.reshape(-1, 2)
        corr = float(np.corrcoef(draws.T)[0, 1])
        numbers[f"mvnormal_{method}_corr"] = corr
        out(f"{method:>13}: correlation of the draws {corr:+.3f} (true +0.800), sds {np.round(draws.std(0), 3)}")
        ax.scatter(draws[:, 0], draws[:, 1], s=3, alpha=0.25)
        ax.set_title(f"{method}: corr {corr:+.2f}")
    out("")
    save(fig, "mvnormal_meanfield_vs_fullrank.png")


def _logistic(r):
    """3. Logistic regression: ADVI, full-rank ADVI and NUTS."""
    out, save, nuts, progressbar = r.out, r.save, r.nuts, r.progressbar
    out("== 3. Logistic regression: intercept mu and slope beta (true 0.5 and 1.5) ==")
    model = logistic_model()
    approx = fit(20000, model=model, random_seed=7, progressbar=progressbar)
    approx_fr = fit(10000, method="fullrank_advi", model=model, random_seed=7, progressbar=progressbar)
    with model:
        mcmc = sample(random_seed=8, **nuts)
    vi, vi_fr = approx.sample(2000, random_seed=9), approx_fr.sample(2000, random_seed=9)
    for name, idata in (("ADVI", vi), ("full-rank ADVI", vi_fr), ("NUTS", mcmc)):
        out(f"{name}:\n" + _summary(idata, var_names=["mu", "beta"]))
    out("")
    axes = plot_compare({"ADVI": vi, "full-rank": vi_fr, "NUTS": mcmc}, var_names=["mu", "beta"])
    save(axes[0].figure, "logistic_compare.png")


def _mixture(r):
    """4. The bimodal mixture: a convergence callback, a Tracker, refine and NUTS."""
    out, save, nuts, progressbar, numbers = r.out, r.save, r.nuts, r.progressbar, r.numbers
    out("== 4. A bimodal mixture: mean-field ADVI with a convergence check and a Tracker ==")
    model = mixture_model()
    with model:
        mcmc = sample(random_seed=10, target_accept=0.9, **{**nuts, "chains": 4})
        converged = fit(callbacks=[CheckParametersConvergence(diff="absolute")], random_seed=11,
                        progressbar=progressbar)
        out(f"with CheckParametersConvergence(diff='absolute'): stopped after {len(converged.hist)} of 10000 steps")
        advi = ADVI(random_seed=12)
        tracker = Tracker(mean=advi.approx.mean, std=advi.approx.std)
        approx = advi.fit(15000, callbacks=[tracker], progressbar=progressbar)
        advi.refine(10000, progressbar=progressbar)
    vi = approx.sample(5000, random_seed=13)
    x = vi.posterior["x"].values.ravel()
    nuts_x = mcmc.posterior["x"].values.ravel()
    out(f"share of mass left of 0: exact 0.20, NUTS (4 chains) {np.mean(nuts_x < 0):.2f}, mean-field ADVI "
        f"{np.mean(x < 0):.2f}\n(one Gaussian cannot hold both modes; NUTS chains rarely cross between them)")
    out("Mean-field ADVI:\n" + _summary(vi))
    out("NUTS:\n" + _summary(mcmc))
    numbers["mixture_left_mass"] = {"nuts": float(np.mean(nuts_x < 0)), "advi": float(np.mean(x < 0))}
    axes = plot_tracker(tracker, hist=advi.hist)
    save(axes[0].figure, "mixture_tracker.png")
    axes = plot_compare({"ADVI": vi, "NUTS": mcmc}, var_names=["x", "x2", "sin_x"])
    save(axes[0].figure, "mixture_advi_vs_nuts.png")
    return model, nuts_x


def _mixture_methods(r, model, nuts_x):
    """5. Beyond the Gaussian: SVGD and a normalizing flow on the same mixture."""
    out, save, progressbar, numbers = r.out, r.save, r.progressbar, r.numbers
    out("== 5. The mixture again: SVGD (1000 particles) and a normalizing flow (NFVI, 'nsf*2') ==")
    with model:
        svgd = fit(300, method="svgd", inf_kwargs=dict(n_particles=1000), obj_optimizer=sgd(learning_rate=0.01),
                   random_seed=14, progressbar=progressbar)
        mf = fit(10000, obj_optimizer=adam(learning_rate=0.01), random_seed=14, progressbar=progressbar)
    steps = 1500 if r.quick else 3000
    nfvi = NFVI(flow="nsf*2", model=model, random_seed=15).fit(
        steps, obj_optimizer=adam(learning_rate=optax.cosine_decay_schedule(0.01, steps, 0.01)), obj_n_mc=256,
        progressbar=progressbar)
    w, mu, sd = np.array([0.2, 0.8]), np.array([-0.3, 0.5]), np.array([0.1, 0.1])
    exact = {"left": 0.2, "x2": float(np.sum(w * (mu**2 + sd**2))), "sin": float(np.sum(w * np.sin(mu) * np.exp(-sd**2 / 2)))}
    xnode = model["x"]
    rows = {"exact": exact}
    draws = {"NUTS": nuts_x, "ADVI": mf.sample(5000, random_seed=16).posterior["x"].values.ravel()}
    for name, a in (("SVGD", svgd), ("NFVI", nfvi)):
        draws[name] = a.sample(5000, random_seed=16).posterior["x"].values.ravel()
        rows[name] = {"left": float(np.mean(draws[name] < 0.1)), "x2": float(np.mean(a.sample_node(xnode**2, size=5000))),
                      "sin": float(np.mean(a.sample_node(sin(xnode), size=5000)))}
    for name in ("NUTS", "ADVI"):
        rows[name] = {"left": float(np.mean(draws[name] < 0.1)), "x2": float(np.mean(draws[name] ** 2)),
                      "sin": float(np.mean(np.sin(draws[name])))}
    out(f"{'':>6} {'mass left':>10} {'E[x^2]':>8} {'E[sin x]':>9}")
    for name, row in rows.items():
        out(f"{name:>6} {row['left']:>10.3f} {row['x2']:>8.3f} {row['sin']:>9.3f}")
    out(f"final -ELBO (0 is exact: the mixture is normalised): mean-field ADVI (adam) {np.mean(mf.hist[-500:]):.3f}, "
        f"flow {np.mean(nfvi.hist[-300:]):.3f}\n")
    numbers["mixture_methods"] = rows
    grid = np.linspace(-0.8, 1.0, 400)
    density = np.sum(w[:, None] * np.exp(-0.5 * ((grid - mu[:, None]) / sd[:, None]) ** 2) / (sd[:, None] * np.sqrt(2 * np.pi)), 0)
    fig, ax = r.plt.subplots(figsize=(8, 4))
    ax.plot(grid, density, color="black", lw=2.5, label="exact")
    bins = np.linspace(-0.8, 1.0, 91)
    for name, color in (("NUTS", "tab:gray"), ("ADVI", "tab:blue"), ("SVGD", "tab:orange"), ("NFVI", "tab:green")):
        ax.hist(draws[name], bins=bins, density=True, histtype="step", lw=1.6, color=color,
                label=f"{name} ({rows[name]['left']:.0%} left)")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_title("Bimodal mixture: NUTS vs mean-field ADVI vs SVGD vs a normalizing flow")
    ax.legend()
    save(fig, "mixture_nuts_advi_svgd_nfvi.png")
