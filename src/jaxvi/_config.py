"""Precision settings.  jaxvi never changes JAX's global configuration on import."""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["enable_x64", "floatX"]


def enable_x64(enable: bool = True) -> None:
    """Switch JAX (and so jaxvi) to float64.  Call it before building models.

    For a scoped switch use JAX's own context manager: ``with jax.enable_x64(True): ...``.
    """
    jax.config.update("jax_enable_x64", bool(enable))


def floatX(x) -> np.ndarray:
    """``x`` as an array of JAX's default float type (float32 unless x64 is enabled)."""
    return np.asarray(x, dtype=jax.dtypes.canonicalize_dtype(np.float64))
