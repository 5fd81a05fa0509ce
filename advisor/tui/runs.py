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

from advisor.tui.fmt import count, gib, seconds
from reports.fmt import nbytes, share

# (column, header) shown in the table. Derived: peak_gib (device reserved, else host RSS), train_s
# (median step time x steps), and the launch's estimates of both (advisor/tui/estimates.py).
# Estimate next to measured comes first after status, so an 80-column terminal shows both.
COLUMNS = (("run_id", "run"), ("stack", "stack"), ("model", "model"), ("status", "status"), ("peak_gib", "peak GiB"),
           ("est_peak_gib", "est GiB"), ("train_s", "train"), ("est_train_s", "est train"), ("task", "task"),
           ("hardware", "hardware"), ("train_loss", "loss"), ("eval_loss", "eval"), ("tokens_per_s", "tok/s"),
           ("wall_time_s", "wall"), ("created_at", "created"))
GIB_COLUMNS = ("peak_gib", "est_peak_gib")
TIME_COLUMNS = ("train_s", "est_train_s", "wall_time_s", "step_time_s")
PEOPLE = {"trainable_params": count, "total_params": count, "model_params": count, "trainable_share": share,
          "adapter_bytes": nbytes}
SEARCHED = ("run_id", "stack", "model", "task", "status", "hardware")
REPORT_FILTERS = ("hardware", "task", "model")
TERM = re.compile(r"^([a-z_]+)(=|>|<)(.+)$")


def with_derived(df: pl.DataFrame) -> pl.DataFrame:
    """Measured peak GiB and training seconds; estimate columns empty until ``estimates.with_estimates``."""
    peak = pl.coalesce(pl.col("peak_reserved_bytes"), pl.col("peak_rss_bytes"))
    none = pl.lit(None, pl.Float64)
    return df.with_columns((peak / 2**30).alias("peak_gib"), (pl.col("step_time_s") * pl.col("steps")).alias("train_s"),
                           none.alias("est_peak_gib"), none.alias("est_train_s"))


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
    if column in GIB_COLUMNS:
        return gib(value, unit=False)
    if column in TIME_COLUMNS:
        return seconds(value)
    if column in PEOPLE:
        return PEOPLE[column](value)
    if column == "created_at":
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"
    return str(value)


COMPARE_ROWS = ("run_id", "stack", "stage", "model", "task", "hardware", "status", "seed", "trainable_params",
                "trainable_share", "adapter_bytes", "peak_gib", "est_peak_gib", "train_s", "est_train_s",
                "tokens_per_s", "step_time_s", "wall_time_s", "steps",
                "train_loss", "eval_loss", "metric_name", "metric_before", "metric_after", "forgetting", "error")


def comparison(df: pl.DataFrame, run_ids: list[str]) -> list[tuple[str, list[str]]]:
    """(field, value per selected run) rows for a side-by-side view, in the order selected."""
    rows = {r["run_id"]: r for r in df.filter(pl.col("run_id").is_in(run_ids)).iter_rows(named=True)}
    chosen = [rows[i] for i in run_ids if i in rows]
    return [(f, [cell(r.get(f), f).splitlines()[0][:60] if r.get(f) is not None else "-" for r in chosen])
            for f in COMPARE_ROWS]


if __name__ == "__main__":
    from bench.results import read_runs

    from advisor.tui.estimates import with_estimates

    frame, err = filter_runs(with_estimates(with_derived(read_runs(sys.argv[1]))), " ".join(sys.argv[2:]))
    print(err or frame.select([c for c, _ in COLUMNS]))
