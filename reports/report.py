"""Build the comparison report from results databases: tables with intervals, verdicts, plots.

    tunebench report --db reports/reference/cpu-amd-epyc-2c-smollm2-135m/db --out /tmp/r
    tunebench report --db DIR --db reports/published/peft-method-comparison/db --out DIR   # ours + published
    tunebench report --db DIR --out DIR --hardware cpu-x86-2c --task wiki-topics --format md

Reads result records only (``bench.results.read_runs``); it never trains or re-runs anything.
Measured records are grouped by hardware × model (CPU and GPU sections); random-init models get
a smoke-check section without comparisons or verdicts; published records (``origin``) get their
own section per source. Writes ``comparison.md`` and/or ``comparison.html`` and
``plots/<hardware>-<model>/*.png`` (real-weight measured groups only).
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from bench.results import read_runs
from bench.schema import MEASURED, PUBLISHED
from common.errors import UserError, unknown
from reports.claims import evaluate
from reports.plots import slug, write_plots
from reports.published import sources
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


def _dbs(db) -> list[Path]:
    return [Path(d) for d in db] if isinstance(db, (list, tuple)) else [Path(db)]


def load(db, hardware: str | None = None, task: str | None = None, model: str | None = None) -> pl.DataFrame:
    """The records of ``db`` (one folder or several) after the filters; UserError if there is nothing to report."""
    frames = []
    for d in _dbs(db):
        if not d.is_dir():
            raise UserError(f"results dir {d} does not exist (give --db a directory written by 'tunebench bench run')")
        frames.append(read_runs(d))
    frame = pl.concat(frames) if len(frames) > 1 else frames[0]
    if frame.height == 0:
        raise UserError(f"results dir {', '.join(map(str, _dbs(db)))} holds no readable result records")
    for column, value in (("hardware", hardware), ("task", task), ("model", model)):
        if value is None:
            continue
        known = {v for v in frame[column].to_list() if v}
        if value not in known:
            raise unknown(column, value, known)
        frame = frame.filter(pl.col(column) == value)
    return frame


def build_report(db, out: Path | str, hardware: str | None = None, task: str | None = None,
                 model: str | None = None, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write the report files under ``out`` from one results folder or several; returns the paths written."""
    from reports.render import document, html_page, markdown

    out = Path(out)
    frame = load(db, hardware, task, model)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create report dir {out}: {e.strerror or e}") from None
    is_pub = pl.col("origin").fill_null(MEASURED) == PUBLISHED
    measured, pub = frame.filter(~is_pub), frame.filter(is_pub)
    filters = ", ".join(f"{k}={v}" for k, v in (("hardware", hardware), ("task", task), ("model", model)) if v)
    header = (f"{measured.height} measured and {pub.height} published result records from "
              f"{', '.join(map(str, _dbs(db)))}" + (f" ({filters})" if filters else "")
              + ". One section per hardware × model; records from different machines, and published "
                "records, are never pooled.")
    parts, written = [], []
    for group in groups(measured) if measured.height else []:
        if group.smoke:  # random weights: no plots, no verdicts
            parts.append((group, None, []))
            continue
        plots = write_plots(group, out / "plots" / f"{slug(group.hardware)}-{slug(group.model)}")
        written += [p for _, p in plots]
        parts.append((group, evaluate(group.lines), plots))
    doc = document(parts, sources(pub), header)
    if "md" in formats:
        path = out / "comparison.md"
        path.write_text(markdown(doc, out))
        written.append(path)
    if "html" in formats:
        path = out / "comparison.html"
        path.write_text(html_page(doc))
        written.append(path)
    return written
