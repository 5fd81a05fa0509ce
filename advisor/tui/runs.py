"""The Results screen's data work in polars, without any screen: columns, filter, sort, compare.

    python -m advisor.tui.runs DB_DIR "task=smoke status=ok"     # prints the filtered runs

Filter text is space-separated terms, all must hold: ``column=value`` (case-insensitive equality),
``column>number`` / ``column<number``, or a bare word matched as a substring of run id, stack,
model, task, status or hardware.
"""
from __future__ import annotations

import re
import sys

import polars as pl

# (column, header) shown in the table; peak_mib is derived (device reserved, else host RSS).
COLUMNS = (("run_id", "run"), ("created_at", "created"), ("stack", "stack"), ("model", "model"), ("task", "task"),
           ("hardware", "hardware"), ("status", "status"), ("train_loss", "loss"), ("eval_loss", "eval"),
           ("tokens_per_s", "tok/s"), ("peak_mib", "peak MiB"), ("wall_time_s", "wall s"))
SEARCHED = ("run_id", "stack", "model", "task", "status", "hardware")
REPORT_FILTERS = ("hardware", "task", "model")
TERM = re.compile(r"^([a-z_]+)(=|>|<)(.+)$")


def with_derived(df: pl.DataFrame) -> pl.DataFrame:
    peak = pl.coalesce(pl.col("peak_reserved_bytes"), pl.col("peak_rss_bytes"))
    return df.with_columns((peak / 2**20).alias("peak_mib"))


def filter_runs(df: pl.DataFrame, text: str) -> tuple[pl.DataFrame, str | None]:
    """(filtered frame, None) or (unfiltered frame, error line naming the bad term)."""
    expr = pl.lit(True)
    for term in text.split():
        m = TERM.match(term)
        if m:
            col, op, value = m.groups()
            if col not in df.columns:
                return df, f"unknown column '{col}' (try: {', '.join(c for c, _ in COLUMNS)})"
            if op == "=":
                expr &= pl.col(col).cast(pl.String).str.to_lowercase() == value.lower()
                continue
            try:
                num = float(value)
            except ValueError:
                return df, f"'{term}': {op} needs a number"
            if not df.schema[col].is_numeric():
                return df, f"'{term}': {col} is not numeric"
            expr &= (pl.col(col) > num) if op == ">" else (pl.col(col) < num)
        else:
            word = term.lower()
            expr &= pl.any_horizontal(pl.col(c).cast(pl.String).str.to_lowercase().str.contains(word, literal=True)
                                      .fill_null(False) for c in SEARCHED)
    return df.filter(expr), None


def sort_runs(df: pl.DataFrame, column: str, descending: bool) -> pl.DataFrame:
    return df.sort(column, descending=descending, nulls_last=True)


def report_filters(text: str) -> dict[str, str]:
    """The filter's hardware/task/model equality terms, which the report builder accepts."""
    out = {}
    for term in text.split():
        m = TERM.match(term)
        if m and m.group(2) == "=" and m.group(1) in REPORT_FILTERS:
            out[m.group(1)] = m.group(3)
    return out


def cell(value, column: str) -> str:
    if value is None:
        return "-"
    if column == "created_at":
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"
    return str(value)


COMPARE_ROWS = ("run_id", "stack", "stage", "model", "task", "hardware", "status", "seed", "trainable_params",
                "trainable_share", "adapter_bytes", "peak_mib", "tokens_per_s", "step_time_s", "wall_time_s", "steps",
                "train_loss", "eval_loss", "metric_name", "metric_before", "metric_after", "forgetting", "error")


def comparison(df: pl.DataFrame, run_ids: list[str]) -> list[tuple[str, list[str]]]:
    """(field, value per selected run) rows for a side-by-side view, in the order selected."""
    rows = {r["run_id"]: r for r in df.filter(pl.col("run_id").is_in(run_ids)).iter_rows(named=True)}
    chosen = [rows[i] for i in run_ids if i in rows]
    return [(f, [cell(r.get(f), f).splitlines()[0][:60] if r.get(f) is not None else "-" for r in chosen])
            for f in COMPARE_ROWS]


if __name__ == "__main__":
    from bench.results import read_runs

    frame, err = filter_runs(with_derived(read_runs(sys.argv[1])), " ".join(sys.argv[2:]))
    print(err or frame.select([c for c, _ in COLUMNS]))
