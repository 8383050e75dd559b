"""The lazy expression graph and jv.math."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvi as jv
from jaxvi.model.nodes import Apply, Constant


@pytest.fixture
def model_and_vars():
    with jv.Model() as m:
        a = jv.Normal("a", 0, 1, shape=(3,))
        b = jv.Normal("b", 0, 1, shape=(3, 2))
        s = jv.Normal("s", 0, 1)
    return m, a, b, s


def _eval(m, node, flat):
    return np.asarray(m.compile().evaluate(node, flat))


def test_shapes_are_inferred_without_evaluation(model_and_vars):
    m, a, b, s = model_and_vars
    assert (a + 1).shape == (3,)
    assert (a @ b).shape == (2,)
    assert b.T.shape == (2, 3)
    assert b.sum(axis=0).shape == (2,)
    assert b.mean().shape == ()
    assert (a[[0, 2]]).shape == (2,)
    assert b[1:, :1].shape == (2, 1)
    assert (a > s).dtype == np.bool_
    assert jv.math.sin(a).shape == (3,)
    assert jv.math.stack([s, s * 2]).shape == (2,)
    assert isinstance(a * 2, Apply)


def test_expression_values_match_numpy(model_and_vars):
    m, a, b, s = model_and_vars
    rng = np.random.default_rng(1)
    flat = jnp.asarray(rng.normal(size=m.compile().size), jnp.float32)
    vals = m.compile().unravel(flat)
    A, B, S = (np.asarray(vals[k]) for k in ("a", "b", "s"))
    idx = np.array([2, 0, 0, 1])
    cases = [
        (a**2 + 3 * s - 1 / (1 + jv.math.exp(-a)), A**2 + 3 * S - 1 / (1 + np.exp(-A))),
        (a @ b, A @ B),
        (b.T @ a, B.T @ A),
        (a[idx] * 2.0, A[idx] * 2.0),
        (np.ones(3) * a - a / 2.0, np.ones(3) * A - A / 2.0),
        (jv.math.logsumexp(a), np.log(np.sum(np.exp(A)))),
        (jv.math.invlogit(a), 1 / (1 + np.exp(-A))),
        (jv.math.softplus(a), np.log1p(np.exp(A))),
        (jv.math.where(a > 0, a, -a), np.abs(A)),
        ((a > s) & (a < 10), (A > S) & (A < 10)),
        (abs(-a).max(), np.max(np.abs(A))),
        (b.sum(axis=1), B.sum(axis=1)),
        (jv.math.dot(a, b), A @ B),
        (2.0**s, 2.0**S),
        (b.reshape(6)[::2], B.reshape(6)[::2]),
    ]
    for node, expected in cases:
        np.testing.assert_allclose(_eval(m, node, flat), expected, rtol=2e-5, atol=1e-6)


def test_lift_user_function(model_and_vars):
    m, a, b, s = model_and_vars

    @jv.lift
    def scaled_norm(x, scale=1.0):
        return jnp.sqrt(jnp.sum(x**2)) * scale

    node = scaled_norm(a, scale=s)
    assert node.shape == ()
    flat = jnp.arange(m.compile().size, dtype=jnp.float32) / 10
    vals = m.compile().unravel(flat)
    np.testing.assert_allclose(_eval(m, node, flat), np.linalg.norm(vals["a"]) * vals["s"], rtol=1e-6)
    # without nodes a lifted function runs at once
    assert float(scaled_norm(jnp.ones(4))) == pytest.approx(2.0)


def test_math_exposes_all_of_jax_numpy():
    for name in ("einsum", "cumsum", "tanh", "clip", "outer", "linalg"):
        if callable(getattr(jnp, name)):
            assert callable(getattr(jv.math, name))
    with pytest.raises(AttributeError, match="not_a_function"):
        jv.math.not_a_function  # noqa: B018


def test_nodes_refuse_python_truth_and_numpy_conversion(model_and_vars):
    _, a, _, s = model_and_vars
    with pytest.raises(TypeError, match="jv.math.where"):
        bool(s > 0)
    with pytest.raises(TypeError, match="sample_node"):
        np.asarray(a)


def test_shape_errors_are_raised_when_building(model_and_vars):
    _, a, b, _ = model_and_vars
    with pytest.raises(ValueError, match="matmul"):
        b @ b


def test_constants_are_weakly_typed():
    assert Constant(2.0).weak_type
    with jv.Model():
        x = jv.Normal("x", 0, 1)
    assert (x * 2.0).dtype == np.float32
    assert (x * np.float64(2.0)).dtype == jax.dtypes.canonicalize_dtype(np.float64)


def test_fill_diagonal_as_pymc_writes_it():
    """``jv.math.fill_diagonal(cov, 1)`` returns a new matrix with the diagonal set (PyMC's form), on nodes too."""
    cov = np.arange(9.0).reshape(3, 3)
    out = np.asarray(jv.math.fill_diagonal(cov, 1.0))
    expected = cov.copy()
    np.fill_diagonal(expected, 1.0)
    np.testing.assert_array_equal(out, expected)
    with jv.Model() as m:
        x = jv.Normal("x", 0, 1, shape=(3, 3))
        node = jv.math.fill_diagonal(x, 1.0)
    cm = m.compile()
    flat = np.arange(9.0, dtype=np.float32)
    np.testing.assert_array_equal(np.diag(np.asarray(cm.evaluate([node], flat)[0])), 1.0)
    np.testing.assert_array_equal(np.asarray(cm.evaluate([node], flat)[0])[0, 1], 1.0)
