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
from hypothesis import HealthCheck, example, given, settings
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
    _damaged_saves(files, folder, arrays)
    ckpt = folder / "good.ckpt.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jv.fit(5, model=model, progressbar=False, checkpoint=str(ckpt), obj_optimizer=jv.adam(learning_rate=0.01))
    files["ckpt"] = ckpt
    _damaged_checkpoints(files, folder, ckpt)
    return {"model": model, "other": other, "reshaped": reshaped, "files": files, "folder": folder}


def _npy(array) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=True)
    return buf.getvalue()


def _zip(path, members: dict, compress: dict = ()):
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for k, v in members.items():
            zf.writestr(k + ".npy", v if isinstance(v, bytes) else _npy(v),
                        compress_type=zipfile.ZIP_DEFLATED if k in compress else zipfile.ZIP_STORED)


def _huge_header(shape) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return np.lib.format.magic(1, 0) + buf.getvalue()[8:] + bytes(64)


def _meta(obj) -> np.ndarray:
    import json

    return np.frombuffer(obj.encode() if isinstance(obj, str) else json.dumps(obj).encode(), dtype=np.uint8)


def _damaged_saves(files, folder, arrays):
    import json

    meta = json.loads(arrays["meta"].tobytes().decode())
    variants = {
        "save_nan": {"param:mu": np.full_like(arrays["param:mu"], np.nan)},
        "save_strings": {"hist": np.array(["a", "b"])},
        "save_key": {"sample_key": np.zeros(3, np.uint32)},
        "save_param_shape": {"param:mu": np.zeros(7, np.float32)},
        "save_extra": {"weights": np.ones(3)},
        "save_4tb": {"hist": _huge_header((10**12,))},
        "save_bomb": {"padding": np.zeros(20_000_000, np.uint8)},
        "save_pickle": {"extra": np.array([{"a": 1}], dtype=object)},
        "save_deep_meta": {"meta": _meta("[" * 100_000 + "]" * 100_000)},
        "save_list_meta": {"meta": _meta([1, 2])},
        "save_groups_meta": {"meta": _meta({**meta, "init": {"groups": "x"}})},
        "save_class_meta": {"meta": _meta({**meta, "class": "Evil"})},
    }
    for name, change in variants.items():
        files[name] = folder / f"{name}.npz"
        _zip(files[name], {**arrays, **change}, compress={"padding"})


def _damaged_checkpoints(files, folder, ckpt):
    with np.load(ckpt) as f:
        arrays = {k: f[k] for k in f.files}
    variants = {
        "ckpt_nan": {"leaf:0": np.full_like(arrays["leaf:0"], np.nan)},
        "ckpt_strings": {"hist": np.array(["a"] * 5)},
        "ckpt_key": {"key": np.zeros(3, np.uint32)},
        "ckpt_steps_big": {"steps": np.int64(10**6)},
        "ckpt_steps_negative": {"steps": np.int64(-1)},
        "ckpt_hist_short": {"hist": np.zeros(2)},
        "ckpt_extra": {"weights": np.ones(3)},
        "ckpt_bomb": {"padding": np.zeros(20_000_000, np.uint8)},
        "ckpt_4tb": {"leaf:0": _huge_header((10**12,))},
        "ckpt_deep_meta": {"meta": _meta("[" * 100_000 + "]" * 100_000)},
    }
    for name, change in variants.items():
        files[name] = folder / f"{name}.npz"
        _zip(files[name], {**arrays, **change}, compress={"padding"})
    files["ckpt_no_leaf"] = folder / "ckpt_no_leaf.npz"
    _zip(files["ckpt_no_leaf"], {k: v for k, v in arrays.items() if k != "leaf:1"})


def resume(which, lr=0.01, n=5):
    def run(env):
        return jv.fit(n, model=env["model"], progressbar=False, checkpoint=str(env["files"][which]), resume=True,
                      obj_optimizer=jv.adam(learning_rate=lr))

    return run


def indexed(idx, data=False, shape=3):
    def build():
        gm = jv.Normal("group_mu", 0, 1, shape=shape)
        i = jv.Data("idx", np.asarray(idx)) if data else np.asarray(idx)
        return jv.Normal("y", gm[i], 1, observed=np.zeros(np.shape(gm[i])))

    return in_model(build)


def of_another_model(use):
    def run(env):
        with jv.Model():
            a = jv.Normal("a", 0, 1)
        with jv.Model():
            use(a)

    return run


def set_data_then(values, likelihood="Poisson"):
    def build():
        mu = jv.Normal("mu", 0, 1)
        d = jv.Data("counts", np.array([1, 2]))
        if likelihood == "Poisson":
            jv.Poisson("y", jv.math.exp(mu), observed=d)
        else:
            jv.Normal("y", mu, 1, observed=d)
        jv.set_data({"counts": values})

    return in_model(build)


