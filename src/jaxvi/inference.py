"""Inference objects and ``fit`` (floor 5): PyMC's interface over the engine.

An inference method is family + objective + optimizer.  The objects below hold the state
between calls (optimizer state, PRNG key, compiled runner) so that ``refine`` continues
exactly where ``fit`` stopped, without recompiling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import engine
from .approximations import Approximation, FullRank, MeanField, _key
from .model import Model, modelcontext
from .objectives import kl_qp
from .optimizers import adagrad_window, get_optimizer, with_grad_norm_clip

__all__ = ["Inference", "KLqp", "ADVI", "FullRankADVI", "fit", "METHODS"]

DEFAULT_CHUNK = 1000
_DEFAULT_OPTIMIZER = adagrad_window()


class Inference:
    """Base class: ``fit(n)``, ``refine(n)``, ``approx``, ``hist``."""

    def __init__(self, approx: Approximation, random_seed=None):
        if not isinstance(approx, Approximation):
            raise TypeError(f"expected an Approximation, got {type(approx).__name__}")
        self.approx = approx
        self._key = _key(random_seed)
        self._optimizer = None
        self._opt_state = None
        self._runner = None
        self._steps = 0

    # -- what subclasses define ---------------------------------------------------------------
    def _objective(self, n_mc: int):
        raise NotImplementedError

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
        cache = self.approx.cm.__dict__.setdefault("_runner_cache", {})
        config = (*self._config(), id(optimizer), n_mc, clip)
        if config not in cache:
            step = engine.make_step(self._objective(n_mc), tx)
            runner = engine.make_runner(step, DEFAULT_CHUNK, self.approx.family.coordinate_finite)
            cache[config] = (runner, optimizer)  # keeps the optimizer alive so its id stays unique
        self._runner = cache[config][0]
        self._opt_state = tx.init(self.approx.vparams)
        self._optimizer = optimizer

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, n: int = 10000, score=None, callbacks=None, progressbar: bool = True, obj_optimizer=None,
            total_grad_norm_constraint=None, obj_n_mc: int | None = None, **kwargs) -> Approximation:
        """Run ``n`` optimisation steps and return the approximation (also ``self.approx``)."""
        for k in kwargs:
            if k not in ("tf_n_mc", "fn_kwargs", "more_updates", "more_obj_params", "more_tf_params",
                         "more_replacements", "total_grad_norm_constraint", "obj_n_mc"):
                raise TypeError(f"fit(): unexpected keyword argument {k!r}")
        n = _check_n(n)
        optimizer = _DEFAULT_OPTIMIZER if obj_optimizer is None else get_optimizer(obj_optimizer)
        n_mc = 1 if obj_n_mc is None else int(obj_n_mc)
        if n_mc < 1:
            raise ValueError(f"obj_n_mc must be a positive integer, got {obj_n_mc!r}")
        self._prepare(optimizer, n_mc, total_grad_norm_constraint)  # a fresh optimizer state, as in PyMC
        return self._run(n, callbacks, progressbar)

    def refine(self, n: int, progressbar: bool = True, callbacks=None) -> Approximation:
        """Continue the last fit for ``n`` more steps (same optimizer and its state)."""
        if self._runner is None:
            raise RuntimeError("refine() continues a fit: call fit() first")
        return self._run(_check_n(n), callbacks, progressbar)

    def _run(self, n, callbacks, progressbar):
        approx = self.approx
        cbs = _wrap_callbacks(approx, callbacks)
        result = engine.run(self._runner, approx.vparams, self._opt_state, self._key, n, approx.cm.data,
                            chunk_size=DEFAULT_CHUNK, callbacks=cbs, progressbar=progressbar,
                            step_offset=self._steps, history=approx.hist, desc=type(self).__name__)
        approx.vparams, self._opt_state, self._key = result.params, result.opt_state, result.key
        approx.hist = np.concatenate([approx.hist, result.losses])
        self._steps += len(result.losses)
        if result.status == "nonfinite":
            raise FloatingPointError(_nonfinite_message(approx, result, self._steps))
        return approx


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be a non-negative integer number of steps, got {n!r}")
    if n < 0:
        raise ValueError(f"n must be a non-negative integer number of steps, got {n}")
    return int(n)


def _wrap_callbacks(approx, callbacks):
    if callbacks is None:
        return []
    if callable(callbacks):
        callbacks = [callbacks]
    out = []
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables cb(approx, hist, i), got {cb!r}")
        every = int(getattr(cb, "every", 1) or 1)

        def call(params, opt_state, hist, i, cb=cb):
            approx.vparams = params
            cb(approx, hist, i)

        out.append((every, call))
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
    return (f"NaN occurred in optimization at step {steps}: {what}. The approximation keeps its last "
            f"finite state (after {steps} steps) and its history; try a smaller learning rate, "
            "total_grad_norm_constraint=..., or a better-scaled model.")


class KLqp(Inference):
    """Minimise KL(q || p) for an approximation: the reparameterised (negative) ELBO.

    ``beta`` weighs the entropy term (beta < 1 tempers it); ``stick_the_landing=True`` uses the
    lower-variance gradient of Roeder et al. (2017).
    """

    def __init__(self, approx: Approximation, beta: float = 1.0, stick_the_landing: bool = False,
                 random_seed=None):
        super().__init__(approx, random_seed=random_seed)
        self.beta = float(beta)
        self.stick_the_landing = bool(stick_the_landing)

    def _config(self):
        return (*super()._config(), self.beta, self.stick_the_landing)

    def _objective(self, n_mc):
        return kl_qp(self.approx.family, self.approx.cm.logp, n_mc=n_mc, beta=self.beta,
                     stick_the_landing=self.stick_the_landing)


class ADVI(KLqp):
    """Mean-field ADVI (Kucukelbir et al. 2017)."""

    approximation = MeanField

    def __init__(self, model: Model | None = None, random_seed=None, start=None, start_sigma=None,
                 beta: float = 1.0, stick_the_landing: bool = False, **kwargs):
        for k in kwargs:
            if k not in ("local_rv", "cost_part_grad_scale", "scale_cost_to_minibatch"):
                raise TypeError(f"{type(self).__name__}: unexpected keyword argument {k!r}")
        model = modelcontext(model, what=type(self).__name__)
        approx = self.approximation(model=model, start=start, start_sigma=start_sigma, random_seed=random_seed)
        super().__init__(approx, beta=beta, stick_the_landing=stick_the_landing, random_seed=random_seed)


class FullRankADVI(ADVI):
    """Full-rank ADVI: a multivariate normal with dense covariance."""

    approximation = FullRank


METHODS = {"advi": ADVI, "fullrank_advi": FullRankADVI}


def fit(n: int = 10000, method="advi", model: Model | None = None, random_seed=None, start=None,
        start_sigma=None, inf_kwargs: dict | None = None, **kwargs) -> Approximation:
    """Fit an approximation with ``method`` ("advi", "fullrank_advi", ... or an Inference object)."""
    inf_kwargs = dict(inf_kwargs or {})
    if isinstance(method, Inference):
        inference = method
    elif isinstance(method, str):
        cls = METHODS.get(method.lower())
        if cls is None:
            raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(sorted(METHODS))}")
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


del jax, jnp
