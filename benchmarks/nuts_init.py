"""NUTS warm-up from a fitted approximation vs the default start (issue 6, item 5).

For two models -- a hierarchical normal model with badly scaled posterior and a linear regression
with strongly correlated predictors -- run NUTS (4 chains, 500 kept draws) with ``tune`` warm-up
steps from the default start ("jitter+adapt_diag") and from approximations fitted once per model
(mean-field ADVI, multi-path Pathfinder; passed as ``init=approx``: chains start at its draws,
its covariance is the initial inverse mass matrix, adaptation continues).  Reports the max
rank-normalised split R-hat over all variables per (init, tune, seed) and the smallest ``tune``
at which every seed reaches R-hat < 1.01.

    python benchmarks/nuts_init.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import jaxvi as jv


def hierarchical(seed: int = 0, groups: int = 20, per_group: int = 200):
    """Normal hierarchical model whose posterior scales differ by ~100x (group means known to
    ~0.007, the population mean to ~0.5): the default unit mass matrix has to learn them."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(1.0, 2.0, size=groups)
    g = np.repeat(np.arange(groups), per_group)
    y = theta[g] + rng.normal(0, 0.1, size=g.size)
    with jv.Model() as model:
        mu = jv.Normal("mu", 0, 10)
        tau = jv.HalfNormal("tau", 5)
        th = jv.Normal("theta", mu, tau, shape=groups)
        sigma = jv.HalfNormal("sigma", 1)
        jv.Normal("y", th[g], sigma, observed=y)
    return model


def correlated_regression(seed: int = 0, n: int = 200, k: int = 6, rho: float = 0.95):
    rng = np.random.default_rng(seed)
    cov = rho * np.ones((k, k)) + (1 - rho) * np.eye(k)
    X = rng.multivariate_normal(np.zeros(k), cov, size=n)
    y = X @ rng.normal(size=k) + 1.0 + rng.normal(0, 1.0, size=n)
    with jv.Model() as model:
        alpha = jv.Normal("alpha", 0, 10)
        beta = jv.Normal("beta", 0, 10, shape=k)
        sigma = jv.HalfNormal("sigma", 5)
        jv.Normal("y", alpha + jv.math.dot(X, beta), sigma, observed=y)
    return model


def max_rhat(idata) -> float:
    import arviz as az

    r = az.rhat(idata)
    return float(max(float(np.nanmax(r[v].values)) for v in r.data_vars))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    tunes = [25, 50, 100, 200, 400] if not args.quick else [50, 200]
    seeds = [0, 1, 2] if not args.quick else [0]
    models = {"hierarchical (20 groups, scales 0.007-0.5)": hierarchical(), "correlated regression (rho=0.95)": correlated_regression()}
    warnings.simplefilter("ignore")
    lines = []
    for name, model in models.items():
        t0 = time.perf_counter()
        advi = jv.fit(200_000, method="advi", model=model, random_seed=0, progressbar=False, stop_on_convergence=True)
        t_advi = time.perf_counter() - t0
        t0 = time.perf_counter()
        pf = jv.Pathfinder(model=model, random_seed=0)
        pfa = pf.fit()
        t_pf = time.perf_counter() - t0
        inits = {"jitter+adapt_diag": "jitter+adapt_diag", "advi": advi, "pathfinder": pfa}
        print(f"\n## {name}: ADVI {len(advi.hist)} steps ({t_advi:.1f} s, k-hat {advi.khat:.2f}); "
              f"Pathfinder {pf.n_grad_evals} gradient evaluations ({t_pf:.1f} s, k-hat {pfa.khat:.2f})")
        table = {}
        for init_name, init in inits.items():
            for tune in tunes:
                rh = []
                for seed in seeds:
                    idata = jv.sample(500, tune=tune, chains=4, init=init, model=model, random_seed=seed)
                    rh.append(max_rhat(idata))
                table[(init_name, tune)] = rh
                print(f"{init_name:>18} tune={tune:4d} max R-hat per seed: {', '.join(f'{r:.3f}' for r in rh)}",
                      flush=True)
        for init_name in inits:
            ok = [t for t in tunes if all(r < 1.01 for r in table[(init_name, t)])]
            lines.append(f"{name}: {init_name}: smallest tune with R-hat < 1.01 on all seeds: "
                         f"{ok[0] if ok else '> ' + str(tunes[-1])}")
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
