"""Shared pieces of the PyMC-compatibility suite (ports of PyMC's ``tests/variational``)."""

import warnings

import numpy as np
import pytest

from pymc_compat.compat_models import build_another_simple_model


@pytest.fixture
def fail_on_warning():
    """PyMC runs its inference tests with warnings turned into errors; so do we (library deprecations aside)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        yield


@pytest.fixture(scope="session")
def another_simple_model():
    return build_another_simple_model()
