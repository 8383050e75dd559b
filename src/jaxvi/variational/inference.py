"""Inference objects and ``fit`` (floor 5): PyMC's interface over the engine.

An inference method is family + objective + optimizer.  The objects below hold the state
between calls (optimizer state, PRNG key, compiled runner) so that ``refine`` continues
exactly where ``fit`` stopped, without recompiling.
"""

from __future__ import annotations

import json
import os
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.results import diagnostics
from jaxvi.engine import loop as engine
from jaxvi.variational.callbacks import PlateauRule
from jaxvi.engine.feeding import Feeding, make_mesh
from jaxvi.engine.checkpoint import NpzReader, encode_json, fingerprint, write_npz
import warnings

from jaxvi.model.config import prng_key
from jaxvi.variational.approximations import (Approximation, DADVIFullRank, DADVIMeanField, Empirical, FullRank,
                                              LowRank, MeanField, NormalizingFlow, PathfinderApproximation, _key)
from jaxvi.vi import dadvi as dadvi_numerics
from jaxvi.variational.auto import AutoInference
from jaxvi.vi.pathfinder import STATUS, pooled_draws, single_path
from jaxvi.model.context import Model, modelcontext
from jaxvi.vi.objectives import ImportanceWeighted, Renyi, get_objective, kl_qp, prior_tempered_logp
from jaxvi.vi.stein import get_estimator, get_kernel, implicit_objective
from jaxvi.vi.optimizers import adagrad_window, get_optimizer, with_grad_norm_clip
from jaxvi.vi.starts import DEFAULT_STEPS, SCALED_FAMILIES, default_recipe, default_steps

__all__ = ["Inference", "KLqp", "Renyi", "ImportanceWeighted", "ADVI", "FullRankADVI", "LowRankADVI", "ImplicitGradient", "SVGD", "ASVGD", "NFVI", "Pathfinder", "DADVI", "Auto", "fit", "pathfinder",
           "METHODS", "UnknownMethodError"]

DEFAULT_CHUNK = 10000  # most steps per compiled call; the host shortens chunks to ~0.25 s of work
_DEFAULT_OPTIMIZER = adagrad_window()


