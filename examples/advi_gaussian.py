"""ADVI on the simplest model there is: the mean and spread of normal data, checked against NUTS.

    python examples/advi_gaussian.py          # the whole workflow, plots into $JAXVI_EXAMPLE_OUT
    jaxvi fit examples/advi_gaussian.py       # the command line finds `model` below

Set JAXVI_EXAMPLE_N (optimisation steps) and JAXVI_EXAMPLE_DRAWS (draws) to run it smaller.
"""

import os

import numpy as np

import jaxvi as jv

STEPS = int(os.environ.get("JAXVI_EXAMPLE_N", "30000"))
DRAWS = int(os.environ.get("JAXVI_EXAMPLE_DRAWS", "2000"))
OUT = os.environ.get("JAXVI_EXAMPLE_OUT", "jaxvi-example-output")


def build_model(n_obs=200, seed=1):
    """Unknown location and scale of ``n_obs`` draws from Normal(1.5, 0.7)."""
    heights = np.random.default_rng(seed).normal(1.5, 0.7, size=n_obs)
    with jv.Model() as m:
        loc = jv.Normal("loc", mu=0.0, sigma=5.0)
        scale = jv.HalfNormal("scale", sigma=2.0)
        jv.Normal("heights", mu=loc, sigma=scale, observed=heights)
    return m


model = build_model()


def main():
    import matplotlib.pyplot as plt

    os.makedirs(OUT, exist_ok=True)
    advi = jv.ADVI(model=model, random_seed=11)
    approx = advi.fit(STEPS, progressbar=False)
    # the approximation lives in unconstrained space: [loc, log(scale)]
    print("unconstrained mean:", np.round(approx.mean, 3), " std:", np.round(approx.std, 3))
    print("scale from the unconstrained mean: exp(mean[1]) =", round(float(np.exp(approx.mean[1])), 3))

    vi = approx.sample(DRAWS, random_seed=12)
    nuts = jv.sample(draws=DRAWS, tune=max(DRAWS // 2, 100), chains=2, model=model, random_seed=13)
    for label, idata in (("ADVI", vi), ("NUTS", nuts)):
        post = idata.posterior
        print(f"{label}: loc {float(post['loc'].mean()):.3f} +- {float(post['loc'].std()):.3f}, "
              f"scale {float(post['scale'].mean()):.3f} +- {float(post['scale'].std()):.3f}")

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    jv.plot_hist(approx, ax=axes[0])
    axes[0].set_title("ADVI: -ELBO per step")
    jv.plot_compare({"ADVI": vi, "NUTS": nuts}, var_names=["loc", "scale"], axes=axes[1:])
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "advi_gaussian.png"), dpi=90)
    return {"advi": vi, "nuts": nuts}


if __name__ == "__main__":
    main()
