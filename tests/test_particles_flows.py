"""SVGD, ASVGD, Empirical, normalizing flows and per-variable groups (issue 4).

References are analytic: the seed mixture 0.2 N(-0.3, 0.1) + 0.8 N(0.5, 0.1) has left-mode mass
0.2, E[x^2] = sum w (mu^2 + s^2) and E[sin x] = sum w sin(mu) exp(-s^2 / 2); the 2-D normal has
correlation 0.8; flow log-determinants are checked against autodiff Jacobians.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

import jaxvi as jv
from jaxvi.vi import flows, stein
from jaxvi.faces.demo import mixture_model, mvnormal_model

W, MU, SD = np.array([0.2, 0.8]), np.array([-0.3, 0.5]), np.array([0.1, 0.1])
E_X2 = float(np.sum(W * (MU**2 + SD**2)))
E_SIN = float(np.sum(W * np.sin(MU) * np.exp(-SD**2 / 2)))


@pytest.fixture(scope="module")
def mixture():
    return mixture_model()


@pytest.fixture(scope="module")
def svgd_mixture(mixture):
    with mixture:
        return jv.fit(300, method="svgd", inf_kwargs=dict(n_particles=1000), obj_optimizer=jv.sgd(learning_rate=0.01),
                      random_seed=1, progressbar=False)


@pytest.fixture(scope="module")
def nfvi_mixture(mixture):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inference = jv.NFVI(flow="nsf*2", model=mixture, random_seed=0)
        approx = inference.fit(3000, obj_optimizer=jv.adam(learning_rate=optax.cosine_decay_schedule(0.01, 3000, 0.01)),
                               obj_n_mc=256, progressbar=False)
    return approx


# -- Stein numerics ---------------------------------------------------------------------------------

def test_rbf_repulsion_matches_autodiff():
    x = jax.random.normal(jax.random.key(0), (7, 3))
    K, dK, h = stein.rbf(x)

    def k_sum(xj, xi):
        return jnp.exp(-jnp.sum((xj - xi) ** 2) / h)

    # dK_i = sum_j grad_{x_j} k(x_j, x_i)
    ref = jnp.stack([sum(jax.grad(k_sum)(x[j], x[i]) for j in range(7)) for i in range(7)])
    np.testing.assert_allclose(dK, ref, rtol=1e-4, atol=1e-5)
    sq = np.sum((np.asarray(x)[:, None] - np.asarray(x)[None]) ** 2, -1)
    np.testing.assert_allclose(h, np.median(sq) / np.log(8), rtol=1e-5)


def test_ksd_is_small_for_target_draws_and_large_for_shifted():
    x = jax.random.normal(jax.random.key(1), (400, 2))
    good = stein.kernelized_stein_discrepancy(x, -x)  # score of N(0, I)
    bad = stein.kernelized_stein_discrepancy(x + 1.0, -(x + 1.0))
    assert float(good) < 0.2 < float(bad)


def test_unknown_kernel_and_estimator_named():
    with pytest.raises(ValueError, match="unknown kernel 'gauss'"):
        stein.get_kernel("gauss")
    with pytest.raises(ValueError, match="unknown estimator"):
        stein.get_estimator("ksd2")


# -- SVGD on the seed mixture -------------------------------------------------------------------------

def test_svgd_mixture_left_mode_mass(svgd_mixture):
    x = svgd_mixture.sample(4000, random_seed=0).posterior["x"].values.ravel()
    assert abs(np.mean(x < 0.1) - 0.2) < 0.05
    particles = np.asarray(svgd_mixture.histogram).ravel()
    assert particles.shape == (1000,)
    assert abs(np.mean(particles < 0.1) - 0.2) < 0.05


def test_svgd_sample_node_expectations(svgd_mixture, mixture):
    x = mixture["x"]
    assert abs(np.mean(svgd_mixture.sample_node(x**2, size=4000)) - E_X2) < 0.05
    assert abs(np.mean(svgd_mixture.sample_node(jv.math.sin(x), size=4000)) - E_SIN) < 0.05


def test_svgd_hist_is_stein_discrepancy_and_falls(svgd_mixture):
    h = svgd_mixture.hist
    assert len(h) == 300 and np.all(np.isfinite(h)) and np.all(h >= 0)
    assert h[-10:].mean() < 0.5 * h[:10].mean()


def test_svgd_plain_jitter_start_is_pymcs(mixture):
    """init='jitter' is PyMC's start; its particles split between the modes by basin (about 40%)."""
    inference = jv.SVGD(n_particles=500, model=mixture, random_seed=1, init="jitter")
    approx = inference.fit(100, obj_optimizer=jv.sgd(learning_rate=0.01), progressbar=False)
    left = np.mean(np.asarray(approx.histogram) < 0.1)
    assert 0.3 < left < 0.5
    assert inference.approx.init_ess is None


