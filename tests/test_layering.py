"""The packages of seq2seq import one way: each only from the layers below it.

Read from the source with `ast` (every import, at module level or inside functions), so a lazy
import inside a function counts too. The layers, lowest first, are those of README.md's code
map; two packages of one layer may not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "seq2seq"

#: Lowest first. A package (or top-level module) may import only from earlier layers.
LAYERS: list[set[str]] = [
    {"vocab", "fileio", "runtime", "schema"},
    {"attention", "viz", "profiling"},
    {"config", "models"},
    {"data"},
    {"evaluation", "demo"},
    {"checkpoint"},
    {"inference", "export"},
    {"training", "serve"},
    {"experiments"},
    {"commands"},
    {"cli"},
    {"measure", "__main__", "__init__"},  # entry points: they run the command line
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(path: Path) -> str:
    """The package (or top-level module) a source file belongs to."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> set[str]:
    """The seq2seq units a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "seq2seq":
                names = [f"seq2seq.{alias.name}" for alias in node.names]
        found |= {name.split(".")[1] for name in names if name.startswith("seq2seq.")}
    return found


def _edges() -> list[tuple[str, str, Path]]:
    return [
        (_unit(path), target, path)
        for path in sorted(PACKAGE.rglob("*.py"))
        for target in _imports(path)
        if target != _unit(path) and target != "__version__"
    ]


def test_every_unit_has_a_layer():
    units = {_unit(path) for path in PACKAGE.rglob("*.py")}
    assert units - set(LEVEL) == set(), "add the new package to LAYERS (and the code map)"


def test_imports_point_down():
    upward = [
        f"{path.relative_to(PACKAGE.parent)}: {source} (layer {LEVEL[source]}) imports "
        f"{target} (layer {LEVEL.get(target)})"
        for source, target, path in _edges()
        if target in LEVEL and LEVEL[target] >= LEVEL[source]
    ]
    assert upward == []


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("viz", {"inference", "data", "training", "models", "checkpoint"}),
        ("inference", {"training", "experiments", "commands", "serve"}),
        ("runtime", set(LEVEL) - {"runtime"}),
    ],
)
def test_the_rules_of_the_issue(source, forbidden):
    """viz only draws; inference never needs training; runtime is the ground floor."""
    imported = {target for unit, target, _ in _edges() if unit == source}
    assert imported & forbidden == set()


def test_the_check_sees_lazy_imports(tmp_path):
    """A function-level import is found (the check is not blind to lazy imports)."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from seq2seq.training import trainer\n", encoding="utf-8")
    assert _imports(sample) == {"training"}
