"""The store owns the database: outside `store/` (and the fake server's own data), no module imports
sqlite_utils or holds a SQL statement."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "itn7cli"
OWNERS = ("store", "fakeds")
# The store writes its SQL in capitals; a docstring that starts "Update the…" is not SQL.
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|REPLACE|WITH)\s")


def _modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p.relative_to(PACKAGE).parts[0] not in OWNERS]


def _offences(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "sqlite_utils" for a in node.names):
            out.append(f"{path.name}:{node.lineno} imports sqlite_utils")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlite_utils":
            out.append(f"{path.name}:{node.lineno} imports from sqlite_utils")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
            out.append(f"{path.name}:{node.lineno} holds SQL: {node.value[:40]!r}")
    return out


def test_only_the_store_touches_the_database() -> None:
    modules = _modules()
    assert len(modules) > 30  # the walk found the package
    assert [o for path in modules for o in _offences(path)] == []


def test_the_guard_sees_an_import_and_a_statement(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text('import sqlite_utils\nfrom sqlite_utils.db import Table\nQ = "SELECT 1"\n'
                      'M = "Update the cache."\n')
    assert _offences(module) == [
        "bad.py:1 imports sqlite_utils", "bad.py:2 imports from sqlite_utils", "bad.py:3 holds SQL: 'SELECT 1'"]
