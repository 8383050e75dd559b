"""The model layer and CompiledModel, checked against hand-written JAX log-densities."""

import jax
import jax.numpy as jnp
import jax.scipy.stats as jst
import numpy as np
import pytest
from scipy import stats

import jaxvi as jv

# ----------------------------------------------------------------------------------------------
# Seed models next to their log-densities written by hand in unconstrained space
# ----------------------------------------------------------------------------------------------


def gaussian():
    data = np.random.default_rng(0).normal(size=100)
    with jv.Model() as m:
        mu = jv.Normal("mu", mu=0, sigma=1)
        sd = jv.HalfNormal("sd", sigma=1)
        jv.Normal("n", mu=mu, sigma=sd, observed=data)

    def logp(z):
        mu, u = z[0], z[1]
        sd = jnp.exp(u)
        return (jst.norm.logpdf(mu, 0, 1) + jnp.log(2.0) + jst.norm.logpdf(sd, 0, 1) + u
                + jnp.sum(jst.norm.logpdf(data, mu, sd)))

    return m, logp


def mvnormal():
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    with jv.Model() as m:
        jv.MvNormal("density", mu=[0, 0], cov=cov, shape=2)
    return m, lambda z: jst.multivariate_normal.logpdf(z, jnp.zeros(2), cov)


def mixture():
    w, mu, sd = np.array([0.2, 0.8]), np.array([-0.3, 0.5]), np.array([0.1, 0.1])
    with jv.Model() as m:
        x = jv.NormalMixture("x", w=w, mu=mu, sigma=sd)
        jv.Deterministic("x2", x**2)
    return m, lambda z: jax.scipy.special.logsumexp(jnp.log(w) + jst.norm.logpdf(z[0], mu, sd))


def logistic():
    rng = np.random.default_rng(1)
    x = rng.normal(size=100)
    y = (rng.random(100) < 1 / (1 + np.exp(-(0.3 + x)))).astype(int)
    with jv.Model() as m:
        mu = jv.Normal("mu", 0, sigma=5)
        beta = jv.Normal("beta", 0, sigma=5)
        theta = jv.Deterministic("theta", mu + beta * x)
        jv.Bernoulli("y", p=jv.math.invlogit(theta), observed=y)

    def logp(z):
        t = z[0] + z[1] * x
        return (jst.norm.logpdf(z[0], 0, 5) + jst.norm.logpdf(z[1], 0, 5)
                + jnp.sum(y * jax.nn.log_sigmoid(t) + (1 - y) * jax.nn.log_sigmoid(-t)))

    return m, logp


def hierarchical():
    rng = np.random.default_rng(2)
    idx = np.repeat(np.arange(8), 50)
    y = rng.normal(rng.normal(1, 2, size=8)[idx], 1.0)
    with jv.Model(coords={"group": list("abcdefgh")}) as m:
        mu_mu = jv.Normal("mu_mu", mu=0, sigma=10)
        sigma_mu = jv.HalfNormal("sigma_mu", sigma=5)
        group_mu = jv.Normal("group_mu", mu=mu_mu, sigma=sigma_mu, dims="group")
        jv.Normal("y_obs", mu=group_mu[idx], sigma=1, observed=y)

    def logp(z):
        mu_mu, u, g = z[0], z[1], z[2:]
        s = jnp.exp(u)
        return (jst.norm.logpdf(mu_mu, 0, 10) + jnp.log(2.0) + jst.norm.logpdf(s, 0, 5) + u
                + jnp.sum(jst.norm.logpdf(g, mu_mu, s)) + jnp.sum(jst.norm.logpdf(y, g[idx], 1.0)))

    return m, logp


SEEDS = {"gaussian": gaussian, "mvnormal": mvnormal, "mixture": mixture, "logistic": logistic,
         "hierarchical": hierarchical}


