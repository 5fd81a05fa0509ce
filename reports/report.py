"""Build the comparison report from a results database: tables, folklore verdicts, plots.

    tunebench report --db reports/reference/cpu-amd-epyc-2c-smollm2-135m/db --out /tmp/r
    tunebench report --db DIR --out DIR --hardware cpu-x86-2c --task wiki-topics --format md

Reads result records only (``bench.results.read_runs``); it never trains or re-runs anything.
Writes ``comparison.md`` and/or ``comparison.html`` and ``plots/<hardware>-<model>/*.png``.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from bench.results import read_runs
from common.errors import UserError, unknown
from reports.claims import evaluate
from reports.plots import slug, write_plots
from reports.table import groups

FORMATS = ("md", "html")


def parse_formats(text: str) -> tuple[str, ...]:
    wanted = tuple(f.strip() for f in text.split(",") if f.strip())
    for f in wanted:
        if f not in FORMATS:
            raise unknown("report format", f, FORMATS)
    if not wanted:
        raise UserError(f"--format is empty (accepted: {', '.join(FORMATS)}, comma-separated)")
    return wanted


def load(db: Path, hardware: str | None = None, task: str | None = None, model: str | None = None) -> pl.DataFrame:
    """The records of ``db`` after the filters; UserError if there is nothing to report."""
    if not db.is_dir():
        raise UserError(f"results dir {db} does not exist (give --db a directory written by 'tunebench bench run')")
    frame = read_runs(db)
    if frame.height == 0:
        raise UserError(f"results dir {db} holds no readable result records")
    for column, value in (("hardware", hardware), ("task", task), ("model", model)):
        if value is None:
            continue
        known = {v for v in frame[column].to_list() if v}
        if value not in known:
            raise unknown(column, value, known)
        frame = frame.filter(pl.col(column) == value)
    return frame


def build_report(db: Path | str, out: Path | str, hardware: str | None = None, task: str | None = None,
                 model: str | None = None, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write the report files under ``out``; returns the paths written."""
    from reports.render import html_page, markdown

    db, out = Path(db), Path(out)
    frame = load(db, hardware, task, model)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create report dir {out}: {e.strerror or e}") from None
    filters = ", ".join(f"{k}={v}" for k, v in (("hardware", hardware), ("task", task), ("model", model)) if v)
    header = (f"{frame.height} result records from {db}" + (f" ({filters})" if filters else "")
              + ". One section per hardware × model; records from different machines are never pooled.")
    parts, written = [], []
    for group in groups(frame):
        plots = write_plots(group, out / "plots" / f"{slug(group.hardware)}-{slug(group.model)}")
        written += [p for _, p in plots]
        parts.append((group, evaluate(group.lines), plots))
    if "md" in formats:
        path = out / "comparison.md"
        path.write_text(markdown(parts, out, header))
        written.append(path)
    if "html" in formats:
        path = out / "comparison.html"
        path.write_text(html_page(parts, header))
        written.append(path)
    return written