class Inference:
    """Base class: ``fit(n)``, ``refine(n)``, ``approx``, ``hist``.

    After every fit/refine the Pareto k-hat of p/q is computed from ``khat_draws`` draws (0 turns it
    off) into ``approx.khat``, with a ``jaxvi.diagnostics.KhatWarning`` above 0.7.
    """

    khat_draws = diagnostics.KHAT_DRAWS
    #: callbacks are replayed after each fused chunk from its recorded parameters (False: the fit is cut
    #: into one-step chunks and they are called in between; same numbers, much slower)
    replay_callbacks = True

    default_obj_n_mc = 1  # draws per step of the objective when fit(obj_n_mc=None)
    checks = True  # fit(checks=False): no convergence / reweighted-moment checks after the fit

    def __init__(self, approx: Approximation, random_seed=None):
        if not isinstance(approx, Approximation):
            raise TypeError(f"expected an Approximation, got {type(approx).__name__}")
        self.approx = approx
        self._key = _key(random_seed)
        self._optimizer = None
        self._opt_state = None
        self._stop_rule = None
        self._runner = None
        self._steps = 0
        self._feeding = None  # data feeding of the current fit (minibatches, streams, devices)
        self._feed = None
        self._stream_start = 0  # steps of the data stream consumed (where the next feed starts)

    # -- what subclasses define ---------------------------------------------------------------
    def _objective(self, n_mc: int):
        raise NotImplementedError

    def _check_options(self, n_mc: int):
        """Raise on options that cannot work together (called by ``fit`` before anything compiles)."""

    # -- state ---------------------------------------------------------------------------------
    @property
    def hist(self) -> np.ndarray:
        return self.approx.hist

    @property
    def model(self) -> Model:
        return self.approx.model

    def _config(self) -> tuple:
        """What, besides optimizer and n_mc, determines the compiled step (subclasses extend it)."""
        return (type(self), self.approx.family)

    def _prepare(self, optimizer, n_mc, clip):
        """Get the compiled runner (shared through the compiled model's cache) and a fresh optimizer state."""
        tx = with_grad_norm_clip(optimizer, clip)
        cache = self.approx.cm.cached(("runners",), dict)
        feeding = self._feeding or Feeding(self.approx.cm)
        rule = self._stop_rule  # fit(stop_on_convergence=...): a PlateauRule whose state rides in opt_state
        config = (*self._config(), _cache_key(optimizer), n_mc, clip, feeding.config, rule and rule.config)
        if config not in cache:
            objective = feeding.objective(self._objective(n_mc))
            draw = objective.draw if objective.predrawn else None  # None: the runner passes each step's key
            step = engine.make_step(objective.given, tx)
            runner = engine.make_runner(step if rule is None else rule.wrap(step), DEFAULT_CHUNK,
                                        self.approx.family.coordinate_finite, per_step=feeding.per_step,
                                        stop=None if rule is None else rule.stop, draw=draw)
            cache[config] = (runner, optimizer)  # keeps the optimizer (and what its key holds by id) alive
        self._runner = cache[config][0]
        self._opt_state = tx.init(self.approx.vparams)
        if rule is not None:
            self._opt_state = (self._opt_state, rule.init())
        self._optimizer = optimizer

    # -- fitting --------------------------------------------------------------------------------
    @engine.guarded  # Ctrl-C anywhere in a fit stops it cleanly; it never escapes
    def fit(self, n: int | None = None, callbacks=None, progressbar: bool = True, obj_optimizer=None,
            total_grad_norm_constraint=None, obj_n_mc: int | None = None, devices=None, mesh=None,
            stop_on_convergence=False, checkpoint=None, checkpoint_every: int = 1000, resume: bool = False,
            khat=True, checks: bool = True, **kwargs) -> Approximation:
        """Run ``n`` optimisation steps and return the approximation (also ``self.approx``).

        Without ``n``: PyMC's 10,000 steps, or for a normal family on the default recipe (no optimizer,
        no start) 10,000 per 1000 variational parameters, at most 50,000 (``jaxvi.starts.default_steps``).

        ``stop_on_convergence=True`` (or a dict of ``jv.callbacks.PlateauRule`` options: ``every``,
        ``window``, ``tolerance``, ``z``) stops inside the compiled loop once the loss reaches a
        plateau -- the test of ``jv.callbacks.CheckLossConvergence`` without leaving the loop.

        ``devices=jax.devices()`` (or a ``mesh=`` with one axis named ``"data"``) fits data-parallel:
        the data are split along their rows over the devices and the gradients summed by XLA.

        ``checkpoint="fit.ckpt.npz"`` writes the parameters, optimizer state, PRNG key, step count and
        history every ``checkpoint_every`` steps and at the end (write-then-rename: a crash mid-write
        leaves the previous checkpoint intact).  ``resume=True`` with the same call continues from the
        checkpoint to the same numbers as an uninterrupted fit of ``n`` steps.

        ``khat=False`` turns the k-hat check after the fit off (``True``: the class default of
        ``khat_draws`` draws; an int: that many draws).  Fits shorter than
        ``jaxvi.diagnostics.KHAT_MIN_STEPS`` steps are never judged.
        ``checks=False`` turns off the checks after the fit (and ``refine``) that catch what k-hat misses:
        the -ELBO still falling, PSIS-reweighted moments off q's (``approx.diagnostics``; see
        ``jaxvi.diagnostics.record_checks``); they use k-hat's draws, so ``khat=False`` turns them off too.
        """
        for k in kwargs:
            if k not in ("score", "tf_n_mc", "fn_kwargs", "more_updates", "more_obj_params", "more_tf_params",
                         "more_replacements", "total_grad_norm_constraint", "obj_n_mc"):
                raise TypeError(f"fit(): unexpected keyword argument {k!r}")
        adaptive = n is None
        n = DEFAULT_STEPS if adaptive else _check_n(n)
        self._khat_draws = _check_khat(khat, type(self).khat_draws)
        self.checks = bool(checks)
        if obj_n_mc is not None and (isinstance(obj_n_mc, bool) or not isinstance(obj_n_mc, (int, np.integer))):
            raise TypeError(f"obj_n_mc must be a positive integer (draws per step), got {obj_n_mc!r}")
        n_mc = self.default_obj_n_mc if obj_n_mc is None else int(obj_n_mc)
        if n_mc < 1:
            raise ValueError(f"obj_n_mc must be a positive integer, got {obj_n_mc!r}")
        self._check_options(n_mc)  # before the start's compiles
        mesh = make_mesh(devices, mesh)
        if self._feeding is None or self._feeding.mesh is not mesh:
            self._feeding, self._feed = Feeding(self.approx.cm, mesh), None
        if stop_on_convergence is True or isinstance(stop_on_convergence, dict):
            self._stop_rule = PlateauRule(**({} if stop_on_convergence is True else stop_on_convergence))
        elif stop_on_convergence in (False, None):
            self._stop_rule = None
        else:
            raise TypeError(f"stop_on_convergence must be True, False or a dict of PlateauRule options, "
                            f"got {stop_on_convergence!r}")
        self._checkpoint = _check_checkpoint(checkpoint, checkpoint_every, resume)
        recipe = None
        if obj_optimizer is None:  # no optimizer: the default recipe after a fitted start, PyMC's otherwise
            if self.approx.start_pending and self._steps == 0:  # neither start nor optimizer: the mode search
                self.approx.vparams = self.approx.auto_start()
            if adaptive and self._steps == 0:
                n = default_steps(self.approx)
            recipe = default_recipe(self.approx, n)
            optimizer = _DEFAULT_OPTIMIZER if recipe is None else recipe
        else:
            optimizer = get_optimizer(obj_optimizer)
        self._recipe = recipe is not None
        self._prepare(optimizer, n_mc, total_grad_norm_constraint)  # a fresh optimizer state, as in PyMC
        self._optimizer_id = fingerprint((optimizer, n_mc, total_grad_norm_constraint))
        if resume and checkpoint is not None and os.path.exists(os.fspath(checkpoint)):
            n = max(n - self._restore(os.fspath(checkpoint), n), 0)
        return self._run(n, callbacks, progressbar)

    # -- checkpoints ------------------------------------------------------------------------------
    def _checkpoint_meta(self) -> dict:
        return {"method": type(self).__name__, "family": self.approx.family.name,
                "value_names": self.approx.cm.value_names, "optimizer": self._optimizer_id}

    def _write_checkpoint(self, params, opt_state, key, hist, steps, stream=0):
        leaves = jax.tree_util.tree_leaves((params, opt_state))
        arrays = {f"leaf:{i}": np.asarray(x) for i, x in enumerate(leaves)}
        arrays.update(key=np.asarray(key), hist=np.asarray(hist), steps=np.asarray(steps, np.int64),
                      stream=np.asarray(stream, np.int64), meta=encode_json(self._checkpoint_meta()))
        write_npz(self._checkpoint[0], arrays, what="checkpoint")  # atomic and fsync-ed

    def _restore(self, path, n: int) -> int:
        """Load a checkpoint into this inference; returns the number of steps it had done."""
        template = jax.tree_util.tree_leaves((self.approx.vparams, self._opt_state))
        leaves = [f"leaf:{i}" for i in range(len(template))]
        with NpzReader(path, "resume: cannot read the checkpoint", "delete it or pass resume=False to start afresh") as f:
            f.names(required=("meta", "key", "hist", "steps"), allowed=("meta", "key", "hist", "steps", "stream",
                                                                        *leaves))
            meta = f.read_json("meta", required=("method", "value_names"))
            if meta.get("value_names") != self.approx.cm.value_names or meta.get("method") != type(self).__name__:
                raise ValueError(f"resume: the checkpoint {path!r} is from a {meta.get('method')} fit of variables "
                                 f"{meta.get('value_names')}, not this {type(self).__name__} fit of "
                                 f"{self.approx.cm.value_names}; use another checkpoint path")
            if meta.get("optimizer", self._optimizer_id) != self._optimizer_id:
                raise ValueError(f"resume: the checkpoint {path!r} was written by a fit with another optimizer or "
                                 "learning rate (or other obj_n_mc / total_grad_norm_constraint); resume with the "
                                 "same options, or use another checkpoint path")
            missing = [k for k in leaves if k not in f.headers]
            if missing:
                f.fail("it does not match this fit's optimizer or approximation "
                       f"(no {missing[0]!r}); resume with the same method, optimizer and options")
            for name, t in zip(leaves, template):
                f.expect(name, "fiub", shape=np.shape(t))
            f.expect("key", "u", shape=np.shape(self._key))
            f.expect("steps", "iu", shape=())
            steps = int(f.read("steps"))
            if not 0 <= steps <= n:
                f.fail(f"its step count {steps} is outside 0..{n} (the n of this fit)")
            fresh = self._steps == 0 and len(self.approx.hist) == 0
            f.expect("hist", "f", shape=(steps,) if fresh else None, ndim=1)
            stream = 0
            if "stream" in f.headers:
                f.expect("stream", "iu", shape=())
                stream = int(f.read("stream"))
                if stream < 0:
                    f.fail(f"its stream position {stream} is negative")
            saved = [f.read(name, finite=True) for name in leaves]
            treedef = jax.tree_util.tree_structure((self.approx.vparams, self._opt_state))
            self.approx.vparams, self._opt_state = jax.tree_util.tree_unflatten(
                treedef, [jnp.asarray(s, dtype=jnp.asarray(t).dtype) for s, t in zip(saved, template)])
            self._key = jnp.asarray(f.read("key"), dtype=jnp.asarray(self._key).dtype)
            self.approx.hist = f.read("hist", finite=False)
        self._steps = steps
        self._stream_start, self._feed = stream, None
        return self._steps

    @engine.guarded
    def refine(self, n: int, progressbar: bool = True, callbacks=None) -> Approximation:
        """Continue the last fit for ``n`` more steps (same optimizer and its state)."""
        if self._runner is None:
            raise RuntimeError("refine() continues a fit: call fit() first")
        return self._run(_check_n(n), callbacks, progressbar)

    def _run(self, n, callbacks, progressbar):
        approx = self.approx
        observers = _wrap_callbacks(approx, callbacks)
        cbs = []
        checkpoint = getattr(self, "_checkpoint", None)
        if checkpoint is not None:
            def save(params, opt_state, hist, i, key):
                stream = self._feed.position if self._feed is not None else 0
                self._write_checkpoint(params, opt_state, key, hist, i + 1, stream)

            cbs.append((checkpoint[1], save))
        feeding = self._feeding or Feeding(approx.cm)
        if self._feed is None:
            self._feed = feeding.feed(self._key, start=self._stream_start)
        if self._stop_rule is not None:  # a fresh plateau test for every fit/refine
            self._opt_state = (self._opt_state[0], self._stop_rule.init())
        params, opt_state, key = feeding.replicate((approx.vparams, self._opt_state, self._key))
        try:
            result = engine.run(self._runner, engine.FitState(params, opt_state, key, self._steps), n,
                                feeding.batch(), chunk_size=DEFAULT_CHUNK, callbacks=cbs, observers=observers,
                                replay=self.replay_callbacks, progressbar=progressbar, history=approx.hist,
                                desc=type(self).__name__, feed=self._feed)
        finally:
            if self._feed is not None:  # no prefetch thread outlives the fit; refine restarts it where it was
                self._stream_start = self._feed.position
                self._feed.close()
                self._feed = None
        state = result.state
        approx.vparams, self._opt_state, self._key = feeding.local((state.params, state.opt_state, state.key))
        approx.hist = np.concatenate([approx.hist, result.losses])
        self._steps = int(state.step)
        if checkpoint is not None and result.status != "nonfinite":
            self._write_checkpoint(approx.vparams, self._opt_state, self._key, approx.hist, self._steps,
                                   self._stream_start)
        approx.n_rejected_steps = getattr(approx, "n_rejected_steps", 0) + result.rejected
        if result.rejected:
            approx.diagnostics = {**(getattr(approx, "diagnostics", None) or {}), "rejected": approx.n_rejected_steps}
        if result.status != "nonfinite" and approx.n_rejected_steps > diagnostics.REJECTED_WARN_FRACTION * len(approx.hist):
            warnings.warn(diagnostics.rejected_message(approx.n_rejected_steps, len(approx.hist),
                                                       getattr(approx.family, "name", type(approx).__name__)),
                          diagnostics.NonFiniteStepsWarning, stacklevel=diagnostics._user_stacklevel())
        if result.status == "nonfinite":
            error = FloatingPointError(_nonfinite_message(approx, result, self._steps))
            error.approx = approx  # the last finite approximation, with its history
            raise error
        if not engine.interrupted():  # after Ctrl-C, k-hat is skipped and the approximation kept
            diagnostics.record_khat(approx, getattr(self, "_khat_draws", self.khat_draws),  # warns when > 0.7
                                    min_steps=diagnostics.KHAT_MIN_STEPS, checks=self.checks)
        return approx