def cli(*argv):
    def run(env):
        from jaxvi.faces.cli import main

        model_file = env["folder"] / "cli_model.py"
        model_file.write_text("import jaxvi as jv\nwith jv.Model() as model:\n    jv.Normal('x', 0, 1)\n")
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["fit", str(model_file), "--n", "5", "--draws", "5", "--no-progress",
                         *[a.format(folder=env["folder"]) for a in argv]])
        raise SystemExit(f"exit code {code}: {err.getvalue()}")

    return run


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
    # -- issue 17: damaged and hostile save files -------------------------------------------------------
    ("load NaN parameters", load("save_nan"), ValueError, ["save_nan.npz", "'param:mu'", "non-finite"]),
    ("load strings in hist", load("save_strings"), ValueError, ["save_strings.npz", "'hist'", "strings"]),
    ("load a sample key of the wrong shape", load("save_key"), ValueError, ["save_key.npz", "'sample_key'", "(3,)"]),
    ("load a parameter of the wrong shape", load("save_param_shape"), ValueError,
     ["save_param_shape.npz", "'param:mu'", "(7,)"]),
    ("load an extra member", load("save_extra"), ValueError, ["save_extra.npz", "unexpected", "'weights'"]),
    ("load a declared 4 TB array", load("save_4tb"), ValueError, ["save_4tb.npz", "'hist'", "1000000000000"]),
    ("load a compressed member (bomb)", load("save_bomb"), ValueError, ["save_bomb.npz", "'padding'", "compressed"]),
    ("load a pickled member", load("save_pickle"), ValueError, ["save_pickle.npz", "'extra'", "objects"]),
    ("load deeply nested metadata", load("save_deep_meta"), ValueError, ["save_deep_meta.npz", "metadata"]),
    ("load metadata that is a list", load("save_list_meta"), ValueError, ["save_list_meta.npz", "metadata"]),
    ("load metadata with broken groups", load("save_groups_meta"), ValueError, ["save_groups_meta.npz", "metadata"]),
    ("load an unknown class", load("save_class_meta"), ValueError, ["save_class_meta.npz", "'Evil'", "MeanField"]),
    # -- issue 17: damaged checkpoints ------------------------------------------------------------------
    ("resume NaN parameters", resume("ckpt_nan"), ValueError, ["ckpt_nan.npz", "'leaf:0'", "non-finite"]),
    ("resume strings in hist", resume("ckpt_strings"), ValueError, ["ckpt_strings.npz", "'hist'", "strings"]),
    ("resume a key of the wrong shape", resume("ckpt_key"), ValueError, ["ckpt_key.npz", "'key'", "(3,)"]),
    ("resume steps beyond n", resume("ckpt_steps_big"), ValueError, ["ckpt_steps_big.npz", "1000000", "0..5"]),
    ("resume negative steps", resume("ckpt_steps_negative"), ValueError, ["ckpt_steps_negative.npz", "-1", "0..5"]),
    ("resume a history shorter than steps", resume("ckpt_hist_short"), ValueError,
     ["ckpt_hist_short.npz", "'hist'", "(2,)"]),
    ("resume an extra member", resume("ckpt_extra"), ValueError, ["ckpt_extra.npz", "unexpected", "'weights'"]),
    ("resume a compressed member (bomb)", resume("ckpt_bomb"), ValueError, ["ckpt_bomb.npz", "'padding'", "compressed"]),
    ("resume a declared 4 TB array", resume("ckpt_4tb"), ValueError, ["ckpt_4tb.npz", "'leaf:0'", "1000000000000"]),
    ("resume deeply nested metadata", resume("ckpt_deep_meta"), ValueError, ["ckpt_deep_meta.npz", "metadata"]),
    ("resume a missing optimizer leaf", resume("ckpt_no_leaf"), ValueError, ["ckpt_no_leaf.npz", "'leaf:1'", "optimizer"]),
    ("resume with another learning rate", resume("ckpt", lr=0.02), ValueError,
     ["good.ckpt.npz", "another optimizer or learning rate"]),
    ("checkpoint path that is a folder", lambda env: jv.fit(5, model=env["model"], progressbar=False,
                                                            checkpoint=str(env["folder"])), IsADirectoryError,
     ["checkpoint", "is a folder", "fit.ckpt.npz"]),
    # -- issue 17: bad inputs silently used before --------------------------------------------------------
    ("index beyond the groups", indexed([0, 5]), IndexError, ["'group_mu'", "index 5", "length 3"]),
    ("negative index beyond the groups", indexed([0, -4]), IndexError, ["'group_mu'", "index -4", "length 3"]),
    ("index Data beyond the groups", indexed([2, 3], data=True), IndexError, ["'group_mu'", "index 3", "length 3"]),
    ("index on the second axis", in_model(lambda: jv.Normal("w", 0, 1, shape=(2, 3))[:, np.array([3])]), IndexError,
     ["'w'", "index 3", "axis 1"]),
    ("masked observed array", in_model(lambda: jv.Normal("y", 0, 1, observed=np.ma.masked_values([1.0, -999.0], -999.0))),
     ValueError, ["'y'", "masked", "1 masked"]),
    ("masked Data", in_model(lambda: jv.Data("x", np.ma.masked_array([1.0, 2.0], mask=[1, 0]))), ValueError,
     ["'x'", "masked"]),
    ("empty observed data", in_model(lambda: jv.Normal("y", jv.Normal("m", 0, 1), 1, observed=np.array([])) ),
     ValueError, ["'y'", "empty", "(0,)"]),
    ("empty observed rows", in_model(lambda: jv.Normal("y", 0, 1, observed=np.zeros((0, 3)))), ValueError,
     ["'y'", "empty", "(0, 3)"]),
    ("negative learning rate", lambda env: jv.adam(learning_rate=-0.1),
     ValueError, ["adam", "learning_rate", "-0.1"]),
    ("NaN learning rate", lambda env: jv.sgd(learning_rate=float("nan")), ValueError, ["sgd", "learning_rate", "nan"]),
    ("string learning rate", lambda env: jv.adagrad_window(learning_rate="fast"), TypeError,
     ["adagrad_window", "learning_rate", "'fast'"]),
    ("negative learning rate of rmsprop", lambda env: jv.rmsprop(-1e-3), ValueError, ["rmsprop", "learning_rate"]),
    ("prior parameter of another model", of_another_model(lambda a: jv.Normal("b", a, 1)), ValueError,
     ["'b'", "'a'", "another model"]),
    ("likelihood of another model's variable", of_another_model(lambda a: jv.Normal("y", a * 2, 1, observed=[1.0])),
     ValueError, ["'y'", "'a'", "another model"]),
    ("Deterministic of another model", of_another_model(lambda a: jv.Deterministic("d", a + 1)), ValueError,
     ["'d'", "'a'", "another model"]),
    ("set_data with NaN", set_data_then(np.array([np.nan, 1.0]), "Normal"), ValueError, ["set_data", "'counts'", "NaN"]),
    ("set_data negative counts", set_data_then(np.array([-1, 2])), ValueError,
     ["set_data", "'counts'", "'y'", "support of Poisson"]),
    ("set_data fractional counts", set_data_then(np.array([0.5, 2.0])), ValueError, ["'counts'", "Poisson"]),
    ("sigma from Data", in_model(lambda: jv.Normal("x", 0, jv.Data("s", -1.0))), ValueError,
     ["'x'", "sigma", "positive", "'s'"]),
    ("sigma from an expression of Data", in_model(lambda: jv.Normal("x", 0, -jv.Data("s", 2.0))), ValueError,
     ["'x'", "sigma", "positive", "expression of 's'"]),
    ("Beta alpha from a constant expression", in_model(lambda: jv.Beta("p", jv.math.exp(jv.Data("a", 1.0)) - 5, 1.0)),
     ValueError, ["'p'", "alpha", "positive"]),
    ("sigma=-HalfNormal(...) named at step 0", lambda env: _fit_negative_sigma(), FloatingPointError,
     ["step 0", "'x'", "Normal(0, f(s))", "outside its"]),
    ("a 4 TB shape", in_model(lambda: jv.Normal("x", 0, 1, shape=(10**6, 10**6))), ValueError,
     ["'x'", "1,000,000,000,000 elements", "4.0 TB"]),
    ("fit --out naming a file", cli("--out", "{folder}/good.npz"), SystemExit,
     ["exit code 2", "--out", "good.npz", "is a file"]),
    ("fit --out in an unwritable place", cli("--out", "/proc/jaxvi-out"), SystemExit,
     ["exit code 2", "--out '/proc/jaxvi-out'", "cannot write"]),
]


def _fit_negative_sigma():
    with jv.Model() as m:
        s = jv.HalfNormal("s", 1)
        jv.Normal("x", 0, -s)
    return jv.fit(10, model=m, progressbar=False)


def _message(exc: BaseException) -> str:
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


def test_the_table_is_large_and_ids_unique():
    assert len(CASES) >= 120
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


# derandomized: the same examples on every run, so CI's verdict does not depend on the draw (a random run
# found the subnormal Beta mean below, now pinned by its own example)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(family=st.sampled_from(sorted(FAMILIES)), a=param, b=param, shape=st.one_of(st.none(), shapes),
       observed=st.booleans())
@example(family="Beta", a=1.175494351e-38, b=2.0, shape=None, observed=False)  # mean 6e-39: subnormal in float32
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