@pytest.mark.parametrize("name", list(SEEDS))
def test_seed_model_logp_and_grad_match_hand_written(name, x64):
    model, reference = SEEDS[name]()
    cm = model.compile()
    rng = np.random.default_rng(3)
    points = jnp.asarray(rng.normal(scale=0.7, size=(5, cm.size)))
    got = jax.jit(jax.vmap(cm.logp))(points)
    want = jax.vmap(reference)(points)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    got_g = jax.jit(jax.vmap(jax.grad(cm.logp)))(points)
    want_g = jax.vmap(jax.grad(reference))(points)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-6, atol=1e-6)
    assert got.dtype == jnp.float64


def test_default_precision_is_float32():
    model, _ = gaussian()
    cm = model.compile()
    assert cm.initial_point().dtype == jnp.float32
    assert cm.logp(cm.initial_point()).dtype == jnp.float32
    assert not jax.config.jax_enable_x64


def test_compile_is_cached_and_invalidated_by_new_variables():
    model, _ = gaussian()
    assert model.compile() is model.compile()
    first = model.compile()
    with model:
        jv.Normal("extra", 0, 1)
    assert model.compile() is not first and model.compile().size == 3


def test_value_variable_names_and_initial_point(x64):
    with jv.Model() as m:
        jv.HalfNormal("sd", 1.0)
        jv.Beta("p", 2.0, 2.0)
        jv.Uniform("x", -1.0, 3.0)
        jv.Dirichlet("w", a=np.ones(3))
        jv.Normal("mu", 1.5, 2.0, shape=2)
    assert m.value_vars == ["sd_log__", "p_logodds__", "x_interval__", "w_simplex__", "mu"]
    ip = m.initial_point()
    assert ip["w_simplex__"].shape == (2,)
    np.testing.assert_allclose(ip["mu"], [1.5, 1.5])
    np.testing.assert_allclose(ip["sd_log__"], np.log(np.sqrt(2 / np.pi)))  # HalfNormal mean
    np.testing.assert_allclose(ip["p_logodds__"], 0.0, atol=1e-12)          # Beta(2, 2) mean 0.5
    np.testing.assert_allclose(ip["x_interval__"], 0.0, atol=1e-12)         # midpoint of (-1, 3)
    jittered = m.compile().initial_point(jax.random.key(1), jitter=1.0)
    assert np.all(np.abs(np.asarray(jittered) - m.compile().ravel(ip)) <= 1.0)
    assert not np.allclose(jittered, m.compile().ravel(ip))


def test_model_logp_accepts_value_or_constrained_points(x64):
    model, reference = gaussian()
    lp_value = model.logp({"mu": 0.2, "sd_log__": np.log(1.3)})
    lp_constrained = model.logp({"mu": 0.2, "sd": 1.3})
    assert lp_value == pytest.approx(float(reference(jnp.array([0.2, np.log(1.3)]))), rel=1e-10)
    assert lp_constrained == pytest.approx(lp_value, rel=1e-10)
    no_jac = model.logp({"mu": 0.2, "sd": 1.3}, jacobian=False)
    assert lp_value - no_jac == pytest.approx(np.log(1.3), rel=1e-10)
    terms = model.point_logps({"mu": 0.2, "sd": 1.3})
    assert set(terms) == {"mu", "sd", "n"}


def test_registries_and_nested_models():
    with jv.Model() as outer:
        a = jv.Normal("a", 0, 1)
        jv.Deterministic("a2", a**2)
        with jv.Model("inner") as inner:
            b = jv.Normal("b", a, 1)
            jv.Normal("y", b, 1, observed=[0.1, 0.2])
            jv.Potential("pen", -(b**2))
    assert [v.name for v in outer.free_RVs] == ["a", "inner::b"]
    assert [v.name for v in inner.free_RVs] == ["inner::b"]
    assert [v.name for v in outer.observed_RVs] == ["inner::y"]
    assert [v.name for v in outer.deterministics] == ["a2"]
    assert [v.name for v in outer.unobserved_RVs] == ["a", "inner::b", "a2"]
    assert [v.name for v in outer.potentials] == ["inner::pen"]
    assert set(outer.named_vars) == {"a", "a2", "inner::b", "inner::y", "inner::pen"}
    assert outer["inner::b"] is b and inner["b"] is b
    # the potential enters the joint density
    with jax.enable_x64(False):
        cm = outer.compile()
        z = jnp.array([0.3, -0.4])
        want = (stats.norm.logpdf(0.3) + stats.norm.logpdf(-0.4, 0.3, 1)
                + stats.norm.logpdf([0.1, 0.2], -0.4, 1).sum() - 0.16)
        assert float(cm.logp(z)) == pytest.approx(want, rel=1e-5)


