"""``jv.fit(method="auto")``: pick the family by the fit's own diagnostics, escalating within a budget.

The stages, cheapest first; each is judged by its PSIS k-hat and the post-fit checks
(``jaxvi.diagnostics``), and the first one that passes ends the search:

1. Pathfinder as Stan runs it (``AUTO_PATHFINDER``: 4 paths x 1000 draws, each path's draws weighted by its
   own normal; a few hundred gradient evaluations);
2. a Gaussian fitted by ADVI with the library's default settings (``jv.fit(method="fullrank_advi")``,
   or ``"lowrank_advi"`` above ``AUTO_FULLRANK_MAX_DIM`` dimensions): its mode-search start and
   default recipe;
3. a normalizing flow (``method="nfvi"``, ``AUTO_FLOW``) from its own start;
4. a larger flow (``AUTO_FLOW_LARGE``), also from its own start.

A stage *passes* when its k-hat is below ``accept_khat`` (default ``AUTO_ACCEPT_KHAT`` = 0.5) and no
check fired (loss still falling, PSIS-reweighted moments off q's, every Pathfinder path stopped by
its iteration cap).  The approximation returned is the best stage by one rule: among the stages
whose checks passed (all of them when none did) the lowest k-hat band -- good (< 0.5), usable
(< 0.7), unreliable -- and within a band the higher ELBO (k-hat is blind to a q that is too wide).  It carries
``approx.report``, an ``AutoReport`` of every stage, and its ``sample()`` InferenceData carries the
report as JSON in ``posterior.attrs["jaxvi_auto_report"]``.  When the chosen stage is not
trustworthy (k-hat >= 0.7 or a check fired) an ``AutoWarning`` names the coordinates the checks
flagged and what to try.

The stages run through the public ``jv.fit`` (so they inherit its defaults); this module cannot
import ``inference.py`` (which registers ``"auto"`` in its ``METHODS``), so the concrete class there,
``jaxvi.variational.inference.Auto``, supplies ``_fit_stage``.  See ``docs/auto.md``.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from jaxvi.engine import loop as engine
from jaxvi.model.context import Model, modelcontext
from jaxvi.results import diagnostics
from jaxvi.vi.flows import is_flow_spec

__all__ = ["AutoInference", "AutoStage", "AutoReport", "AutoWarning", "AUTO_ACCEPT_KHAT", "AUTO_FULLRANK_MAX_DIM",
           "AUTO_PATHFINDER", "AUTO_PATHFINDER_MIN_ESS",
           "AUTO_FLOW", "AUTO_FLOW_LARGE", "AUTO_FLOW_STEPS", "AUTO_FLOW_1D", "AUTO_KHAT_BANDS", "AUTO_STAGE_OPTIONS", "khat_band"]

#: A stage passes (and ends the search) below this k-hat with no check fired: PSIS's "good" range,
#: where importance weighting can fix what is left (Vehtari et al. 2024); see docs/auto.md.
AUTO_ACCEPT_KHAT = 0.5
#: The Pathfinder stage's options: Stan's multi-path Pathfinder, a cheap first look (about 4x fewer paths and
#: draws than ``jv.fit(method="pathfinder")``'s defaults, which add Student-t draws and mixture weights);
#: the later stages fit what it misses.  The defaults block of benchmarks/accuracy.md measured auto with it.
AUTO_PATHFINDER = dict(num_paths=4, draws_per_path=1000, tail_draws=0, pooling="own")
#: The Pathfinder stage passes only when its importance weights' ESS is at least this fraction of its
#: pooled draws (Pathfinder's EssWarning fires below it too)
AUTO_PATHFINDER_MIN_ESS = diagnostics.MIN_IMPORTANCE_REL_ESS
#: Full-rank Gaussian up to this many dimensions, low-rank above (d(d+1)/2 scale parameters: 5050 at d = 100).
AUTO_FULLRANK_MAX_DIM = 100
#: The flow of stage 3 (d >= 2): two RealNVP couplings, then the scale and loc layers every flow ends with.
AUTO_FLOW = "realnvp*2"
#: The flow of stage 4 (d >= 2), when stage 3 did not pass: four couplings.  On centred eight schools a flow's
#: fit depends on its seed (realnvp*2 and realnvp*4 each met the target on 1 of 3 seeds, not the same ones);
#: with both, the diagnostics pick the better one.
AUTO_FLOW_LARGE = "realnvp*4"
#: The flow stage's steps when ``fit()`` gets no ``n`` (3x a plain ``jv.fit(method="nfvi")``'s 10,000): the
#: stage runs only where both normals failed, and there the flow was still improving at 10,000 (centred
#: eight schools: 1 of 3 seeds met the target at 10,000 steps, 2 of 3 at 30,000).
AUTO_FLOW_STEPS = 30_000
#: The flow for a one-dimensional posterior (a coupling layer needs two coordinates to split).
AUTO_FLOW_1D = "planar*4"
#: The chosen stage is the one in the lowest k-hat band (PSIS's good / usable / unreliable), ties
#: broken by the higher ELBO: k-hat only sees a q too narrow (heavy-tailed p/q), not one too wide.
AUTO_KHAT_BANDS = (AUTO_ACCEPT_KHAT, diagnostics.KHAT_THRESHOLD)
#: ``fit()`` options passed on to the optimisation stages (ADVI and the flow), as ``jv.fit`` takes them.
AUTO_STAGE_OPTIONS = ("obj_optimizer", "total_grad_norm_constraint", "obj_n_mc", "stop_on_convergence",
                      "devices", "mesh")
#: ``fit()`` options ``method="auto"`` refuses, with the reason.
_REFUSED = {"khat": "auto judges every stage by its k-hat, so it cannot be turned off",
            "checks": "auto judges every stage by the post-fit checks, so they cannot be turned off",
            "checkpoint": "auto runs several fits; checkpoint a single method instead",
            "checkpoint_every": "auto runs several fits; checkpoint a single method instead",
            "resume": "auto runs several fits; checkpoint and resume a single method instead"}


class AutoWarning(diagnostics.FitWarning):
    """No stage of ``method="auto"`` was trustworthy: the best one is returned (see ``approx.report``)."""


class AutoStage(NamedTuple):
    """One stage of ``method="auto"`` as the report shows it."""

    method: str  #: the ``jv.fit`` method ("pathfinder", "fullrank_advi", "lowrank_advi", "nfvi=realnvp*2")
    family: str  #: the approximation's family ("empirical", "full_rank", "normalizing_flow", ...; "" if it failed)
    khat: float | None  #: PSIS k-hat (None: not computed)
    elbo: float | None  #: ELBO estimate (nats): mean log p - log q of k-hat's draws; Pathfinder: its best path's
    steps: int  #: optimisation steps (Pathfinder: L-BFGS iterations of its best path)
    grad_evals: int | None  #: gradient evaluations where known (Pathfinder; ADVI when obj_n_mc is given)
    seconds: float  #: wall-clock time of the stage, compilation included
    checks: tuple  #: the checks that fired, in words (empty: none)
    flagged: tuple  #: coordinates the checks name (``b[2]``, ``sigma_log__``)
    verdict: str  #: "accepted", "escalated", "kept" (the last stage run, not accepted) or "failed"
    reason: str  #: the verdict in words

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else _plain(v)) for k, v in self._asdict().items()}


@dataclass(frozen=True)
class AutoReport:
    """What ``method="auto"`` did: every stage (``stages``), which was chosen and why."""

    stages: tuple  #: AutoStage records, in the order run
    chosen: int | None  #: index into ``stages`` of the approximation returned
    reason: str  #: why that one
    trustworthy: bool  #: k-hat < 0.7 and no check fired on the chosen stage
    ndim: int  #: dimension of the flat unconstrained vector
    accept_khat: float  #: the acceptance threshold used

    @property
    def chosen_stage(self) -> AutoStage | None:
        return None if self.chosen is None else self.stages[self.chosen]

    def to_dict(self) -> dict:
        return {"stages": [s.to_dict() for s in self.stages], "chosen": self.chosen, "reason": self.reason,
                "trustworthy": self.trustworthy, "ndim": self.ndim, "accept_khat": self.accept_khat}

    def to_json(self) -> str:
        """The report as JSON text (what ``posterior.attrs["jaxvi_auto_report"]`` holds)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> AutoReport:
        d = json.loads(text)
        def value(k, v):
            if isinstance(v, list):
                return tuple(v)
            return float(v) if k in ("khat", "elbo") and isinstance(v, str) else v  # "inf" / "-inf"

        stages = tuple(AutoStage(**{k: value(k, v) for k, v in s.items()}) for s in d["stages"])
        return cls(stages, d["chosen"], d["reason"], d["trustworthy"], d["ndim"], d["accept_khat"])

    def __str__(self) -> str:
        def num(v, fmt):
            return "-" if v is None else format(v, fmt)

        head = (f"{'':2}{'#':>2}  {'method':<16} {'family':<17} {'k-hat':>6} {'ELBO':>10} {'steps':>6} "
                f"{'grads':>7} {'sec':>6}  verdict")
        lines = [f"jaxvi auto fit (d={self.ndim}, accept k-hat < {self.accept_khat:g})", head]
        for i, s in enumerate(self.stages):
            mark = "->" if i == self.chosen else ""
            lines.append(f"{mark:2}{i + 1:>2}  {s.method:<16} {s.family or '-':<17} {num(s.khat, '6.2f'):>6} "
                         f"{num(s.elbo, '10.2f'):>10} {s.steps:>6} {num(s.grad_evals, '7d'):>7} "
                         f"{s.seconds:6.1f}  {s.verdict}")
            lines.append(f"{'':6}{s.reason}")
            if s.checks:
                lines.append(f"{'':6}checks fired: {'; '.join(s.checks)}")
        lines.append(f"chosen: {self.reason}")
        return "\n".join(lines)

    __repr__ = __str__


