"""Smoke tests of benchmarks/scaling.py: a --quick run on tiny sizes writes tables whose rows parse."""

import json
import math
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "scaling.py")
ROW = re.compile(r"^\| ([\d,]+) \| ([\d.e+-]+) \| ([\d.,]+) \| ([\d.]+) \| ([\d,]+) \| ([\d.,]+) \| ([\d,]+) \| (-|-?[\d.]+) \|")


def run_quick(tmp_path, sweeps, methods, extra):
    cmd = [sys.executable, SCRIPT, "--quick", "--out-dir", str(tmp_path), "--sweeps", *sweeps,
           "--methods", *methods, "--target", "0.03", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "scaling.json").read_text())
    md = (tmp_path / "scaling.md").read_text()
    assert data["quick"] and data["machine"]["versions"]["jax"]
    for p in data["points"]:
        assert "error" not in p, p
        assert p["s_per_iter"] > 0 and p["iter_per_s"] > 0 and p["compile_s"] >= 0 and p["peak_rss_mb"] > 50
        assert p["versions"]["jaxvi"]
    rows = [m for m in map(ROW.match, md.splitlines()) if m]
    for m in rows:
        s_per_it, it_per_s = float(m.group(2)), float(m.group(3).replace(",", ""))
        assert s_per_it > 0 and abs(s_per_it * it_per_s - 1) < 0.05
    assert md.count("Reading: ") == len(sweeps) * len(methods)
    return data, rows


def test_scaling_quick_smoke(tmp_path):
    """Two points in one process (about 10 s): the JSON and the table agree."""
    data, rows = run_quick(tmp_path, ["obs"], ["advi"], ["--obs-sizes", "500", "1000"])
    assert len(data["points"]) == 2 and len(rows) == 2
    assert [int(m.group(1).replace(",", "")) for m in rows] == [500, 1000]
    local_slope = math.log(data["points"][1]["s_per_iter"] / data["points"][0]["s_per_iter"]) / math.log(2)
    assert rows[0].group(8) == "-" and float(rows[1].group(8)) == pytest.approx(local_slope, abs=0.01)


@pytest.mark.long
def test_scaling_quick_both_sweeps_both_methods(tmp_path):
    data, rows = run_quick(tmp_path, ["obs", "params"], ["advi", "fullrank_advi"],
                           ["--obs-sizes", "500", "1000", "--param-sizes", "4", "8"])
    assert len(data["points"]) == 8 and len(rows) == 8
    assert sorted({int(m.group(1).replace(",", "")) for m in rows}) == [4, 8, 500, 1000]
