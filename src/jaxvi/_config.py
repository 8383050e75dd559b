"""Precision settings.  jaxvi never changes JAX's global configuration on import."""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["enable_x64", "floatX", "prng_key"]


def enable_x64(enable: bool = True) -> None:
    """Switch JAX (and so jaxvi) to float64.  Call it before building models.

    For a scoped switch use JAX's own context manager: ``with jax.enable_x64(True): ...``.
    """
    jax.config.update("jax_enable_x64", bool(enable))


def floatX(x) -> np.ndarray:
    """``x`` as an array of JAX's default float type (float32 unless x64 is enabled)."""
    return np.asarray(x, dtype=jax.dtypes.canonicalize_dtype(np.float64))


def prng_key(random_seed):
    """A typed JAX PRNG key from ``random_seed`` (None: fresh entropy; int; numpy Generator; JAX key)."""
    import jax.numpy as jnp

    if random_seed is None:
        return jax.random.key(int(np.random.SeedSequence().generate_state(1, np.uint32)[0]))
    if isinstance(random_seed, np.random.Generator):
        return jax.random.key(int(random_seed.integers(0, 2**31 - 1)))
    if isinstance(random_seed, (int, np.integer)):
        return jax.random.key(int(random_seed) % (2**32))
    if isinstance(random_seed, jax.Array):
        if jnp.issubdtype(random_seed.dtype, jax.dtypes.prng_key):
            return random_seed
        if random_seed.shape == (2,) and random_seed.dtype == jnp.uint32:
            return jax.random.wrap_key_data(random_seed)
    raise TypeError(f"random_seed must be None, an int, a numpy Generator or a JAX key, got {random_seed!r}")
