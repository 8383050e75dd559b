"""The benchmark cases: data and sizes shared by every library.

Only numpy is imported here, so this module loads in the jaxvi venv and in the peers venv
(PyMC, NumPyro) alike.  The data are generated exactly as in ``jaxvi.demo`` (numpy
``default_rng`` seeds), so every library fits the same numbers.
"""

from __future__ import annotations

import numpy as np

SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))
DRAWS = 1000  # posterior draws after the fit (part of "cold time to result")
SMALL_N = 10  # the short fit that measures a fit call's fixed cost
WARM_REPEATS = 2  # warm fit = best of this many full fits after the first one
LOSS_WINDOW = 1000  # final loss = mean of the last LOSS_WINDOW -ELBO values

# (case, method, n): the sizes from the issue.  method uses PyMC's names.
RUNS = [
    ("gaussian", "advi", 50_000),
    ("mvnormal", "advi", 40_000),
    ("mvnormal", "fullrank_advi", 40_000),
    ("mixture", "advi", 10_000),
    ("logistic", "advi", 20_000),
    ("logistic", "fullrank_advi", 10_000),
    ("hierarchical", "advi", 20_000),
    ("minibatch", "advi", 10_000),
    ("stream", "advi", 2_000),
    # issue 4: particles and flows (jaxvi.demo section 5's settings)
    ("mixture", "svgd", 300),
    ("mixture", "nfvi", 3_000),
    ("mvnormal", "nfvi", 2_000),
]

# Cases only some libraries run (the others: every library).
LIBS_FOR = {"stream": ("jaxvi",), "minibatch": ("jaxvi", "pymc", "numpyro", "limit")}
# jaxvi also runs these in float64 (``jv.enable_x64()``), as extra "jaxvi (float64)" rows.
X64_CASES = ("gaussian", "mvnormal", "logistic")
# Per (case, method): which libraries run it, and why the others show "n/a" (overrides LIBS_FOR).
# "numpyro_bnaf" is NumPyro's SVI with AutoBNAFNormal (the "numpyro" row is AutoIAFNormal there).
LIBS_FOR_METHOD = {
    "svgd": ("jaxvi", "pymc", "numpyro", "limit"),
    "nfvi": ("jaxvi", "pymc", "numpyro", "numpyro_bnaf"),
}
NOT_AVAILABLE = {
    ("nfvi", "pymc"): "n/a: PyMC 5 has no normalizing flows",
}  # (the hand-fused limit is ADVI and SVGD only: not in LIBS_FOR_METHOD["nfvi"], no row)
# Per (case, library): the same, for a whole case.
NOT_AVAILABLE_CASE = {
    ("stream", "pymc"): "n/a: PyMC has no streaming from disk (pm.Minibatch needs the whole array in memory)",
    ("stream", "numpyro"): "n/a: NumPyro has no streaming from disk (subsample indexes an in-memory array)",
}


def not_available(case: str, method: str, lib: str):
    """Why ``lib`` has no row for (case, method), or None."""
    return NOT_AVAILABLE.get((method, lib)) or NOT_AVAILABLE_CASE.get((case, lib))
# Per (case, method, library) number of warm repeats (default WARM_REPEATS): PyMC's SVGD with
# 1000 particles takes ~0.1-3 s per iteration (NumPyro's SteinVI about as long), so one warm fit only.
WARM_REPEATS_FOR = {("mixture", "svgd", "pymc"): 1, ("mixture", "svgd", "numpyro"): 1}

# SVGD / NFVI settings (as in jaxvi.demo section 5)
SVGD_PARTICLES, SVGD_LR = 1000, 0.01
NFVI_FLOW = {"mixture": "nsf*2", "mvnormal": "maf"}  # jaxvi's flow spec per case
NFVI_LR, NFVI_N_MC = 0.01, 256  # adam, cosine decay from 0.01 to 0.01 * 0.01 over the n steps


def grads_per_step(method: str) -> int:
    """Gradient evaluations of the log density per optimiser step, the same for every library: one Monte
    Carlo draw per ADVI step (PyMC's obj_n_mc default), one per particle (SVGD), NFVI_N_MC (flows)."""
    return {"svgd": SVGD_PARTICLES, "nfvi": NFVI_N_MC}.get(method, 1)


