"""PyMC-named distributions backed by ``numpyro.distributions``."""

from .base import Continuous, Discrete, Distribution, DistSpec
from .continuous import *  # noqa: F401,F403
from .continuous import __all__ as _continuous
from .discrete import *  # noqa: F401,F403
from .discrete import __all__ as _discrete
from .mixture import *  # noqa: F401,F403
from .mixture import __all__ as _mixture
from .multivariate import *  # noqa: F401,F403
from .multivariate import __all__ as _multivariate

__all__ = ["Distribution", "Continuous", "Discrete", "DistSpec",
           *_continuous, *_discrete, *_multivariate, *_mixture]
