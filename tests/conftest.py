import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def x64():
    """Run the test (model building and evaluation) in float64."""
    with jax.enable_x64(True):
        yield
