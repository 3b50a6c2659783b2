"""The import structure of src/rnnkit: a lower layer never imports a higher one (lazy imports inside
functions included), a task package's files import only the files below them, and module-level imports
form no cycle. Annotation-only imports (under ``if TYPE_CHECKING:``) are not imports at run time."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "rnnkit"

LAYERS = {
    "errors": 0, "console": 0,
    "nn": 1, "reference": 1,
    "config": 2, "data": 2,
    "decode": 3, "generate": 3, "train": 3,
    "xray": 4, "curves": 4,
    "tasks": 5,
    "serve": 6, "export": 6, "cli": 6,
    "__main__": 7, "": 7,  # the package's own __init__: rnnkit.load and the public names
}  # fmt: skip
"""docs/architecture.md's layers, lowest first (the root package, its public face, on top)."""

TASK_FILES = {"config": 0, "model": 1, "data": 1, "metrics": 2, "pretrain": 2, "budget": 2, "ensemble": 3,
              "task": 4, "__init__": 5}  # fmt: skip
"""The files of a task package, bottom to top (classify's pretrain and ensemble are its extras; the
char-RNN's budget rule sits on its config and model)."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _annotation_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported rnnkit module, line) for every import that runs."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _annotation_only(child):
                continue
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if top_level_only and inner:
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.module.split(".")[0] == "rnnkit":
                for alias in child.names:  # from rnnkit.train import checkpoint: the module itself
                    sub = f"{child.module}.{alias.name}"
                    found.append((sub if _is_module(sub) else child.module, child.lineno))
            elif isinstance(child, ast.Import):
                found.extend((a.name, child.lineno) for a in child.names if a.name.split(".")[0] == "rnnkit")
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    if name not in LAYERS and (PACKAGE / f"{name}.py").is_file() is False and name:
        raise AssertionError(f"{module}: a module of no declared layer (add it to LAYERS)")
    return LAYERS.get(name, LAYERS[""])


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    here = module_name(path)
    for target, line in imports(path):
        assert layer(target) <= layer(here), (
            f"{path.relative_to(SRC)}:{line} imports {target}, a higher layer"
        )


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.glob("tasks/*/*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_a_task_packages_files_import_only_the_files_below_them(path):
    own = module_name(path.parent)
    assert path.stem in TASK_FILES, f"{path}: not a file of the task layout ({', '.join(TASK_FILES)})"
    for target, line in imports(path):
        if target.startswith(own + "."):
            other = target.removeprefix(own + ".")
            assert TASK_FILES[other] < TASK_FILES[path.stem], (
                f"{path.relative_to(SRC)}:{line} imports {target}"
            )
        elif target.startswith("rnnkit.tasks.") and target.count(".") >= 2:
            pytest.fail(f"{path.relative_to(SRC)}:{line} imports another task's module {target}")


def test_module_level_imports_form_no_cycle():
    names = {module_name(p): p for p in MODULES}
    graph = {
        name: {t for t, _ in imports(path, top_level_only=True) if t in names and t != name}
        for name, path in names.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_the_checks_see_an_upward_import(tmp_path):
    """The checker itself: a lazy upward import and an annotation-only one."""
    bad = tmp_path / "m.py"
    bad.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rnnkit.cli import app\n"
        "def f():\n    from rnnkit.tasks import TASKS\n"
    )
    assert imports(bad) == [("rnnkit.tasks", 5)]
    assert imports(bad, top_level_only=True) == []
    assert layer("rnnkit.tasks") > layer("rnnkit.nn.cells")
