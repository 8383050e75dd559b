"""Data-parallel fits: 4 CPU devices in one process, and 2 processes under jax.distributed.

Each scenario runs in fresh subprocesses, because XLA's device count and jax.distributed are
fixed when JAX starts.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

WORKER = textwrap.dedent('''
    import json, os, sys
    mode = sys.argv[1]
    import jax
    import numpy as np
    if mode == "process":
        port, pid = sys.argv[2], int(sys.argv[3])
        jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=pid)
    import jaxvi as jv

    rng = np.random.default_rng(0)
    N = 20_000
    SHORT = 50  # steps of the multi-process fit (every step all-reduces over TCP)
    X = rng.normal(size=(N, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5], np.float32) + rng.normal(scale=0.5, size=N)).astype(np.float32)
    out = {"devices": jax.device_count()}

    def regression(Xn, yn, total_size=None):
        with jv.Model() as model:
            beta = jv.Normal("beta", 0.0, 5.0, shape=3)
            sd = jv.HalfNormal("sd", 1.0)
            jv.Normal("y", jv.math.dot(Xn, beta), sd, observed=yn, total_size=total_size)
        return model

    def fit(model, n, devices):
        a = jv.fit(n, model=model, random_seed=1, progressbar=False, obj_optimizer=jv.adam(learning_rate=0.01),
                   devices=devices)
        return [a.mean.tolist(), a.std.tolist(), a.hist[-5:].tolist()]

    if mode == "devices":
        full = regression(X, y)  # full data: the likelihood is summed over the devices' rows
        out["full_one"], out["full_four"] = fit(full, 500, None), fit(full, 500, jax.devices())
        mb = regression(*jv.Minibatch(X, y, batch_size=400), total_size=N)
        out["mb_one"], out["mb_four"] = fit(mb, 1200, None), fit(mb, 1200, jax.devices())
        out["mb_two"] = fit(mb, 1200, jax.devices()[:2])
    elif mode == "two":  # the reference of the multi-process fit: one process, two devices
        mb = regression(*jv.Minibatch(X, y, batch_size=400), total_size=N)
        out["mb_two_short"] = fit(mb, SHORT, jax.devices())
    else:  # each process holds its own half of the rows
        half, pid = N // 2, jax.process_index()
        Xb, yb = jv.Minibatch(X[pid * half:(pid + 1) * half], y[pid * half:(pid + 1) * half], batch_size=400)
        out["mb_two_short"] = fit(regression(Xb, yb, total_size=N), SHORT, jax.devices())
    if jax.process_index() == 0:
        print("RESULT " + json.dumps(out), flush=True)
''')


def _run(script, args, devices, timeout=120):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    return subprocess.Popen([sys.executable, str(script), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _result(proc, timeout=180):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line[-1][len("RESULT "):]) if line else None


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_four_devices_agree_with_one_device(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    local = _result(_run(script, ["devices"], 4))
    assert local["devices"] == 4
    # full data: the same computation, summed over devices -> the same numbers up to rounding
    np.testing.assert_allclose(local["full_four"][0], local["full_one"][0], atol=1e-4)
    np.testing.assert_allclose(local["full_four"][1], local["full_one"][1], rtol=1e-3)
    np.testing.assert_allclose(local["full_four"][2], local["full_one"][2], rtol=1e-5)
    # minibatches: each device samples its share of the batch from its own rows -> another
    # random stream, the same posterior as the one-device fit (posterior sd of beta ~ 0.004)
    ref_mean, ref_std = np.array(local["mb_one"][0]), np.array(local["mb_one"][1])
    for key in ("mb_four", "mb_two"):
        mean, std = np.array(local[key][0]), np.array(local[key][1])
        np.testing.assert_allclose(mean, ref_mean, atol=0.06)
        np.testing.assert_allclose(std, ref_std, rtol=0.35)


@pytest.mark.long  # latency-bound: every step all-reduces over TCP (~10 s idle, 40 s on a busy box)
def test_two_processes_agree_with_one_process_on_two_devices(tmp_path):
    """jax.distributed on localhost (CPU collectives: gloo, JAX's default); each process holds
    half of the rows, and the fit equals a one-process fit over two devices to rounding."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = str(_free_port())
    hosts = [_run(script, ["process", port, str(i)], 1) for i in range(2)]
    reference = _run(script, ["two"], 2)
    multi = [r for r in (_result(p) for p in hosts) if r is not None][0]
    local = _result(reference)
    assert (multi["devices"], local["devices"]) == (2, 2)
    np.testing.assert_allclose(multi["mb_two_short"][0], local["mb_two_short"][0], atol=1e-4)
    np.testing.assert_allclose(multi["mb_two_short"][2], local["mb_two_short"][2], rtol=1e-4)
