"""jaxvi: Bayesian variational inference on JAX with a PyMC-style modelling API.

    import jaxvi as jv
    with jv.Model() as model:
        mu = jv.Normal("mu", 0, 1)
        jv.Normal("y", mu, 1, observed=data)
"""

from . import math
from ._config import enable_x64, floatX
from .compiled import CompiledModel
from .distributions import *  # noqa: F401,F403
from .distributions import __all__ as _distributions
from .graph import Node, lift
from .model import Data, Deterministic, Model, Potential, modelcontext, set_data

__version__ = "0.1.0.dev0"

__all__ = [
    "math", "enable_x64", "floatX", "CompiledModel", "Node", "lift",
    "Data", "Deterministic", "Model", "Potential", "modelcontext", "set_data",
    *_distributions,
]
