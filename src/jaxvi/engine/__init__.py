"""Floor 3, the engine: the fused optimisation loop, data feeding and checkpoint files.

Imports only from floors 1-2.
"""

from jaxvi.engine.loop import compilations

__all__ = ["compilations"]
