"""Models shared by the PyMC-compatibility tests (PyMC's tests/models.py ones we need)."""

import numpy as np

import jaxvi as jv


def build_another_simple_model():
    """PyMC's ``tests.models.another_simple_model``: x ~ N(-2.1, tau=1.3), size 2, plus a constant Potential."""
    with jv.Model() as model:
        jv.Normal("x", -2.1, tau=1.3, size=2, initval=np.ones(2) * 0.1)
        jv.Potential("pot", np.ones((10, 10)))
    return model
