"""The optimisation engine (floor 3): one fused loop for every inference method.

``make_step`` turns an objective and an optax optimizer into a pure step.  ``make_runner``
jit-compiles a chunk of up to ``chunk_size`` steps as one ``lax.while_loop`` whose trip
count is a runtime argument, so chunks of any length reuse one compiled function.  Inside
the loop a step whose loss or parameters are not finite is not applied (a *rejected* step: its
loss is recorded as NaN, the next step draws fresh noise from the same state, as NumPyro's
``stable_update``); only ``MAX_REJECTED_STREAK`` rejections in a row end the chunk, holding the
last finite state, with a report of which coordinates went bad.

``run`` is the host loop between chunks, from one ``FitState`` to the next: progress bar
("Average Loss" over the last 1000 steps, as PyMC shows it), observers (read-only callbacks)
replayed from the parameters each chunk records, state callbacks (checkpoints) at the steps they
ask for, the NaN guard, and a clean stop on KeyboardInterrupt or StopIteration.  Nothing here
knows about models or families.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["make_step", "make_runner", "step_key", "compilations", "run", "RunResult", "logger",
           "FitState", "ChunkResult", "Observer", "record_steps", "interrupt_guard", "interrupted", "guarded"]

# A library configures no logging: the messages of a fit ("Finished [100%]: Average Loss = ...") go to
# this logger when the application has configured logging, else straight to stderr (see ``_say``).
logger = logging.getLogger("jaxvi")
logger.addHandler(logging.NullHandler())

AVERAGE_WINDOW = 1000
CHUNK_SECONDS = 0.25  # the host looks in (progress, Ctrl-C) about this often
#: A chunk runs at most this many times the steps of the one before.  A short chunk's measured rate
#: includes the chunk's fixed cost (dispatch, replay set-up), so it underestimates the step rate and
#: the next chunk never overshoots CHUNK_SECONDS by much; 4 (as before) took 9 chunks to reach a
#: quarter second of a 3 us step, each paying that fixed cost (about 7 ms with a Tracker).
CHUNK_GROWTH = 64


class FitState(NamedTuple):
    """Everything a fit carries from one step to the next; ``step`` counts the steps done so far."""

    params: Any
    opt_state: Any
    key: Any
    step: Any  # int32 scalar (host: a Python int or np.int32)


class ChunkResult(NamedTuple):
    """What one compiled chunk returns.

    ``done`` steps were taken (``state.step`` advanced by ``done``); ``losses[:done]`` are their
    losses, NaN for the ``rejected`` ones (a non-finite loss or parameters: not applied, the state
    kept).  ``ok`` is False when the chunk ended on ``MAX_REJECTED_STREAK`` rejections in a row
    (``bad_coordinates`` marks which coordinates went bad; those steps are not counted in ``done``).  ``trace`` holds the
    parameters after each applied step (leading axis: step in the chunk) when the chunk was run with
    ``record=True``, else ``None``.
    """

    state: FitState
    losses: Any
    done: Any
    ok: Any
    bad_coordinates: Any
    trace: Any = None
    rejected: Any = 0  #: steps of ``done`` that were rejected
    streak: Any = 0  #: rejections in a row at the chunk's end (carried into the next chunk)


class Observer(NamedTuple):
    """A host callback that only reads: ``call(params, hist, i)`` after each step ``i`` with ``i % every == 0``.

    ``run`` replays observers after each compiled chunk from the parameters the chunk recorded, so
    the loop stays fused; ``prepare(steps, trace)``, if given, sees the chunk's steps and recorded
    parameters (numpy; row ``j`` is step ``steps[j]``, rows past ``len(steps)`` are unused) first,
    e.g. to compute tracked values for all of them in one vectorised call.  ``record_block(steps)``,
    if given, is the same as ``call`` for each of ``steps`` (the chunk's due steps) for an observer
    that only records what ``prepare`` computed (it never raises StopIteration and nothing else reads
    its records during the fit): when every observer of a fit has one, a chunk's replay is one call
    each instead of a Python call per step.
    """

    every: int
    call: Callable
    prepare: Callable | None = None
    record_block: Callable | None = None


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
#: A step whose loss or parameters are not finite is skipped (the state kept, fresh noise next step);
#: this many skipped in a row end the fit with a FloatingPointError (a NaN that is not one unlucky draw).
MAX_REJECTED_STREAK = 20


def step_key(key, t):
    """The PRNG key of global step ``t`` of a fit with key ``key``: the same however the steps are chunked."""
    return jax.random.fold_in(key, t)


#: Most parameter elements recorded per chunk for observers (8 MB in float32).
RECORD_ELEMENTS = 1 << 21


def record_steps(params, chunk_size: int) -> int:
    """How many steps' parameters a recording chunk keeps: the most steps a chunk with observers runs."""
    size = sum(math.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(params))
    return int(max(1, min(chunk_size, RECORD_ELEMENTS // max(size, 1))))


def make_runner(step: Callable, chunk_size: int, coordinate_finite: Callable, loss_dtype=None,
                per_step: Callable | None = None, stop: Callable | None = None,
                draw: Callable | None = None) -> Callable:
    """A jitted ``run_chunk(state: FitState, m, batch, record=False) -> ChunkResult`` of ``m <= chunk_size`` steps.

    Step ``t`` (global, ``state.step + i``) gets its randomness from ``step_key(key, t)``, so a fit
    gives the same numbers however the host splits it into chunks (and after a resume).  ``step`` is
    ``step(params, opt_state, rand, batch)`` where ``rand`` is that key, or, with ``draw``, the
    noise ``draw(params, key)`` (which may use ``params`` for shapes and dtypes only): the noise of a
    block of steps is then drawn in one vectorised call before the block runs (much cheaper on CPU
    than one small PRNG call per step).

    With ``per_step``, step ``i`` of the chunk sees ``per_step(batch, i)`` instead of ``batch``
    (streamed data: ``batch`` holds a stacked block of per-step batches).
    With ``stop``, the loop also ends as soon as ``stop(opt_state)`` is True (an in-loop stopping
    rule whose state the step keeps in ``opt_state``); ``run`` reports that as a convergence stop.
    With ``record=True`` (a second compiled variant) the parameters after each step are kept in
    ``ChunkResult.trace``; then ``m <= record_steps(params, chunk_size)``.
    """
    loss_dtype = loss_dtype or jax.dtypes.canonicalize_dtype(np.float64)

    def run_chunk(state, m, batch, record=False, streak=np.int32(0)):
        params, opt_state, key, t0 = state
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
            i, _, opt_state, _, streak, _, _, _, _ = carry
            return (i < m) & (streak < MAX_REJECTED_STREAK) & (True if stop is None else ~stop(opt_state))

        def body(carry):
            i, params, opt_state, losses, streak, rejected, bad, noise, trace = carry
            rand, noise = noise_at(i, noise)
            new_params, new_opt, loss = step(params, opt_state, rand,
                                             batch if per_step is None else per_step(batch, i))
            ok = jnp.isfinite(loss) & _all_finite(new_params)
            pick = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
            params = jax.tree_util.tree_map(pick, new_params, params)
            opt_state = jax.tree_util.tree_map(pick, new_opt, opt_state)
            losses = losses.at[i].set(jnp.where(ok, loss, jnp.nan).astype(losses.dtype))
            bad = jnp.where(ok, bad, ~coordinate_finite(new_params))
            if record:  # a rejected step records the unchanged state
                trace = jax.tree_util.tree_map(lambda b, p: b.at[i].set(p), trace, params)
            streak = jnp.where(ok, 0, streak + 1).astype(streak.dtype)
            return i + 1, params, opt_state, losses, streak, rejected + (~ok).astype(rejected.dtype), bad, noise, trace

        bad0 = jnp.zeros_like(coordinate_finite(params))
        losses0 = jnp.full((chunk_size,), jnp.nan, loss_dtype)
        trace0 = None
        if record:
            rows = record_steps(params, chunk_size)
            trace0 = jax.tree_util.tree_map(lambda p: jnp.zeros((rows,) + jnp.shape(p), jnp.result_type(p)), params)
        zero = jnp.zeros((), jnp.int32)
        streak0 = jnp.asarray(streak, jnp.int32)
        carry = (zero, params, opt_state, losses0, streak0, zero, bad0, noise_init(), trace0)
        i, params, opt_state, losses, streak, rejected, bad, _, trace = jax.lax.while_loop(cond, body, carry)
        ok = streak < MAX_REJECTED_STREAK
        here = jnp.minimum(streak, i)  # the failing run's steps in this chunk (the rest were in earlier ones)
        done = jnp.where(ok, i, i - here)  # a failed chunk ends at the first step of its run of rejections
        rejected = jnp.where(ok, rejected, rejected - here)
        return ChunkResult(FitState(params, opt_state, key, t0 + done), losses, done, ok, bad, trace, rejected, streak)

    return jax.jit(run_chunk, static_argnames="record")


@dataclass
class RunResult:
    state: FitState
    losses: np.ndarray
    status: str  # "finished" | "stopped" | "interrupted" | "nonfinite"
    message: str = ""
    bad_coordinates: np.ndarray | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    rejected: int = 0  # steps whose loss or parameters were not finite, skipped (their losses are NaN)


class _Interrupts:
    """Ctrl-C inside :func:`interrupt_guard`: how many arrived, and the handler it replaced."""

    depth = 0
    count = 0
    previous = None
    abortable = False  # a second Ctrl-C raises only while a compiled call runs (no state is half-updated)


def _on_sigint(signum, frame):
    _Interrupts.count += 1
    if _Interrupts.count >= 2 and _Interrupts.abortable:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_guard():
    """Within the block, Ctrl-C (SIGINT) in the main thread sets a flag (:func:`interrupted`) instead of
    raising, so a fit stops between chunks with a consistent state, whatever it was doing (building,
    compiling, a chunk, k-hat).  Nestable; elsewhere than in the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _Interrupts.depth == 0:
        _Interrupts.count = 0
        _Interrupts.previous = signal.signal(signal.SIGINT, _on_sigint)
    _Interrupts.depth += 1
    try:
        yield
    finally:
        _Interrupts.depth -= 1
        if _Interrupts.depth == 0:
            signal.signal(signal.SIGINT, _Interrupts.previous)
            _Interrupts.previous = None


def guarded(fn: Callable) -> Callable:
    """``fn`` run inside :func:`interrupt_guard` (Ctrl-C during it stops the fit instead of escaping)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with interrupt_guard():
            return fn(*args, **kwargs)

    return wrapper


def interrupted() -> bool:
    """Whether Ctrl-C was pressed inside the current :func:`interrupt_guard` (main thread only)."""
    return _Interrupts.depth > 0 and _Interrupts.count > 0 and threading.current_thread() is threading.main_thread()


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


def _replay(observers, trace, t0: int, k: int, hist: np.ndarray, h0: int):
    """Call the observers for steps ``t0 .. t0 + k - 1`` from a chunk's recorded parameters.

    Step ``t0 + j`` sees the parameters after it and ``hist[:h0 + j + 1]``, as if it had been called
    right after that step.  Returns ``(j, exc)`` when an observer raised StopIteration or
    KeyboardInterrupt at step ``t0 + j`` (the observers after it in the list are not called for that
    step), else ``None``.
    """
    leaves, treedef = jax.tree_util.tree_flatten(trace)
    leaves = [np.asarray(x) for x in leaves]  # the whole buffer (fixed shape: prepare's vmaps compile once)
    block = treedef.unflatten(leaves)
    steps = np.arange(t0, t0 + k)
    for o in observers:
        if o.prepare is not None:
            o.prepare(steps, block)
    if all(o.record_block is not None for o in observers):  # recorders only: no per-step calls
        for o in observers:
            due = steps[steps % int(o.every) == 0]
            if due.size:
                o.record_block(due)
        return None
    unflatten = treedef.unflatten
    every = [int(o.every) for o in observers]
    calls = [o.call for o in observers]
    # the rows of the k steps as Python sequences (one C-level split per leaf, not k x leaves indexings)
    rows = list(zip(*[list(x[:k]) for x in leaves])) if leaves else [()] * k
    each_step = all(e == 1 for e in every)
    for j, row in enumerate(rows):
        i = t0 + j
        due = calls if each_step else [c for c, e in zip(calls, every) if i % e == 0]
        if not due:
            continue
        params = unflatten(row)
        seen = hist[:h0 + j + 1]
        try:
            for call in due:
                call(params, seen, i)
        except (StopIteration, KeyboardInterrupt) as exc:
            return j, exc
    return None


def run(runner: Callable, state: FitState, n: int, batch, *, chunk_size: int,
        callbacks: list[tuple[int, Callable]] = (), observers: list[Observer] = (), replay: bool = True,
        progressbar: bool = True, history: np.ndarray | None = None, desc: str = "Fitting", feed=None) -> RunResult:
    """Run ``n`` steps from ``state``; returns the final state with the losses and how the run ended.

    ``callbacks`` are ``(every, fn(params, opt_state, losses_so_far, i, key))`` pairs that need the
    whole state (checkpoints): the host ends a chunk after each step ``i`` with ``i % every == 0``
    and calls them there.  ``observers`` (:class:`Observer`) only read the parameters and the
    history: the chunks record each step's parameters and the host replays the observers afterwards,
    so the loop stays fused.  When an observer raises StopIteration (or KeyboardInterrupt) at step
    ``i`` the fit ends at exactly step ``i``'s state (the chunk is re-run, deterministically, up to
    it), as if it had been called after every step; ``replay=False`` does call them between one-step
    chunks (the reference the replay is tested against).

    ``feed`` streams data: before each chunk ``feed.take(m) -> (fed, m')`` gives the next
    (prefetched) block and how many steps it serves; the runner gets ``(batch, fed)`` for
    ``m' <= m`` steps, after which ``feed.commit(k)`` records the ``k`` steps taken.

    ``i`` is the global 0-based index of the last completed step (``state.step`` counts the steps of
    earlier runs); an ``fn`` may raise StopIteration.
    """
    history = np.zeros(0) if history is None else np.asarray(history)
    observers = list(observers)
    callbacks = list(callbacks)
    if not replay:
        callbacks += [(o.every, functools.partial(_call_observer, o)) for o in observers]
        observers = []
    record = bool(observers)
    periods = sorted({int(k) for k, _ in callbacks})
    most = record_steps(state.params, chunk_size) if record else chunk_size
    step_offset = int(state.step)
    h = len(history)
    all_losses = np.empty(h + n, dtype=np.result_type(history.dtype, np.float32))
    all_losses[:h] = history
    done = 0
    streak = rejected = 0  # rejected steps in a row at the last chunk's end; in all
    status, message, bad = "finished", "", None
    bar = None  # the progress bar starts after the first (compiling) chunk, so its rate counts only steps
    # Ctrl-C sets a flag read between chunks, so the state, the history and the step count stay
    # consistent; a callback raising KeyboardInterrupt is honoured the same way.
    guard = interrupt_guard()
    guard.__enter__()
    main_thread = threading.current_thread() is threading.main_thread()
    t0 = time.perf_counter()
    budget = 1  # steps in the next chunk: the first also pays for compilation, so the second is timed
    try:
        while done < n:
            if interrupted():
                raise KeyboardInterrupt
            # boundaries in global step indices, so callbacks see PyMC's i
            boundary = _next_boundary(step_offset + done, step_offset + n, periods, chunk_size) - step_offset
            m = min(boundary - done, budget, most)
            tc = time.perf_counter()
            state = state._replace(step=np.int32(step_offset + done))
            fed_batch = batch
            if feed is not None:
                fed, m = feed.take(m)
                fed_batch = (batch, fed)
            if main_thread:  # a second Ctrl-C may abort the compiled call (nothing is half-updated)
                _Interrupts.abortable = True
            try:
                out = runner(state, np.int32(m), fed_batch, record=record, streak=np.int32(streak))
                k = int(out.done)
            finally:
                if main_thread:
                    _Interrupts.abortable = False
            all_losses[h + done:h + done + k] = np.asarray(out.losses)[:k]
            stopped = _replay(observers, out.trace, step_offset + done, k, all_losses, h + done) if record else None
            if stopped is not None and stopped[0] + 1 < k:  # end exactly at the step that stopped
                k = stopped[0] + 1
                out = runner(state, np.int32(k), fed_batch, record=record, streak=np.int32(streak))
            if feed is not None:
                feed.commit(k)
            state = out.state
            if done > 0:  # the first chunk compiled; later ones size the next by the measured rate (replay
                rate = k / max(time.perf_counter() - tc, 1e-6)  # included), at most CHUNK_GROWTH x longer
                budget = int(min(chunk_size, CHUNK_GROWTH * max(m, 1), max(1, rate * CHUNK_SECONDS)))
            done += k
            rejected += int(out.rejected)
            streak, before = int(out.streak), streak
            if progressbar and bar is None:
                from tqdm.auto import tqdm

                bar = tqdm(total=n, initial=done, desc=desc, leave=True, dynamic_ncols=True, file=sys.stderr)
            elif bar is not None:
                bar.update(k)
            if bar is not None:
                if done % 100 == 0 or not bool(out.ok) or done == n or k >= 100 or stopped is not None:
                    bar.set_postfix_str(f"Average Loss = {_average(all_losses[:h + done]):.5g}", refresh=False)
            if stopped is not None:
                raise stopped[1]
            if not bool(out.ok):
                status, bad = "nonfinite", np.asarray(out.bad_coordinates)
                if k == 0:  # the failing run of rejections began in an earlier chunk: it ends the fit there
                    done, rejected = done - before, rejected - before
                break
            if k < m:  # only the runner's stop rule ends a finite chunk early
                raise StopIteration(f"Convergence achieved at {step_offset + done - 1} (in-loop stopping rule)")
            i = step_offset + done - 1
            due = [fn for every, fn in callbacks if i % every == 0]
            for fn in due:
                fn(state.params, state.opt_state, all_losses[:h + done], i, state.key)
            if interrupted():
                raise KeyboardInterrupt
        if status == "finished" and done and streak >= done:  # a fit shorter than MAX_REJECTED_STREAK none of whose steps was applied
            status, bad = "nonfinite", np.asarray(out.bad_coordinates)
            done, rejected = 0, 0
    except StopIteration as stop:
        status, message = "stopped", str(stop)
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        guard.__exit__(None, None, None)
        if bar is not None:
            bar.close()
    losses = all_losses[h:h + done].copy()
    state = state._replace(step=step_offset + done)
    result = RunResult(state, losses, status, message, bad, time.perf_counter() - t0, rejected=rejected)
    _report(result, n, all_losses[:h + done])
    return result


def _call_observer(observer: Observer, params, opt_state, hist, i, key):
    observer.call(params, hist, i)  # replay=False: called live, step by step (no prepare)


def _say(message: str) -> None:
    """A fit's closing line, PyMC's way: through logging when the application configured it, else on stderr.

    PyMC adds a stderr handler to its logger at import; jaxvi adds only a NullHandler, so with no
    handler configured anywhere (a plain script or notebook) the line is written to stderr directly
    (through tqdm, so it does not break a progress bar).  Setting the ``jaxvi`` logger's level, or
    configuring logging (``logging.basicConfig``), routes it through logging instead; a level above
    INFO on the ``jaxvi`` logger silences it.
    """
    configured, lg = False, logger
    while lg is not None and not configured:
        configured = any(not isinstance(hd, logging.NullHandler) for hd in lg.handlers)
        lg = lg.parent if lg.propagate else None
    if configured:
        logger.info(message)
        return
    if logger.level != logging.NOTSET and not logger.isEnabledFor(logging.INFO):
        return  # silenced: logging.getLogger("jaxvi").setLevel(logging.WARNING)
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def _report(result: RunResult, n: int, all_losses: np.ndarray) -> None:
    done = len(result.losses)
    avg = _average(all_losses)
    if result.status == "finished":
        _say(f"Finished [100%]: Average Loss = {avg:,.5g}")
    elif result.status in ("stopped", "interrupted"):
        if result.message:
            _say(result.message)
        pct = int(100 * done / max(n, 1))
        _say(f"Interrupted at {max(done - 1, 0):,d} [{pct}%]: Average Loss = {avg:,.5g}")
