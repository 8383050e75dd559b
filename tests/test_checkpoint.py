"""Checkpoint and resume: a resumed fit reaches exactly the numbers of an uninterrupted one."""

import numpy as np
import pytest

import jaxvi as jv


def _stop_at(step):
    def cb(approx, hist, i):
        if i == step:
            raise KeyboardInterrupt

    return cb


@pytest.mark.parametrize("method", ["advi", "svgd"])
def test_resume_continues_to_the_same_numbers(tmp_path, conjugate, method):
    m = conjugate[0]
    kw = dict(method=method, model=m, random_seed=3, progressbar=False, obj_optimizer=jv.adam(learning_rate=0.01))
    if method == "svgd":
        kw["inf_kwargs"] = dict(n_particles=20)
    full = jv.fit(300, **kw)
    path = str(tmp_path / "fit.ckpt.npz")
    part = jv.fit(300, checkpoint=path, checkpoint_every=50, callbacks=[_stop_at(170)], **kw)
    assert len(part.hist) == 171  # interrupted: the checkpoint holds the state after step 170
    resumed = jv.fit(300, checkpoint=path, resume=True, **kw)
    assert len(resumed.hist) == 300
    np.testing.assert_array_equal(resumed.hist, full.hist)
    for a, b in zip(resumed.params, full.params):
        np.testing.assert_array_equal(a, b)


def test_a_crash_mid_write_leaves_the_previous_checkpoint(tmp_path, conjugate, monkeypatch):
    m = conjugate[0]
    path = str(tmp_path / "fit.ckpt.npz")
    jv.fit(100, model=m, random_seed=1, progressbar=False, checkpoint=path, checkpoint_every=50)
    before = open(path, "rb").read()

    from numpy.lib import format as npy_format

    def broken_write(member, array, **kwargs):
        member.write(b"half an array")
        raise OSError("disk full")

    monkeypatch.setattr(npy_format, "write_array", broken_write)
    with pytest.raises(OSError, match="disk full"):
        jv.fit(100, model=m, random_seed=1, progressbar=False, checkpoint=path, checkpoint_every=50)
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.ckpt.npz"]  # no temporary file left behind
    resumed = jv.fit(100, model=m, random_seed=1, progressbar=False, checkpoint=path, resume=True)
    assert len(resumed.hist) == 100


def test_checkpoint_bad_inputs(tmp_path, conjugate):
    m = conjugate[0]
    with pytest.raises(ValueError, match="needs the checkpoint"):
        jv.fit(10, model=m, resume=True, progressbar=False)
    with pytest.raises(ValueError, match="checkpoint_every must be a positive"):
        jv.fit(10, model=m, checkpoint=str(tmp_path / "c.npz"), checkpoint_every=0, progressbar=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        jv.fit(10, model=m, checkpoint=str(tmp_path / "no" / "c.npz"), progressbar=False)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read the checkpoint"):
        jv.fit(10, model=m, checkpoint=str(bad), resume=True, progressbar=False)
    other = str(tmp_path / "other.npz")
    jv.fit(10, method="fullrank_advi", model=m, checkpoint=other, progressbar=False)
    with pytest.raises(ValueError, match="is from a FullRankADVI fit"):
        jv.fit(10, model=m, checkpoint=other, resume=True, progressbar=False)


KILLED_FIT = r"""
import os, signal, sys
import numpy as np
import jaxvi as jv

y = np.random.default_rng(0).normal(0.7, 2.0, size=40)
with jv.Model() as m:
    mu = jv.Normal("mu", 1.0, 3.0)
    jv.Normal("y", mu, 2.0, observed=y)

def kill(approx, hist, i):
    if i == 1234:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no final checkpoint

jv.fit(2000, model=m, random_seed=5, progressbar=False, obj_optimizer=jv.adam(learning_rate=0.01),
       checkpoint=sys.argv[1], checkpoint_every=100, callbacks=[kill])
"""


def test_resume_after_sigkill_mid_fit(tmp_path, conjugate):
    import signal
    import subprocess
    import sys

    path = str(tmp_path / "killed.ckpt.npz")
    script = tmp_path / "killed_fit.py"
    script.write_text(KILLED_FIT)
    proc = subprocess.run([sys.executable, str(script), path], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    with np.load(path) as f:
        assert int(f["steps"]) == 1201  # the last checkpoint before the kill (step index 1200)
    kw = dict(model=conjugate[0], random_seed=5, progressbar=False, obj_optimizer=jv.adam(learning_rate=0.01))
    resumed = jv.fit(2000, checkpoint=path, resume=True, **kw)
    full = jv.fit(2000, **kw)
    np.testing.assert_array_equal(resumed.hist, full.hist)
    for a, b in zip(resumed.params, full.params):
        np.testing.assert_array_equal(a, b)
