"""jv.model_to_graphviz: DOT source (no `dot` needed) and rendering (skipped without `dot`)."""

import shutil

import numpy as np
import pytest

import jaxvi as jv


@pytest.fixture(scope="module")
def model():
    idx = np.repeat(np.arange(3), 4)
    with jv.Model(coords={"group": ["a", "b", "c"]}) as m:
        x = jv.Data("x", np.linspace(0, 1, 12))
        mu = jv.Normal("mu", 0, 1)
        sd = jv.HalfNormal("sd", 1)
        g = jv.Normal("g", mu, sd, dims="group")
        theta = jv.Deterministic("theta", g[idx] + 2.0 * x)
        jv.Potential("pull", -(mu**2))
        jv.Normal("y", theta, sd, observed=np.zeros(12))
    return m


def _edges(source):
    return {tuple(part.strip() for part in line.strip().split("->")) for line in source.splitlines() if "->" in line}


def test_dot_source_has_the_nodes_edges_and_plates(model):
    g = jv.model_to_graphviz(model)
    import graphviz

    assert isinstance(g, graphviz.Digraph)
    src = g.source
    assert _edges(src) == {("mu", "g"), ("sd", "g"), ("g", "theta"), ("x", "theta"), ("mu", "pull"),
                           ("theta", "y"), ("sd", "y")}
    assert 'mu [label="mu\n~\nNormal" shape=ellipse]' in src
    assert 'sd [label="sd\n~\nHalfNormal" shape=ellipse]' in src
    assert 'y [label="y\n~\nNormal" fillcolor=lightgrey shape=ellipse style=filled]' in src
    assert 'theta [label="theta\n~\nDeterministic" shape=box]' in src
    assert 'x [label="x\n~\nData" fillcolor=white shape=box style="rounded, filled"]' in src
    assert 'pull [label="pull\n~\nPotential" fillcolor=white shape=octagon style=filled]' in src
    assert 'subgraph "clustergroup (3)" {' in src and 'label="group (3)"' in src
    assert "subgraph cluster12 {" in src and "label=12" in src
    plate = src.split("subgraph cluster12 {")[1].split("}")[0]
    assert all(f"\t\t{n} [" in plate for n in ("x", "theta", "y")) and "\t\tmu [" not in plate


def test_var_names_restrict_the_graph(model):
    src = jv.model_to_graphviz(model, var_names=["mu", "g"], figsize=(4, 3), dpi=72).source
    assert _edges(src) == {("mu", "g")}
    assert "theta" not in src and 'size="4,3"' in src and "dpi=72" in src
    with pytest.raises(KeyError, match="'nope'"):
        jv.model_to_graphviz(model, var_names=["nope"])


def test_inside_the_model_context_and_shape_plates_without_dims():
    with jv.Model() as m:
        w = jv.Normal("w", 0, 1, shape=(2, 3))
        jv.Deterministic("w_sum", w.sum())
        src = jv.model_to_graphviz().source
    assert 'subgraph "cluster2 x 3"' in src and _edges(src) == {("w", "w_sum")}


def test_missing_dot_gives_install_hint(model, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    g = jv.model_to_graphviz(model)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        g.pipe(format="svg")
    with pytest.raises(RuntimeError, match="conda install"):
        jv.model_to_graphviz(model, save=tmp_path / "model.png")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_png_and_svg(model, tmp_path):
    out = tmp_path / "model.png"
    jv.model_to_graphviz(model, save=out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [out]  # no stray DOT source left behind
    svg = jv.model_to_graphviz(model).pipe(format="svg").decode()
    assert "<svg" in svg and "group (3)" in svg and "HalfNormal" in svg
    with pytest.raises(ValueError, match="extension"):
        jv.model_to_graphviz(model, save=tmp_path / "model")


def test_notebook_graph_keeps_graphvizs_size_and_saved_files_get_300_dpi(tmp_path):
    """PyMC sets dpi only on saved files: a graph shown in a notebook is not scaled up by dpi=300."""
    with jv.Model() as model:
        jv.Normal("y", jv.Normal("mu", 0, 1), 1, observed=np.zeros(3))
    assert "dpi" not in jv.model_to_graphviz(model).source
    assert "dpi=300" in jv.model_to_graphviz(model, save=None, dpi=300).source
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    g = jv.model_to_graphviz(model, save=str(tmp_path / "m.png"))
    assert "dpi=300" in g.source and (tmp_path / "m.png").exists()
