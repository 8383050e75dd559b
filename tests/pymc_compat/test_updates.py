"""Port of PyMC's tests/variational/test_updates.py::test_updates_fast.

PyMC's optimizers return a dict of pytensor updates when given ``(loss_or_grads, params)`` and a
partial function when given neither.  jaxvi's return an optax transformation when given neither, and
the updated parameters (a dict keyed like PyMC's, by position) when given gradients and parameters.
"""

import numpy as np
import pytest

from jaxvi.variational.updates import (adadelta, adagrad, adagrad_window, adam, adamax, momentum,
                                       nesterov_momentum, rmsprop, sgd)

OPTIMIZERS = {"sgd": sgd, "momentum": momentum, "nesterov_momentum": nesterov_momentum, "adagrad": adagrad,
              "rmsprop": rmsprop, "adadelta": adadelta, "adam": adam, "adamax": adamax,
              "adagrad_window": adagrad_window}

_A = np.float32(1.0)
_M = np.ones(10, np.float32)
_M2 = np.ones((10, 10, 10), np.float32)
# (gradients, params) of PyMC's three losses: b = 2a; n = sum(m); n2 = b + n + sum(m2)
LOSSES = {"scalar": ([np.float32(2.0)], [_A]), "matrix": ([np.ones_like(_M)], [_M]),
          "mixed": ([np.float32(2.0), np.ones_like(_M), np.ones_like(_M2)], [_A, _M, _M2])}
GETTERS = {"all_params": lambda t: t, "missing_loss": lambda t: (None, t[1]),
           "missing_params": lambda t: (t[0], None), "all_missing": lambda t: (None, None)}


@pytest.mark.parametrize("opt", list(OPTIMIZERS.values()), ids=list(OPTIMIZERS))
@pytest.mark.parametrize("getter", list(GETTERS.values()), ids=list(GETTERS))
@pytest.mark.parametrize("kwargs", [{}, {"learning_rate": 1e-2}], ids=["without_args", "with_args"])
@pytest.mark.parametrize("loss_and_params", list(LOSSES.values()), ids=list(LOSSES))
def test_updates_fast(opt, loss_and_params, kwargs, getter):
    grads, params = getter(loss_and_params)
    if grads is None and params is None:
        tx = opt(loss_or_grads=None, params=None, **kwargs)
        assert callable(tx.init) and callable(tx.update)  # a transformation to hand to fit(obj_optimizer=...)
        updates = opt(*loss_and_params)
        assert isinstance(updates, dict)
    elif grads is None or params is None:
        with pytest.raises(ValueError):
            opt(loss_or_grads=grads, params=params, **kwargs)
    else:
        updates = opt(loss_or_grads=grads, params=params, **kwargs)
        assert isinstance(updates, dict) and len(updates) == len(params)
        for i, p in enumerate(params):
            new = np.asarray(updates[i])
            assert new.shape == np.shape(p)
            assert np.all(new < p)  # every gradient is positive: one step moves every parameter down