def _cache_key(optimizer):
    """The optimizer as part of a compiled runner's key: jaxvi's optimizers compare by configuration
    (``jv.adam(0.01)`` twice is one key), any other optax transformation by its functions."""
    try:
        hash(optimizer)
    except TypeError:
        return ("id", id(optimizer))  # the cache entry keeps the optimizer alive, so its id stays unique
    return optimizer


def _check_checkpoint(checkpoint, every, resume):
    if checkpoint is None:
        if resume:
            raise ValueError("resume=True needs the checkpoint=... path of the fit to resume")
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a file path, got {checkpoint!r}")
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"checkpoint_every must be a positive number of steps, got {every!r}")
    if os.path.isdir(os.fspath(checkpoint)):
        raise IsADirectoryError(f"checkpoint: {os.fspath(checkpoint)!r} is a folder; give a file path such as "
                                f"{os.path.join(os.fspath(checkpoint), 'fit.ckpt.npz')!r}")
    folder = os.path.dirname(os.path.abspath(os.fspath(checkpoint)))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"checkpoint: the folder {folder!r} does not exist; create it first")
    return os.fspath(checkpoint), int(every)


def _check_khat(khat, default: int) -> int:
    """Draws for the k-hat check from fit(khat=...): True -> default, False/0 -> off, n -> n."""
    if khat is True or khat is None:
        return int(default)
    if khat is False:
        return 0
    if isinstance(khat, (int, np.integer)) and khat >= 0:
        return int(khat)
    raise TypeError(f"khat must be True, False or a number of draws, got {khat!r}")


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be a non-negative integer number of steps, got {n!r}")
    if n < 0:
        raise ValueError(f"n must be a non-negative integer number of steps, got {n}")
    return int(n)


def _wrap_callbacks(approx, callbacks) -> list:
    """PyMC callbacks ``cb(approx, hist, i)`` as engine observers (replayed after each fused chunk).

    During the replay ``approx.vparams`` holds step ``i``'s parameters (numpy arrays); a callback
    with a ``prefetch(approx, steps, params_block)`` method (``Tracker``) first sees the whole chunk.
    """
    if callbacks is None:
        return []
    if callable(callbacks):
        callbacks = [callbacks]
    out = []
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables cb(approx, hist, i), got {cb!r}")
        every = int(getattr(cb, "every", 1) or 1)

        def call(params, hist, i, cb=cb):
            approx.vparams = params
            try:
                cb(approx, hist, i)
            except (StopIteration, KeyboardInterrupt):
                raise
            except Exception as exc:  # the user's error, kept as it is, with where it happened
                exc.add_note(f"raised by the callback {getattr(cb, '__name__', type(cb).__name__)} at step {i}; "
                             "fix the callback, or raise StopIteration from it to stop the fit cleanly")
                raise

        prefetch = getattr(cb, "prefetch", None)
        prepare = None if prefetch is None else functools.partial(prefetch, approx)
        block = cb.record_block if prepare is not None and getattr(cb, "records_blocks", False) else None
        out.append(engine.Observer(every, call, prepare, block))
    return out


