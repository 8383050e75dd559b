"""Teaching views: ``jv.viz.ManualVI().show()`` lets you be the optimiser of variational inference.

Two sliders move a Gaussian q (its mean and log standard deviation) against a fixed 1-D target
p; the view shows both densities, the current KL(q || p) and the optimum that a jaxvi ADVI fit
finds for the same target.  KL(q || p) is computed by quadrature on a grid with SciPy, independently
of jaxvi, so the two can be checked against each other.

As in ADVI, q is a Gaussian on the *unconstrained* line: for the Beta target it is a Gaussian on
logit(x), and the target is drawn as the density of logit(x) (with the Jacobian); a second panel
shows both in the original (0, 1) space.  KL divergence does not change under that reparameterisation.

The interactive view needs ipywidgets (``pip install "jaxvi[viz]"``); ``ManualVI(...).figure(mean,
log_sd)`` and ``.kl(mean, log_sd)`` work without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["ManualVI", "TARGETS", "svgd_animation", "svgd_trajectory", "SVGD_TARGETS"]


def _log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


@dataclass(frozen=True)
class Target:
    """A 1-D target: its log-density on the unconstrained line and the jaxvi model that matches it."""

    title: str
    logpdf: Callable  # unconstrained z -> log p(z) (SciPy, vectorised)
    build: Callable  # () -> a jv.Model with one free variable "x"
    view: tuple  # plotting range on the unconstrained line
    constrained: Callable | None = None  # z -> x, for targets defined on a bounded space
    x_logpdf: Callable | None = None  # log-density in the original space


def _student_t():
    from scipy import stats

    def build():
        from jaxvi.model.distributions import StudentT
        from jaxvi.model.context import Model

        with Model() as m:
            StudentT("x", nu=3.0, mu=0.0, sigma=1.0)
        return m

    return Target("Student-t (nu = 3)", lambda z: stats.t.logpdf(z, df=3.0), build, (-6.0, 6.0))


def _skewed():
    from scipy import stats

    alpha = 5.0

    def build():
        import jax.scipy.special as jsp

        from jaxvi.model.distributions import Flat
        from jaxvi.model.nodes import lift
        from jaxvi.model.context import Model, Potential

        with Model() as m:
            x = Flat("x")
            Potential("skew_normal", lift(lambda v: np.log(2.0) - 0.5 * v**2 - 0.5 * np.log(2 * np.pi)
                                          + jsp.log_ndtr(alpha * v), label="skewnorm_logpdf")(x))
        return m

    return Target("skew-normal (alpha = 5)", lambda z: stats.skewnorm.logpdf(z, alpha), build, (-2.5, 4.0))


_MIX = (np.array([0.3, 0.7]), np.array([-2.0, 1.5]), np.array([0.6, 0.8]))


def _bimodal():
    from scipy import stats
    from scipy.special import logsumexp

    w, mu, sd = _MIX

    def logpdf(z):
        z = np.asarray(z, dtype=float)[..., None]
        return logsumexp(np.log(w) + stats.norm.logpdf(z, mu, sd), axis=-1)

    def build():
        from jaxvi.model.config import floatX
        from jaxvi.model.distributions import NormalMixture
        from jaxvi.model.context import Model

        with Model() as m:
            NormalMixture("x", w=floatX(w), mu=floatX(mu), sigma=floatX(sd))
        return m

    return Target("bimodal mixture (0.3 N(-2, 0.6) + 0.7 N(1.5, 0.8))", logpdf, build, (-5.0, 5.0))


def _sharp_beta():
    from scipy import stats
    from scipy.special import betaln, expit

    a, b = 40.0, 8.0

    def logpdf(z):  # density of logit(x) for x ~ Beta(a, b)
        z = np.asarray(z, dtype=float)
        return a * _log_sigmoid(z) + b * _log_sigmoid(-z) - betaln(a, b)

    def build():
        from jaxvi.model.distributions import Beta
        from jaxvi.model.context import Model

        with Model() as m:
            Beta("x", alpha=a, beta=b)
        return m

    return Target(f"sharp Beta({a:g}, {b:g}), q on logit(x)", logpdf, build, (-0.5, 4.5), constrained=expit,
                  x_logpdf=lambda x: stats.beta.logpdf(x, a, b))


TARGETS = {"student_t": _student_t, "skewed": _skewed, "bimodal": _bimodal, "sharp_beta": _sharp_beta}


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError:
        raise ImportError('ManualVI.show() needs ipywidgets: pip install "jaxvi[viz]" (or pip install ipywidgets); '
                          "ManualVI(...).figure(mean, log_sd) works without it") from None
    return ipywidgets


class ManualVI:
    """Fit a Gaussian to a 1-D target by hand: ``ManualVI("bimodal").show()`` in Jupyter.

    ``target``: one of ``"student_t"``, ``"skewed"``, ``"bimodal"``, ``"sharp_beta"``.
    ``n_fit`` and ``random_seed`` set the jaxvi ADVI fit that gives the optimum shown.
    """

    def __init__(self, target: str = "bimodal", n_fit: int = 6000, random_seed: int = 0, grid_size: int = 4001):
        self.n_fit = int(n_fit)
        self.random_seed = random_seed
        # standard-normal quadrature grid: E_q[f] = integral of phi(t) f(mean + sd t) dt
        self._t = np.linspace(-10.0, 10.0, int(grid_size))
        self._phi = np.exp(-0.5 * self._t**2) / np.sqrt(2 * np.pi)
        self._optima: dict[str, tuple[float, float]] = {}
        self.set_target(target)

    def set_target(self, target: str):
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
        self.target_name = target
        self.target: Target = TARGETS[target]()

    # -- numbers -----------------------------------------------------------------------------------
    def kl(self, mean: float, log_sd: float) -> float:
        """KL(q || p) for q = Normal(mean, exp(log_sd)) on the unconstrained line, by quadrature."""
        sd = float(np.exp(log_sd))
        neg_entropy = -0.5 * np.log(2 * np.pi * np.e) - np.log(sd)
        from scipy.integrate import trapezoid

        cross = trapezoid(self._phi * self.target.logpdf(mean + sd * self._t), self._t)
        return float(neg_entropy - cross)

    def optimum(self) -> tuple[float, float]:
        """(mean, log_sd) of the Gaussian found by a jaxvi ADVI fit of the target (cached per target)."""
        if self.target_name not in self._optima:
            import warnings

            import optax

            from jaxvi.variational.inference import fit
            from jaxvi.vi.optimizers import adam

            schedule = optax.exponential_decay(0.05, transition_steps=max(self.n_fit // 6, 1), decay_rate=0.5)
            with warnings.catch_warnings():  # a Gaussian misfits these targets on purpose: no k-hat warning
                warnings.simplefilter("ignore")
                approx = fit(self.n_fit, model=self.target.build(), random_seed=self.random_seed,
                             obj_optimizer=adam(learning_rate=schedule), obj_n_mc=8, progressbar=False)
            self._optima[self.target_name] = (float(approx.mean[0]), float(np.log(approx.std[0])))
        return self._optima[self.target_name]

    # -- pictures ----------------------------------------------------------------------------------
    def figure(self, mean: float = 0.0, log_sd: float = 0.0, show_optimum: bool = True):
        """A matplotlib figure of the target, q = Normal(mean, exp(log_sd)) and jaxvi's optimum."""
        from scipy import stats

        from jaxvi.faces.plots import _plt

        plt = _plt()
        t = self.target
        panels = 2 if t.constrained is not None else 1
        fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 3.8), squeeze=False)
        ax = axes[0, 0]
        z = np.linspace(*t.view, 600)
        sd = float(np.exp(log_sd))
        opt = self.optimum() if show_optimum else None
        ax.fill_between(z, np.exp(t.logpdf(z)), color="0.85", label="target p")
        ax.plot(z, stats.norm.pdf(z, mean, sd), color="C0", lw=2, label=f"q = N({mean:.2f}, {sd:.2f})")
        if opt is not None:
            ax.plot(z, stats.norm.pdf(z, opt[0], np.exp(opt[1])), "--", color="C1", lw=1.5,
                    label=f"jaxvi ADVI optimum (KL {self.kl(*opt):.3f})")
        ax.set_title(f"{t.title}\nKL(q || p) = {self.kl(mean, log_sd):.4f}", fontsize=10)
        ax.set_xlabel("logit(x)" if t.constrained is not None else "x")
        ax.legend(frameon=False, fontsize=8, loc="upper left")
        if t.constrained is not None:
            self._constrained_panel(axes[0, 1], mean, sd, opt)
        fig.tight_layout()
        return fig

    def _constrained_panel(self, ax, mean, sd, opt):
        """Target and q pushed through the inverse transform, in the original space."""
        from scipy import stats

        t = self.target
        z = np.linspace(*t.view, 600)
        x = t.constrained(z)
        jac = x * (1 - x)  # dx/dz for the logistic
        ax.fill_between(x, np.exp(t.x_logpdf(x)), color="0.85", label="target p(x)")
        ax.plot(x, stats.norm.pdf(z, mean, sd) / jac, color="C0", lw=2, label="q(x)")
        if opt is not None:
            ax.plot(x, stats.norm.pdf(z, opt[0], np.exp(opt[1])) / jac, "--", color="C1", lw=1.5, label="optimum")
        ax.set_title("the same densities in the original space", fontsize=10)
        ax.set_xlabel("x")
        ax.legend(frameon=False, fontsize=8, loc="upper left")

    def show(self):
        """The interactive view (Jupyter): a target menu and sliders for the mean and log-sd."""
        widgets = _ipywidgets()
        from IPython.display import display

        plt = __import__("matplotlib.pyplot", fromlist=["pyplot"])
        menu = widgets.Dropdown(options=list(TARGETS), value=self.target_name, description="target")
        mean = widgets.FloatSlider(value=0.0, min=-5.0, max=5.0, step=0.05, description="mean")
        log_sd = widgets.FloatSlider(value=0.0, min=-4.0, max=2.0, step=0.05, description="log sd")
        kl = widgets.HTML()
        out = widgets.Output()

        def redraw(*_):
            if menu.value != self.target_name:
                self.set_target(menu.value)
            kl.value = f"<b>KL(q || p) = {self.kl(mean.value, log_sd.value):.4f}</b>"
            with out:
                out.clear_output(wait=True)
                fig = self.figure(mean.value, log_sd.value)
                display(fig)
                plt.close(fig)

        for w in (menu, mean, log_sd):
            w.observe(redraw, names="value")
        box = widgets.VBox([widgets.HBox([menu, kl]), mean, log_sd, out])
        box.controls = {"target": menu, "mean": mean, "log_sd": log_sd, "kl": kl, "output": out}
        redraw()
        display(box)
        return box


