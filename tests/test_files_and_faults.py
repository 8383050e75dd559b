"""Files and faults: nothing lost (atomic, durable files; clean stops), nothing let in (hostile files, folders)."""

import io
import os
import stat
import subprocess
import sys
import time
import warnings
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvi as jv
from jaxvi.engine.checkpoint import NpzReader, write_npz


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    with jv.Model() as model:
        jv.Normal("mu", 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        approx = jv.fit(5, model=model, progressbar=False, random_seed=0)
    good = folder / "good.npz"
    approx.save(good)
    return model, approx, good, folder


# -- security: symlinks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["target", "old temporary name"])
def test_save_never_writes_through_a_planted_symlink(saved, tmp_path, where):
    model, approx, _, _ = saved
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "fit.npz"
    link = path if where == "target" else tmp_path / "fit.npz.tmp.npz"
    os.symlink(victim, link)
    approx.save(path)
    assert victim.read_text() == "precious"
    assert not os.path.islink(path) and jv.load(path, model=model).hist.shape == (5,)


def test_checkpoint_never_writes_through_a_planted_symlink(saved, tmp_path):
    model = saved[0]
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "fit.ckpt.npz"
    os.symlink(victim, str(path) + ".tmp.npz")
    jv.fit(20, model=model, progressbar=False, checkpoint=str(path), checkpoint_every=5)
    assert victim.read_text() == "precious"


def test_the_writer_fsyncs_the_file_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real(fd)))
    write_npz(tmp_path / "a.npz", {"x": np.arange(3.0)})
    assert synced == [False, True]  # the temporary file before the rename, then the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


# -- security: hostile files -----------------------------------------------------------------------------
def _with_member(src, dst, name, data, compress=zipfile.ZIP_DEFLATED):
    dst.write_bytes(src.read_bytes())
    with zipfile.ZipFile(dst, "a", compression=compress) as zf:
        zf.writestr(name, data)


def test_a_decompression_bomb_is_refused_before_it_is_read(saved, tmp_path):
    model, _, good, _ = saved
    bomb = tmp_path / "bomb.npz"
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros(50_000_000, np.uint8))  # 50 MB that compress to 50 kB
    _with_member(good, bomb, "hist2.npy", buf.getvalue())
    assert bomb.stat().st_size < 1_000_000
    t = time.perf_counter()
    with pytest.raises(ValueError, match="bomb.npz.*'hist2' is compressed"):
        jv.load(bomb, model=model)
    assert time.perf_counter() - t < 1.0


def test_a_declared_4tb_array_never_reaches_the_allocator(saved, tmp_path):
    model, _, good, _ = saved
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    big = tmp_path / "big.npz"
    with np.load(good) as f:
        arrays = {k: f[k] for k in f.files}
    with zipfile.ZipFile(big, "w") as zf:
        for k, v in arrays.items():
            if k != "hist":
                b = io.BytesIO()
                np.lib.format.write_array(b, v)
                zf.writestr(k + ".npy", b.getvalue())
        zf.writestr("hist.npy", np.lib.format.magic(1, 0) + header.getvalue()[8:] + b"\0" * 64)
    with pytest.raises(ValueError, match="'hist' declares a float32 array of shape \\(1000000000000,\\)"):
        jv.load(big, model=model)


# pickled, extra, strings, NaN, wrong shapes: the bad-input table (tests/test_bad_inputs.py)


def test_the_reader_checks_headers_before_data(saved):
    with NpzReader(saved[2], "file", "advice") as f:
        assert set(f.headers) == {"meta", "hist", "sample_key", "param:mu", "param:rho"}
        f.expect("hist", "f", shape=(5,))
        with pytest.raises(ValueError, match="'hist' has shape \\(5,\\), expected \\(4,\\); advice"):
            f.expect("hist", "f", shape=(4,))


