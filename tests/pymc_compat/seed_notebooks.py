"""Build the seed tutorials (../shared/seeds) as Jupyter notebooks, translated mechanically to jaxvi.

Two seed formats are read: Markdown with ```python fences (``*.md``) and rendered notebooks whose
code cells follow an ``In [..]:`` line (``*.txt``).  In the latter a cell ends at the first
paragraph (text after a blank line) that is neither indented nor valid Python on its own.
The translation is the one a PyMC user would do by hand: ``import pymc as pm`` (or ``pymc3``) ->
``import jaxvi as jv``, ``pm.`` -> ``jv.``, ``pymc.`` -> ``jaxvi.`` in imports, and every
theano/pytensor line dropped (with a ``dtype=theano.config.floatX`` argument removed).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"
if not SEEDS.is_dir():  # the worktree sits beside /work/main, whose parent holds shared/
    SEEDS = Path("/work/shared/seeds")


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


_BLOCK_OPENER = re.compile(r"^(with|for|while|if|elif|else|try|except|finally|def|class)\b.*:$")


def _without_magics(code: str) -> str:
    """``code`` without IPython's ``%`` and ``!`` lines (which a notebook runs but Python does not parse)."""
    return "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))


def markdown_cells(text: str) -> list[str]:
    return [m.group(1).rstrip() for m in re.finditer(r"```python\n(.*?)```", text, re.S)]


def rendered_cells(text: str) -> list[str]:
    cells = []
    for chunk in re.split(r"^In \[[^\]]*\]:\s*$", text, flags=re.M)[1:]:
        paragraphs = re.split(r"\n\s*\n", chunk.strip("\n"))
        code = [paragraphs[0]]
        for para in paragraphs[1:]:
            first = para.splitlines()[0] if para.strip() else ""
            # a block opener (`with ...:`) whose indented body follows after a whitespace-only line
            opener = bool(_BLOCK_OPENER.match(para.strip())) and "\n" not in para.strip()
            code_lines = [ln for ln in para.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            if first[:1] in (" ", "\t") or opener or (_parses(para) and code_lines):  # (not a "## heading")
                code.append(para)
            else:
                break
        cells.append("\n\n".join(code).rstrip())
    return cells


_THEANO = re.compile(r"\b(theano|pytensor|aesara)\b|set_tt_rng")


def translate(code: str) -> str:
    code = re.sub(r",\s*dtype=(theano|pytensor|aesara)\.config\.floatX", "", code)
    lines = []
    for line in code.splitlines():
        if _THEANO.search(line):
            continue
        line = re.sub(r"^(\s*)import pymc3? as pm\b", r"\1import jaxvi as jv", line)
        line = re.sub(r"^(\s*)from pymc3?\.", r"\1from jaxvi.", line)
        line = re.sub(r"^(\s*)import pymc3?\s*$", r"\1import jaxvi", line)
        line = re.sub(r"\bpm\.", "jv.", line)
        lines.append(line)
    return "\n".join(lines)


def seed_notebooks() -> dict[str, list[str]]:
    """{seed file name: translated code cells} for the tutorials among the seeds."""
    out = {}
    for path in sorted(SEEDS.glob("*")):
        text = path.read_text()
        if path.suffix == ".md":
            cells = markdown_cells(text)
        elif "In [" in text:
            cells = rendered_cells(text)
        else:
            continue  # no code cells this reader can find (see README)
        cells = [translate(c) for c in cells]
        if cells and any("jv." in c for c in cells) and all(_parses(_without_magics(c)) for c in cells):
            out[path.name] = cells  # (a seed whose code lost its indentation is no notebook to run)
    return out


def build(cells: list[str]):
    import nbformat

    nb = nbformat.v4.new_notebook()
    # small runs: the seeds' 50,000-step fits and draws are scaled down only through this preamble
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def run(nb, timeout: int = 1800, cwd: str | None = None) -> list[dict]:
    """Execute with nbclient, keeping going after errors; returns one record per failing cell."""
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": cwd or "."}}).execute()
    failures = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                failures.append({"cell": i, "first_line": cell.source.splitlines()[0] if cell.source else "",
                                 "error": f"{out['ename']}: {out['evalue']}"[:300]})
    return failures
