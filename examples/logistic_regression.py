"""Logistic regression with two predictors: ADVI, full-rank ADVI and NUTS side by side.

    python examples/logistic_regression.py
    jaxvi compare examples/logistic_regression.py
"""

import os

import numpy as np

import jaxvi as jv

STEPS = int(os.environ.get("JAXVI_EXAMPLE_N", "20000"))
DRAWS = int(os.environ.get("JAXVI_EXAMPLE_DRAWS", "2000"))
OUT = os.environ.get("JAXVI_EXAMPLE_OUT", "jaxvi-example-output")

TRUE = {"intercept": -0.5, "coefs": [2.0, -1.0]}


def simulate(n=300, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    logits = TRUE["intercept"] + X @ np.array(TRUE["coefs"])
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(int)
    return X, y


def build_model():
    X, y = simulate()
    with jv.Model(coords={"predictor": ["x1", "x2"]}) as m:
        X_data = jv.Data("X", X)
        intercept = jv.Normal("intercept", mu=0.0, sigma=2.5)
        coefs = jv.Normal("coefs", mu=0.0, sigma=2.5, dims="predictor")
        jv.Bernoulli("y", logit_p=intercept + X_data @ coefs, observed=y)
    return m


model = build_model()


def main():
    os.makedirs(OUT, exist_ok=True)
    results = {}
    for method in ("advi", "fullrank_advi"):
        approx = jv.fit(STEPS, method=method, model=model, random_seed=21, progressbar=False)
        results[method] = approx.sample(DRAWS, random_seed=22)
    results["nuts"] = jv.sample(draws=DRAWS, tune=max(DRAWS // 2, 100), chains=2, model=model, random_seed=23)
    print(f"truth: intercept {TRUE['intercept']}, coefs {TRUE['coefs']}")
    for name, idata in results.items():
        post = idata.posterior
        print(f"{name:>13}: intercept {float(post['intercept'].mean()):+.3f}, "
              f"coefs {np.round(post['coefs'].mean(('chain', 'draw')).values, 3)}")
    axes = jv.plot_compare(results, var_names=["intercept", "coefs"])
    axes[0].figure.savefig(os.path.join(OUT, "logistic_regression.png"), dpi=90)
    return results


if __name__ == "__main__":
    main()
