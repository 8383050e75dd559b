"""Precision and compilation-cache settings.  jaxvi never changes JAX's global configuration on import."""

from __future__ import annotations

import os

import jax
import numpy as np

__all__ = ["enable_x64", "floatX", "prng_key", "enable_compilation_cache", "disable_compilation_cache",
           "compilation_cache_dir", "unsafe_cache_folder"]

#: Environment variable: "0"/"off"/"false" turns the default persistent compilation cache off; a path moves it.
CACHE_ENV = "JAXVI_COMPILATION_CACHE"
#: Compiles faster than this are not written to the persistent cache (JAX's default is 1 s). 0: every
#: compiled program is kept (a cache hit costs ~2 ms; the tiny eager-op and PRNG programs of a fit
#: cost XLA 5-120 ms each to compile, ~0.25 s in all per fresh process).
CACHE_MIN_COMPILE_SECONDS = 0.0
_cache_state = {"decided": False}


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/jaxvi/jax-<version>`` (``~/.cache/jaxvi/...`` by default)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "jaxvi", f"jax-{jax.__version__}")


def enable_compilation_cache(path: str | os.PathLike | None = None) -> str:
    """Keep compiled programs on disk (JAX's persistent compilation cache) so a new process reuses them.

    jaxvi turns this on by itself before its first compilation, in :func:`default_cache_dir`,
    unless JAX's cache was already configured, the environment variable ``JAXVI_COMPILATION_CACHE``
    is ``0`` (or names another folder), or :func:`disable_compilation_cache` was called first.
    Returns the folder.  The cache is trusted code: keep it in a folder only you can write to.
    """
    path = os.fspath(path) if path is not None else default_cache_dir()
    os.makedirs(path, mode=0o700, exist_ok=True)
    problem = unsafe_cache_folder(path)
    if problem:
        raise PermissionError(f"the compilation cache folder {path!r} {problem}: anyone who can write there could "
                              "plant compiled code that jaxvi would run; use a folder only you can write to "
                              f"(e.g. chmod 700 it), or set {CACHE_ENV}=0")
    jax.config.update("jax_compilation_cache_dir", path)
    if jax.config.jax_persistent_cache_min_compile_time_secs == 1.0:  # JAX's default: ours caches more
        jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)
    _cache_state.update(decided=True, path=path)
    return path


def unsafe_cache_folder(path: str) -> str | None:
    """Why ``path`` is no safe place for compiled code (world-writable, another owner), or None."""
    if not hasattr(os, "getuid"):  # Windows: no POSIX owners or modes
        return None
    st = os.stat(path)
    if st.st_uid != os.getuid():
        return f"belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o002:
        return "is writable by every user"
    return None


def disable_compilation_cache() -> None:
    """Do not use (or stop using) the persistent compilation cache jaxvi sets up."""
    if _cache_state.get("decided") and jax.config.jax_compilation_cache_dir == _cache_state.get("path"):
        jax.config.update("jax_compilation_cache_dir", None)
    _cache_state.update(decided=True, path=None)


def compilation_cache_dir() -> str | None:
    """The folder of JAX's persistent compilation cache in use (None when off)."""
    return jax.config.jax_compilation_cache_dir


def use_default_compilation_cache() -> None:
    """Called before jaxvi's first compilation: the default persistent cache, unless opted out."""
    if _cache_state["decided"]:
        return
    _cache_state["decided"] = True
    if jax.config.jax_compilation_cache_dir:  # the user configured JAX's cache: theirs wins
        return
    setting = os.environ.get(CACHE_ENV, "").strip()
    if setting.lower() in ("0", "off", "false", "no", "none"):
        return
    try:
        _cache_state["path"] = enable_compilation_cache(setting or None)
    except PermissionError as exc:  # an unsafe folder: warn, compile as usual
        import warnings

        warnings.warn(f"jaxvi: not using the persistent compilation cache: {exc}", RuntimeWarning, stacklevel=3)
        _cache_state["path"] = None
    except OSError:  # e.g. a read-only home: compile as usual
        _cache_state["path"] = None


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
