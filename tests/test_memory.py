"""Dropping a fitted model releases it: its compiled programs, data and approximation go with it."""

from __future__ import annotations

import gc
import weakref

import jax
import numpy as np

import jaxvi as jv

ROWS = 125_000  # 1 MB of float64 data (0.5 MB on the device in float32)


def fit_and_drop(seed: int):
    y = np.random.default_rng(seed).normal(1.0, 2.0, size=ROWS)
    with jv.Model() as model:
        mu = jv.Normal("mu", 0.0, 10.0)
        sd = jv.HalfNormal("sd", 5.0)
        jv.Normal("y", mu, sd, observed=y)
    approx = jv.fit(50, model=model, random_seed=seed, progressbar=False)
    approx.sample(20, random_seed=seed)
    return weakref.ref(model), weakref.ref(model.compile()), weakref.ref(approx)


def live_bytes() -> int:
    return sum(a.nbytes for a in jax.live_arrays())


def test_a_dropped_model_is_freed():
    refs = fit_and_drop(0)
    gc.collect()
    assert [r() is None for r in refs] == [True, True, True]  # model, compiled model, approximation


def test_memory_does_not_grow_with_dropped_models():
    fit_and_drop(1)
    gc.collect()
    before = live_bytes()
    for seed in range(2, 10):
        fit_and_drop(seed)
    gc.collect()
    grown = live_bytes() - before
    # 8 models of 0.5 MB of device data each: kept alive they would add >= 4 MB
    assert grown < 0.5 * ROWS * 4, f"device memory grew by {grown / 1e6:.2f} MB after 8 dropped models"