def _nonfinite_message(approx, result, steps) -> str:
    bad = result.bad_coordinates
    names = []
    if bad is not None and bad.any():
        for name in approx.cm.value_names:
            sl = approx.cm.layout.slices[name]
            if bad[sl].any():
                rv = approx.cm._by_value_name[name]
                names.append(rv.name if rv.value_name == rv.name else f"{rv.name} ({rv.value_name})")
    what = (f"the variational parameters of {', '.join(names)} became non-finite" if names
            else "the loss became non-finite")
    if steps == 0:
        what += _nonfinite_at_start(approx.cm)
    return (f"NaN occurred in optimization at step {steps}: {what}. The approximation keeps its last "
            f"finite state (after {steps} steps) and its history; try a smaller learning rate, "
            "total_grad_norm_constraint=..., or a better-scaled model.")


def kl_objective(approx, n_mc: int, beta: float = 1.0, stick_the_landing: bool = False):
    """PyMC's KL(q || p) with ``beta`` on the KL to the prior: -E log p(data|z) + beta E[log q - log p(z)]."""
    cm = approx.cm
    logp = cm.logp if beta == 1.0 else prior_tempered_logp(cm.logp_terms, [rv.name for rv in cm.free_rvs], beta)
    return kl_qp(approx.family, logp, n_mc=n_mc, beta=beta, stick_the_landing=stick_the_landing)


def _nonfinite_at_start(cm) -> str:
    """Which variables' log-densities are not finite at the initial point (a parameter out of its domain)."""
    try:
        terms = jax.jit(lambda flat: cm.logp_terms(flat))(cm.initial_point())  # traced: numpyro does not raise
    except Exception:  # noqa: BLE001 - the message is a hint; the error itself is raised anyway
        return ""
    rvs = {rv.name: rv for rv in (*cm.free_rvs, *cm.observed_rvs)}
    bad = [f"{name!r} ~ {rvs[name].spec.describe()}" if name in rvs else repr(name)
           for name, v in terms.items() if not np.isfinite(np.asarray(v))]
    if not bad:
        return ""
    return (f"; at the initial point the log-density of {', '.join(bad)} is not finite: a parameter is outside its "
            "domain there (e.g. a negative sigma from an expression such as -HalfNormal(...)) or the data are "
            "outside the support")


def _objective_of(objective, alpha, dreg, beta, stick_the_landing):
    """The ``objective=`` of a KL-type class as a value (None: KL), checked with the options it excludes."""
    spec = get_objective(objective, alpha, dreg)
    if spec is not None:
        for name, v, off in (("beta", beta, 1.0), ("stick_the_landing", bool(stick_the_landing), False)):
            if v != off:
                raise ValueError(f"{name}={v!r} applies to objective='kl' only, not to {spec!r}")
    return spec


class KLqp(Inference):
    """Minimise KL(q || p) for an approximation: the reparameterised (negative) ELBO.

    ``beta`` scales the whole KL to the prior, log q(z) - log p(z), as in PyMC (the likelihood keeps
    weight 1); ``stick_the_landing=True`` uses the
    lower-variance gradient of Roeder et al. (2017).

    ``objective=`` picks another bound of the same draws (``docs/objectives.md``): ``"kl"`` (the
    default), ``"renyi"`` with ``alpha=`` (default 0.5; the variational Renyi bound of Li & Turner
    2016, alpha = 1 the ELBO, alpha = 0 IWAE, alpha < 0 mass-covering), ``"iw"``/``"iwae"`` (the
    importance-weighted bound of Burda et al. 2016; ``dreg=True``: the doubly reparameterised gradient),
    or a ``jv.Renyi(alpha)`` / ``jv.ImportanceWeighted(dreg)``.  These draw ``obj_n_mc`` = 8 per step
    unless ``fit(obj_n_mc=...)`` says otherwise (at least 2 for alpha != 1), and take no ``beta`` or
    ``stick_the_landing``.
    """

    def __init__(self, approx: Approximation, beta: float = 1.0, stick_the_landing: bool | None = None,
                 random_seed=None, objective="kl", alpha=None, dreg=None):
        # None: KL(q || p)
        self.objective = _objective_of(objective, alpha, dreg, beta, bool(stick_the_landing))
        super().__init__(approx, random_seed=random_seed)
        self.beta = float(beta)
        self.stick_the_landing = None if stick_the_landing is None else bool(stick_the_landing)
        if self.objective is not None:
            self.objective.check_family(approx.family)
            self.default_obj_n_mc = 8

    @property
    def _stl(self) -> bool:
        """Sticking the landing: as given, else on for normal families fitted with the default recipe (``fit``
        sets ``_recipe``; a flow's log q at its own draws may need an inverse it lacks) and the KL objective."""
        if self.stick_the_landing is not None:
            return self.stick_the_landing
        return (getattr(self, "_recipe", False) and self.objective is None
                and self.approx.family.name in SCALED_FAMILIES)

    def _config(self):
        return (*super()._config(), self.beta, self._stl, self.objective)

    def _check_options(self, n_mc):
        if self.objective is not None:  # obj_n_mc=1 with alpha != 1: an error before any compile
            self.objective.check(n_mc)

    def _objective(self, n_mc):
        if self.objective is not None:
            return self.objective.build(self.approx.family, self.approx.cm.logp, n_mc)
        return kl_objective(self.approx, n_mc, self.beta, self._stl)


class ADVI(KLqp):
    """Mean-field ADVI (Kucukelbir et al. 2017).

    ``start``: a dict of starting values (PyMC's), or ``"laplace"`` / ``"pathfinder"`` to start the normal
    family (mean-field, full-rank, low-rank) at a fitted normal -- the Laplace approximation at the mode
    found from one Pathfinder path, or that path's best normal (``jaxvi.laplace``); the fix for badly
    scaled or strongly correlated posteriors that ADVI from the initial point does not reach.  With such
    a start the default optimizer's steps are scaled by the start's sds; pass your own optimizer through
    ``jaxvi.laplace.scaled_optimizer(opt, inference.approx)`` for the same.
    """

    approximation = MeanField

    def __init__(self, model: Model | None = None, random_seed=None, start=None, start_sigma=None,
                 beta: float = 1.0, stick_the_landing: bool | None = None, objective="kl", alpha=None, dreg=None,
                 **kwargs):
        for k in kwargs:
            if k not in ("local_rv", "cost_part_grad_scale", "scale_cost_to_minibatch"):
                raise TypeError(f"{type(self).__name__}: unexpected keyword argument {k!r}")
        _objective_of(objective, alpha, dreg, beta, stick_the_landing)  # bad options fail before q is built
        model = modelcontext(model, what=type(self).__name__)
        approx = self.approximation(model=model, start=start, start_sigma=start_sigma, random_seed=random_seed)
        super().__init__(approx, beta=beta, stick_the_landing=stick_the_landing, random_seed=random_seed,
                         objective=objective, alpha=alpha, dreg=dreg)


