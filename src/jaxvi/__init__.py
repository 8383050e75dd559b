"""jaxvi: Bayesian variational inference on JAX with a PyMC-style modelling API.

    import jaxvi as jv
    with jv.Model() as model:
        mu = jv.Normal("mu", 0, 1)
        jv.Normal("y", mu, 1, observed=data)
"""

from . import callbacks, math, optimizers
from ._config import compilation_cache_dir, disable_compilation_cache, enable_compilation_cache, enable_x64, floatX
from .approximations import (Approximation, Empirical, FullRank, Group, LowRank, MeanField, NormalizingFlow, load,
                             sample_approx)
from .inference import (ADVI, ASVGD, NFVI, SVGD, FullRankADVI, ImplicitGradient, Inference, KLqp, LowRankADVI,
                        fit)
from .optimizers import (adadelta, adagrad, adagrad_window, adam, adamax, apply_momentum,
                         apply_nesterov_momentum, momentum, nesterov_momentum, norm_constraint, polyak_averaging,
                         rmsprop, sgd, total_norm_constraint)
from .compiled import CompiledModel
from .distributions import *  # noqa: F401,F403
from .distributions import __all__ as _distributions
from .graph import Node, lift
from .plots import plot_compare, plot_hist, plot_tracker
from .graphviz import model_to_graphviz
from . import viz  # noqa: E402  (jv.viz.ManualVI; widgets imported on use)
from .sampling import sample, sample_posterior_predictive, sample_prior_predictive
from .pathfinder import Pathfinder  # noqa: E402  (registers method="pathfinder")
from . import diagnostics  # noqa: E402
from .model import Data, Deterministic, Minibatch, Model, Potential, modelcontext, set_data
from . import data  # noqa: E402  (jv.data.NpyDataset)

__version__ = "0.1.0.dev0"

__all__ = [
    "callbacks", "optimizers", "Approximation", "FullRank", "MeanField", "load", "sample_approx",
    "Empirical", "NormalizingFlow", "Group", "SVGD", "ASVGD", "NFVI", "ImplicitGradient",
    "ADVI", "FullRankADVI", "Inference", "KLqp", "fit", "LowRank", "LowRankADVI", "Pathfinder", "diagnostics",
    "sample", "sample_posterior_predictive", "sample_prior_predictive", "plot_compare", "plot_hist", "plot_tracker", "model_to_graphviz", "viz",
    "adadelta", "adagrad", "adagrad_window", "adam", "adamax", "apply_momentum", "apply_nesterov_momentum",
    "momentum", "nesterov_momentum", "norm_constraint", "polyak_averaging", "rmsprop", "sgd", "total_norm_constraint",
    "math", "enable_x64", "floatX", "enable_compilation_cache", "disable_compilation_cache", "compilation_cache_dir", "CompiledModel", "Node", "lift",
    "Data", "Deterministic", "Minibatch", "data", "Model", "Potential", "modelcontext", "set_data",
    *_distributions,
]
