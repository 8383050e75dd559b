"""The `jaxvi fit` / `jaxvi compare` command line: help, model lookup, errors, compare outputs."""

import subprocess
import sys
import textwrap

import pytest

from jaxvi.faces.cli import main
from jaxvi.faces.commands import CommandError, load_model

MODEL = """
import numpy as np
import jaxvi as jv
"""


def write(tmp_path, body, name="m.py"):
    path = tmp_path / name
    path.write_text(MODEL + textwrap.dedent(body))
    return path


@pytest.mark.parametrize("command, words", [("fit", ["MODEL.py", "--method", "--n", "--draws", "--seed", "--out",
                                                     "--no-progress", "build_model()"]),
                                            ("compare", ["--methods", "advi,fullrank_advi,nuts", "--chains"])])
def test_help(command, words, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for w in words:
        assert w in text


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "jaxvi.faces.cli", "fit", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: jaxvi fit" in out.stdout


@pytest.mark.parametrize("body, name", [
    ("with jv.Model() as model:\n    jv.Normal('a', 0, 1)\n", "a"),
    ("def model():\n    with jv.Model() as m:\n        jv.Normal('b', 0, 1)\n    return m\n", "b"),
    ("def build_model():\n    with jv.Model() as m:\n        jv.Normal('c', 0, 1)\n    return m\n", "c"),
    ("with jv.Model() as whatever:\n    jv.Normal('d', 0, 1)\n", "d"),
    ("with jv.Model() as model:\n    jv.Normal('e', 0, 1)\n"
     "if __name__ == '__main__':\n    raise SystemExit('the main block must not run')\n", "e"),
])
def test_model_lookup_rule(tmp_path, body, name):
    assert [rv.name for rv in load_model(write(tmp_path, body)).free_RVs] == [name]


@pytest.mark.parametrize("argv, body, message", [
    (["fit", "{dir}/missing.py"], None, "model file '{dir}/missing.py' does not exist"),
    (["fit", "{dir}"], None, "must be a Python file"),
    (["fit", "{path}"], "x = 1\n", "no model in {path} (found none); define `model`"),
    (["fit", "{path}"], "a = jv.Model()\nb = jv.Model()\n", "found 2 jv.Model objects"),
    (["fit", "{path}"], "model = 3\n", "`model` is a int, not a jv.Model"),
    (["fit", "{path}"], "def build_model():\n    return 'no'\n", "build_model() returned str, not a jv.Model"),
    (["fit", "{path}"], "def model(n):\n    pass\n", "it must take no arguments"),
    (["fit", "{path}"], "raise ValueError('broken data')\n",
     "{path} raised ValueError while being loaded: broken data (run `python {path}`"),
    (["fit", "{path}"], "import sys\nsys.exit(3)\n", "exited (code 3)"),
    (["fit", "{path}", "--method", "nuts"], "model = jv.Model()\n", "unknown method 'nuts'; valid methods: advi"),
    (["compare", "{path}", "--methods", "advi,magic"], "model = jv.Model()\n", "unknown method 'magic'"),
    (["compare", "{path}", "--methods", ","], "model = jv.Model()\n", "--methods is empty"),
])
def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys, argv, body, message):
    path = write(tmp_path, body) if body is not None else tmp_path / "m.py"
    fill = {"dir": tmp_path, "path": path}
    rc = main([a.format(**fill) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"jaxvi {argv[0]}: error: ")
    assert message.format(**fill) in err


def test_bad_counts_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "m.py", "--n", "-5"])
    assert info.value.code == 2 and "expected a positive integer, got -5" in capsys.readouterr().err


def test_console_script_error_exit_code(tmp_path):
    out = subprocess.run([sys.executable, "-m", "jaxvi.faces.cli", "fit", str(tmp_path / "nope.py")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().endswith("does not exist") and "Traceback" not in out.stderr


def test_compare_writes_one_figure_and_one_table(tmp_path, capsys):
    path = write(tmp_path, """
        with jv.Model() as model:
            mu = jv.Normal("mu", 0, 1)
            jv.Normal("y", mu, 1, observed=np.array([0.5, 1.5, 1.0]))
    """)
    out = tmp_path / "cmp"
    rc = main(["compare", str(path), "--methods", "advi,fullrank_advi,nuts", "--n", "2000", "--draws", "400",
               "--tune", "200", "--out", str(out), "--no-progress"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["compare.csv", "compare.png"]
    assert (out / "compare.png").stat().st_size > 5000
    import pandas as pd

    table = pd.read_csv(out / "compare.csv", index_col=0)
    assert list(table["method"]) == ["advi", "fullrank_advi", "nuts"]
    assert list(table.index) == ["mu"] * 3
    assert list(table["steps"]) == [2000, 2000, 2 * (400 + 200)]
    # conjugate posterior: N(3 * 1.0 / 4, 1 / 4) -> mean 0.75, sd 0.5
    nuts = table[table["method"] == "nuts"].iloc[0]
    assert abs(nuts["mean"] - 0.75) < 0.1 and abs(nuts["sd"] - 0.5) < 0.1
    assert "fullrank_advi" in capsys.readouterr().out


def test_commands_raise_command_errors_in_python(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        load_model(tmp_path / "none.py")
