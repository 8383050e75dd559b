"""Compile once per (model, method, optimizer settings): refine, a second fit and equal optimizers reuse it."""

import numpy as np
import pytest

import jaxvi as jv
from jaxvi.engine.loop import compilations


@pytest.fixture(scope="module")
def model():
    y = np.random.default_rng(0).normal(1.0, 2.0, size=50).astype(np.float32)
    with jv.Model() as m:
        mu = jv.Normal("mu", 0.0, 10.0)
        sd = jv.HalfNormal("sd", 5.0)
        jv.Normal("y", mu, sd, observed=y)
    return m


def fit(model, n=200, **kwargs):
    return jv.fit(n, model=model, random_seed=0, progressbar=False, **kwargs)


def test_refine_and_a_second_fit_compile_nothing(model):
    inference = jv.ADVI(model=model, random_seed=0)
    with compilations() as first:
        inference.fit(200, progressbar=False)
        inference.approx.sample(100)
    assert "jit(run_chunk)" in first  # the counter sees compiles at all
    with compilations() as names:
        inference.refine(300, progressbar=False)
        fit(model).sample(100)  # a new ADVI object on the same model
    assert names == []


def test_equal_optimizers_share_one_compiled_loop(model):
    fit(model, obj_optimizer=jv.adam(learning_rate=0.02))
    with compilations() as names:
        fit(model, obj_optimizer=jv.adam(learning_rate=0.02))
    assert "jit(run_chunk)" not in names
    with compilations() as names:
        fit(model, obj_optimizer=jv.adam(learning_rate=0.03))  # another step: compiled afresh
    assert "jit(run_chunk)" in names


def test_svgd_second_fit_with_a_new_equal_optimizer_compiles_nothing(model):
    kwargs = dict(method="svgd", inf_kwargs=dict(n_particles=20))
    fit(model, obj_optimizer=jv.sgd(learning_rate=0.01), **kwargs)
    with compilations() as names:
        fit(model, obj_optimizer=jv.sgd(learning_rate=0.01), **kwargs)
    assert names == []


def test_optimizers_compare_by_their_settings():
    """Equal settings make equal (equally hashed) optimizers, which share a compiled loop; a schedule
    counts by identity (pass the same schedule object to share the loop)."""
    import optax

    assert jv.adam(learning_rate=0.01) == jv.adam(learning_rate=0.01)
    assert hash(jv.adam(learning_rate=0.01)) == hash(jv.adam(learning_rate=0.01))
    assert jv.adam(learning_rate=0.01) != jv.adam(learning_rate=0.02)
    assert jv.adam(0.01) != jv.adamax(0.01)
    assert jv.momentum(0.01, momentum=0.9) != jv.momentum(0.01, momentum=0.8)
    s = optax.cosine_decay_schedule(0.1, 100)
    assert jv.adam(learning_rate=s) == jv.adam(learning_rate=s)
    assert jv.adam(learning_rate=s) != jv.adam(learning_rate=optax.cosine_decay_schedule(0.1, 200))
    assert jv.polyak_averaging(jv.adam(0.01), 100) == jv.polyak_averaging(jv.adam(0.01), 100)


_SCRIPT = """
import json, sys
import jax, numpy as np
import jaxvi as jv
hits = []
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
with jv.Model() as m:
    mu = jv.Normal("mu", 0.0, 10.0)
    jv.Normal("y", mu, 2.0, observed=np.arange(20.0, dtype=np.float32))
jv.fit(100, model=m, random_seed=0, progressbar=False)
print(json.dumps({"dir": jv.compilation_cache_dir(), "hits": len(hits)}))
"""


def _run(env_extra, tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), **env_extra}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_persistent_compilation_cache_is_on_by_default_and_reused_by_a_new_process(tmp_path):
    first = _run({}, tmp_path)
    assert first["dir"] is not None and first["dir"].startswith(str(tmp_path / "cache" / "jaxvi"))
    assert any(p.name.startswith("jit_run_chunk") for p in (tmp_path / "cache").rglob("*"))
    second = _run({}, tmp_path)
    assert second["hits"] >= 1  # the fit's loop came from disk, not from XLA


def test_persistent_compilation_cache_opt_out(tmp_path):
    off = _run({"JAXVI_COMPILATION_CACHE": "0"}, tmp_path)
    assert off["dir"] is None
    assert not (tmp_path / "cache" / "jaxvi").exists()


def test_full_rank_unpacks_large_triangles_by_rows_to_the_same_matrix():
    import jax.numpy as jnp

    from jaxvi.vi.families import FullRankFamily

    for d in (FullRankFamily.SLICE_UNPACK_FROM - 1, FullRankFamily.SLICE_UNPACK_FROM + 50):
        rng = np.random.default_rng(d)
        packed = rng.normal(size=d * (d + 1) // 2).astype(np.float32)
        expect = np.zeros((d, d), np.float32)
        expect[np.tril_indices(d)] = packed
        expect[np.diag_indices(d)] = np.log1p(np.exp(np.diag(expect)))  # softplus diagonal
        got = np.asarray(FullRankFamily.L({"mu": jnp.zeros(d), "L_tril": jnp.asarray(packed)}))
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
        init = FullRankFamily.init(jnp.zeros(d), jnp.full(d, 2.0))
        np.testing.assert_allclose(np.diag(np.asarray(FullRankFamily.L(init))), 2.0, rtol=1e-5)
