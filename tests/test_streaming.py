"""Streaming minibatches from .npy files on disk (memory-maps, jv.data.NpyDataset)."""

import numpy as np
import optax
import pytest

import jaxvi as jv
from jaxvi.engine.feeding import _RowOrder, _stream_blocks
from jaxvi.model.batching import MinibatchGroup

N = 100_000
SIGMA, TAU0 = 2.0, 10.0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(0)
    y = rng.normal(1.0, SIGMA, size=N)  # float64 on disk, float32 in the fit
    np.save(d / "y.npy", y)
    np.save(d / "y0.npy", y[:60_000])
    np.save(d / "y1.npy", y[60_000:])
    return d, y


def _fit(y_node, n=10_000, averaged=False):
    with jv.Model() as model:
        mu = jv.Normal("mu", 0.0, TAU0)
        jv.Normal("y", mu, SIGMA, observed=y_node, total_size=N)
    if averaged:  # as in test_minibatch: the mean of the last 80% of the iterates
        opt = jv.polyak_averaging(jv.adam(learning_rate=optax.cosine_decay_schedule(0.05, n, alpha=1e-3)), n, tail=0.8)
    else:
        opt = jv.adam(learning_rate=optax.cosine_decay_schedule(0.1, n, alpha=1e-4))
    return jv.fit(n, model=model, random_seed=1, progressbar=False, obj_optimizer=opt)


def test_streamed_memmap_gives_the_in_memory_posterior(files):
    d, y = files
    post_var = 1.0 / (1.0 / TAU0**2 + N / SIGMA**2)
    post_mean, post_sd = post_var * y.sum() / SIGMA**2, np.sqrt(post_var)
    streamed = _fit(jv.Minibatch(np.load(d / "y.npy", mmap_mode="r"), batch_size=1000), n=20_000, averaged=True)
    in_memory = _fit(jv.Minibatch(y, batch_size=1000), n=20_000, averaged=True)
    # The analytic posterior to the bar (mean within 0.05 sd, sd within 10%).  The stream
    # reads every row once per epoch, so the average over the 160 epochs of the tail has no data
    # noise left (it lands within ~0.01 sd); in-memory batches are drawn with replacement, which
    # leaves sqrt(N / 1.6e7 rows) = 0.08 sd of noise at this batch size (test_minibatch reaches
    # 0.05 sd in memory with batches of 10,000).
    assert abs(streamed.mean[0] - post_mean) < 0.05 * post_sd
    assert abs(streamed.std[0] / post_sd - 1.0) < 0.10
    assert abs(in_memory.mean[0] - post_mean) < 0.25 * post_sd
    assert abs(in_memory.std[0] / post_sd - 1.0) < 0.10
    assert abs(streamed.mean[0] - in_memory.mean[0]) < 0.25 * post_sd
    assert abs(streamed.hist[-1000:].mean() / in_memory.hist[-1000:].mean() - 1.0) < 0.005
    # several files read as one data set: the same rows in the same order -> the same fit
    parts = _fit(jv.Minibatch(jv.data.NpyDataset(d / "y0.npy", d / "y1.npy"), batch_size=1000), n=2000)
    single = _fit(jv.Minibatch(np.load(d / "y.npy", mmap_mode="r"), batch_size=1000), n=2000)
    np.testing.assert_array_equal(parts.hist, single.hist)


def test_streamed_arrays_stay_aligned_and_refine_continues(files, tmp_path):
    rng = np.random.default_rng(1)
    n = 30_000
    x = rng.normal(size=(n, 2))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", 2.0 * x[:, 0] - x[:, 1])
    xb = jv.Minibatch(np.load(tmp_path / "x.npy", mmap_mode="r"), batch_size=200)
    yb = jv.Minibatch(np.load(tmp_path / "y.npy", mmap_mode="r"), batch_size=200)  # a separate call
    with jv.Model() as model:
        beta = jv.Normal("beta", 0.0, 10.0, shape=2)
        jv.Normal("obs", jv.math.dot(xb, beta), 0.01, observed=yb, total_size=n)
        advi = jv.ADVI(random_seed=0)
    advi.fit(1500, progressbar=False, obj_optimizer=jv.adam(learning_rate=0.02))
    advi.refine(500, progressbar=False)
    assert len(advi.hist) == 2000
    np.testing.assert_allclose(advi.approx.mean, [2.0, -1.0], atol=0.02)  # misaligned: ~0
    # outside the fit the nodes are the full arrays
    assert advi.approx.sample_node(xb, size=2).shape == (2, n, 2)


def test_row_order_covers_every_row_once_per_epoch_and_is_reproducible():
    order = _RowOrder(1000, [7], block_rows=64)
    rows = np.concatenate([np.arange(a, b) for a, b in order.ranges(0, 3000)])
    for epoch in range(3):
        seen = rows[epoch * 1000:(epoch + 1) * 1000]
        np.testing.assert_array_equal(np.sort(seen), np.arange(1000))
    assert not np.array_equal(rows[:1000], rows[1000:2000])  # reshuffled every epoch
    again = np.concatenate([np.arange(a, b) for a, b in _RowOrder(1000, [7], block_rows=64).ranges(0, 3000)])
    np.testing.assert_array_equal(rows, again)


def test_blocks_stack_aligned_batches(files):
    d, y = files
    a = np.arange(5000, dtype=np.float64)
    node_a = jv.Minibatch(a, batch_size=50)
    node_b = jv.Minibatch(-a, batch_size=50)
    make = _stream_blocks([MinibatchGroup(5000, 50, [node_a, node_b])], [3], steps=40)
    block = make(0)
    assert block[node_a.key].shape == (40, 50) and block[node_a.key].dtype == np.float32
    np.testing.assert_array_equal(block[node_b.key], -block[node_a.key])
    assert len(np.unique(block[node_a.key])) == 2000  # sampled without replacement within an epoch