class FullRankADVI(ADVI):
    """Full-rank ADVI: a multivariate normal with dense covariance."""

    approximation = FullRank


class LowRankADVI(ADVI):
    """ADVI with a low-rank plus diagonal normal (``rank=None``: min(ndim, 5)); O(ndim * rank**2) per step."""

    def __init__(self, model: Model | None = None, rank: int | None = None, **kwargs):
        self.approximation = functools.partial(LowRank, rank=rank)
        super().__init__(model=model, **kwargs)


class ImplicitGradient(Inference):
    """Fit ``approx`` along a Stein direction instead of a loss gradient (the operator behind
    SVGD and ASVGD).

    ``estimator(x, score, kernel, temperature) -> phi[n, d]`` gives the direction at draws
    ``x`` (default: the SVGD direction); ``kernel(x) -> (K, dK, bandwidth)`` (default: RBF with the
    median heuristic).  For an Empirical approximation the draws are its particles; for a
    parametric one they are ``obj_n_mc`` reparameterised draws.  ``hist`` records the
    kernelized Stein discrepancy of the particles (Empirical) or the -ELBO estimate of the draws.
    """

    def __init__(self, approx: Approximation, estimator="stein", kernel="rbf", temperature: float = 1.0,
                 random_seed=None):
        super().__init__(approx, random_seed=random_seed)
        self.estimator = get_estimator(estimator)
        self.kernel = get_kernel(kernel)
        temperature = float(temperature)
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        self.temperature = temperature

    def _config(self):
        return (*super()._config(), self.estimator, self.kernel, self.temperature)

    def _objective(self, n_mc):
        return implicit_objective(self.approx.family, self.approx.cm.logp, n_mc, self.estimator, self.kernel,
                                  self.temperature)


class SVGD(ImplicitGradient):
    """Stein variational gradient descent (Liu & Wang 2016) on ``n_particles`` particles.

    Particles start as draws from N(initial point or ``start``, jitter^2) importance-resampled
    toward the posterior (``init="importance"``, so that modes get their share of particles;
    ``init="jitter"`` keeps PyMC's plain jittered start), then move together (no loop over
    particles) through the optimizer.  The result is an ``Empirical``.
    """

    def __init__(self, n_particles: int = 100, jitter: float = 1.0, model: Model | None = None, start=None,
                 random_seed=None, estimator="stein", kernel="rbf", temperature: float = 1.0, init: str = "importance",
                 **kwargs):
        for k in kwargs:
            if k not in ("local_rv",):
                raise TypeError(f"SVGD: unexpected keyword argument {k!r}")
        if isinstance(n_particles, bool) or not isinstance(n_particles, (int, np.integer)) or n_particles < 1:
            raise ValueError(f"SVGD: n_particles must be a positive integer, got {n_particles!r}")
        model = modelcontext(model, what="SVGD")
        approx = Empirical(size=int(n_particles), jitter=jitter, model=model, start=start, random_seed=random_seed,
                           init=init)
        super().__init__(approx, estimator=estimator, kernel=kernel, temperature=temperature,
                         random_seed=random_seed)


class ASVGD(ImplicitGradient):
    """Amortized SVGD (Feng, Wang & Liu 2017): a parametric approximation (full-rank by default)
    trained by pushing the Stein direction at ``obj_n_mc`` of its draws (default 500) back onto
    its parameters."""

    default_obj_n_mc = 500

    def __init__(self, approx: Approximation | None = None, estimator="stein", kernel="rbf",
                 model: Model | None = None, random_seed=None, temperature: float = 1.0, **kwargs):
        for k in kwargs:
            if k in ("start", "start_sigma"):
                raise TypeError(f"ASVGD takes no {k} (as in PyMC): pass an approximation built with it, "
                                f"ASVGD(approx=jv.FullRank(start=...))")
            if k not in ("local_rv",):
                raise TypeError(f"ASVGD: unexpected keyword argument {k!r}")
        if approx is None:
            approx = FullRank(model=modelcontext(model, what="ASVGD"), random_seed=random_seed)
        if not approx.has_density:
            raise TypeError("ASVGD trains a parametric approximation; for particles use SVGD")
        super().__init__(approx, estimator=estimator, kernel=kernel, temperature=temperature,
                         random_seed=random_seed)


class NFVI(KLqp):
    """Normalizing-flow VI: KLqp over a ``NormalizingFlow`` (``flow="planar*4"``, "realnvp*4", ...)."""

    def __init__(self, flow: str = "planar", model: Model | None = None, random_seed=None, start=None,
                 start_sigma=None, beta: float = 1.0, stick_the_landing: bool | None = None, objective="kl",
                 alpha=None, dreg=None, **kwargs):
        for k in kwargs:
            if k not in ("local_rv", "jitter"):
                raise TypeError(f"NFVI: unexpected keyword argument {k!r}")
        _objective_of(objective, alpha, dreg, beta, stick_the_landing)  # bad options fail before q is built
        approx = NormalizingFlow(flow, model=modelcontext(model, what="NFVI"), start=start, start_sigma=start_sigma,
                                 random_seed=random_seed)
        super().__init__(approx, beta=beta, stick_the_landing=stick_the_landing, random_seed=random_seed,
                         objective=objective, alpha=alpha, dreg=dreg)


#: Pathfinder's default L-BFGS history: this many (s, y) pairs up to PATHFINDER_HISTORY_BUDGET / d, at least 6.
PATHFINDER_MAX_HISTORY = 50
PATHFINDER_HISTORY_BUDGET = 20_000
#: Pathfinder's default paths, draws per path from each path's normal (and as many from its Student-t with
#: PATHFINDER_TAIL_DF degrees of freedom), pooled with mixture weights (``jaxvi.vi.pathfinder.pooled_draws``).
#: Stan's and pymc-extras' 4 paths x 1000 draws, each path's draws weighted by its own normal, left the
#: importance ESS at 70-300 on funnels and heavy-tailed priors (k-hat 0.7-0.85): the resampled means were
#: 0.3-1 sd off on non-centred eight schools and the Cauchy-prior regression.  With 8 paths x (4000 + 4000)
#: both met the 0.1 sd target on 3 of 3 seeds (Cauchy prior: k-hat -0.3 to -0.1); see benchmarks/accuracy.md.
PATHFINDER_PATHS = 8
PATHFINDER_DRAWS = 4000
PATHFINDER_TAIL_DF = 5.0


