"""Port of the Minibatch tests in PyMC's tests/test_data.py (class TestMinibatch)."""

import numpy as np
import pytest

import jaxvi as jv

DATA = np.random.default_rng(8).random((30, 10))


def test_1d():
    mb = jv.Minibatch(DATA, batch_size=20)
    draw1, draw2 = jv.draw(mb, draws=2)
    assert draw1.shape == (20, 10) and draw2.shape == (20, 10)
    assert not np.all(draw1 == draw2)
    # rows of the data, not new values: each drawn row is a data row to float32 precision (rounding both to
    # 6 decimals flips a last digit when the draw is float32 and the data float64)
    assert np.all(np.abs(draw1[:, None, :] - DATA[None]).max(-1).min(-1) <= 1e-6)  # rows of the data, not new values


def test_allowed():
    jv.Minibatch(DATA.astype(int), batch_size=20)
    with jv.Model():
        node = jv.Data("d", DATA) * 2
    with pytest.raises(ValueError, match="not valid for Minibatch"):
        jv.Minibatch(node, batch_size=20)
    with pytest.raises(ValueError, match="not valid for Minibatch"):
        jv.Minibatch(DATA, node, batch_size=20)


def test_assert():
    with pytest.raises(AssertionError, match=r"All variables shape\[0\] in Minibatch should be equal"):
        d1, _ = jv.Minibatch(DATA, DATA[::2], batch_size=20)
        jv.draw(d1)


def test_multiple_vars():
    a = np.arange(1000)
    b = -np.arange(1000)
    ma, mb = jv.Minibatch(a, b, batch_size=10)
    draw_ma, draw_mb = jv.draw([ma, mb])
    assert draw_ma.shape == (10,)
    np.testing.assert_allclose(draw_ma, -draw_mb)
    assert len(set(draw_ma.tolist())) > 1