def test_svgd_refine_continues_without_new_compile(mixture):
    inference = jv.SVGD(n_particles=50, model=mixture, random_seed=3)
    inference.fit(20, obj_optimizer=jv.sgd(learning_rate=0.01), progressbar=False)
    runner = inference._runner
    inference.refine(10, progressbar=False)
    assert inference._runner is runner and len(inference.hist) == 30


def test_svgd_bad_inputs(mixture):
    with pytest.raises(ValueError, match="n_particles"):
        jv.SVGD(n_particles=0, model=mixture)
    with pytest.raises(ValueError, match="temperature"):
        jv.SVGD(n_particles=10, model=mixture, temperature=-1)
    with pytest.raises(ValueError, match="init"):
        jv.SVGD(n_particles=10, model=mixture, init="uniform")
    with pytest.raises(TypeError, match="unexpected keyword argument 'particles'"):
        jv.SVGD(particles=10, model=mixture)


# -- Empirical ------------------------------------------------------------------------------------------

def test_empirical_from_draws_dict_and_array():
    with jv.Model() as model:
        jv.Normal("mu", 0, 1)
        jv.HalfNormal("sd", 1)
    rng = np.random.default_rng(0)
    draws = {"mu": rng.normal(1.0, 0.5, 3000), "sd": np.abs(rng.normal(0, 2, 3000)) + 0.1}
    emp = jv.Empirical(draws, model=model)
    assert emp.size == 3000
    # the particles are unconstrained: sd_log__ = log(sd)
    np.testing.assert_allclose(np.asarray(emp.histogram)[:, 1], np.log(draws["sd"]), rtol=1e-5, atol=1e-6)
    post = emp.sample(20000, random_seed=1).posterior
    np.testing.assert_allclose(post["mu"].values.mean(), draws["mu"].mean(), atol=0.03)
    np.testing.assert_allclose(post["sd"].values.mean(), draws["sd"].mean(), atol=0.05)
    emp2 = jv.Empirical(np.asarray(emp.histogram), model=model)
    np.testing.assert_allclose(np.asarray(emp2.mean), np.asarray(emp.mean), rtol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(draws, 2\)"):
        jv.Empirical(np.zeros((10, 3)), model=model)
    with pytest.raises(ValueError, match="no values for sd"):
        jv.Empirical({"mu": draws["mu"]}, model=model)
    with pytest.raises(ValueError, match="trace of draws or a number of particles"):
        jv.Empirical(model=model)
    with pytest.raises(TypeError, match="no density"):
        emp.logq(np.zeros((1, 2)))


def test_empirical_from_nuts_inference_data():
    with jv.Model() as model:
        jv.Normal("mu", 0, 1)
        idata = jv.sample(draws=300, tune=200, chains=2, random_seed=0, progressbar=False)
    emp = jv.Empirical(idata, model=model)
    assert emp.size == 600
    np.testing.assert_allclose(np.asarray(emp.mean), idata.posterior["mu"].values.mean(), rtol=1e-5)


# -- normalizing flows ------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [flows.Planar, flows.Radial, flows.Householder, flows.Scale, flows.Loc])
def test_classic_layer_logdet_matches_autodiff_jacobian(layer):
    d = 3
    params = layer.init(jax.random.key(0), d, jnp.float32)
    # move away from the identity start so the check means something
    params = jax.tree_util.tree_map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape), params)
    z = jax.random.normal(jax.random.key(2), (d,))
    y, logdet = layer.forward(params, z)
    jac = jax.jacfwd(lambda v: layer.forward(params, v)[0])(z)
    np.testing.assert_allclose(logdet, jnp.linalg.slogdet(jac)[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer", [flows.Planar, flows.Radial])
def test_planar_and_radial_start_as_identity(layer):
    params = layer.init(jax.random.key(0), 4, jnp.float32)
    z = jax.random.normal(jax.random.key(2), (5, 4))
    y, logdet = layer.forward(params, z)
    np.testing.assert_allclose(y, z, atol=1e-6)
    np.testing.assert_allclose(logdet, 0.0, atol=1e-6)


@pytest.mark.parametrize("spec", ["realnvp*2", "maf", "nsf", "hh*2-scale-loc"])
def test_invertible_flow_log_prob_matches_its_draws(spec):
    family = flows.FlowFamily(spec, jax.random.key(0))
    params = family.init(jnp.array([0.5, -1.0, 2.0]))
    params = jax.tree_util.tree_map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(1), p.shape), params)
    z, logq = family.sample_and_log_prob(params, jax.random.key(3), 16)
    np.testing.assert_allclose(family.log_prob(params, z), logq, rtol=1e-3, atol=1e-3)


