"""seq2seq.runtime is the ground floor: it imports no other package of seq2seq."""

from __future__ import annotations

import ast
from pathlib import Path

import seq2seq.runtime

RUNTIME = Path(seq2seq.runtime.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    """The absolute module names ``path`` imports (relative imports resolved in runtime)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "seq2seq.runtime" if node.level else ""
            names.add(".".join(part for part in (base, node.module or "") if part))
    return names


def test_runtime_imports_only_itself_from_the_package() -> None:
    modules = sorted(RUNTIME.glob("*.py"))
    assert modules
    for path in modules:
        inside = {name for name in _imported_modules(path) if name.split(".")[0] == "seq2seq"}
        outside = {name for name in inside if not name.startswith("seq2seq.runtime")}
        assert not outside, f"{path.name} imports {sorted(outside)}"
