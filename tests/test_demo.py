"""The main job runs end to end (quick mode) and reports numbers that make sense."""

import os

from jaxvi.faces.demo import run


def test_demo_quick_runs_and_writes_plots(tmp_path):
    lines = []
    numbers = run(out_dir=str(tmp_path), quick=True, progressbar=False, out=lines.append)
    assert len(numbers["files"]) == 7
    for path in numbers["files"]:
        assert os.path.getsize(path) > 5000
    assert numbers["mvnormal_fullrank_advi_corr"] > 0.7
    assert abs(numbers["mvnormal_advi_corr"]) < 0.1
    assert abs(numbers["gaussian"]["advi_mu"] - numbers["gaussian"]["nuts_mu"]) < 0.05
    svgd = numbers["mixture_methods"]["SVGD"]
    assert abs(svgd["left"] - 0.2) < 0.05 and abs(svgd["x2"] - numbers["mixture_methods"]["exact"]["x2"]) < 0.05
    text = "\n".join(lines)
    assert "NUTS posterior" in text and "hdi_3%" in text
