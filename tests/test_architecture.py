"""The house rules of docs/architecture.md, read from the code's syntax trees.

Every import in ``src/jaxvi`` -- at module level or inside a function -- may go only to its own floor or
the floors below; no private name (``_x``) is imported across floors; and the modules import each other
without cycles.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "jaxvi"

#: floor of each subpackage; faces and variational share the top floor
FLOORS = {"model": 1, "vi": 2, "engine": 3, "results": 4, "variational": 5, "faces": 5}


def module_name(path: pathlib.Path) -> str:
    parts = ("jaxvi",) + path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "jaxvi":
        return None
    if len(parts) == 1:
        return 6  # the top-level package: the public face, above every floor
    return FLOORS.get(parts[1], 6)


def imports(path: pathlib.Path):
    """``(line, imported module, names)`` of every import of jaxvi code in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = tuple(a.name for a in node.names)
            yield node.lineno, target, names
            for name in names:  # `from jaxvi.results import diagnostics` imports a module too
                if (SRC.joinpath(*target.split(".")[1:], name + ".py")).exists() or \
                        (SRC.joinpath(*target.split(".")[1:], name, "__init__.py")).exists():
                    yield node.lineno, f"{target}.{name}", ()


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def edges():
    out = {}
    for mod, path in MODULES.items():
        out[mod] = [(line, target, names) for line, target, names in imports(path) if target.startswith("jaxvi")]
    return out


def test_every_module_is_on_a_floor():
    loose = [m for m in MODULES if m.count(".") == 1 and m.split(".")[1] not in FLOORS]
    assert loose == [], f"modules outside the floors (put them in one of {sorted(FLOORS)}): {loose}"


def test_no_import_runs_upward():
    bad = []
    for mod, found in edges().items():
        if mod == "jaxvi":
            continue
        for line, target, _ in found:
            if floor_of(target) > floor_of(mod):
                bad.append(f"{MODULES[mod].relative_to(SRC.parent)}:{line} {mod} (floor {floor_of(mod)}) imports "
                           f"{target} (floor {floor_of(target)})")
    assert bad == [], "imports that run upward:\n" + "\n".join(bad)


def test_no_private_name_crosses_floors():
    bad = []
    for mod, found in edges().items():
        for line, target, names in found:
            if target.split(".")[:2] == mod.split(".")[:2]:
                continue  # same floor (subpackage)
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private_module = [p for p in target.split(".")[1:] if p.startswith("_") and not p.startswith("__")]
            if private or private_module:
                bad.append(f"{MODULES[mod].relative_to(SRC.parent)}:{line} imports {private or target} from {target}")
    assert bad == [], "private names imported across floors:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = {m: {t for _, t, _ in found if t in MODULES and t != m} for m, found in edges().items()}
    # a package's __init__ re-exporting its own modules is not a cycle of the code
    for m in graph:
        graph[m] = {t for t in graph[m] if not (MODULES[m].name == "__init__.py" and t.startswith(m + "."))}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("source, expected", [
    ("from jaxvi.variational.inference import fit\n", [("jaxvi.variational.inference", ("fit",))]),
    ("def f():\n    from ..engine import loop\n", [("jaxvi.engine", ("loop",)), ("jaxvi.engine.loop", ())]),
])
def test_the_checker_sees_imports_inside_functions(tmp_path, source, expected, monkeypatch):
    """The checker itself: it finds function-level and relative imports (so the rules above can fail)."""
    fake = SRC / "model" / "nodes.py"
    path = tmp_path / "nodes.py"
    path.write_text(source)
    monkeypatch.setattr(pathlib.Path, "relative_to", lambda self, other: fake.relative_to(SRC) if self == path
                        else pathlib.PurePath.relative_to(self, other))
    found = [(t, n) for _, t, n in imports(path)]
    assert found == expected
    assert floor_of(found[0][0]) > floor_of("jaxvi.model.nodes")  # an upward import the rule would flag
