"""The quick-start workflow: callbacks that stop a fit, a Tracker, and expressions after the fit.

The model is a two-component normal mixture with no data.  Its mean-field approximation sits
near zero, where the default relative convergence check (change / |value|) is unstable; the
absolute check stops the fit as soon as the parameters settle.

    python examples/quickstart_callbacks.py
    jaxvi fit examples/quickstart_callbacks.py
"""

import os

import numpy as np

import jaxvi as jv

STEPS = int(os.environ.get("JAXVI_EXAMPLE_N", "20000"))
DRAWS = int(os.environ.get("JAXVI_EXAMPLE_DRAWS", "2000"))
OUT = os.environ.get("JAXVI_EXAMPLE_OUT", "jaxvi-example-output")


def build_model():
    with jv.Model() as m:
        jv.NormalMixture("x", w=jv.floatX([0.3, 0.7]), mu=jv.floatX([-0.4, 0.4]), sigma=jv.floatX([0.2, 0.2]))
    return m


model = build_model()


def main():
    os.makedirs(OUT, exist_ok=True)
    x = model["x"]
    for diff in ("relative", "absolute"):
        check = jv.callbacks.CheckParametersConvergence(every=100, tolerance=1e-3, diff=diff)
        approx = jv.fit(STEPS, model=model, callbacks=[check], random_seed=5, progressbar=False)
        print(f"CheckParametersConvergence(diff={diff!r}): {len(approx.hist)} of {STEPS} steps")

    advi = jv.ADVI(model=model, random_seed=6)
    tracker = jv.callbacks.Tracker(mean=advi.approx.mean, std=advi.approx.std)
    advi.fit(STEPS // 2, callbacks=[tracker], progressbar=False)
    advi.refine(STEPS // 2, progressbar=False)  # continues with the same optimizer state
    print(f"tracked {len(tracker['mean'])} values of the mean; hist has {len(advi.hist)} losses")

    # expressions need not be Deterministics: evaluate them under the fitted approximation
    x2, sin_x = advi.approx.sample_node(x**2, size=DRAWS), advi.approx.sample_node(jv.math.sin(x), size=DRAWS)
    print(f"E[x^2] ~ {np.mean(x2):.3f}, E[sin x] ~ {np.mean(sin_x):.3f}")

    axes = jv.plot_tracker(tracker, hist=advi.hist)
    axes[0].figure.tight_layout()
    axes[0].figure.savefig(os.path.join(OUT, "quickstart_tracker.png"), dpi=90)
    return {"tracker": tracker, "approx": advi.approx}


if __name__ == "__main__":
    main()
