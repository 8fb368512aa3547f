"""Where code lives: the rules a newcomer can rely on, checked (see docs/architecture.md).

- Every SQL statement of a service is in its store (``services/<name>/store.py`` or
  ``store/``): no other module imports SQLAlchemy's statement builders or holds a string that
  reads as a SQL statement. Migrations are the schema's own place and are left out, and so
  is the shared plumbing (``shared.db``'s readiness ping, ``shared.migrations``).
- No function in ``services/`` or ``shared/`` is longer than 100 lines (migrations, which
  declare tables, are left out); the aim is about 80.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_FUNCTION_LINES = 100

STATEMENT = re.compile(
    r"^\s*(SELECT\b.*\bFROM\b|INSERT\s+INTO\b|UPDATE\s+[\w.]+(\s+\w+)?\s+SET\b|DELETE\s+FROM\b"
    r"|WITH\s+\w+\s+AS\s*\()",
    re.IGNORECASE | re.DOTALL,
)
BUILDERS = {"select", "insert", "update", "delete", "text", "bindparam"}
PLUMBING = {"shared/db.py", "shared/migrations.py"}  # the readiness ping, CREATE SCHEMA


def _modules(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _in_store(path: Path) -> bool:
    parts = path.relative_to(ROOT).parts
    return len(parts) >= 3 and parts[0] == "services" and parts[2].startswith("store")


def _is_migration(path: Path) -> bool:
    return "migrations" in path.relative_to(ROOT).parts


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            parts = [v.value for v in node.values if isinstance(v, ast.Constant)]
            yield node.lineno, "".join(str(p) for p in parts)


def sql_outside_stores() -> list[str]:
    found = []
    for path in _modules("services", "shared"):
        where = path.relative_to(ROOT)
        if _in_store(path) or _is_migration(path) or where.as_posix() in PLUMBING:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                names = {a.name for a in node.names} & BUILDERS
                if names:
                    found.append(f"{where}:{node.lineno} imports {sorted(names)}")
        for line, value in _strings(tree):
            if STATEMENT.search(value):
                found.append(f"{where}:{line} {value[:60]!r}")
    return found


def long_functions() -> list[str]:
    found = []
    for path in _modules("services", "shared"):
        if _is_migration(path):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - first + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} {length}")
    return found


def test_sql_lives_only_in_the_services_stores() -> None:
    assert sql_outside_stores() == []


def test_no_function_in_services_or_shared_is_over_100_lines() -> None:
    assert long_functions() == []


def test_the_check_sees_sql_in_a_string_and_a_builder_import() -> None:
    tree = ast.parse('q = "SELECT a FROM alerts.outbox"\nx = "Select the rows you want"')
    assert [v for _l, v in _strings(tree) if STATEMENT.search(v)] == ["SELECT a FROM alerts.outbox"]
    assert STATEMENT.search("UPDATE alerts.outbox o SET state = 'sending'")
    assert not STATEMENT.search("update the rows")