def test_coords_and_dims():
    with jv.Model(coords={"city": ["a", "b", "c"]}) as m:
        x = jv.Normal("x", 0, 1, dims="city")
        jv.Normal("y", x, 1, observed=np.zeros((4, 3)), dims=("obs", "city"))
    assert x.shape == (3,)
    assert m.dim_lengths == {"city": 3, "obs": 4}
    assert m.named_vars_to_dims == {"x": ("city",), "y": ("obs", "city")}
    assert m.coords["city"] == ("a", "b", "c")


def test_data_and_set_data_reuse_the_compiled_model(x64):
    x_data = np.array([0.0, 1.0, 2.0])
    with jv.Model() as m:
        x = jv.Data("x", x_data)
        beta = jv.Normal("beta", 0, 1)
        mu = jv.Deterministic("mu", beta * x)
    cm = m.compile()
    flat = jnp.array([2.0])
    np.testing.assert_allclose(cm.evaluate(mu, flat), 2.0 * x_data)
    jv.set_data({"x": np.array([5.0, 6.0])}, model=m)
    assert m.compile() is cm
    np.testing.assert_allclose(cm.evaluate(mu, flat), [10.0, 12.0])
    with pytest.raises(TypeError, match="'beta'"):
        jv.set_data({"beta": [1.0]}, model=m)


def test_evaluate_vectorises_over_draws():
    model, _ = logistic()
    cm = model.compile()
    draws = jnp.stack([jnp.array([0.1, 0.5]), jnp.array([-0.2, 1.0])])
    theta = jax.vmap(lambda f: cm.evaluate(model["theta"], f))(draws)
    assert theta.shape == (2, 100)
    for i in range(2):
        np.testing.assert_allclose(theta[i], cm.evaluate(model["theta"], draws[i]), rtol=1e-6)
    # theta = mu + beta * x is affine in (mu, beta): check against two evaluations
    base = cm.evaluate(model["theta"], jnp.array([0.0, 0.0]))
    slope = cm.evaluate(model["theta"], jnp.array([0.0, 1.0])) - base
    np.testing.assert_allclose(theta[1], -0.2 + 1.0 * slope, rtol=1e-5, atol=1e-6)


def test_total_size_scales_the_likelihood(x64):
    data = np.random.default_rng(0).normal(size=10)
    with jv.Model() as m:
        mu = jv.Normal("mu", 0, 1)
        jv.Normal("y", mu, 1, observed=data, total_size=1000)
    terms = m.compile().logp_terms(jnp.array([0.5]))
    assert float(terms["y"]) == pytest.approx(100 * stats.norm.logpdf(data, 0.5, 1).sum(), rel=1e-10)
    with jv.Model() as m2:
        mu = jv.Normal("mu", 0, 1)
        jv.Normal("y", mu, 1, observed=np.zeros((10, 4)), total_size=(100, Ellipsis, 8))
    terms = m2.compile().logp_terms(jnp.array([0.0]))
    assert float(terms["y"]) == pytest.approx(10 * 2 * 40 * stats.norm.logpdf(0.0), rel=1e-10)


# ----------------------------------------------------------------------------------------------
# Bad input: a clear error naming the variable, before any compile
# ----------------------------------------------------------------------------------------------
def _dup():
    with jv.Model():
        jv.Normal("mu", 0, 1)
        jv.Normal("mu", 0, 1)


def _outside_model():
    jv.Normal("mu", 0, 1)


def _negative_sigma():
    with jv.Model():
        jv.Normal("mu", 0, sigma=-1.0)


def _observed_outside_support():
    with jv.Model():
        lam = jv.HalfNormal("lam", 1.0)
        jv.Poisson("counts", lam, observed=[1, 2, -3])