# -- security: the compilation cache folder --------------------------------------------------------------
def test_the_cache_folder_is_created_private(tmp_path):
    from jaxvi.model import config

    path = tmp_path / "cache"
    state = dict(config._cache_state)
    before = jv.compilation_cache_dir()
    try:
        jv.enable_compilation_cache(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    finally:
        import jax

        jax.config.update("jax_compilation_cache_dir", before)
        config._cache_state.clear()
        config._cache_state.update(state)


def test_a_world_writable_cache_folder_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    before = jv.compilation_cache_dir()
    with pytest.raises(PermissionError, match="shared.*writable by every user"):
        jv.enable_compilation_cache(shared)
    assert jv.compilation_cache_dir() == before


def test_the_default_cache_in_a_world_writable_folder_warns_and_is_not_used(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    code = ("import warnings, jaxvi as jv\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    with jv.Model() as m: jv.Normal('x', 0, 1)\n"
            "    m.compile()\n"
            "print(jv.compilation_cache_dir(), [str(x.message)[:80] for x in w])\n")
    env = {**os.environ, "JAXVI_COMPILATION_CACHE": str(shared)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("None ") and "not using the persistent compilation cache" in out.stdout


# -- threads: numpyro's global flag untouched, numbers bit-identical ---------------------------------------
def _thread_fit(seed):
    y = np.random.default_rng(seed).normal(1.0, 2.0, size=30)
    with jv.Model() as m:
        mu = jv.Normal("mu", 0, 5)
        sd = jv.HalfNormal("sd", 2)
        jv.Normal("y", mu, sd, observed=y)
        w = jv.Beta("w", 2, 2)
        jv.Bernoulli("b", w, observed=(y > 1).astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = jv.fit(150, model=m, random_seed=seed, progressbar=False)
    return a.hist, a.mean


def test_eight_threads_match_sequential_fits_and_leave_numpyro_alone(validation=True):
    from concurrent.futures import ThreadPoolExecutor

    import numpyro
    from numpyro.distributions import Distribution

    before = Distribution._validate_args
    numpyro.enable_validation(validation)
    try:
        alone = [_thread_fit(s) for s in range(8)]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(_thread_fit, range(8)))
        assert Distribution._validate_args is validation
    finally:
        numpyro.enable_validation(before)
    for (h1, m1), (h2, m2) in zip(alone, together):
        np.testing.assert_array_equal(h1, h2)
        np.testing.assert_array_equal(m1, m2)


# -- faults in subprocesses: Ctrl-C, SIGKILL, exit of a streamed fit -------------------------------------
FAULT_SCRIPT = r"""
import os, signal, sys, time
import jax
import jax.numpy as jnp
import numpy as np
import jaxvi as jv

mode, path = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
if mode == "stream":
    y_path = os.path.join(os.path.dirname(path), "y.npy")
    if not os.path.exists(y_path):
        np.save(y_path, rng.normal(1.0, 2.0, size=20_000))
    y = jv.Minibatch(np.load(y_path, mmap_mode="r"), batch_size=100)
    n, total = 300, 20_000
else:
    y, n, total = rng.normal(0.7, 2.0, size=40), 3000, None
with jv.Model() as m:
    mu = jv.Normal("mu", 1.0, 3.0)
    sd = jv.HalfNormal("sd", 3.0)
    jv.Normal("y", mu, sd, observed=y, total_size=total)
print("ready", flush=True)  # the parent's signal lands in jv.fit (or just after it: then it is not counted)
try:
    approx = jv.fit(n, model=m, random_seed=5, progressbar=False, obj_optimizer=jv.adam(learning_rate=0.01),
                    checkpoint=path if mode == "kill" else None, checkpoint_every=1)
except KeyboardInterrupt:
    import traceback
    traceback.print_exc()
    print("ESCAPED", flush=True)
    sys.exit(3)
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a late signal (after fit returned) is not fit's business
print("DONE", len(approx.hist), bool(np.isfinite(approx.hist).all() and np.isfinite(approx.mean).all()), flush=True)
"""


def _start(tmp_path, mode, path):
    script = tmp_path / "fault.py"
    script.write_text(FAULT_SCRIPT)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(script), mode, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _ctrl_c_at_random_moments(tmp_path, runs, seed):
    import signal

    rng = np.random.default_rng(seed)
    escapes, stopped = [], 0
    for r in range(runs):
        proc = _start(tmp_path, "ctrl-c", tmp_path / "unused")
        time.sleep(rng.uniform(0.0, 2.0))  # compile, first chunks, the fit, k-hat
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        done = [line for line in out.splitlines() if line.startswith("DONE")]
        if "ESCAPED" in out or proc.returncode not in (0, -signal.SIGINT):
            escapes.append((r, proc.returncode, err[-1500:]))
            continue
        if not done:  # the signal came after fit() returned, before the script ignored it: not an escape
            continue
        _, steps, finite = done[0].split()
        assert finite == "True" and 0 <= int(steps) <= 3000, done
        stopped += int(steps) < 3000
    assert not escapes, escapes
    print(f"{runs} Ctrl-Cs: {stopped} stopped a fit early, 0 escaped")


def test_a_few_ctrl_cs_never_escape_fit(tmp_path):
    _ctrl_c_at_random_moments(tmp_path, 4, seed=0)


@pytest.mark.long
def test_100_ctrl_cs_never_escape_fit(tmp_path):
    _ctrl_c_at_random_moments(tmp_path, 100, seed=1)


def _kill_at_random_moments(tmp_path, runs, seed):
    import signal

    rng = np.random.default_rng(seed)
    model = None
    for r in range(runs):
        path = tmp_path / f"kill{r}.ckpt.npz"
        proc = _start(tmp_path, "kill", path)
        deadline = time.time() + 60
        while not path.exists() and time.time() < deadline:  # the first checkpoint, then a random moment
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))  # checkpoint_every=1: most moments fall in a write
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert path.exists(), f"kill {r}: no checkpoint left"
        if model is None:
            with jv.Model() as model:
                mu = jv.Normal("mu", 1.0, 3.0)
                sd = jv.HalfNormal("sd", 3.0)
                jv.Normal("y", mu, sd, observed=np.random.default_rng(0).normal(0.7, 2.0, size=40))
        with NpzReader(path, "checkpoint", "") as f:  # whole and consistent
            steps = int(f.read("steps"))
            assert f.read("hist").shape == (steps,) and 1 <= steps <= 3000
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(f".kill{r}.")]
        for name in leftovers:  # a temporary file the kill interrupted: harmless, never read
            os.unlink(tmp_path / name)
        resumed = jv.fit(3000, model=model, random_seed=5, progressbar=False, checkpoint=str(path), resume=True,
                         obj_optimizer=jv.adam(learning_rate=0.01))
        assert len(resumed.hist) == 3000 and np.isfinite(resumed.hist).all()