def libs_for(case: str, method: str, default):
    return LIBS_FOR_METHOD.get(method) or LIBS_FOR.get(case, default)


# Accuracy statistics of the 1000 draws (name -> exact value), computed by ``stats``.
EXACT_STATS = {"mixture": {"P(x<0.1)": 0.2}, "mvnormal": {"corr": 0.8}}


def stats(case: str, draws: dict) -> dict:
    """Accuracy statistics of posterior draws (``draws``: variable -> array, draws first)."""
    if case == "mixture":
        x = np.asarray(draws["x"], dtype=float).ravel()
        return {"P(x<0.1)": float(np.mean(x < 0.1))}
    if case == "mvnormal":
        z = np.asarray(draws["density"], dtype=float).reshape(-1, 2)
        return {"corr": float(np.corrcoef(z[:, 0], z[:, 1])[0, 1])}
    return {}
MINIBATCH_ROWS, MINIBATCH_COLS, MINIBATCH_BATCH = 400_000, 100, 500
STREAM_ROWS, STREAM_COLS, STREAM_BATCH = 10_000_000, 10, 10_000

DESCRIPTIONS = {
    "gaussian": "mu ~ N(0,1), sd ~ HalfNormal(1), 100 standard-normal observations",
    "mvnormal": "2-D MvNormal, cov [[1, .8], [.8, 1]], no data",
    "mixture": "NormalMixture w=[.2,.8], mu=[-.3,.5], sigma=[.1,.1], no data (+ Deterministics x**2, sin x)",
    "logistic": "logistic regression, N=100, one predictor: mu, beta ~ N(0,5), y ~ Bernoulli(invlogit(mu + beta x))",
    "minibatch": "seed notebook: 400,000 x 100 data, mu ~ N(0, 1e5), sd ~ HalfNormal(1) (100 each), "
                 "Normal likelihood on Minibatch(batch_size=500), total_size=400,000",
    "stream": "linear regression on 10,000,000 x 10 float64 rows streamed from .npy files on disk "
              "(batch 10,000): beta ~ N(0, 10) (10), sigma ~ HalfNormal(1)",
    "hierarchical": "8 groups x 50 obs: mu_mu ~ N(0,10), sigma_mu ~ HalfNormal(5), group_mu ~ N(mu_mu, sigma_mu), y ~ N(group_mu[g], 1)",
}

# -- data (as in jaxvi.demo) ----------------------------------------------------------------------


def gaussian_data(seed: int = 0):
    return {"data": np.random.default_rng(seed).normal(size=100)}


def mvnormal_data():
    return {"mu": np.zeros(2), "cov": np.array([[1.0, 0.8], [0.8, 1.0]])}


def mixture_data():
    return {"w": np.array([0.2, 0.8]), "mu": np.array([-0.3, 0.5]), "sigma": np.array([0.1, 0.1])}


def logistic_data(seed: int = 0, n: int = 100):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-(0.5 + 1.5 * x)))
    return {"x": x, "y": y.astype(np.int64)}


def hierarchical_data(seed: int = 0, groups: int = 8, per_group: int = 50):
    rng = np.random.default_rng(seed)
    true_means = rng.normal(1.0, 2.0, size=groups)
    idx = np.repeat(np.arange(groups), per_group)
    y = rng.normal(true_means[idx], 1.0)
    return {"idx": idx, "y": y, "groups": groups, "true_means": true_means}


def minibatch_data(seed: int = 0):
    """The seed notebook's data: uniform columns, scaled and shifted."""
    rng = np.random.default_rng(seed)
    data = rng.random((MINIBATCH_ROWS, MINIBATCH_COLS))
    data *= rng.integers(1, 5, size=(MINIBATCH_COLS,))
    data += rng.random(MINIBATCH_COLS) * 2
    return {"data": data, "batch_size": MINIBATCH_BATCH}


