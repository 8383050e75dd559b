"""jv.viz.ManualVI: quadrature KL against independent references, jaxvi's optimum, figure, widget."""

import numpy as np
import pytest
from scipy import integrate, optimize, stats

import jaxvi as jv
from jaxvi.faces.viz import TARGETS, ManualVI


def test_kl_matches_an_independent_integral():
    # scipy.integrate.quad of q log(q/p) on the real line, for each target
    for name in TARGETS:
        v = ManualVI(name)
        mean, log_sd = 0.7, -0.3
        sd = np.exp(log_sd)

        def integrand(z):
            return stats.norm.pdf(z, mean, sd) * (stats.norm.logpdf(z, mean, sd) - v.target.logpdf(z))

        ref, _ = integrate.quad(integrand, mean - 12 * sd, mean + 12 * sd, limit=200)
        assert v.kl(mean, log_sd) == pytest.approx(ref, rel=1e-6, abs=1e-8), name


def test_kl_of_the_beta_target_is_the_same_in_the_original_space():
    # KL does not change under x = sigmoid(z): compare with a quadrature over (0, 1)
    v = ManualVI("sharp_beta")
    mean, log_sd = 1.5, -1.0
    sd = np.exp(log_sd)

    def integrand(x):
        z = np.log(x) - np.log1p(-x)
        log_q = stats.norm.logpdf(z, mean, sd) - np.log(x * (1 - x))
        return np.exp(log_q) * (log_q - stats.beta.logpdf(x, 40, 8))

    ref, _ = integrate.quad(integrand, 1e-9, 1 - 1e-9, limit=400, points=[0.8, 0.85, 0.9])
    assert v.kl(mean, log_sd) == pytest.approx(ref, rel=1e-5)


def test_unknown_target():
    with pytest.raises(ValueError, match="'cauchy'.*student_t, skewed, bimodal, sharp_beta"):
        ManualVI("cauchy")


@pytest.mark.parametrize("name", ["skewed", "sharp_beta"])
def test_jaxvi_optimum_is_the_quadrature_optimum(name):
    v = ManualVI(name)
    found = np.array(v.optimum())
    best = optimize.minimize(lambda p: v.kl(*p), x0=[0.0, 0.0], method="Nelder-Mead",
                             options={"xatol": 1e-6, "fatol": 1e-10})
    np.testing.assert_allclose(found, best.x, atol=0.05)
    assert v.kl(*found) - best.fun < 5e-3


def test_figure_shows_target_q_and_optimum():
    v = ManualVI("sharp_beta")
    v._optima["sharp_beta"] = (1.66, -0.94)  # skip the fit: the picture is what is tested here
    fig = v.figure(0.5, -0.2)
    left, right = fig.axes
    assert f"KL(q || p) = {v.kl(0.5, -0.2):.4f}" in left.get_title()
    labels = [line.get_label() for line in left.get_lines()]
    assert labels[0] == "q = N(0.50, 0.82)" and labels[1].startswith("jaxvi ADVI optimum")
    z = left.get_lines()[0].get_xdata()
    np.testing.assert_allclose(left.get_lines()[0].get_ydata(), stats.norm.pdf(z, 0.5, np.exp(-0.2)))
    assert right.get_xlabel() == "x"
    fig.savefig(__import__("io").BytesIO(), format="png")


def test_show_builds_widgets_that_update_the_kl():
    pytest.importorskip("ipywidgets")
    v = ManualVI("student_t")
    v._optima.update({"student_t": (0.0, 0.23), "bimodal": (1.44, -0.13)})
    box = v.show()
    c = box.controls
    assert c["target"].options == tuple(TARGETS)
    c["mean"].value, c["log_sd"].value = 1.0, -0.5
    assert f"{v.kl(1.0, -0.5):.4f}" in c["kl"].value
    c["target"].value = "bimodal"
    assert v.target_name == "bimodal" and f"{v.kl(1.0, -0.5):.4f}" in c["kl"].value


def test_viz_is_reachable_from_the_package():
    assert jv.viz.ManualVI is ManualVI


def test_show_without_ipywidgets_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with pytest.raises(ImportError, match=r'pip install "jaxvi\[viz\]"'):
        ManualVI("skewed").show()


def test_svgd_animation_moves_particles_onto_the_target(tmp_path):
    from jaxvi.faces import viz

    path = viz.svgd_trajectory("gaussian", n_particles=60, n_frames=40, steps_per_frame=10, step_size=0.1)
    assert path.shape == (40, 60, 2)
    start, end = path[0], path[-1]
    # N(0, [[1, .8], [.8, 1]]): the particles spread out to the target's correlation and scale
    assert abs(np.corrcoef(end.T)[0, 1] - 0.8) < 0.15
    assert abs(end.std(0).mean() - 1.0) < 0.3 and start.std(0).mean() < 0.7
    anim = viz.svgd_animation("banana", n_particles=20, n_frames=5)
    out = tmp_path / "svgd.gif"
    anim.save(out, writer="pillow")
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="unknown target 'donut'"):
        viz.svgd_trajectory("donut")