def test_a_few_sigkills_always_leave_a_loadable_checkpoint(tmp_path):
    _kill_at_random_moments(tmp_path, 4, seed=0)


@pytest.mark.long
def test_50_sigkills_always_leave_a_loadable_checkpoint(tmp_path):
    _kill_at_random_moments(tmp_path, 50, seed=1)


def test_chunks_stay_short_when_steps_are_slow():
    """After the compiling first chunk the host looks in about every CHUNK_SECONDS, not after 10,000 steps."""
    from jaxvi.engine import loop

    seconds = []

    def runner(state, m, batch, record=False, streak=0):
        t = time.perf_counter()
        time.sleep(0.004 * int(m))  # a slow step: 4 ms
        seconds.append(time.perf_counter() - t)
        return loop.ChunkResult(state._replace(step=state.step + m), np.zeros(10_000), np.int32(m), np.bool_(True),
                                np.zeros(1, bool), None)

    result = loop.run(runner, loop.FitState(np.zeros(1), (), None, 0), 300, None, chunk_size=10_000,
                      progressbar=False)
    assert result.status == "finished" and len(result.losses) == 300
    assert max(seconds) < 0.5, seconds


def test_nan_error_carries_the_last_finite_approximation():
    with jv.Model() as m:
        jv.Normal("x", 0, 1)
    with pytest.raises(FloatingPointError) as info:
        jv.fit(50, model=m, progressbar=False, obj_optimizer=jv.sgd(learning_rate=1e30))
    approx = info.value.approx
    assert np.isfinite(approx.mean).all() and np.isfinite(approx.hist).all()


STREAM_EXIT = r"""
import sys
import jax
import jax.numpy as jnp
import numpy as np
import jaxvi as jv

y = jv.Minibatch(np.load(sys.argv[1], mmap_mode="r"), batch_size=50)
with jv.Model() as m:
    mu = jv.Normal("mu", 0.0, 3.0)
    jv.Normal("y", mu, 2.0, observed=y, total_size=5000)
for _ in range(3):
    jv.fit(40, model=m, random_seed=1, progressbar=False)
"""


def _streamed_scripts_exit_cleanly(tmp_path, runs):
    np.save(tmp_path / "y.npy", np.random.default_rng(0).normal(size=5000))
    script = tmp_path / "stream_exit.py"
    script.write_text(STREAM_EXIT)
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "y.npy")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(runs)]
    failures = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        if p.returncode != 0:
            failures.append((p.returncode, err[-500:]))
    assert not failures, failures


def test_streamed_fit_scripts_exit_cleanly(tmp_path):
    _streamed_scripts_exit_cleanly(tmp_path, 2)


@pytest.mark.long
def test_50_streamed_fit_scripts_exit_cleanly(tmp_path):
    for _ in range(25):
        _streamed_scripts_exit_cleanly(tmp_path, 2)


