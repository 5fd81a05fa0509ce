"""Every reference DB kept under reports/reference/<hardware>-<model>/db renders without error, alone
and next to the committed published results (reports/published/*/db) in their own section.

The reference DBs come from the lead's cpu-standard (and GPU) runs; see reports/reference/README.md.
"""
from pathlib import Path

import pytest

from advisor.cli import main

REPORTS = Path(__file__).resolve().parents[2] / "reports"
DBS = sorted(p for p in (REPORTS / "reference").glob("*/db") if p.is_dir())
PUBLISHED = sorted(p for p in (REPORTS / "published").glob("*/db") if p.is_dir())


@pytest.mark.parametrize("db", DBS, ids=[p.parent.name for p in DBS])
def test_reference_db_renders(db, tmp_path):
    assert main(["report", "--db", str(db), "--out", str(tmp_path), "--format", "md"]) == 0
    md = (tmp_path / "comparison.md").read_text()
    assert "#### Folklore vs measured" in md and "| Full FT |" in md and "Published results" not in md


@pytest.mark.parametrize("db", DBS, ids=[p.parent.name for p in DBS])
def test_reference_with_published_renders(db, tmp_path):
    args = [a for pub in PUBLISHED for a in ("--db", str(pub))]
    assert PUBLISHED and main(["report", "--db", str(db), *args, "--out", str(tmp_path), "--format", "md"]) == 0
    md = (tmp_path / "comparison.md").read_text()
    ours, published = md.split("## Published results")
    assert "#### Folklore vs measured" in ours and "### Published: huggingface/peft @ " in published


@pytest.mark.parametrize("db", DBS, ids=[p.parent.name for p in DBS])
def test_committed_report_is_current(db, tmp_path, monkeypatch):
    """The committed comparison.md is what the renderer makes today from the committed DBs."""
    monkeypatch.chdir(REPORTS.parent)  # the header names the DBs as given: relative, as in the README
    rel = db.relative_to(REPORTS.parent)
    args = ["report", "--db", str(rel), *[a for pub in PUBLISHED for a in ("--db", str(pub.relative_to(REPORTS.parent)))]]
    assert main([*args, "--out", str(tmp_path), "--format", "md"]) == 0
    committed = db.parent / "report" / "comparison.md"
    assert (tmp_path / "comparison.md").read_text() == committed.read_text(), (
        f"regenerate: tunebench {' '.join(args)} --out {committed.parent} --force")