def _observed_nan():
    with jv.Model():
        mu = jv.Normal("mu", 0, 1)
        jv.Normal("obs", mu, 1, observed=[0.1, np.nan])


def _observed_inf():
    with jv.Model():
        mu = jv.Normal("mu", 0, 1)
        jv.Normal("obs", mu, 1, observed=[0.1, np.inf])


def _shape_dims_mismatch():
    with jv.Model(coords={"g": ["a", "b"]}):
        jv.Normal("theta", 0, 1, shape=3, dims="g")


def _unknown_dim():
    with jv.Model():
        jv.Normal("theta", 0, 1, dims="nowhere")


def _shape_vs_params():
    with jv.Model():
        jv.Normal("theta", mu=np.zeros(3), sigma=1, shape=(2,))


def _unknown_kwarg():
    with jv.Model():
        jv.Normal("mu", 0, sd=1)


def _total_size_on_free():
    with jv.Model():
        jv.Normal("mu", 0, 1, total_size=100)


def _discrete_free():
    with jv.Model():
        jv.Poisson("k", 3.0)


def _observed_shape_mismatch():
    with jv.Model():
        jv.Normal("y", 0, 1, shape=3, observed=np.zeros(4))


def _bad_total_size():
    with jv.Model():
        jv.Normal("y", 0, 1, observed=np.zeros(40), total_size=10)


def _observed_on_free_var():
    with jv.Model():
        a = jv.Normal("a", 0, 1)
        jv.Normal("b", 0, 1, observed=a)


BAD_INPUTS = [
    (_dup, ValueError, "'mu'"),
    (_outside_model, TypeError, "'mu'"),
    (_negative_sigma, ValueError, "'mu'.*sigma"),
    (_observed_outside_support, ValueError, "'counts'"),
    (_observed_nan, ValueError, "'obs'.*NaN"),
    (_observed_inf, ValueError, "'obs'.*infinite"),
    (_shape_dims_mismatch, ValueError, "'theta'"),
    (_unknown_dim, ValueError, "'theta'.*nowhere"),
    (_shape_vs_params, ValueError, "'theta'"),
    (_unknown_kwarg, TypeError, "'mu'.*sd"),
    (_total_size_on_free, ValueError, "'mu'.*total_size"),
    (_discrete_free, TypeError, "'k'"),
    (_observed_shape_mismatch, ValueError, "'y'"),
    (_bad_total_size, ValueError, "'y'.*total_size"),
    (_observed_on_free_var, ValueError, "'b'"),
]


@pytest.mark.parametrize("build, exc, pattern", BAD_INPUTS, ids=[b.__name__.strip("_") for b, _, _ in BAD_INPUTS])
def test_bad_input_names_the_variable(build, exc, pattern):
    with pytest.raises(exc, match=pattern):
        build()


def test_model_summary_shows_small_constant_arrays_and_a_latex_form():
    """``print(model)`` shows short constant parameters by value (not ``<array (2,)>``), and Jupyter gets
    a LaTeX array as from PyMC's Model (names escaped)."""
    with jv.Model() as m:
        jv.NormalMixture("x", w=np.array([0.2, 0.8]), mu=np.array([-0.3, 0.5]), sigma=np.array([0.1, 0.1]))
        sd_x = jv.HalfNormal("sd_x", 1)
        jv.Normal("y", m["x"], sd_x, observed=np.ones(3))
        jv.Normal("big", np.zeros(20), 1)
    text = str(m)
    assert "NormalMixture([0.2, 0.8], [-0.3, 0.5], [0.1, 0.1])" in text
    assert "<array (20,)>" in text  # long arrays stay abbreviated
    latex = m._repr_latex_()
    assert latex.startswith(r"$$\begin{array}{rcl}") and latex.endswith(r"\end{array}$$")
    assert r"\text{sd\_x} &\sim& \text{HalfNormal(1)}" in latex
    assert r"\text{y} &\sim& \text{Normal(x, sd\_x) (observed)}" in latex
    assert latex.count(r" \\ ") == 3  # four rows