def test_flow_spec_parsing_and_errors():
    assert flows.FlowFamily("planar*2").layer_names == ["planar", "planar", "scale", "loc"]
    assert flows.FlowFamily("radial*2-loc").layer_names == ["radial", "radial", "loc"]
    assert flows.FlowFamily("scale-loc").layer_names == ["scale", "loc"]
    with pytest.raises(ValueError, match="cannot read 'wavy'"):
        flows.parse_flow("planar-wavy")
    with pytest.raises(ValueError, match="non-empty string"):
        flows.parse_flow("")
    with pytest.raises(TypeError, match="planar layers have no closed-form inverse"):
        flows.FlowFamily("planar").log_prob(flows.FlowFamily("planar").init(jnp.zeros(2)), jnp.zeros((1, 2)))


def test_scale_loc_flow_is_mean_field_on_a_normal():
    with jv.Model() as model:
        jv.Normal("a", mu=1.0, sigma=2.0)
        jv.Normal("b", mu=-1.0, sigma=0.5)
    approx = jv.NFVI(flow="scale-loc", model=model, random_seed=0).fit(
        4000, obj_optimizer=jv.adam(learning_rate=optax.cosine_decay_schedule(0.03, 4000, 0.01)), obj_n_mc=8,
        progressbar=False)
    np.testing.assert_allclose(np.asarray(approx.mean), [1.0, -1.0], atol=0.1)
    np.testing.assert_allclose(np.asarray(approx.std), [2.0, 0.5], rtol=0.1)


def test_nfvi_mixture_beats_mean_field(nfvi_mixture, mixture):
    with mixture:
        mf = jv.fit(3000, method="advi", obj_optimizer=jv.adam(learning_rate=0.01), random_seed=0, progressbar=False)
    assert np.mean(nfvi_mixture.hist[-300:]) < np.mean(mf.hist[-300:]) - 0.1
    x = nfvi_mixture.sample(4000, random_seed=0).posterior["x"].values.ravel()
    assert abs(np.mean(x < 0.1) - 0.2) < 0.07
    node = mixture["x"]
    assert abs(np.mean(nfvi_mixture.sample_node(node**2, size=4000)) - E_X2) < 0.05
    assert abs(np.mean(nfvi_mixture.sample_node(jv.math.sin(node), size=4000)) - E_SIN) < 0.05


def test_coupling_flow_needs_two_dimensions(mixture):
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        jv.NFVI(flow="realnvp", model=mixture)


# -- correlated normal: ASVGD and a flow recover the correlation ------------------------------------------------

def _corr(c):
    c = np.asarray(c)
    return c[0, 1] / np.sqrt(c[0, 0] * c[1, 1])


