"""Every reference DB kept under reports/reference/<hardware>-<model>/db renders without error.

The reference DBs come from the lead's cpu-standard (and GPU) runs; see reports/reference/README.md.
Until one is committed this test has no cases and pytest reports it as skipped.
"""
from pathlib import Path

import pytest

from advisor.cli import main

REFERENCE = Path(__file__).resolve().parents[2] / "reports" / "reference"
DBS = sorted(p for p in REFERENCE.glob("*/db") if p.is_dir())


@pytest.mark.parametrize("db", DBS, ids=[p.parent.name for p in DBS])
def test_reference_db_renders(db, tmp_path):
    assert main(["report", "--db", str(db), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "comparison.md").read_text()
    assert "### Folklore vs measured" in md and "| Full FT |" in md
