"""PyMC's ``pymc.variational.opvi``: the approximation and group classes under PyMC's module name."""

from jaxvi.model.distributions.base import ParametrizationError
from jaxvi.variational.approximations import (Approximation, EmpiricalGroup, FullRankGroup, Group, GroupingError,
                                              MeanFieldGroup)
from jaxvi.variational.operators import KL

__all__ = ["Approximation", "Group", "MeanFieldGroup", "FullRankGroup", "EmpiricalGroup", "GroupingError",
           "ParametrizationError", "KL"]