def test_asvgd_and_flow_recover_correlation():
    model = mvnormal_model()
    asvgd = jv.ASVGD(model=model, random_seed=0).fit(1500, obj_optimizer=jv.adam(learning_rate=0.01), obj_n_mc=200,
                                                      progressbar=False)
    assert abs(_corr(asvgd.cov) - 0.8) < 0.05
    np.testing.assert_allclose(np.diag(np.asarray(asvgd.cov)), 1.0, rtol=0.15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nf = jv.NFVI(flow="maf", model=model, random_seed=0).fit(
            2500, obj_optimizer=jv.adam(learning_rate=optax.cosine_decay_schedule(0.01, 2500, 0.01)), obj_n_mc=16,
            progressbar=False)
    assert abs(_corr(nf.cov) - 0.8) < 0.05


def test_asvgd_refuses_particles():
    model = mvnormal_model()
    with pytest.raises(TypeError, match="for particles use SVGD"):
        jv.ASVGD(approx=jv.Empirical(size=10, model=model))


# -- banana: a flow beats full-rank on KL --------------------------------------------------------------------------

def test_flow_beats_full_rank_on_banana():
    with jv.Model() as banana:
        x = jv.Normal("x", 0.0, 1.0)
        jv.Normal("y", mu=x**2 - 1.0, sigma=0.4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fr = jv.fit(4000, method="fullrank_advi", model=banana, obj_optimizer=jv.adam(learning_rate=0.01),
                    random_seed=0, progressbar=False)
        nf = jv.NFVI(flow="realnvp*4", model=banana, random_seed=0).fit(
            4000, obj_optimizer=jv.adam(learning_rate=optax.cosine_decay_schedule(0.005, 4000, 0.01)), obj_n_mc=16,
            progressbar=False)
    # the target is normalised (log Z = 0), so the -ELBO of fresh draws is KL(q || p)
    cm = banana.compile()
    logp = jax.vmap(cm.logp)

    def kl(approx):
        z, logq = approx.family.sample_and_log_prob(approx.vparams, jax.random.key(7), 20000)
        return float(jnp.mean(logq - logp(z)))

    kl_fr, kl_nf = kl(fr), kl(nf)
    assert kl_nf < 0.5 * kl_fr, (kl_nf, kl_fr)


# -- groups --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def grouped_model():
    with jv.Model() as model:
        a = jv.MvNormal("a", mu=[0.0, 0.0], cov=[[1.0, 0.8], [0.8, 1.0]], shape=2)
        b = jv.Normal("b", mu=2.0, sigma=0.5)
        c = jv.HalfNormal("c", sigma=1.0)
    return model, a, b, c


def test_groups_fit_per_variable_families(grouped_model):
    model, a, b, c = grouped_model
    approx = jv.Approximation([jv.Group([a], vfam="fr"), jv.Group(None, vfam="mf")], model=model, random_seed=0)
    assert approx.family.name == "full_rank+mean_field"
    jv.KLqp(approx, random_seed=0).fit(4000, obj_optimizer=jv.adam(learning_rate=optax.cosine_decay_schedule(
        0.03, 4000, 0.01)), obj_n_mc=8, progressbar=False)
    cov = np.asarray(approx.cov)
    assert abs(_corr(cov[:2, :2]) - 0.8) < 0.06
    assert np.all(cov[2:, :2] == 0)  # independent groups
    post = approx.sample(4000, random_seed=1).posterior
    np.testing.assert_allclose(post["b"].values.mean(), 2.0, atol=0.05)
    np.testing.assert_allclose(post["b"].values.std(), 0.5, rtol=0.1)
    c_draws = post["c"].values.ravel()
    assert abs(np.median(c_draws) - stats.halfnorm.median()) < 0.1


def test_groups_with_a_flow_group(grouped_model):
    model, a, b, c = grouped_model
    approx = jv.Approximation([jv.Group(["b", "c"], vfam="planar*2"), jv.Group([a], vfam="mf")], model=model)
    assert approx.family.name == "normalizing_flow+mean_field"
    jv.KLqp(approx).fit(200, obj_optimizer=jv.adam(learning_rate=0.01), progressbar=False)
    assert np.all(np.isfinite(approx.hist))


def test_group_errors_name_the_variable(grouped_model):
    model, a, b, c = grouped_model
    with pytest.raises(ValueError, match="'a' is in more than one group"):
        jv.Approximation([jv.Group([a]), jv.Group([a, b, c])], model=model)
    with pytest.raises(ValueError, match="no group covers c"):
        jv.Approximation([jv.Group([a]), jv.Group([b])], model=model)
    with pytest.raises(ValueError, match="'zz' is not a free variable"):
        jv.Approximation([jv.Group(["zz"]), jv.Group(None)], model=model)
    with pytest.raises(ValueError, match="only one Group"):
        jv.Approximation([jv.Group(None), jv.Group(None)], model=model)
    with pytest.raises(ValueError, match="unknown vfam 'gaussian'"):
        jv.Group([a], vfam="gaussian")
    with pytest.raises(TypeError, match="list of jv.Group"):
        jv.Approximation(["a"], model=model)


# -- save / load ----------------------------------------------------------------------------------------------

def test_save_load_flow_empirical_and_groups(tmp_path, grouped_model):
    model, a, b, c = grouped_model
    made = [
        jv.NormalizingFlow("planar*2", model=model, random_seed=1),
        jv.Empirical(size=7, model=model, random_seed=1),
        jv.Approximation([jv.Group([a], vfam="fr"), jv.Group(None, vfam="radial")], model=model, random_seed=1),
    ]
    for i, approx in enumerate(made):
        # perturb so a fresh approximation differs from the saved one
        approx.vparams = jax.tree_util.tree_map(lambda p: p + 0.1, approx.vparams)
        approx.hist = np.arange(3.0)
        path = tmp_path / f"a{i}.npz"
        approx.save(path)
        back = jv.load(path, model=model)
        assert type(back) is type(approx) and back.family.name == approx.family.name
        for x, y in zip(jax.tree_util.tree_leaves(back.vparams), jax.tree_util.tree_leaves(approx.vparams)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        np.testing.assert_array_equal(back.hist, approx.hist)
        z1 = back.sample_flat(5, random_seed=3)
        z2 = approx.sample_flat(5, random_seed=3)
        np.testing.assert_allclose(np.asarray(z1), np.asarray(z2), rtol=1e-6)
