"""Floor 5, the PyMC-shaped objects; also PyMC's namespace.

``jaxvi.variational.approximations.MeanField``, ``jaxvi.variational.inference.ADVI``,
``jaxvi.variational.callbacks.CheckParametersConvergence`` are where PyMC keeps them
(``pymc.variational....``).
"""

from jaxvi.variational import approximations, callbacks, inference, operators, opvi, updates
from jaxvi.variational.approximations import (Approximation, Empirical, FullRank, Group, LowRank, MeanField,
                                              NormalizingFlow, load, sample_approx)
from jaxvi.variational.inference import (ADVI, ASVGD, NFVI, SVGD, FullRankADVI, ImplicitGradient, Inference, KLqp,
                                         LowRankADVI, fit)

__all__ = ["approximations", "callbacks", "inference", "operators", "opvi", "updates", "Approximation", "Empirical", "FullRank", "Group", "LowRank",
           "MeanField", "NormalizingFlow", "load", "sample_approx", "ADVI", "ASVGD", "NFVI", "SVGD", "FullRankADVI",
           "ImplicitGradient", "Inference", "KLqp", "LowRankADVI", "fit"]
