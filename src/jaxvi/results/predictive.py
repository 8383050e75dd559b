"""Predictive sampling (floor 4): ``jv.sample_posterior_predictive`` and ``jv.sample_prior_predictive``.

Draws vmap ``CompiledModel.sample_observed`` / ``sample_prior`` over draws; results come back as
ArviZ InferenceData with PyMC's group names.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi.model.config import prng_key as _key
from jaxvi.model.compiled import CompiledModel
from jaxvi.model.context import modelcontext
from jaxvi.results.inference_data import make_inference_data, posterior_values
from jaxvi.results.mcmc import attrs

__all__ = ["sample_posterior_predictive", "sample_prior_predictive", "draw"]

#: Elements (draws x observed values) evaluated per vmapped chunk of predictive sampling.
_CHUNK_ELEMENTS = 1 << 22


def _predictive_fn(cm: CompiledModel, free_names: tuple, observed: tuple, others: tuple):
    """jit(vmap(draw -> {observed draws, other node values})) over (key, free values)."""

    def build():
        nodes = [cm.model[n] for n in others]

        def one(key, values, batch):
            flat = cm.flat_from_point(dict(zip(free_names, values)), batch)
            out = cm.sample_observed(key, flat, batch, list(observed)) if observed else {}
            if nodes:
                out.update(zip(others, cm.evaluate(nodes, flat, batch)))
            return out

        return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))

    return cm.cached(("posterior_predictive", free_names, observed, others), build)


def _posterior_dict(trace) -> dict:
    """{name: array (chain, draw, ...)} from InferenceData / DataTree / Dataset / dict."""
    if isinstance(trace, dict):
        return {k: np.asarray(v) for k, v in trace.items()}
    post = None
    for get in (lambda t: t["posterior"], lambda t: t.posterior):
        try:
            post = get(trace)
            break
        except (KeyError, AttributeError, TypeError):
            continue
    if post is None:
        if hasattr(trace, "data_vars"):  # an xarray Dataset of posterior draws
            post = trace
        else:
            raise TypeError("trace must be InferenceData (or DataTree) with a posterior group, "
                            f"an xarray Dataset or a dict of arrays; got {type(trace).__name__}")
    ds = post.to_dataset() if hasattr(post, "to_dataset") and not hasattr(post, "data_vars") else post
    return {name: np.asarray(ds[name].values) for name in ds.data_vars}


def _split_var_names(cm: CompiledModel, var_names):
    model = cm.model
    observed_names = [rv.name for rv in cm.observed_rvs]
    if var_names is None:
        return observed_names, []
    if isinstance(var_names, str):
        var_names = [var_names]
    observed, others = [], []
    free = set(cm.var_names)
    for name in var_names:
        node = model[name]
        full = node.name
        if full in observed_names:
            observed.append(full)
        elif full in free:
            raise ValueError(f"{full!r} is a free random variable; sample_posterior_predictive draws "
                             "observed variables and evaluates Deterministics or expressions")
        else:
            others.append(full)
    return observed, others


def _chunk_size(cm: CompiledModel, n: int, observed, others, batch) -> int:
    width = 1
    for name in (*observed, *others):
        node = cm.model[name]
        shape = getattr(node, "shape", None) or ()
        width += int(np.prod(shape, dtype=np.int64))
    width += sum(int(np.size(v)) for v in jax.tree.leaves(batch)) // 16  # intermediates
    return int(max(1, min(n, _CHUNK_ELEMENTS // max(width, 1))))


def _data_groups(cm: CompiledModel, batch) -> dict:
    """``observed_data`` and ``constant_data`` (Data variables) at the given data."""
    observed = {rv.name: np.asarray(batch[rv.observed.key]) for rv in cm.observed_rvs
                if getattr(rv.observed, "key", None) in batch}
    constant = {d.name: np.asarray(batch[d.key]) for d in cm.model.data_vars}
    return {"observed_data": observed, "constant_data": constant}


def _add_groups(trace, new):
    """Put the groups of ``new`` into ``trace`` (replacing same-named ones); return ``trace``."""
    if hasattr(trace, "extend") and not hasattr(trace, "children"):  # arviz 0.x InferenceData
        trace.extend(new, join="right")
        return trace
    for group in new.children:  # pragma: no cover - arviz 1.x DataTree
        trace[group] = new[group]
    return trace


def sample_posterior_predictive(trace, model=None, var_names=None, random_seed=None,
                                extend_inferencedata: bool = False, predictions: bool = False,
                                progressbar: bool = False):
    """Draw the observed variables once for every (chain, draw) of ``trace.posterior``.

    ``trace``: InferenceData (from ``jv.sample`` or ``approx.sample``), an ArviZ DataTree, a posterior
    Dataset, or a dict ``{name: array (chain, draw, ...)}`` holding every free variable
    (constrained values).  Uses the model's current data, so after ``jv.set_data`` the draws are
    predictions for the new data.  ``var_names``: observed variables to draw (default all); the
    names of Deterministics are accepted too and are recomputed with the current data.

    Returns InferenceData with ``posterior_predictive`` (chain, draw, *shape), ``observed_data``
    and ``constant_data`` groups; with ``predictions=True`` the groups are ``predictions`` and
    ``predictions_constant_data`` (the current Data).  With ``extend_inferencedata=True`` the new
    groups are added to ``trace`` in place (replacing same-named ones) and ``trace`` is returned.
    """
    model = modelcontext(model, what="sample_posterior_predictive")
    cm = model.compile()
    if extend_inferencedata and isinstance(trace, dict):
        raise TypeError("extend_inferencedata=True needs an InferenceData trace, not a dict")
    post = _posterior_dict(trace)
    free_names = tuple(cm.var_names)
    missing = [n for n in free_names if n not in post]
    if missing:
        raise KeyError(f"trace has no posterior draws of the free variable(s) {missing}; "
                       f"it has {sorted(post)}")
    observed, others = _split_var_names(cm, var_names)
    lead = post[free_names[0]].shape[:2] if free_names else (1, 1)
    for n in free_names:
        rv_shape = tuple(cm.model[n].shape)
        arr = post[n]
        if arr.ndim < 2 or arr.shape[:2] != lead or arr.shape[2:] != rv_shape:
            raise ValueError(f"trace: {n!r} has shape {arr.shape}, expected (chain, draw) + {rv_shape} "
                             f"with (chain, draw) = {lead}")
    n = int(np.prod(lead))
    batch = cm.data
    values = tuple(jnp.asarray(post[name].reshape((n,) + post[name].shape[2:]), cm.dtype)
                   for name in free_names)
    keys = jax.random.split(_key(random_seed), n)
    out: dict = {}
    if observed or others:
        fn = _predictive_fn(cm, free_names, tuple(observed), tuple(others))
        chunk = _chunk_size(cm, n, observed, others, batch)
        pieces = []
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            idx = jnp.minimum(jnp.arange(start, start + chunk), n - 1)  # pad: one compile
            res = fn(keys[idx], tuple(v[idx] for v in values), batch)
            pieces.append({k: np.asarray(v)[: stop - start] for k, v in res.items()})
            if progressbar:
                print(f"posterior predictive: {stop}/{n} draws", file=sys.stderr, flush=True)
        for name in (*observed, *others):
            arr = np.concatenate([p[name] for p in pieces])
            out[name] = arr.reshape(lead + arr.shape[1:])
    constant = _data_groups(cm, batch)
    if predictions:
        groups = {"predictions": out, "predictions_constant_data": constant["constant_data"]}
    elif extend_inferencedata:
        groups = {"posterior_predictive": out}
    else:
        groups = {"posterior_predictive": out, **constant}
    new = make_inference_data(cm.model, groups, attrs=attrs(sampler="posterior predictive"))
    return _add_groups(trace, new) if extend_inferencedata else new


def sample_prior_predictive(draws: int = 500, model=None, var_names=None, random_seed=None):
    """Ancestral draws from the prior: InferenceData with ``prior`` (free variables and
    Deterministics), ``prior_predictive`` (observed variables), ``observed_data`` and
    ``constant_data`` groups, each with one chain of ``draws`` draws.

    ``var_names`` restricts the variables returned (any free, Deterministic or observed names).
    """
    model = modelcontext(model, what="sample_prior_predictive")
    cm = model.compile()
    draws = int(draws)
    if draws < 1:
        raise ValueError(f"need draws >= 1, got {draws}")
    batch = cm.data
    keys = jax.random.split(_key(random_seed), draws)
    prior_fn = cm.cached(("prior",), lambda: jax.jit(jax.vmap(cm.sample_prior, in_axes=(0, None))))
    flat, obs = prior_fn(keys, batch)
    observed_names = [rv.name for rv in cm.observed_rvs]
    latent_names = [*cm.var_names, *(d.name for d in cm.deterministics)]
    if var_names is not None:
        wanted = [model[n].name for n in ([var_names] if isinstance(var_names, str) else var_names)]
        observed_names = [n for n in observed_names if n in wanted]
        latent_names = [n for n in latent_names if n in wanted]
        unknown = [n for n in wanted if n not in observed_names and n not in latent_names]
        if unknown:
            raise ValueError(f"var_names {unknown} are neither free, Deterministic nor observed variables")
    prior = posterior_values(cm, flat[None], var_names=latent_names, batch=batch) if latent_names else {}
    prior_predictive = {n: np.asarray(obs[n])[None] for n in observed_names}
    groups = {"prior": prior, "prior_predictive": prior_predictive, **_data_groups(cm, batch)}
    return make_inference_data(cm.model, groups, attrs=attrs(sampler="prior predictive"))


def draw(vars, draws: int = 1, random_seed=None):
    """PyMC's ``pm.draw``: forward draws of any node (or list of nodes), outside a fit.

    Free and observed random variables are drawn from their distributions given their parents'
    draws; Minibatch nodes draw fresh random rows (nodes over the same number of rows and batch size
    share the rows, as in a fit); Data nodes take their current values.  ``draws=1`` returns one
    value per node, otherwise arrays with a leading axis of ``draws``.
    """
    from jaxvi.model.nodes import Evaluator, as_node
    from jaxvi.model.variables import DataNode, FreeRV, MinibatchNode, ObservedRV

    single = not isinstance(vars, (list, tuple))
    nodes = [as_node(v) for v in ([vars] if single else vars)]
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ValueError(f"draw: draws must be a positive integer, got {draws!r}")
    keys = jax.random.split(_key(random_seed), int(draws))
    out = []
    for key in keys:
        rows: dict = {}
        counter = iter(range(1 << 30))

        def leaf(node, ev, key=key, rows=rows, counter=counter):
            if isinstance(node, DataNode):
                return jnp.asarray(node.get_value())
            if isinstance(node, MinibatchNode):
                group = (node.n_rows, node.batch_size)
                if group not in rows:
                    k = jax.random.fold_in(key, 1_000_003 + len(rows))
                    rows[group] = jax.random.choice(k, node.n_rows, (node.batch_size,), replace=False)
                return jnp.asarray(node.value)[rows[group]]
            if isinstance(node, (FreeRV, ObservedRV)):
                d = node.spec.build(ev)
                return d.sample(jax.random.fold_in(key, next(counter)))
            raise TypeError(f"draw: cannot draw {type(node).__name__} {getattr(node, 'name', '')!r}")

        ev = Evaluator(leaf)
        out.append([np.asarray(ev(n)) for n in nodes])
    if draws == 1:
        values = out[0]
    else:
        values = [np.stack([o[j] for o in out]) for j in range(len(nodes))]
    return values[0] if single else values