def default_history_size(d: int) -> int:
    """Pathfinder's default history for ``d`` parameters: 50 up to d = 400, then 20,000 / d, at least 6 (the
    paper's 6 is kept from d = 3,334 up).  Six pairs leave the inverse-Hessian estimate, and so every path's
    normal, wrong in the directions the last six steps did not probe: on the accuracy suite's near-normal
    regressions (6-26 parameters) k-hat fell from 0.83-1.09 to 0.31-0.70 with 50, the draws from failing
    to meeting the target; the cost per iteration is O(d x history^2)."""
    return int(max(6, min(PATHFINDER_MAX_HISTORY, PATHFINDER_HISTORY_BUDGET // max(int(d), 1))))


class Pathfinder(Inference):
    """Pathfinder as an inference method: ``Pathfinder(model).fit()`` (or ``jv.fit(method="pathfinder")``).

    ``num_paths`` (default 8) paths start from the model's initial point with uniform(-init_jitter,
    init_jitter) jitter in unconstrained space (starts with a non-finite log-density or gradient
    are re-jittered).  One path gives a ``PathfinderApproximation`` (normal, with a density);
    several give an ``Empirical`` of ``num_draws`` draws resampled with PSIS weights from the
    pooled draws: ``draws_per_path`` (4000) from each path's normal and ``tail_draws`` (4000) from a
    Student-t with ``tail_df`` (5) degrees of freedom and the same centre and scale, weighted against
    the mixture of all of them (``jaxvi.vi.pathfinder.pooled_draws``; ``tail_draws=0``,
    ``num_paths=4``, ``draws_per_path=1000`` is close to Stan's multi-path Pathfinder, which weights
    each path's draws by its own normal: ``pooling="own"`` with ``tail_draws=0`` does that too).
    ``importance=False``: the normals' draws resampled uniformly.
    ``history_size`` (L-BFGS pairs behind each path's covariance): None picks ``default_history_size(d)``,
    50 up to 400 parameters, fewer above, at least the paper's 6.  After ``fit``: ``approx.hist`` is the -ELBO per L-BFGS iteration of the best path, and
    ``n_grad_evals`` (also on the approximation), ``n_logp_evals``, ``n_iters``, ``elbos``,
    ``status``, ``khat`` (PSIS k-hat of the pooled draws) describe the run.  ``fit(n)`` caps the
    L-BFGS iterations at min(n, max_iters).
    """

    model = None  # a plain attribute here (Inference reads it from its approximation)

    def __init__(self, model: Model | None = None, random_seed=None, num_paths: int = PATHFINDER_PATHS,
                 num_draws: int = 4000, draws_per_path: int = PATHFINDER_DRAWS, max_iters: int = 1000,
                 history_size: int | None = None, num_elbo_draws: int = 25, init_jitter: float = 2.0,
                 importance: bool = True, rel_tol: float | None = None, grad_tol: float = 1e-8,
                 max_linesearch_steps: int = 30, start=None, tail_draws: int = PATHFINDER_DRAWS,
                 tail_df: float = PATHFINDER_TAIL_DF, pooling: str = "mixture"):
        for name, v in dict(num_paths=num_paths, num_draws=num_draws, draws_per_path=draws_per_path,
                            max_iters=max_iters, num_elbo_draws=num_elbo_draws,
                            **({} if history_size is None else {"history_size": history_size})).items():
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Pathfinder: {name} must be a positive integer, got {v!r}")
        if isinstance(tail_draws, bool) or not isinstance(tail_draws, (int, np.integer)) or tail_draws < 0:
            raise ValueError(f"Pathfinder: tail_draws must be a non-negative integer, got {tail_draws!r}")
        if isinstance(tail_df, bool) or not isinstance(tail_df, (int, float, np.integer, np.floating)) \
                or not np.isfinite(tail_df) or tail_df <= 0:
            raise ValueError(f"Pathfinder: tail_df must be a positive number, got {tail_df!r}")
        if not np.isfinite(init_jitter) or init_jitter < 0:
            raise ValueError(f"Pathfinder: init_jitter must be a non-negative number, got {init_jitter!r}")
        if pooling not in ("mixture", "own"):
            raise ValueError(f"Pathfinder: pooling must be 'mixture' or 'own', got {pooling!r}")
        if pooling == "own" and tail_draws:
            raise ValueError("Pathfinder: pooling='own' weights each path's normal draws by that normal alone, so it "
                             f"takes no Student-t draws: pass tail_draws=0 (got {tail_draws!r})")
        self.model = modelcontext(model, what="Pathfinder")
        self.cm = self.model.compile()
        if self.cm.size == 0:
            raise ValueError("the model has no free variables to approximate")
        self._key = prng_key(random_seed)
        self._random_seed = random_seed
        self.num_paths, self.num_draws, self.draws_per_path = int(num_paths), int(num_draws), int(draws_per_path)
        self.init_jitter, self.importance, self.start = float(init_jitter), bool(importance), start
        # uniform resampling (importance=False) pools the normals' draws only: the t draws exist for the weights
        self.tail_draws = int(tail_draws) if self.importance and self.num_paths > 1 else 0
        self.tail_df, self.pooling = float(tail_df), pooling
        if history_size is None:
            history_size = default_history_size(self.cm.size)
        self.options = dict(max_iters=int(max_iters), history_size=int(history_size),
                            num_elbo_draws=int(num_elbo_draws), num_draws=int(draws_per_path), rel_tol=rel_tol,
                            grad_tol=float(grad_tol), max_linesearch_steps=int(max_linesearch_steps))
        self.approx = None
        self.n_grad_evals = self.n_logp_evals = 0

    @property
    def hist(self) -> np.ndarray:
        return self.approx.hist if self.approx is not None else np.zeros(0)

    def _runner(self, options):
        cm = self.cm
        pool = self.num_paths > 1 and self.pooling == "mixture"
        tails = dict(tail_draws=self.tail_draws, tail_df=self.tail_df)

        def build():
            def run(x0s, keys, key_pool, batch):
                logp = lambda z: cm.logp(z, batch)  # noqa: E731
                # one path after the other: compiled once (a vmap of the L-BFGS loops compiles ~2x longer)
                out = jax.lax.map(lambda a: single_path(logp, a[0], a[1], **options), (x0s, keys))
                if pool:
                    out["pooled"], out["pooled_log_ratios"] = pooled_draws(logp, out, key_pool, **tails)
                return out

            return jax.jit(run)

        return cm.cached(("pathfinder", pool, tuple(sorted({**options, **tails}.items()))), build)

    def _starts(self, key):
        from jaxvi.results.mcmc import dispersed_points

        return dispersed_points(self.cm, self.cm.start_point(self.start), key, self.num_paths, self.init_jitter)

    def fit(self, n: int | None = None, progressbar: bool = False, callbacks=None, **kwargs):
        """Run the paths (``n``, if given, caps the L-BFGS iterations) and return the approximation."""
        if kwargs:
            raise TypeError(f"Pathfinder.fit(): unexpected keyword argument(s) {', '.join(kwargs)}; "
                            "pass Pathfinder options via inf_kwargs")
        options = dict(self.options)
        if n is not None:
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"Pathfinder: n (maximum L-BFGS iterations) must be a positive integer, got {n!r}")
            options["max_iters"] = min(int(n), options["max_iters"])
        self._key, k_start, k_run, k_resample = jax.random.split(self._key, 4)
        k_pool = jax.random.fold_in(k_resample, 1)
        x0s = self._starts(k_start)
        with jax.enable_x64(True):  # L-BFGS in float64 whatever the model's dtype (scoped, not JAX's global flag)
            out = self._runner(options)(jnp.asarray(x0s, jnp.float64), jax.random.split(k_run, self.num_paths),
                                        k_pool, self.cm.data)
            out = jax.tree_util.tree_map(np.asarray, out)
        best_elbo = out["best_elbo"]
        if not np.isfinite(best_elbo).any():
            raise FloatingPointError(
                "Pathfinder: no path found a finite ELBO (the log-density was not finite along any L-BFGS path); "
                "check the model or pass start=/init_jitter=")
        self.elbos, self.n_iters, self.status = out["elbos"], out["n_iters"], [STATUS[s] for s in out["status"]]
        self.n_grad_evals = int(out["n_grad_evals"].sum())
        self.n_logp_evals = int(((out["n_iters"] + 1) * options["num_elbo_draws"]).sum()
                                + self.num_paths * (self.draws_per_path + self.tail_draws))
        best = int(np.argmax(best_elbo))
        hist = -out["elbos"][best, 1: out["n_iters"][best] + 1]  # iterations 1..n (none at the start point)
        # each path's ELBO from its own fresh draws (unbiased, unlike the best of the per-iterate estimates)
        fresh = np.where(np.isfinite(out["log_ratios"]), out["log_ratios"], np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a path with no finite draw: NaN
            self.path_elbos = np.nanmean(fresh, axis=1)
        # one path: its normal's own ratios; several: the pooled draws' ratios against the mixture they came from
        lr = out["pooled_log_ratios"] if "pooled" in out else out["log_ratios"].reshape(-1)
        lw, khat = diagnostics.psis(lr)
        if self.num_paths == 1:
            params = jax.tree_util.tree_map(lambda a: jnp.asarray(a[0], self.cm.dtype), out["params"])
            approx = PathfinderApproximation(model=self.model, params=params, random_seed=self._random_seed)
        else:
            draws = out["pooled"] if "pooled" in out else out["draws"].reshape(-1, self.cm.size)
            draws = draws.astype(self.cm.dtype)
            if not self.importance:
                lw = np.where(np.isfinite(lr), 0.0, -np.inf)
            chosen = np.asarray(diagnostics.importance_resample(k_resample, draws, lw, self.num_draws))
            approx = Empirical(chosen, model=self.model, random_seed=self._random_seed)
        approx.hist = hist
        approx.khat, approx.khat_draws = khat, int(lr.size)
        approx.n_grad_evals = self.n_grad_evals
        approx.pathfinder = self
        ess = diagnostics.importance_ess(lw) if self.num_paths > 1 and self.importance else None
        approx.diagnostics = {"khat": khat, "ess": ess}
        if khat > diagnostics.KHAT_THRESHOLD:
            warnings.warn(diagnostics.khat_message(khat, "Pathfinder"), diagnostics.KhatWarning, stacklevel=2)
        elif ess is not None and (ess < max(diagnostics.MIN_IMPORTANCE_ESS,
                                            diagnostics.MIN_IMPORTANCE_REL_ESS * self.num_paths * self.draws_per_path)
                                  or khat > diagnostics.IMPORTANCE_KHAT):
            # the draws are the importance-sampling estimate itself: with few effective draws or k-hat above 0.5
            # (where PSIS converges slowly) their means can be 0.1 sd off with no k-hat warning
            warnings.warn(f"Pathfinder's {self.num_draws} draws are resampled from {lr.size} path draws with k-hat "
                          f"{khat:.2f} and an effective sample size of {ess:.0f}: above k-hat 0.5, or below "
                          f"{diagnostics.MIN_IMPORTANCE_ESS} effective draws or half the paths' normal draws, the resampled means and "
                          "sds can be about 0.1 posterior sds off. Try more draws (draws_per_path=, num_paths=) or a fitted family "
                          "(method='fullrank_advi', method='auto'). See approx.diagnostics['ess'].",
                          diagnostics.EssWarning, stacklevel=2)
        self.approx = approx
        return approx

    def refine(self, n: int, **kwargs):
        raise NotImplementedError("Pathfinder has no refine(): call fit() again (with more max_iters or paths)")


class DADVI(Inference):
    """Deterministic ADVI (Giordano, Ingram & Broderick 2024): ``n_draws`` (default 30) draws of noise
    fixed once, the resulting deterministic -ELBO minimised by L-BFGS (no step size to tune), then the
    linear-response covariances (``linear_response=True``).  ``full_rank=True`` fits a full-rank
    normal instead of the mean-field one.  ``whiten=True`` (default) moment-matches the fixed draws
    (sample mean 0, covariance I: exact on Gaussian posteriors, see ``jaxvi.vi.dadvi.fixed_draws``);
    ``whiten=False`` uses plain draws as the paper and pymc-extras do.

    ``fit(n)`` caps the L-BFGS iterations at min(n, max_iters).  The approximation's ``mean`` is q's,
    its ``cov``/``std`` the linear-response ones (q's own: ``q_cov``/``q_std``); ``sample`` draws from
    q.  ``approx.hist`` is the objective per iteration; ``n_grad_evals``, ``n_iter``, ``converged``
    and ``hessian_pd`` describe the run.  After the fit: k-hat and the reweighted-moment check (the
    loss check is left out: L-BFGS reports its own convergence, a warning when it did not converge).
    """

    def __init__(self, model: Model | None = None, random_seed=None, start=None, start_sigma=None,
                 n_draws: int = dadvi_numerics.DEFAULT_DRAWS, full_rank: bool = False, max_iters: int = 1000,
                 gtol: float = 1e-6, linear_response: bool = True, whiten: bool = True):
        for name, v in dict(n_draws=n_draws, max_iters=max_iters).items():
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"DADVI: {name} must be a positive integer, got {v!r}")
        if not np.isfinite(gtol) or gtol <= 0:
            raise ValueError(f"DADVI: gtol must be a positive number, got {gtol!r}")
        cls = DADVIFullRank if full_rank else DADVIMeanField
        approx = cls(model=modelcontext(model, what="DADVI"), start=start, start_sigma=start_sigma,
                     random_seed=random_seed)
        super().__init__(approx, random_seed=random_seed)
        self.n_draws, self.max_iters, self.gtol = int(n_draws), int(max_iters), float(gtol)
        self.linear_response, self.whiten = bool(linear_response), bool(whiten)
        self.n_grad_evals = 0

    def fit(self, n: int | None = None, progressbar: bool = False, callbacks=None, khat=True, checks: bool = True,
            **kwargs):
        """Run L-BFGS on the fixed-draw objective (``n`` caps the iterations) and return the approximation;
        ``khat``/``checks`` as in ``Inference.fit``."""
        if kwargs:
            raise TypeError(f"DADVI.fit(): unexpected keyword argument(s) {', '.join(kwargs)}; "
                            "pass DADVI options via inf_kwargs")
        iters = self.max_iters if n is None else min(_check_n(n), self.max_iters)
        approx, cm = self.approx, self.approx.cm
        self._key, k_draws = jax.random.split(self._key)
        options = (self.n_draws, max(iters, 1), self.gtol, self.linear_response, self.whiten)
        run = cm.cached(("dadvi", approx.family, options),
                        lambda: jax.jit(dadvi_numerics.make_dadvi(approx.family, cm.logp, *options)))
        res = dadvi_numerics.finish(run(approx.vparams, k_draws, cm.data))
        if not np.isfinite(res.value):
            raise FloatingPointError("DADVI: the fixed-draw -ELBO is not finite at the start or along the L-BFGS "
                                     "path; check the model or pass start=")
        approx.vparams = res.params
        approx.hist = np.concatenate([approx.hist, np.asarray(res.hist, np.float64)])
        approx.lr_cov = res.lr_cov
        self.n_grad_evals = approx.n_grad_evals = res.n_grad_evals
        approx.n_iter, approx.converged, approx.hessian_pd = res.n_iter, res.converged, res.hessian_pd
        if self.linear_response and not res.hessian_pd:
            approx.lr_cov = None
            warnings.warn("DADVI: the objective's Hessian is not positive definite at the optimum, so there are no "
                          "linear-response covariances (approx.cov is q's); the optimum may be a saddle or the "
                          "posterior improper: try more draws (n_draws=) or another start", diagnostics.FitWarning,
                          stacklevel=2)
        if not res.converged:
            warnings.warn(f"DADVI: L-BFGS stopped after {res.n_iter} iterations with relative gradient max-norm "
                          f"{res.grad_norm:.2g} > gtol={self.gtol:g}; call fit() with a larger n or max_iters",
                          diagnostics.NotConvergedWarning, stacklevel=2)
        diagnostics.record_khat(approx, _check_khat(khat, self.khat_draws), checks=checks, min_steps=0,
                                convergence=False)
        return approx

    def refine(self, n: int, **kwargs):
        raise NotImplementedError("DADVI has no refine(): its objective is deterministic; call fit() with more "
                                  "max_iters (or n_draws=) instead")


class Auto(AutoInference, Inference):
    """``jv.fit(method="auto")``: Pathfinder, then a Gaussian by ADVI, then a flow, as the diagnostics ask
    (``jaxvi.variational.auto``; its stages run through ``fit`` below, which that module cannot import)."""

    def _fit_stage(self, method, **kwargs):
        return fit(method=method, **kwargs)


METHODS = {"advi": ADVI, "fullrank_advi": FullRankADVI, "lowrank_advi": LowRankADVI,
           "svgd": SVGD, "asvgd": ASVGD, "nfvi": NFVI, "pathfinder": Pathfinder, "dadvi": DADVI, "auto": Auto}


class UnknownMethodError(KeyError, ValueError):
    """An unknown ``method`` name: a KeyError as in PyMC, and a ValueError."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


@engine.guarded
def fit(n: int | None = None, method="advi", model: Model | None = None, random_seed=None, start=None,
        start_sigma=None, inf_kwargs: dict | None = None, **kwargs) -> Approximation:
    """Fit an approximation with ``method`` ("advi", "fullrank_advi", ... or an Inference object)."""
    inf_kwargs = dict(inf_kwargs or {})
    if isinstance(method, Inference):
        inference = method
    elif isinstance(method, str):
        name, _, formula = method.partition("=")  # PyMC's "nfvi=planar*4"
        cls = METHODS.get(name.lower())
        if cls is None or (formula and cls is not NFVI):
            raise UnknownMethodError(f"unknown method {method!r}; valid methods: {', '.join(sorted(METHODS))}"
                                     " (and 'nfvi=FLOW', e.g. 'nfvi=planar*4')")
        if formula:
            from jaxvi.vi.flows import is_flow_spec

            if not is_flow_spec(formula.lower()):
                raise UnknownMethodError(f"unknown flow formula {formula!r} in method {method!r}; "
                                         "e.g. 'nfvi=planar*4', 'nfvi=radial*2-loc', 'nfvi=realnvp*4'")
            inf_kwargs.setdefault("flow", formula)
        model = modelcontext(model, what="the fit")
        if start is not None:
            inf_kwargs.setdefault("start", start)
        if start_sigma is not None:
            inf_kwargs.setdefault("start_sigma", start_sigma)
        inference = cls(model=model, random_seed=random_seed, **inf_kwargs)
    elif isinstance(method, type) and issubclass(method, Inference):
        inference = method(model=modelcontext(model, what="the fit"), random_seed=random_seed, **inf_kwargs)
    else:
        raise TypeError(f"method must be a name ({', '.join(sorted(METHODS))}) or an Inference, got {method!r}")
    return inference.fit(n, **kwargs)




def pathfinder(model: Model | None = None, random_seed=None, **kwargs):
    """``Pathfinder(model, random_seed, **kwargs).fit()``."""
    return Pathfinder(model=model, random_seed=random_seed, **kwargs).fit()
