"""jaxvi: Bayesian variational inference on JAX with a PyMC-style modelling API.

    import jaxvi as jv
    with jv.Model() as model:
        mu = jv.Normal("mu", 0, 1)
        jv.Normal("y", mu, 1, observed=data)
"""

from jaxvi.model import math
from jaxvi.model.config import (compilation_cache_dir, disable_compilation_cache, enable_compilation_cache, enable_x64,
                                floatX)
from jaxvi.model.compiled import CompiledModel
from jaxvi.model.context import Data, Deterministic, Minibatch, Model, Potential, modelcontext, set_data
from jaxvi.model.distributions import *  # noqa: F401,F403
from jaxvi.model.distributions import __all__ as _distributions
from jaxvi.model import distributions  # jv.distributions.__all__, as pm.distributions
from jaxvi.model.distributions.base import logp
from jaxvi.model.nodes import Node, lift
from jaxvi.vi import optimizers
from jaxvi.vi.optimizers import (adadelta, adagrad, adagrad_window, adam, adamax, apply_momentum,
                                 apply_nesterov_momentum, momentum, nesterov_momentum, norm_constraint,
                                 polyak_averaging, rmsprop, sgd, total_norm_constraint)
from jaxvi import engine
from jaxvi.engine import feeding as data  # jv.data.NpyDataset
from jaxvi.results import diagnostics
from jaxvi.results.predictive import draw, sample_posterior_predictive, sample_prior_predictive
from jaxvi import variational
from jaxvi.variational import callbacks
from jaxvi.variational.approximations import (Approximation, Empirical, FullRank, Group, LowRank, MeanField,
                                              NormalizingFlow, load, sample_approx)
from jaxvi.variational.inference import (ADVI, ASVGD, NFVI, SVGD, FullRankADVI, ImplicitGradient, Inference, KLqp,
                                         LowRankADVI, Pathfinder, DADVI, fit)
from jaxvi.variational.sampling import sample
from jaxvi.variational.inference import Auto, ImportanceWeighted, Renyi
from jaxvi.variational.auto import AutoReport, AutoStage, AutoWarning
from jaxvi.faces import viz  # jv.viz.ManualVI; widgets imported on use
from jaxvi.faces.graphviz import model_to_graphviz
from jaxvi.faces.plots import plot_compare, plot_hist, plot_tracker

__version__ = "0.1.0.dev0"

__all__ = [
    "callbacks", "optimizers", "Approximation", "FullRank", "MeanField", "load", "sample_approx",
    "Empirical", "NormalizingFlow", "Group", "SVGD", "ASVGD", "NFVI", "ImplicitGradient",
    "ADVI", "FullRankADVI", "Inference", "KLqp", "fit", "LowRank", "LowRankADVI", "Pathfinder", "DADVI", "diagnostics",
    "sample", "draw", "logp", "sample_posterior_predictive", "sample_prior_predictive", "plot_compare", "plot_hist", "plot_tracker", "model_to_graphviz", "viz",
    "adadelta", "adagrad", "adagrad_window", "adam", "adamax", "apply_momentum", "apply_nesterov_momentum",
    "momentum", "nesterov_momentum", "norm_constraint", "polyak_averaging", "rmsprop", "sgd", "total_norm_constraint",
    "math", "enable_x64", "floatX", "enable_compilation_cache", "disable_compilation_cache", "compilation_cache_dir", "CompiledModel", "Node", "lift",
    "Data", "Deterministic", "Minibatch", "data", "distributions", "engine", "variational", "Model", "Potential", "modelcontext", "set_data",
    *_distributions,
    "Renyi", "ImportanceWeighted", "Auto", "AutoReport", "AutoStage", "AutoWarning",
]