def _plain(v):
    """A JSON-able number (k-hat may be +-inf, which JSON spells as a string)."""
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else repr(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


class AutoInference:
    """Pick the variational family by the fit's diagnostics, escalating within a budget.

    ``jv.fit(n, method="auto")`` (or ``jv.Auto(model).fit(n)``) runs Pathfinder, then if needed a
    full-rank (d <= ``fullrank_max_dim``) or low-rank Gaussian by ADVI, then if needed a normalizing
    flow, and returns the best approximation with ``approx.report``.

    ``n``: the steps of *each* optimisation stage (the Gaussian and the flow; by default each one's
    ``jv.fit`` default, ``jaxvi.starts.default_steps``: 10,000, more for a Gaussian with many parameters;
    at least ``jaxvi.diagnostics.KHAT_MIN_STEPS`` so that every stage is judged);
    Pathfinder runs with ``AUTO_PATHFINDER`` (``pathfinder=dict(...)`` overrides them).  ``max_seconds``: a wall-clock budget; a stage that would start after it
    is spent is skipped (which stages run then depends on the machine).  ``flow=None`` never fits a
    flow; ``flow="planar*8"`` (any ``nfvi`` formula) picks another.  ``accept_khat`` is the k-hat a
    stage must beat to end the search.  ``start`` is passed to Pathfinder; the Gaussian starts where
    ``jv.fit`` with no start starts it (the mode search of ``Approximation.auto_start``, followed by the
    default recipe; ``gaussian_start="pathfinder"``: at the mean and sds of Pathfinder's draws, with PyMC's
    optimizer), the flow at its own start.  ``random_seed`` is passed to every stage: the same seed gives the same stages and
    the same draws.

    ``fit(callbacks=, progressbar=)`` and the ``fit`` options in ``AUTO_STAGE_OPTIONS`` (an optimizer,
    ``obj_n_mc``, ...) go to the ADVI and flow stages; Pathfinder takes none.
    """

    model = None  # a plain attribute here (an Inference reads it from its approximation)
    #: the stages' own FitWarnings (k-hat, convergence, moments) are recorded in the report instead of shown
    quiet_stages = True

    def __init__(self, model: Model | None = None, random_seed=None, start=None, accept_khat: float = AUTO_ACCEPT_KHAT,
                 fullrank_max_dim: int = AUTO_FULLRANK_MAX_DIM, rank: int | None = None, flow: str | None = "auto",
                 max_seconds: float | None = None, pathfinder: dict | None = None, gaussian_start=None,
                 start_sigma=None):
        if start_sigma is not None:
            raise TypeError("auto: start_sigma is not accepted: the Gaussian stage starts at the sds of Pathfinder's "
                            "draws (pass start= for Pathfinder's start)")
        if isinstance(accept_khat, bool) or not isinstance(accept_khat, (int, float)) or not 0 < accept_khat <= 1:
            raise ValueError(f"auto: accept_khat must be a number in (0, 1] (0.5 is PSIS's 'good'), "
                             f"got {accept_khat!r}")
        if isinstance(fullrank_max_dim, bool) or not isinstance(fullrank_max_dim, (int, np.integer)) \
                or fullrank_max_dim < 0:
            raise ValueError(f"auto: fullrank_max_dim must be a non-negative integer, got {fullrank_max_dim!r}")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1):
            raise ValueError(f"auto: rank (of the low-rank Gaussian) must be a positive integer or None, got {rank!r}")
        if flow not in (None, "auto") and not is_flow_spec(flow):
            raise ValueError(f"auto: flow must be None (no flow stage), 'auto' or an nfvi flow formula such as "
                             f"'realnvp*2' or 'planar*4', got {flow!r}")
        if max_seconds is not None and (isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float))
                                        or not max_seconds > 0):
            raise ValueError(f"auto: max_seconds must be a positive number of seconds or None, got {max_seconds!r}")
        if pathfinder is not None and not isinstance(pathfinder, dict):
            raise TypeError(f"auto: pathfinder must be a dict of Pathfinder options, got {pathfinder!r}")
        if gaussian_start not in (None, "pathfinder"):
            raise ValueError(f"auto: gaussian_start must be 'pathfinder' (the moments of Pathfinder's draws) or None, "
                             f"got {gaussian_start!r}")
        self.model = modelcontext(model, what="the auto fit")
        self.cm = self.model.compile()  # the model's functions (nothing is jit-compiled here)
        if self.cm.size == 0:
            raise ValueError("the model has no free variables to approximate")
        if getattr(self.cm, "minibatch_groups", None):
            raise ValueError("method='auto' judges its stages by PSIS k-hat, which needs log p on all the data; "
                             "it is not computed for minibatch or streamed models: pick a method (e.g. 'advi')")
        self.random_seed, self.start = random_seed, start
        self.accept_khat, self.fullrank_max_dim, self.rank = float(accept_khat), int(fullrank_max_dim), rank
        self.flow, self.max_seconds = flow, max_seconds
        self.pathfinder_options, self.gaussian_start = dict(pathfinder or {}), gaussian_start
        self.approx = None
        self.report: AutoReport | None = None
        self.approximations: list = []  #: every stage's approximation (None where it failed), as in the report

    # -- supplied by jaxvi.variational.inference.Auto -------------------------------------------------
    def _fit_stage(self, method, **kwargs):
        """``jv.fit(method=method, **kwargs)``."""
        raise NotImplementedError("use jaxvi.Auto (jaxvi.variational.inference.Auto), which runs the stages "
                                  "through jv.fit")

    @property
    def hist(self) -> np.ndarray:
        return self.approx.hist if self.approx is not None else np.zeros(0)

    def refine(self, n: int, **kwargs):
        raise NotImplementedError("auto has no refine(): refine the chosen method's own fit, or call fit() again "
                                  "with a larger n")

    # -- the plan -----------------------------------------------------------------------------------
    def gaussian_method(self) -> str:
        return "fullrank_advi" if self.cm.size <= self.fullrank_max_dim else "lowrank_advi"

    def flow_spec(self) -> str | None:
        """The first flow stage's formula (None: no flow stage)."""
        specs = self.flow_specs()
        return specs[0] if specs else None

    def flow_specs(self) -> tuple:
        """The flow stages' formulas: ``flow="auto"`` gives ``AUTO_FLOW`` then ``AUTO_FLOW_LARGE`` (``AUTO_FLOW_1D``
        alone when d = 1), a formula gives that one flow, None none."""
        if self.flow == "auto":
            return (AUTO_FLOW, AUTO_FLOW_LARGE) if self.cm.size >= 2 else (AUTO_FLOW_1D,)
        return () if self.flow is None else (self.flow,)

    # -- fitting ----------------------------------------------------------------------------------
    @engine.guarded  # Ctrl-C during a stage stops it (and the escalation) cleanly
    def fit(self, n: int | None = None, callbacks=None, progressbar: bool = True, **kwargs):
        """Run the stages (``n`` steps for each optimisation stage; by default each stage's own default,
        ``jv.fit``'s without ``n``) and return the chosen approximation."""
        n = None if n is None else _check_n(n)
        for k in kwargs:
            if k in _REFUSED:
                raise TypeError(f"fit(method='auto'): {k}= is not accepted: {_REFUSED[k]}")
            if k not in AUTO_STAGE_OPTIONS:
                raise TypeError(f"fit(method='auto'): unexpected keyword argument {k!r} (the ADVI/flow stages take "
                                f"{', '.join(AUTO_STAGE_OPTIONS)}, callbacks and progressbar)")
        if callbacks is not None and not callable(callbacks):
            for cb in callbacks:
                if not callable(cb):
                    raise TypeError(f"callbacks must be callables cb(approx, hist, i), got {cb!r}")
        stage_kwargs = dict(kwargs, callbacks=callbacks, progressbar=progressbar)
        common = dict(model=self.model, random_seed=self.random_seed)
        d = self.cm.size
        pf_kwargs = {**AUTO_PATHFINDER, **self.pathfinder_options}
        if self.pathfinder_options.get("tail_draws") and "pooling" not in self.pathfinder_options:
            pf_kwargs["pooling"] = "mixture"  # Student-t draws asked for: they need the mixture weights
        if self.start is not None:
            pf_kwargs.setdefault("start", self.start)
        gauss = self.gaussian_method()
        gauss_extra = {"inf_kwargs": {"rank": self.rank}} if self.rank is not None and gauss == "lowrank_advi" else {}
        gauss_what = (f"full-rank (d={d} <= {self.fullrank_max_dim})" if gauss == "fullrank_advi"
                      else f"low-rank (d={d} > {self.fullrank_max_dim})")
        # (method, steps (None: the method's own), its jv.fit arguments from the stages so far, the escalation)
        plan = [("pathfinder", None, lambda done: dict(common, inf_kwargs=pf_kwargs), ""),
                # the library's ADVI defaults (its mode-search start), or at the moments of Pathfinder's draws
                (gauss, n, lambda done: dict(common, **gauss_extra, **stage_kwargs,
                                             **(_moments_start(done[0]) if self.gaussian_start else {})),
                 f"escalated to {gauss_what}")]
        specs = self.flow_specs()
        spec = specs[0] if specs else None
        for i, flow in enumerate(specs):  # the flow's own start: at the Gaussian's moments it ended worse (docs/auto.md)
            plan.append((f"nfvi={flow}", AUTO_FLOW_STEPS if n is None else n, lambda done: dict(common, **stage_kwargs),
                         f"escalated to a {'larger ' if i else ''}normalizing flow ({flow})"))
        t_start = time.perf_counter()
        stages, approxes = [], []
        for method, steps, arguments, escalation in plan:
            if stages:
                if stages[-1].verdict == "accepted":
                    break
                out_of_time = self.max_seconds is not None and time.perf_counter() - t_start > self.max_seconds
                if out_of_time or engine.interrupted():
                    why = "the max_seconds budget is spent" if out_of_time else "interrupted"
                    stages[-1] = _note(stages[-1], f" (not escalated: {why})")
                    break
                stages[-1] = _note(stages[-1], f": {escalation}", "escalated")
            approx, stage = self._run_stage(method, steps, arguments(approxes))
            stages.append(stage)
            approxes.append(approx)
        else:
            if spec is None and stages[-1].verdict != "accepted":
                stages[-1] = _note(stages[-1], " (no flow stage: flow=None)")
        chosen, why = _choose(stages, approxes)
        if chosen is None:
            raise FloatingPointError("method='auto': every stage failed (" + "; ".join(s.reason for s in stages)
                                     + "); check the model or pass start=")
        best = stages[chosen]
        trustworthy = (best.khat is not None and best.khat < diagnostics.KHAT_THRESHOLD and not best.checks)
        approx = approxes[chosen]
        if approx.importance_resample_default:  # set by the stage's k-hat check (diagnostics.psis_trusted)
            # PSIS-corrected draws (Yao et al. 2018): they fix what a normal or flow leaves (a 10% too narrow
            # sd of a scale parameter, a skewed marginal) where k-hat says the weights can be trusted
            why += ("; its draws are PSIS-resampled towards the posterior (k-hat < 0.7): "
                    "approx.sample(importance_resample=False) gives q's own")
        report = AutoReport(tuple(stages), chosen, why, trustworthy, d, self.accept_khat)
        approx.report = report
        self.approx, self.report, self.approximations = approx, report, approxes
        if not trustworthy:
            warnings.warn(_untrustworthy_message(report), AutoWarning, stacklevel=2)
        return approx

    def _run_stage(self, method: str, n, kwargs: dict):
        """Fit one stage through ``jv.fit``; returns (approximation or None, AutoStage)."""
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                # n=None (Pathfinder): jv.fit's own default n, which Pathfinder caps at its max_iters
                approx = self._fit_stage(method, **({} if n is None else {"n": n}), **kwargs)
                error = None
            except FloatingPointError as exc:  # NaN in the optimisation, no finite Pathfinder path, ...
                approx, error = None, exc
        seconds = time.perf_counter() - t0
        fit_warnings = []
        for w in caught:
            if issubclass(w.category, diagnostics.FitWarning) and self.quiet_stages:
                fit_warnings.append(w)
            else:  # not ours to judge: shown as it came
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        if approx is None:
            msg = str(error).split(";")[0]
            return None, AutoStage(method, "", None, None, 0, None, seconds, (), (), "failed",
                                   f"{method} failed: {msg}")
        return approx, self._judge(method, approx, seconds, fit_warnings, kwargs)

    def _judge(self, method, approx, seconds, fit_warnings, kwargs) -> AutoStage:
        khat = approx.khat if approx.khat is not None else None
        checks, flagged = [], []
        diag = getattr(approx, "diagnostics", None) or {}
        conv = diag.get("converged")
        if conv is not None and not conv.converged:
            checks.append(f"not converged: the -ELBO fell {conv.drop:.3g} nats over the last tenth "
                          f"(about {conv.more_steps} more steps needed)")
        moments = diag.get("moments")
        if moments is not None and moments.flagged:
            flagged.extend(moments.flagged)
            checks.append(f"reweighted moments off q's for {_names(moments.flagged)}")
        if "skipped" in diag:
            checks.append(f"not judged: {diag['skipped']}")
        pathfinder = getattr(approx, "pathfinder", None)
        if pathfinder is not None:
            ess, pooled = diag.get("ess"), pathfinder.num_paths * pathfinder.draws_per_path
            if ess is not None and ess < AUTO_PATHFINDER_MIN_ESS * pooled:
                checks.append(f"importance ESS {ess:.0f} of its {pooled} pooled draws (< {AUTO_PATHFINDER_MIN_ESS:.0%}): "
                              "the resampled means carry too much Monte Carlo error")
            status = list(getattr(pathfinder, "status", ()))
            if status and all(s.startswith("max_iters") for s in status):
                checks.append("every Pathfinder path stopped at max_iters (L-BFGS did not converge)")
        known = (diagnostics.KhatWarning, diagnostics.NotConvergedWarning, diagnostics.MomentsWarning)
        for w in fit_warnings:  # any other FitWarning a method raises (DADVI's Hessian, ...)
            if not issubclass(w.category, known):
                checks.append(f"{w.category.__name__}: {str(w.message)[:120]}")
        steps, grads = len(approx.hist), None
        if pathfinder is not None:
            # the best path's ELBO from its draws_per_path fresh draws (the per-iterate estimates, 25 draws each,
            # are optimistic at their maximum: they would win ties against the density stages' 4000-draw ELBOs)
            grads, elbos = int(pathfinder.n_grad_evals), np.asarray(pathfinder.path_elbos, np.float64)
            elbo = float(np.max(elbos[np.isfinite(elbos)])) if np.isfinite(elbos).any() else None
        else:
            if kwargs.get("obj_n_mc") is not None:
                grads = steps * int(kwargs["obj_n_mc"])
            elbo = _elbo(approx)
        family = getattr(approx.family, "name", type(approx).__name__)
        if khat is None:
            why = getattr(approx, "khat_skipped", "no k-hat")
            verdict, reason = "kept", f"{method}: no k-hat ({why})"
        elif khat < self.accept_khat and not checks:
            verdict, reason = "accepted", f"{method} k-hat {khat:.2f} < {self.accept_khat:g} and no check fired"
        elif khat < self.accept_khat:
            verdict = "kept"
            reason = f"{method} k-hat {khat:.2f} < {self.accept_khat:g} but {len(checks)} check(s) fired"
        else:
            verdict, reason = "kept", f"{method} k-hat {khat:.2f} >= {self.accept_khat:g}" + (
                f" ({_khat_words(khat)})" if khat >= diagnostics.KHAT_THRESHOLD else "")
        return AutoStage(method, family, None if khat is None else float(khat), elbo, int(steps), grads,
                         float(seconds), tuple(checks), tuple(flagged), verdict, reason)


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"fit(method='auto'): n must be an integer number of steps per optimisation stage, got {n!r}")
    if n < diagnostics.KHAT_MIN_STEPS:
        raise ValueError(f"fit(method='auto'): n={n} is below {diagnostics.KHAT_MIN_STEPS}, the fewest steps the "
                         "post-fit checks judge; auto picks the family by those checks, so give n >= "
                         f"{diagnostics.KHAT_MIN_STEPS} (default 10000 steps per ADVI/flow stage)")
    return int(n)


