"""Bad inputs end in a built-in exception whose message names the offending thing and says what to do.

One table: (case id, action, exception type, substrings of the message).  The fuzz test at the end
builds random models and accepts only a valid model (compiles, finite logp at its initial point) or
such an error naming the variable.
"""

import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxvi as jv

COORDS = {"group": ["a", "b", "c"]}


def in_model(build):
    """Run ``build()`` inside a fresh model with a 3-long ``group`` dim."""

    def run(env):
        with jv.Model(coords=COORDS):
            return build()

    return run


def fit_small(**kwargs):
    def run(env):
        return jv.fit(kwargs.pop("n", 5), model=env["model"], progressbar=False, **kwargs)

    return run


def boom(approx, hist, i):
    raise RuntimeError("the callback's own failure")


def bad_key(approx, hist, i):
    raise KeyError("missing_entry")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A small model, another one, a saved approximation and damaged copies of it."""
    folder = tmp_path_factory.mktemp("saved")
    with jv.Model() as model:
        jv.Normal("mu", 0, 1)
        jv.HalfNormal("sd", 1, shape=2)
    with jv.Model() as other:
        jv.Normal("alpha", 0, 1)
    with jv.Model() as reshaped:  # same value names, other shapes
        jv.Normal("mu", 0, 1, shape=3)
        jv.HalfNormal("sd", 1, shape=2)
    good = folder / "good.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jv.fit(5, model=model, progressbar=False).save(good)
    raw = good.read_bytes()
    files = {"good": good}
    for name, content in {"truncated": raw[: len(raw) // 2], "garbage": b"not a numpy archive" * 20,
                          "empty": b""}.items():
        files[name] = folder / f"{name}.npz"
        files[name].write_bytes(content)
    files["foreign"] = folder / "foreign.npz"
    np.savez(files["foreign"], weights=np.ones(3))
    files["badmeta"] = folder / "badmeta.npz"
    with np.load(good) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(files["badmeta"], **{**arrays, "meta": np.frombuffer(b"{not json", dtype=np.uint8)})
    return {"model": model, "other": other, "reshaped": reshaped, "files": files, "folder": folder}


def load(which, onto="model"):
    def run(env):
        path = env["files"][which] if which in env["files"] else env["folder"] / which
        return jv.load(path, model=env[onto])

    return run


CASES = [
    # -- model building: parameters ------------------------------------------------------------
    ("negative sigma", in_model(lambda: jv.Normal("x", 0, -1.0)), ValueError, ["'x'", "sigma", "positive"]),
    ("zero sigma", in_model(lambda: jv.HalfNormal("x", sigma=0.0)), ValueError, ["'x'", "sigma", "positive"]),
    ("negative tau", in_model(lambda: jv.Normal("x", 0, tau=-2.0)), ValueError, ["'x'", "tau", "positive"]),
    ("nan mu", in_model(lambda: jv.Normal("x", np.nan, 1)), ValueError, ["'x'", "mu", "finite"]),
    ("infinite sigma", in_model(lambda: jv.Normal("x", 0, np.inf)), ValueError, ["'x'", "sigma"]),
    ("sigma flushed to zero in float32", in_model(lambda: jv.Normal("x", 0, 1e-45)), ValueError, ["'x'", "sigma", "positive"]),
    ("sigma above float32", in_model(lambda: jv.Normal("x", 0, 1e60)), ValueError,
     ["'x'", "sigma", "overflows", "enable_x64"]),
    ("one negative sigma in an array", in_model(lambda: jv.Normal("x", 0, np.array([1.0, -1.0]))), ValueError,
     ["'x'", "sigma"]),
    ("sigma and tau", in_model(lambda: jv.Normal("x", 0, sigma=1, tau=1)), ValueError, ["'x'", "sigma", "tau"]),
    ("Beta alpha negative", in_model(lambda: jv.Beta("p", -1.0, 2.0)), ValueError, ["'p'", "alpha", "positive"]),
    ("Gamma beta zero", in_model(lambda: jv.Gamma("g", 1.0, 0.0)), ValueError, ["'g'", "beta", "positive"]),
    ("Uniform lower above upper", in_model(lambda: jv.Uniform("u", 2.0, 1.0)), ValueError, ["'u'", "lower", "upper"]),
    ("StudentT nu negative", in_model(lambda: jv.StudentT("t", nu=-3)), ValueError, ["'t'", "nu", "positive"]),
    ("string parameter", in_model(lambda: jv.Normal("x", "zero", 1)), TypeError, ["'x'", "mu", "numeric"]),
    ("dict parameter", in_model(lambda: jv.Normal("x", {"a": 1}, 1)), TypeError, ["'x'", "mu", "numeric"]),
    ("MvNormal cov not square", in_model(lambda: jv.MvNormal("z", np.zeros(2), cov=np.ones((2, 3)))), ValueError,
     ["'z'", "cov", "positive-definite"]),
    ("MvNormal cov not positive definite",
     in_model(lambda: jv.MvNormal("z", np.zeros(2), cov=np.array([[1.0, 2.0], [2.0, 1.0]]))), ValueError,
     ["'z'", "cov", "positive-definite"]),
    ("Dirichlet negative concentration", in_model(lambda: jv.Dirichlet("w", a=np.array([1.0, -1.0]))), ValueError,
     ["'w'", "a", "positive"]),
    ("mixture weights negative",
     in_model(lambda: jv.NormalMixture("m", w=np.array([1.5, -0.5]), mu=np.zeros(2), sigma=np.ones(2))),
     ValueError, ["'m'", "w", "probability vector"]),
    # -- model building: shapes, dims, names, keywords --------------------------------------------
    ("parameter shapes do not broadcast", in_model(lambda: jv.Normal("x", np.zeros(3), np.ones(4))), ValueError,
     ["'x'", "(3,)", "(4,)"]),
    ("shape against parameters", in_model(lambda: jv.Normal("x", np.zeros(3), 1, shape=4)), ValueError,
     ["'x'", "shape (4,)", "(3,)"]),
    ("negative shape", in_model(lambda: jv.Normal("x", 0, 1, shape=(-1,))), ValueError, ["'x'", "negative"]),
    ("fractional shape", in_model(lambda: jv.Normal("x", 0, 1, shape=2.5)), TypeError, ["'x'", "shape", "integer"]),
    ("text shape", in_model(lambda: jv.Normal("x", 0, 1, shape="abc")), TypeError, ["'x'", "shape", "integer"]),
    ("dim not in coords", in_model(lambda: jv.Normal("x", 0, 1, dims="country")), ValueError,
     ["'x'", "'country'", "coords", "group"]),
    ("dims against shape", in_model(lambda: jv.Normal("x", 0, 1, shape=4, dims="group")), ValueError,
     ["'x'", "(4,)", "group"]),
    ("dims not names", in_model(lambda: jv.Normal("x", 0, 1, dims=3)), TypeError, ["'x'", "dims", "names"]),
    ("duplicate name", in_model(lambda: (jv.Normal("x", 0, 1), jv.HalfNormal("x", 1))), ValueError,
     ["'x'", "already used", "unique"]),
    ("Deterministic reusing a name", in_model(lambda: (jv.Normal("x", 0, 1), jv.Deterministic("x", 1.0))),
     ValueError, ["'x'", "already used"]),
    ("name not a string", in_model(lambda: jv.Normal(3, 0, 1)), TypeError, ["Normal", "name", ".dist("]),
    ("unknown keyword", in_model(lambda: jv.Normal("x", 0, 1, sd=1)), TypeError, ["'x'", "'sd'", "mu, sigma, tau"]),
    ("too many arguments", in_model(lambda: jv.Normal("x", 0, 1, 2, 3)), TypeError, ["'x'", "positional"]),
    ("Data unknown keyword", in_model(lambda: jv.Data("d", [1.0], units="m")), TypeError, ["'d'", "units"]),
    ("no model on the stack", lambda env: jv.Normal("x", 0, 1), TypeError, ["'x'", "with jv.Model()"]),
    ("discrete free variable", in_model(lambda: jv.Poisson("k", 3.0)), TypeError, ["'k'", "observed"]),
    ("total_size on a free variable", in_model(lambda: jv.Normal("x", 0, 1, total_size=10)), ValueError,
     ["'x'", "total_size", "observed"]),
    ("initval of the wrong shape", in_model(lambda: jv.Normal("x", 0, 1, shape=3, initval=[1.0, 2.0])), ValueError,
     ["'x'", "initval", "(3,)"]),
    ("initval outside the support", in_model(lambda: jv.HalfNormal("s", 1, initval=-1.0)), ValueError,
     ["'s'", "initval", "positive"]),
    ("Potential of text", in_model(lambda: jv.Potential("penalty", "abc")), TypeError, ["'penalty'", "numeric"]),
    ("coord given as a float", lambda env: jv.Model(coords={"g": 3.5}), TypeError, ["'g'", "labels or a length"]),
    # -- data ------------------------------------------------------------------------------------------
    ("observed NaN", in_model(lambda: jv.Normal("y", 0, 1, observed=[1.0, np.nan])), ValueError,
     ["'y'", "NaN", "drop or impute"]),
    ("observed inf", in_model(lambda: jv.Normal("y", 0, 1, observed=[np.inf, 1.0])), ValueError, ["'y'", "infinite"]),
    ("observed strings", in_model(lambda: jv.Normal("y", 0, 1, observed=["a", "b"])), TypeError,
     ["'y'", "real numbers", "dtype=float"]),
    ("observed objects", in_model(lambda: jv.Normal("y", 0, 1, observed=np.array([1, None], dtype=object))),
     TypeError, ["'y'", "numeric"]),
    ("observed ragged", in_model(lambda: jv.Normal("y", 0, 1, observed=[[1.0, 2.0], [3.0]])), TypeError,
     ["'y'", "numeric array"]),
    ("observed complex", in_model(lambda: jv.Normal("y", 0, 1, observed=np.array([1 + 1j]))), TypeError,
     ["'y'", "real numbers"]),
    ("observed negative for HalfNormal", in_model(lambda: jv.HalfNormal("y", 1, observed=[-1.0, 2.0])), ValueError,
     ["'y'", "1 observed value", "positive"]),
    ("observed above 1 for Beta", in_model(lambda: jv.Beta("y", 1, 1, observed=[0.5, 1.5])), ValueError,
     ["'y'", "in [0, 1]"]),
    ("observed fractions for Poisson", in_model(lambda: jv.Poisson("y", 1, observed=[0.5, 1.0])), ValueError,
     ["'y'", "non-negative integer"]),
    ("observed shape against shape", in_model(lambda: jv.Normal("y", 0, 1, shape=3, observed=[1.0, 2.0])),
     ValueError, ["'y'", "(3,)", "(2,)"]),
    ("Data of strings", in_model(lambda: jv.Data("x", ["a", "b"])), TypeError, ["'x'", "real numbers"]),
    ("Data ragged", in_model(lambda: jv.Data("x", [[1.0], [1.0, 2.0]])), TypeError, ["'x'", "numeric array"]),
    ("Data against dims", in_model(lambda: jv.Data("x", [1.0, 2.0], dims="group")), ValueError, ["'x'", "group"]),
    # -- fit arguments ----------------------------------------------------------------------------------
    ("unknown method", fit_small(method="adv"), ValueError, ["'adv'", "valid methods", "advi", "fullrank_advi"]),
    ("method of the wrong type", fit_small(method=3), TypeError, ["method", "advi"]),
    ("negative n", fit_small(n=-1), ValueError, ["n must be a non-negative integer", "-1"]),
    ("fractional n", fit_small(n=10.5), TypeError, ["n must be a non-negative integer", "10.5"]),
    ("n as text", fit_small(n="100"), TypeError, ["n must be", "'100'"]),
    ("unknown optimizer name", fit_small(obj_optimizer="adamw"), ValueError, ["'adamw'", "adam", "sgd"]),
    ("optimizer of the wrong type", fit_small(obj_optimizer=object()), TypeError, ["GradientTransformation"]),
    ("negative gradient norm", fit_small(total_grad_norm_constraint=-1.0), ValueError,
     ["total_grad_norm_constraint", "positive", "-1.0"]),
    ("fractional obj_n_mc", fit_small(obj_n_mc=1.5), TypeError, ["obj_n_mc", "positive integer", "1.5"]),
    ("zero obj_n_mc", fit_small(obj_n_mc=0), ValueError, ["obj_n_mc", "positive integer"]),
    ("unknown fit keyword", fit_small(learning_rate=0.1), TypeError, ["'learning_rate'"]),
    ("callback that is not callable", fit_small(callbacks=[3]), TypeError, ["callbacks", "cb(approx, hist, i)"]),
    ("callback raising its own error", fit_small(callbacks=[boom]), RuntimeError,
     ["the callback's own failure", "callback boom at step 0", "StopIteration"]),
    ("callback raising KeyError", fit_small(callbacks=[bad_key]), KeyError,
     ["missing_entry", "callback bad_key", "StopIteration"]),
    ("start naming an unknown variable", fit_small(start={"nu": 1.0}), KeyError, ["'nu'", "mu, sd"]),
    ("start of the wrong shape", fit_small(start={"sd": [1.0, 2.0, 3.0]}), ValueError, ["'sd'", "(3,)", "(2,)"]),
    ("start outside the support", fit_small(start={"sd": -1.0}), ValueError, ["'sd'", "support", "'sd_log__'"]),
    ("start NaN", fit_small(start={"mu": np.nan}), ValueError, ["'mu'", "not finite"]),
    ("start text", fit_small(start={"mu": "zero"}), TypeError, ["'mu'", "numeric"]),
    ("start not a dict", fit_small(start=[1.0]), TypeError, ["start", "dict"]),
    ("start_sigma negative", fit_small(start_sigma={"mu": -1.0}), ValueError, ["start_sigma", "'mu'", "positive"]),
    ("start_sigma NaN", fit_small(start_sigma={"mu": np.nan}), ValueError, ["start_sigma", "'mu'", "finite"]),
    ("start_sigma of the wrong shape", fit_small(start_sigma={"sd": [1.0, 2.0, 3.0]}), ValueError,
     ["start_sigma", "'sd'", "(2,)"]),
    ("start_sigma unknown variable", fit_small(start_sigma={"nu": 1.0}), KeyError, ["start_sigma", "'nu'"]),
    ("random_seed as text", fit_small(random_seed="seed"), TypeError, ["random_seed", "'seed'"]),
    ("model of the wrong type", lambda env: jv.fit(5, model="model"), TypeError, ["model=", "jv.Model"]),
    ("model without free variables", lambda env: jv.fit(5, model=jv.Model()), ValueError, ["no free variables"]),
    # -- save / load ---------------------------------------------------------------------------------------
    ("load a nonexistent path", load("nowhere.npz"), FileNotFoundError, ["nowhere.npz", "approx.save"]),
    ("load a folder", lambda env: jv.load(env["folder"], model=env["model"]), IsADirectoryError,
     ["folder", "approx.save"]),
    ("load a truncated file", load("truncated"), ValueError, ["truncated.npz", "truncated or corrupted", "save"]),
    ("load a garbage file", load("garbage"), ValueError, ["garbage.npz", "not an .npz archive"]),
    ("load an empty file", load("empty"), ValueError, ["empty.npz", "not an .npz archive"]),
    ("load another npz", load("foreign"), ValueError, ["foreign.npz", "meta", "weights"]),
    ("load damaged metadata", load("badmeta"), ValueError, ["badmeta.npz", "metadata", "save the approximation"]),
    ("load onto another model", load("good", onto="other"), ValueError,
     ["['mu', 'sd_log__']", "['alpha']", "the model it was fitted on"]),
    ("load onto other shapes", load("good", onto="reshaped"), ValueError, ["shapes", "'mu': [3]", "fitted on"]),
]


def _message(exc: BaseException) -> str:
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


def test_the_table_is_large_and_ids_unique():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("action, exc_type, parts", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(env, action, exc_type, parts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc_type) as info:
            action(env)
    # a builtin type, or (API.md: the unknown-method error "is both a ValueError and a KeyError") a jaxvi
    # class made only of two or more builtin error types -- no other custom or third-party class passes
    cls = type(info.value)
    assert cls.__module__ == "builtins" or (cls.__module__.startswith("jaxvi.") and len(cls.__bases__) >= 2 and all(
        b.__module__ == "builtins" for b in cls.__bases__)), cls
    message = _message(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


def test_a_failed_callback_keeps_the_fit_state(env):
    advi = jv.ADVI(model=env["model"], random_seed=0)
    calls = []

    def fail_at_3(approx, hist, i):
        calls.append(i)
        if i == 3:
            raise ValueError("stop here")

    with pytest.raises(ValueError, match="stop here"):
        advi.fit(20, callbacks=[fail_at_3], progressbar=False)
    assert calls == [0, 1, 2, 3]
    assert np.all(np.isfinite(advi.approx.mean))


def test_loading_the_good_file_still_works(env):
    approx = jv.load(env["files"]["good"], model=env["model"])
    assert len(approx.hist) == 5


# -- fuzz: random models build into a valid model or fail with a clear error ------------------------
SPECIAL = [0.0, -1.0, math.nan, math.inf, -math.inf, 1e-45, 1e39]  # all invalid in float32
scalar = st.one_of(st.floats(min_value=1e-3, max_value=50), st.floats(min_value=1e-3, max_value=50),
                   st.floats(min_value=-50, max_value=50), st.sampled_from(SPECIAL))  # mostly valid
dims = st.integers(min_value=0, max_value=3)
shapes = st.lists(dims, min_size=0, max_size=3).map(tuple)
param = st.one_of(scalar, st.tuples(shapes, scalar).map(lambda t: np.full(t[0], t[1])),
                  st.lists(scalar, min_size=1, max_size=3).map(np.array))
FAMILIES = {
    "Normal": lambda name, a, b, shape: jv.Normal(name, mu=a, sigma=b, shape=shape),
    "HalfNormal": lambda name, a, b, shape: jv.HalfNormal(name, sigma=a, shape=shape),
    "Beta": lambda name, a, b, shape: jv.Beta(name, alpha=a, beta=b, shape=shape),
    "Gamma": lambda name, a, b, shape: jv.Gamma(name, alpha=a, beta=b, shape=shape),
    "StudentT": lambda name, a, b, shape: jv.StudentT(name, nu=a, sigma=b, shape=shape),
}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family=st.sampled_from(sorted(FAMILIES)), a=param, b=param, shape=st.one_of(st.none(), shapes),
       observed=st.booleans())
def test_fuzz_model_building(family, a, b, shape, observed):
    name = f"fuzz_{family.lower()}"
    with jv.Model() as model:
        jv.Normal("anchor", 0, 1)  # a valid free variable, so a model with only observed data still fits
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rv = FAMILIES[family](name, a, b, shape)
                if observed:  # the variable inside a likelihood too
                    jv.Normal(f"{name}_obs", mu=rv, sigma=1.0, observed=np.zeros(rv.shape))
        except (ValueError, TypeError) as exc:
            assert type(exc).__module__ == "builtins"
            assert f"'{name}" in str(exc), str(exc)
            return
    logp = model.logp()
    assert np.isfinite(logp), (family, a, b, shape, logp)
