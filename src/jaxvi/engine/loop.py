"""The optimisation engine (floor 3): one fused loop for every inference method.

``make_step`` turns an objective and an optax optimizer into a pure step.  ``make_runner``
jit-compiles a chunk of up to ``chunk_size`` steps as one ``lax.while_loop`` whose trip
count is a runtime argument, so chunks of any length reuse one compiled function.  Inside
the loop a step whose loss or parameters are not finite is not applied: the chunk ends
there, holding the last finite state, and reports which coordinates went bad.

``run`` is the host loop between chunks: progress bar ("Average Loss" over the last 1000
steps, as PyMC shows it), callbacks at the steps they ask for, the NaN guard, and a clean
stop on KeyboardInterrupt or StopIteration.  Nothing here knows about models or families.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["make_step", "make_runner", "step_key", "compilations", "run", "RunResult", "logger"]

logger = logging.getLogger("jaxvi")
if not logger.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

AVERAGE_WINDOW = 1000
CHUNK_SECONDS = 0.25  # the host looks in (progress, Ctrl-C) about this often


def make_step(objective: Callable, optimizer: optax.GradientTransformation) -> Callable:
    """``step(params, opt_state, rand, batch) -> (params, opt_state, loss)`` for ``objective(params, rand, batch)``."""
    grad_fn = jax.value_and_grad(objective)

    def step(params, opt_state, key, batch):
        loss, grads = grad_fn(params, key, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def _all_finite(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.asarray(True)


@contextlib.contextmanager
def compilations():
    """Record the JAX functions lowered for compilation inside the ``with`` block.

    ``with jv.engine.compilations() as names: ...`` leaves in ``names`` one entry (the function's
    name) per jit lowering, whether XLA then compiles it or loads it from the persistent cache.
    A second fit of the same model and method should add none.
    """
    names: list[str] = []

    def listener(event, duration, **kwargs):
        if event == _LOWERING_EVENT:
            names.append(str(kwargs.get("fun_name", "?")))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


_LOWERING_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"


#: Most noise elements pre-drawn at once for a block of steps (4 MB in float32).
NOISE_BLOCK_ELEMENTS = 1 << 20
#: Most steps whose noise is pre-drawn at once.
NOISE_BLOCK_STEPS = 512


def step_key(key, t):
    """The PRNG key of global step ``t`` of a fit with key ``key``: the same however the steps are chunked."""
    return jax.random.fold_in(key, t)


def make_runner(step: Callable, chunk_size: int, coordinate_finite: Callable, loss_dtype=None,
                per_step: Callable | None = None, stop: Callable | None = None,
                draw: Callable | None = None) -> Callable:
    """A jitted ``run_chunk(params, opt_state, key, t0, m, batch)`` running ``m <= chunk_size`` steps.

    Step ``t0 + i`` gets its randomness from ``step_key(key, t0 + i)``, so a fit gives the same
    numbers however the host splits it into chunks (and after a resume).  ``step`` is
    ``step(params, opt_state, rand, batch)`` where ``rand`` is that key, or, with ``draw``, the
    noise ``draw(params, key)`` (which may use ``params`` for shapes and dtypes only): the noise of a
    block of steps is then drawn in one vectorised call before the block runs (much cheaper on CPU
    than one small PRNG call per step).

    With ``per_step``, step ``i`` of the chunk sees ``per_step(batch, i)`` instead of ``batch``
    (streamed data: ``batch`` holds a stacked block of per-step batches).
    With ``stop``, the loop also ends as soon as ``stop(opt_state)`` is True (an in-loop stopping
    rule whose state the step keeps in ``opt_state``); ``run`` reports that as a convergence stop.

    Returns ``(params, opt_state, key, losses[chunk_size], done, ok, bad_coordinates)``:
    ``done`` steps were applied; ``ok`` is False when the next one produced a non-finite loss
    or parameters (``bad_coordinates`` marks which), in which case it was not applied.
    """
    loss_dtype = loss_dtype or jax.dtypes.canonicalize_dtype(np.float64)

    def run_chunk(params, opt_state, key, t0, m, batch):
        if draw is None:
            def noise_init():
                return ()

            def noise_at(i, state):
                return step_key(key, t0 + i), state
        else:
            example = jax.eval_shape(draw, params, step_key(key, 0))
            size = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(example))
            block = int(max(1, min(NOISE_BLOCK_STEPS, chunk_size, NOISE_BLOCK_ELEMENTS // max(size, 1))))

            def noise_init():  # (noise of steps base .. base + block, base, next step needing a refill)
                buf = jax.tree_util.tree_map(lambda x: jnp.zeros((block,) + x.shape, x.dtype), example)
                return buf, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32)

            def refill(i, _):
                # always a whole block, even near the chunk's end: one place in the program that draws
                # (each PRNG draw site costs XLA about a second to compile), at the price of unused noise
                steps = i + jnp.arange(block, dtype=i.dtype)
                return jax.vmap(lambda j: draw(params, step_key(key, t0 + j)))(steps), i, i + block

            def noise_at(i, state):
                state = jax.lax.cond(i >= state[2], lambda s: refill(i, s), lambda s: s, state)
                return jax.tree_util.tree_map(lambda b: b[i - state[1]], state[0]), state

        def cond(carry):
            i, _, opt_state, _, ok, _, _ = carry
            return (i < m) & ok & (True if stop is None else ~stop(opt_state))

        def body(carry):
            i, params, opt_state, losses, _, bad, noise = carry
            rand, noise = noise_at(i, noise)
            new_params, new_opt, loss = step(params, opt_state, rand,
                                             batch if per_step is None else per_step(batch, i))
            ok = jnp.isfinite(loss) & _all_finite(new_params)
            pick = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
            params = jax.tree_util.tree_map(pick, new_params, params)
            opt_state = jax.tree_util.tree_map(pick, new_opt, opt_state)
            losses = losses.at[i].set(loss.astype(losses.dtype))
            bad = jnp.where(ok, bad, ~coordinate_finite(new_params))
            return i + ok.astype(i.dtype), params, opt_state, losses, ok, bad, noise

        bad0 = jnp.zeros_like(coordinate_finite(params))
        losses0 = jnp.full((chunk_size,), jnp.nan, loss_dtype)
        carry = (jnp.zeros((), jnp.int32), params, opt_state, losses0, jnp.asarray(True), bad0, noise_init())
        done, params, opt_state, losses, ok, bad, _ = jax.lax.while_loop(cond, body, carry)
        return params, opt_state, key, losses, done, ok, bad

    return jax.jit(run_chunk)


@dataclass
class RunResult:
    params: Any
    opt_state: Any
    key: Any
    losses: np.ndarray
    status: str  # "finished" | "stopped" | "interrupted" | "nonfinite"
    message: str = ""
    bad_coordinates: np.ndarray | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def _next_boundary(done: int, n: int, periods: list[int], chunk_size: int) -> int:
    """The next completed-step count at which the host must look (callbacks at step index i % k == 0)."""
    target = min(n, done + chunk_size)
    for k in periods:
        m = math.ceil(done / k) * k  # smallest step index >= done that is a multiple of k
        target = min(target, m + 1)
    return max(target, done + 1)


def _average(losses: np.ndarray) -> float:
    tail = losses[-AVERAGE_WINDOW:]
    tail = tail[np.isfinite(tail)]
    return float(np.mean(tail)) if tail.size else float("nan")


def run(runner: Callable, params, opt_state, key, n: int, batch, *, chunk_size: int,
        callbacks: list[tuple[int, Callable]] = (), progressbar: bool = True, step_offset: int = 0,
        history: np.ndarray | None = None, desc: str = "Fitting", feed=None) -> RunResult:
    """Run ``n`` steps; ``callbacks`` are ``(every, fn(params, opt_state, losses_so_far, i, key))`` pairs.

    ``feed`` streams data: before each chunk ``feed.take(m) -> (fed, m')`` gives the next
    (prefetched) block and how many steps it serves; the runner gets ``(batch, fed)`` for
    ``m' <= m`` steps, after which ``feed.commit(k)`` records the ``k`` steps taken.

    ``i`` is the global 0-based index of the last completed step (``step_offset`` counts the
    steps of earlier runs); ``fn`` is called when ``i % every == 0`` and may raise StopIteration.
    """
    history = np.zeros(0) if history is None else np.asarray(history)
    periods = sorted({int(k) for k, _ in callbacks})
    h = len(history)
    all_losses = np.empty(h + n, dtype=np.result_type(history.dtype, np.float32))
    all_losses[:h] = history
    done = 0
    status, message, bad = "finished", "", None
    bar = None
    if progressbar:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=desc, leave=True, dynamic_ncols=True, file=sys.stderr)
    # Ctrl-C sets a flag read between chunks, so the state, the history and the step count stay
    # consistent; a callback raising KeyboardInterrupt is honoured the same way.
    interrupted = []
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    t0 = time.perf_counter()
    budget = min(chunk_size, 100)  # steps in the next chunk; the first one also pays for compilation
    try:
        while done < n:
            # boundaries in global step indices, so callbacks see PyMC's i
            boundary = _next_boundary(step_offset + done, step_offset + n, periods, chunk_size) - step_offset
            m = min(boundary - done, budget)
            tc = time.perf_counter()
            if feed is None:
                out = runner(params, opt_state, key, np.int32(step_offset + done), np.int32(m), batch)
            else:
                fed, m = feed.take(m)
                out = runner(params, opt_state, key, np.int32(step_offset + done), np.int32(m), (batch, fed))
            k = int(out[4])
            if feed is not None:
                feed.commit(k)
            params, opt_state, key, losses, _, ok, bad_mask = out
            if done > 0 or k < m:  # time the chunks after the first (compiling) one
                rate = k / max(time.perf_counter() - tc, 1e-6)
                budget = int(min(chunk_size, max(1, rate * CHUNK_SECONDS)))
            else:
                budget = chunk_size
            all_losses[h + done:h + done + k] = np.asarray(losses)[:k]
            done += k
            if bar is not None:
                bar.update(k)
                if done % 100 == 0 or not bool(ok) or done == n or k >= 100:
                    bar.set_postfix_str(f"Average Loss = {_average(all_losses[:h + done]):.5g}", refresh=False)
            if not bool(ok):
                status, bad = "nonfinite", np.asarray(bad_mask)
                break
            if k < m:  # only the runner's stop rule ends a finite chunk early
                raise StopIteration(f"Convergence achieved at {step_offset + done - 1} (in-loop stopping rule)")
            i = step_offset + done - 1
            due = [fn for every, fn in callbacks if i % every == 0]
            for fn in due:
                fn(params, opt_state, all_losses[:h + done], i, key)
            if interrupted:
                raise KeyboardInterrupt
    except StopIteration as stop:
        status, message = "stopped", str(stop)
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        if bar is not None:
            bar.close()
    losses = all_losses[h:h + done].copy()
    result = RunResult(params, opt_state, key, losses, status, message, bad, time.perf_counter() - t0)
    _report(result, n, all_losses[:h + done])
    return result


def _report(result: RunResult, n: int, all_losses: np.ndarray) -> None:
    done = len(result.losses)
    avg = _average(all_losses)
    if result.status == "finished":
        logger.info(f"Finished [100%]: Average Loss = {avg:,.5g}")
    elif result.status in ("stopped", "interrupted"):
        if result.message:
            logger.info(result.message)
        pct = int(100 * done / max(n, 1))
        logger.info(f"Interrupted at {max(done - 1, 0):,d} [{pct}%]: Average Loss = {avg:,.5g}")