def _khat_words(khat: float) -> str:
    return "> 0.7: unreliable" if math.isfinite(khat) else "not finite: unreliable"


def _note(stage: AutoStage, words: str, verdict: str | None = None) -> AutoStage:
    """``stage`` with ``words`` added to its reason and, unless it failed, the new ``verdict``."""
    keep = stage.verdict == "failed" or verdict is None
    return stage._replace(verdict=stage.verdict if keep else verdict, reason=stage.reason + words)


def _names(labels, limit: int = 6) -> str:
    labels = list(labels)
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return ", ".join(labels[:limit]) + more


def _moments_start(approx) -> dict:
    """``start``/``start_sigma`` (unconstrained, by value-variable name) at ``approx``'s mean and sd;
    {} when there is none (a failed stage) or they are not finite."""
    if approx is None:
        return {}
    mean, std = approx.mean_dict, approx.std_dict
    values = [*mean.values(), *std.values()]
    if not all(np.all(np.isfinite(v)) for v in values) or not all(np.all(v > 0) for v in std.values()):
        return {}
    return {"start": mean, "start_sigma": std}


def _elbo(approx) -> float | None:
    """mean(log p - log q) of the draws k-hat used (the same key as ``record_khat``: no extra compile)."""
    if not diagnostics.has_density(approx) or not approx.khat_draws:
        return None
    import jax

    _, lr = diagnostics.approx_log_ratios(approx, approx.khat_draws, jax.random.key(len(approx.hist)))
    value = diagnostics.elbo(lr)
    return value if math.isfinite(value) else None


