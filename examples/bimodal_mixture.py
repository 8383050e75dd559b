"""A bimodal posterior: where a single Gaussian fails and what the samplers see.

The target is a mixture of two well-separated normals with weights 0.35 / 0.65.  Mean-field
ADVI locks onto one mode; NUTS chains seldom cross between modes, so each chain reports the
mode it started near.  Particle methods (SVGD), where available, spread over both.

    python examples/bimodal_mixture.py
    jaxvi compare examples/bimodal_mixture.py --methods advi,nuts
"""

import os

import numpy as np

import jaxvi as jv

STEPS = int(os.environ.get("JAXVI_EXAMPLE_N", "20000"))
DRAWS = int(os.environ.get("JAXVI_EXAMPLE_DRAWS", "2000"))
OUT = os.environ.get("JAXVI_EXAMPLE_OUT", "jaxvi-example-output")

WEIGHTS = np.array([0.35, 0.65])
MEANS = np.array([-1.0, 1.5])
SDS = np.array([0.3, 0.4])


def build_model():
    with jv.Model() as m:
        x = jv.NormalMixture("x", w=jv.floatX(WEIGHTS), mu=jv.floatX(MEANS), sigma=jv.floatX(SDS))
        jv.Deterministic("left_mode", x < 0.0)
    return m


model = build_model()


def main():
    os.makedirs(OUT, exist_ok=True)
    results = {"ADVI": jv.fit(STEPS, model=model, random_seed=1, progressbar=False).sample(DRAWS, random_seed=2)}
    if "svgd" in jv.variational.inference.METHODS:
        approx = jv.fit(STEPS // 10, method="svgd", model=model, random_seed=3, progressbar=False)
        results["SVGD"] = approx.sample(DRAWS, random_seed=4)
    results["NUTS"] = jv.sample(draws=DRAWS, tune=max(DRAWS // 2, 100), chains=4, model=model, random_seed=5,
                                target_accept=0.9)
    print(f"mass of the left mode: exact {WEIGHTS[0]:.2f}")
    for name, idata in results.items():
        print(f"{name:>5}: {float(idata.posterior['left_mode'].mean()):.2f}")
    axes = jv.plot_compare(results, var_names=["x"])
    grid = np.linspace(-2.5, 3.5, 400)
    exact = sum(w * np.exp(-0.5 * ((grid - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))
                for w, m, s in zip(WEIGHTS, MEANS, SDS))
    axes[0].plot(grid, exact, "k--", lw=1, label="exact")
    axes[0].legend(frameon=False)
    axes[0].figure.savefig(os.path.join(OUT, "bimodal_mixture.png"), dpi=90)
    return results


if __name__ == "__main__":
    main()