def stream_data(seed: int = 0):
    """Paths of X (10M x 10) and y (10M) in benchmarks/.data/, written once in 1M-row pieces."""
    import os

    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".data")
    paths = {"X": os.path.join(folder, "stream_X.npy"), "y": os.path.join(folder, "stream_y.npy")}
    w = np.linspace(-1.0, 1.0, STREAM_COLS)
    if not all(os.path.exists(p) for p in paths.values()):
        os.makedirs(folder, exist_ok=True)
        X = np.lib.format.open_memmap(paths["X"] + ".tmp", "w+", np.float64, (STREAM_ROWS, STREAM_COLS))
        y = np.lib.format.open_memmap(paths["y"] + ".tmp", "w+", np.float64, (STREAM_ROWS,))
        rng = np.random.default_rng(seed)
        for start in range(0, STREAM_ROWS, 1_000_000):
            stop = min(start + 1_000_000, STREAM_ROWS)
            X[start:stop] = rng.normal(size=(stop - start, STREAM_COLS))
            y[start:stop] = X[start:stop] @ w + rng.normal(size=stop - start)
        X.flush(), y.flush()
        del X, y
        for p in paths.values():
            os.replace(p + ".tmp", p)
    return {**paths, "batch_size": STREAM_BATCH, "w": w}


DATA = {
    "minibatch": minibatch_data,
    "stream": stream_data,
    "gaussian": gaussian_data,
    "mvnormal": mvnormal_data,
    "mixture": mixture_data,
    "logistic": logistic_data,
    "hierarchical": hierarchical_data,
}


def data(case: str) -> dict:
    return DATA[case]()


def per_iteration(fit, short: int, long: int) -> float:
    """Seconds per iteration of ``fit(k)`` (k iterations): (time of ``long`` - time of ``short``) /
    (long - short), after an untimed ``fit(short)`` that compiles; the fit call's fixed cost cancels."""
    import time

    fit(short)
    t = time.perf_counter()
    fit(short)
    t_short = time.perf_counter() - t
    t = time.perf_counter()
    fit(long)
    t_long = time.perf_counter() - t
    return max(t_long - t_short, 1e-9) / (long - short)


def data_bytes(case: str) -> int:
    """Bytes of the case's data as every library receives them (numpy float64; stream: the .npy files)."""
    if case == "minibatch":
        return MINIBATCH_ROWS * MINIBATCH_COLS * 8
    if case == "stream":
        return (STREAM_ROWS * STREAM_COLS + STREAM_ROWS) * 8
    return 0


# PyMC's initial point (its "support point" of each prior), in constrained space.  jaxvi starts
# there too; NumPyro's guides and the hand-fused limit are started there (loc) so that every
# library begins from the same place and the final losses compare like for like.
INITIAL_POINT = {
    "gaussian": {"mu": 0.0, "sd": SQRT_2_OVER_PI},
    "mvnormal": {"density": np.zeros(2)},
    "mixture": {"x": 0.2 * -0.3 + 0.8 * 0.5},
    "logistic": {"mu": 0.0, "beta": 0.0},
    "hierarchical": {"mu_mu": 0.0, "sigma_mu": 5.0 * SQRT_2_OVER_PI, "group_mu": np.zeros(8)},
    "minibatch": {"mu": np.zeros(MINIBATCH_COLS), "sd": np.full(MINIBATCH_COLS, SQRT_2_OVER_PI)},
    "stream": {"beta": np.zeros(STREAM_COLS), "sigma": SQRT_2_OVER_PI},
}

# The variables whose posterior means are reported (a sanity check that fits agree).
REPORT_VARS = {
    "gaussian": ["mu", "sd"],
    "mvnormal": ["density"],
    "mixture": ["x"],
    "logistic": ["mu", "beta"],
    "hierarchical": ["mu_mu", "sigma_mu"],
    "minibatch": ["mu", "sd"],
    "stream": ["beta", "sigma"],
}

# Start scale of every unconstrained coordinate, as in PyMC (and jaxvi): MeanField starts at
# rho = 0, sigma = softplus(0) = log 2; FullRank starts at L = identity, sigma = 1.
START_SIGMA = {"advi": float(np.log(2.0)), "fullrank_advi": 1.0}