def khat_band(khat) -> int:
    """PSIS's reading of k-hat as a rank: 0 good (< 0.5), 1 usable (< 0.7), 2 unreliable (or no k-hat)."""
    if khat is None or math.isnan(khat):
        return len(AUTO_KHAT_BANDS)
    return sum(khat >= b for b in AUTO_KHAT_BANDS)


def _choose(stages, approxes):
    """The best stage: among those whose checks passed and whose k-hat is usable (all of them when none is),
    the lowest k-hat band,
    and within a band the highest ELBO (k-hat cannot see a q that is too wide; the ELBO can)."""
    done = [i for i, a in enumerate(approxes) if a is not None]
    if not done:
        return None, ""
    # passed: no check fired and k-hat usable (an unreliable k-hat is a failed check too)
    clean = [i for i in done if not stages[i].checks and khat_band(stages[i].khat) < len(AUTO_KHAT_BANDS)]
    pool = clean or done
    elbo = lambda i: stages[i].elbo if stages[i].elbo is not None else -math.inf  # noqa: E731
    best = min(pool, key=lambda i: (khat_band(stages[i].khat), -elbo(i), i))
    s = stages[best]
    band = khat_band(s.khat)
    words = ("good: k-hat < 0.5", "usable: 0.5 <= k-hat < 0.7", "unreliable: k-hat >= 0.7 or none")[band]
    among = "among the stages whose checks passed" if clean else "(every stage had a check fire or k-hat >= 0.7)"
    why = f"{s.method} (stage {best + 1}): the lowest k-hat band ({words}) {among}"
    rivals = [i for i in pool if i != best and khat_band(stages[i].khat) == band]
    if rivals:
        others = ", ".join(f"{stages[i].method} {_num(stages[i].elbo)}" for i in rivals)
        why += f"; the highest ELBO in it ({_num(s.elbo)} against {others})"
    if s.verdict == "accepted":
        why += "; it passed (k-hat below accept_khat, no check fired), so the search stopped there"
    return best, why


def _num(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _untrustworthy_message(report: AutoReport) -> str:
    s = report.chosen_stage
    tried = ", ".join(f"{t.method} (k-hat {'-' if t.khat is None else f'{t.khat:.2f}'})" for t in report.stages)
    what = [f"k-hat {s.khat:.2f}" if s.khat is not None else "no k-hat", *s.checks]
    names = f" The checks flag {_names(s.flagged)}: their means/sds are the least reliable." if s.flagged else ""
    return (f"method='auto': no stage is trustworthy ({tried}); returning the best, {s.method}, with "
            f"{'; '.join(what)}.{names} Try NUTS (jv.sample(init=approx)), a larger n, another flow "
            "(flow='realnvp*4' or 'nsf'), or reparameterising the model (non-centred hierarchies, "
            "standardised predictors). See approx.report.")
