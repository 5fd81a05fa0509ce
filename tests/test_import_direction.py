"""The dependency direction (DESIGN: common <- methods <- bench <- reports <- advisor), enforced.

    .venv/bin/python -m pytest -q tests/test_import_direction.py

Reads every module's imports with ``ast`` (function-local imports included), so a lazy import
that climbs upwards fails too. Rooms below the advisor must not even name it in a string (bench
starts its own child entry), and the advisor core (everything but cli.py, commands/ and tui/)
imports neither textual nor the CLI.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["common", "methods", "bench", "reports", "advisor"]
UI = ("textual", "advisor.cli", "advisor.commands", "advisor.tui")


def imports(path: Path) -> set[str]:
    """Every module name imported anywhere in the file (absolute imports only: the repo uses no relative ones)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


def modules(room: str) -> list[Path]:
    return sorted((ROOT / room).rglob("*.py"))


@pytest.mark.parametrize("room", ORDER[:-1])
def test_rooms_import_only_downwards(room):
    above = ORDER[ORDER.index(room) + 1:]
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p in modules(room) for m in sorted(imports(p))
           if m.split(".")[0] in above]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("room", ORDER[:-1])
def test_rooms_below_never_name_the_advisor(room):
    bad = [str(p.relative_to(ROOT)) for p in sorted((ROOT / room).rglob("*"))
           if p.is_file() and p.suffix in (".py", ".yaml", ".json", ".md", ".toml") and "advisor" in p.read_text()]
    assert not bad, f"these files name 'advisor': {bad}"


def test_advisor_core_knows_no_screen_or_cli():
    core = [p for p in modules("advisor") if p.parent == ROOT / "advisor" and p.name != "cli.py"]
    assert core, "advisor core modules not found"
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p in core for m in sorted(imports(p))
           if any(m == u or m.startswith(u + ".") for u in UI)]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_violation(tmp_path):
    """The checker itself can fail: an upward lazy import inside a function is found."""
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from advisor.estimator import estimate\n    import textual.app\n")
    assert {"advisor.estimator", "textual.app"} <= imports(bad)