def test_no_prefetch_thread_outlives_a_streamed_fit(tmp_path):
    import threading

    np.save(tmp_path / "y.npy", np.random.default_rng(0).normal(size=5000))
    with jv.Model() as m:
        mu = jv.Normal("mu", 0.0, 3.0)
        jv.Normal("y", mu, 2.0, observed=jv.Minibatch(np.load(tmp_path / "y.npy", mmap_mode="r"), batch_size=50),
                  total_size=5000)
    jv.fit(30, model=m, random_seed=1, progressbar=False)
    assert not [t for t in threading.enumerate() if t.name == "jaxvi-prefetch"]


def test_a_resumed_streamed_fit_reaches_the_uninterrupted_numbers(tmp_path):
    np.save(tmp_path / "y.npy", np.random.default_rng(0).normal(1.0, 2.0, size=20_000))

    def fit(**kw):
        with jv.Model() as m:
            mu = jv.Normal("mu", 0.0, 3.0)
            jv.Normal("y", mu, 2.0, total_size=20_000,
                      observed=jv.Minibatch(np.load(tmp_path / "y.npy", mmap_mode="r"), batch_size=100))
        return jv.fit(600, model=m, random_seed=1, progressbar=False, obj_optimizer=jv.adam(learning_rate=0.01), **kw)

    def stop_at(approx, hist, i):
        if i == 333:
            raise KeyboardInterrupt

    full = fit()
    path = str(tmp_path / "s.ckpt.npz")
    part = fit(checkpoint=path, checkpoint_every=50, callbacks=[stop_at])
    assert len(part.hist) == 334
    resumed = fit(checkpoint=path, resume=True)
    np.testing.assert_array_equal(resumed.hist, full.hist)
    np.testing.assert_array_equal(resumed.mean, full.mean)


# -- a non-finite step is skipped, not fatal (NumPyro's stable_update), unless it repeats ------------------

def _counting_runner(nan_from=None, nan_prob=0.0, chunk=10_000):
    """An engine runner whose 'parameter' counts applied steps (in opt_state): the loss is NaN from
    applied step ``nan_from`` on (a NaN that repeats), or with probability ``nan_prob`` per step."""
    from jaxvi.engine import loop

    def step(params, opt_state, key, batch):
        u = jax.random.uniform(key)
        nan = (u < nan_prob) if nan_from is None else (opt_state >= nan_from)
        loss = jnp.where(nan, jnp.nan, 1.0)
        return params + 1.0, opt_state + 1, loss

    runner = loop.make_runner(step, chunk, lambda p: ~jnp.isfinite(jnp.atleast_1d(p)))
    return loop, runner, loop.FitState(jnp.zeros(()), jnp.zeros((), jnp.int32), jax.random.key(0), 0)


def test_a_sometimes_nan_step_is_skipped_and_counted():
    loop, runner, state = _counting_runner(nan_prob=0.3)
    result = loop.run(runner, state, 400, None, chunk_size=10_000, progressbar=False)
    nan = ~np.isfinite(result.losses)
    assert result.status == "finished" and len(result.losses) == 400 and int(result.state.step) == 400
    assert result.rejected == nan.sum() and 80 < result.rejected < 160  # about 0.3 x 400
    # the state moved only on the applied steps
    assert float(result.state.params) == 400 - result.rejected == int(result.state.opt_state)


@pytest.mark.parametrize("chunk", [10_000, 7])
def test_a_repeating_nan_ends_the_fit_where_it_began(chunk):
    """20 rejections in a row end the fit at the first of them, also when they span chunks."""
    loop, runner, state = _counting_runner(nan_from=5, chunk=chunk)
    result = loop.run(runner, state, 400, None, chunk_size=chunk, progressbar=False)
    assert result.status == "nonfinite" and len(result.losses) == 5 and int(result.state.step) == 5
    assert np.isfinite(result.losses).all() and float(result.state.params) == 5 and result.rejected == 0


def test_a_fit_with_many_skipped_steps_warns_naming_the_count():
    """log p is NaN where x > 1 (a made-up hole in the density): about 1 step in 6 is skipped, and said."""
    with jv.Model() as m:
        x = jv.Normal("x", 0, 1)
        jv.Potential("hole", jv.math.switch(x > 1.0, np.nan, 0.0))
    with pytest.warns(jv.diagnostics.NonFiniteStepsWarning, match=r"of the mean_field fit's 2000 steps") as rec:
        approx = jv.fit(2000, model=m, progressbar=False, random_seed=0, obj_optimizer=jv.adam(0.01))
    skipped = int((~np.isfinite(approx.hist)).sum())
    assert approx.diagnostics["rejected"] == approx.n_rejected_steps == skipped and skipped > 20
    assert f"{skipped} of the" in str(rec[0].message)
    assert np.isfinite(approx.mean).all()