# -- SVGD animation ------------------------------------------------------------------------------------

def _svgd_targets():
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    def banana(x):
        return -0.5 * x[0] ** 2 / 2.0 - 0.5 * ((x[1] - 0.5 * x[0] ** 2 + 1.0) / 0.5) ** 2

    def bimodal(x):
        a = -0.5 * jnp.sum((x - jnp.array([-1.5, 0.0])) ** 2) / 0.36
        b = -0.5 * jnp.sum((x - jnp.array([1.5, 0.5])) ** 2) / 0.36
        return logsumexp(jnp.array([a + jnp.log(0.3), b + jnp.log(0.7)]))

    def gaussian(x):
        cov_inv = jnp.linalg.inv(jnp.array([[1.0, 0.8], [0.8, 1.0]]))
        return -0.5 * x @ cov_inv @ x

    return {"banana": (banana, (-3.5, 3.5), (-2.5, 4.5)), "bimodal": (bimodal, (-3.5, 3.5), (-2.5, 3.0)),
            "gaussian": (gaussian, (-3.5, 3.5), (-3.5, 3.5))}


SVGD_TARGETS = ("banana", "bimodal", "gaussian")


def svgd_trajectory(target: str = "banana", n_particles: int = 50, n_frames: int = 150, steps_per_frame: int = 5,
                    step_size: float = 0.05, seed: int = 0):
    """Positions ``(n_frames, n_particles, 2)`` of SVGD particles on a 2-D target.

    Uses the library's own Stein direction (``jaxvi.stein.stein_direction``, RBF kernel with the
    median heuristic); particles start as N(0, 0.5^2) draws, off the target, so the flow is visible.
    """
    import jax

    from jaxvi.vi.stein import stein_direction

    targets = _svgd_targets()
    if target not in targets:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(targets)}")
    for name, value in (("n_particles", n_particles), ("n_frames", n_frames), ("steps_per_frame", steps_per_frame)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    logp = targets[target][0]
    score = jax.vmap(jax.grad(logp))

    def frame(x, _):
        def step(x, _):
            return x + step_size * stein_direction(x, score(x)), None

        x, _ = jax.lax.scan(step, x, None, length=steps_per_frame)
        return x, x

    x0 = 0.5 * jax.random.normal(jax.random.key(seed), (int(n_particles), 2))
    _, frames = jax.jit(lambda x: jax.lax.scan(frame, x, None, length=int(n_frames) - 1))(x0)
    return np.concatenate([np.asarray(x0)[None], np.asarray(frames)])


def svgd_animation(target: str = "banana", n_particles: int = 50, n_frames: int = 150, interval: int = 50,
                   **kwargs):
    """A matplotlib animation of SVGD particles flowing onto a 2-D target.

    In a notebook, display it with ``IPython.display.HTML(anim.to_jshtml())``; save it with
    ``anim.save("svgd.gif", writer="pillow")`` or ``anim.to_html5_video()``.
    """
    import matplotlib.pyplot as plt
    from matplotlib import animation

    import jax
    import jax.numpy as jnp

    path = svgd_trajectory(target, n_particles, n_frames, **kwargs)
    logp, xlim, ylim = _svgd_targets()[target]
    gx, gy = np.meshgrid(np.linspace(*xlim, 120), np.linspace(*ylim, 120))
    grid = jnp.stack([gx.ravel(), gy.ravel()], axis=1)
    dens = np.exp(np.asarray(jax.vmap(logp)(grid))).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.contourf(gx, gy, dens, levels=12, cmap="Blues")
    dots = ax.scatter(path[0, :, 0], path[0, :, 1], s=14, color="tab:red", edgecolor="white", linewidth=0.4)
    title = ax.set_title(f"SVGD on the {target} target: frame 0")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)

    def update(i):
        dots.set_offsets(path[i])
        title.set_text(f"SVGD on the {target} target: frame {i}")
        return dots, title

    anim = animation.FuncAnimation(fig, update, frames=len(path), interval=interval, blit=False)
    plt.close(fig)
    return anim
