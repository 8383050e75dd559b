"""``jv.model_to_graphviz(model)``: the model as a Graphviz graph (PyMC's look).

Free random variables are ellipses, observed ones shaded ellipses, Deterministics boxes, Data
rounded boxes and Potentials octagons.  An edge ``a -> b`` means the named variable ``a``
enters ``b``'s distribution (or expression) directly, through any unnamed intermediate
expressions.  Variables with the same non-scalar shape share a plate labelled by their dims
(``group (8)``) or, without dims, by their shape (``100`` or ``3 x 4``).

Building the graph needs only the ``graphviz`` Python package; drawing it (``render``,
``pipe``, Jupyter display, ``save=``) needs Graphviz's ``dot`` program.
"""

from __future__ import annotations

import os
from functools import lru_cache

from jaxvi.model.nodes import ancestors
from jaxvi.model.context import DataNode, DeterministicNode, Model, ObservedRV, PotentialNode, RandomVariable, modelcontext

__all__ = ["model_to_graphviz", "DOT_INSTALL_HINT"]

DOT_INSTALL_HINT = ("drawing a model graph needs the Graphviz `dot` program, which was not found on PATH; "
                    "install it with `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) "
                    "or `conda install -c conda-forge graphviz`")

_STYLES = {
    "free": {"shape": "ellipse"},
    "observed": {"shape": "ellipse", "style": "filled", "fillcolor": "lightgrey"},
    "deterministic": {"shape": "box"},
    "data": {"shape": "box", "style": "rounded, filled", "fillcolor": "white"},
    "potential": {"shape": "octagon", "style": "filled", "fillcolor": "white"},
}


def _graphviz():
    try:
        import graphviz
    except ImportError:  # pragma: no cover - graphviz is a dependency
        raise ImportError("jv.model_to_graphviz needs the graphviz Python package: pip install graphviz") from None
    return graphviz


@lru_cache(maxsize=1)
def _model_graph_class():
    graphviz = _graphviz()

    class ModelGraph(graphviz.Digraph):
        """A ``graphviz.Digraph`` whose drawing methods explain how to install ``dot`` when it is missing."""

        def pipe(self, *args, **kwargs):
            try:
                return super().pipe(*args, **kwargs)
            except graphviz.ExecutableNotFound as exc:
                raise RuntimeError(DOT_INSTALL_HINT) from exc

        def render(self, *args, **kwargs):
            try:
                return super().render(*args, **kwargs)
            except graphviz.ExecutableNotFound as exc:
                raise RuntimeError(DOT_INSTALL_HINT) from exc

    return ModelGraph


def _kind(node) -> str | None:
    if isinstance(node, RandomVariable):
        return "observed" if isinstance(node, ObservedRV) else "free"
    if isinstance(node, DeterministicNode):
        return "deterministic"
    if isinstance(node, PotentialNode):
        return "potential"
    if isinstance(node, DataNode):
        return "data"
    return None


def _label(name, node, kind) -> str:
    if kind in ("free", "observed"):
        what = node.distribution
    else:
        what = {"deterministic": "Deterministic", "data": "Data", "potential": "Potential"}[kind]
    return f"{name}\n~\n{what}"


def _plate_label(model: Model, name: str, shape: tuple) -> str:
    dims = model.named_vars_to_dims.get(name)
    if dims and len(dims) == len(shape):
        return " x ".join(f"{d} ({n})" if d is not None else str(n) for d, n in zip(dims, shape))
    return " x ".join(str(n) for n in shape)


def _parents(node, named: dict) -> list[str]:
    """The named variables that enter ``node`` directly (through unnamed expressions only)."""
    found = ancestors(node.inputs, stop=lambda a: bool(a.name) and a.name in named)
    return [a.name for a in found if a.name in named and named[a.name] is a and a is not node]


#: The resolution of a saved graph when ``dpi`` is not given (PyMC's).
SAVE_DPI = 300


def model_to_graphviz(model: Model | None = None, *, var_names=None, save=None, figsize=None, dpi: int | None = None):
    """The model's graph as a ``graphviz.Digraph``.

    ``var_names`` restricts it to those variables (and the edges among them); ``save`` renders
    it to a file whose extension gives the format (``"model.png"``, ``.svg``, ``.pdf``), which
    needs Graphviz's ``dot`` program; ``figsize=(w, h)`` in inches and ``dpi`` set the size.  As in
    PyMC, a saved file is drawn at 300 dpi unless ``dpi`` says otherwise, while the graph shown in a
    notebook keeps Graphviz's own size (no dpi attribute) unless ``dpi`` or ``figsize`` is given.
    """
    model = modelcontext(model, what="the model graph")
    named = {name: node for name, node in model.named_vars.items() if _kind(node) is not None}
    if var_names is not None:
        var_names = [var_names] if isinstance(var_names, str) else list(var_names)
        unknown = [v for v in var_names if v not in named]
        if unknown:
            raise KeyError(f"model_to_graphviz: unknown variable(s) {unknown}; the model has {sorted(named)}")
        shown = set(var_names)
    else:
        shown = set(named)

    if dpi is None and save is not None:
        dpi = SAVE_DPI
    graph_attr = {} if dpi is None else {"dpi": str(dpi)}
    if figsize is not None:
        graph_attr["size"] = f"{figsize[0]},{figsize[1]}"
    g = _model_graph_class()(name=model.name or "model", graph_attr=graph_attr)

    plates: dict[str, list[str]] = {}
    for name, node in named.items():
        if name not in shown:
            continue
        shape = tuple(node.shape)
        key = _plate_label(model, name, shape) if shape else ""
        plates.setdefault(key, []).append(name)
    for key, names in plates.items():
        if not key:
            for name in names:
                kind = _kind(named[name])
                g.node(name, _label(name, named[name], kind), **_STYLES[kind])
            continue
        with g.subgraph(name=f"cluster{key}") as sub:
            sub.attr(label=key, labeljust="r", labelloc="b", style="rounded")
            for name in names:
                kind = _kind(named[name])
                sub.node(name, _label(name, named[name], kind), **_STYLES[kind])
    for name, node in named.items():
        if name not in shown:
            continue
        for parent in _parents(node, named):
            if parent in shown:
                g.edge(parent, name)
    if save is not None:
        path = os.fspath(save)
        stem, ext = os.path.splitext(path)
        if not ext:
            raise ValueError(f"save={path!r}: give a file name with an extension such as .png, .svg or .pdf")
        g.render(outfile=path, format=ext[1:], cleanup=True)
        if os.path.exists(stem):  # the DOT source graphviz writes next to the picture
            os.remove(stem)
    return g
