"""PyMC-named distributions backed by ``numpyro.distributions``."""

from jaxvi.model.distributions.base import Continuous, Discrete, Distribution, DistSpec
from jaxvi.model.distributions.continuous import *  # noqa: F401,F403
from jaxvi.model.distributions.continuous import __all__ as _continuous
from jaxvi.model.distributions.discrete import *  # noqa: F401,F403
from jaxvi.model.distributions.discrete import __all__ as _discrete
from jaxvi.model.distributions.mixture import *  # noqa: F401,F403
from jaxvi.model.distributions.mixture import __all__ as _mixture
from jaxvi.model.distributions.multivariate import *  # noqa: F401,F403
from jaxvi.model.distributions.multivariate import __all__ as _multivariate

__all__ = ["Distribution", "Continuous", "Discrete", "DistSpec",
           *_continuous, *_discrete, *_multivariate, *_mixture]
