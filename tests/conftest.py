import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

import jaxvi as jv  # noqa: E402


@pytest.fixture
def x64():
    """Run the test (model building and evaluation) in float64."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def conjugate():
    """y_i ~ N(mu, 2), mu ~ N(1, 3): ``(model, posterior mean, posterior sd, log marginal likelihood)``."""
    y = np.random.default_rng(0).normal(0.7, 2.0, size=40)
    with jv.Model() as m:
        mu = jv.Normal("mu", 1.0, 3.0)
        jv.Normal("y", mu, 2.0, observed=y)
    prec = 1 / 9 + len(y) / 4
    mean = (1 / 9 + y.sum() / 4) / prec
    log_z = stats.multivariate_normal(np.ones(len(y)), 4 * np.eye(len(y)) + 9).logpdf(y)
    return m, mean, prec**-0.5, log_z


@pytest.fixture(scope="module")
def regression():
    """Linear regression with known noise: a correlated 2-D Gaussian posterior in closed form."""
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 1.0, size=30)
    y = 0.5 + 1.5 * x + rng.normal(0, 1.0, size=30)
    with jv.Model() as m:
        a = jv.Normal("a", 0, 10)
        b = jv.Normal("b", 0, 10)
        jv.Normal("y", a + b * x, 1.0, observed=y)
    X = np.column_stack([np.ones_like(x), x])
    cov = np.linalg.inv(X.T @ X + np.eye(2) / 100)
    return m, cov @ X.T @ y, cov
