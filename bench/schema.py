"""The result record: one typed row per run. This file is the schema; bump SCHEMA_VERSION on change.

Byte and count columns are integers, rates and losses floats, structured extras JSON strings.
``new_record(**values)`` returns a dict with every column (missing ones None) and rejects
unknown names, so producers and the store can never drift apart silently.

Origin (schema 2): ``measured`` records come from this project's runs; ``published`` ones were
imported from someone else's published results (``tunebench db import``, ``bench/published.py``)
and carry ``source``, JSON ``{repo, commit, path, metric, license}`` saying where each figure was
read and what it means. Reports never pool the two. Records written before schema 2 have no
origin column; they read as null, which means ``measured`` (``origin_of``).
"""
from __future__ import annotations

import datetime as dt
import json
import uuid

import polars as pl

SCHEMA_VERSION = 2
STATUSES = ("ok", "oom", "error", "timeout", "cancelled")
MEASURED, PUBLISHED = "measured", "published"
ORIGINS = (MEASURED, PUBLISHED)
SOURCE_KEYS = ("repo", "commit", "path", "metric")  # required in a published record's source JSON

SCHEMA: dict[str, pl.DataType] = {
    "schema_version": pl.Int32(),
    "run_id": pl.String(),
    "config_hash": pl.String(),
    "matrix": pl.String(),
    "stack": pl.String(),           # whole stack, e.g. "cpt:full,sft:lora"
    "stage_index": pl.Int32(),      # 0-based position of this stage in the stack
    "stage": pl.String(),           # "sft:lora"
    "objective": pl.String(),
    "method": pl.String(),          # the parameterization
    "model": pl.String(),
    "model_params": pl.Int64(),
    "task": pl.String(),
    "hardware": pl.String(),        # grouping label, e.g. "cpu-2c" or "NVIDIA H100 80GB HBM3"
    "device_name": pl.String(),
    "device_count": pl.Int32(),
    "device_memory_bytes": pl.Int64(),
    "driver": pl.String(),
    "cuda": pl.String(),
    "packages": pl.String(),        # JSON {name: version}
    "git_commit": pl.String(),
    "seed": pl.Int64(),
    "status": pl.String(),
    "error": pl.String(),
    "total_params": pl.Int64(),
    "trainable_params": pl.Int64(),
    "trainable_share": pl.Float64(),
    "adapter_bytes": pl.Int64(),
    "peak_reserved_bytes": pl.Int64(),
    "peak_allocated_bytes": pl.Int64(),
    "nvml_used_bytes": pl.Int64(),
    "peak_rss_bytes": pl.Int64(),
    "peak_tensor_bytes": pl.Int64(),
    "tokens_per_s": pl.Float64(),
    "samples_per_s": pl.Float64(),
    "step_time_s": pl.Float64(),
    "wall_time_s": pl.Float64(),
    "steps": pl.Int64(),
    "train_loss": pl.Float64(),
    "eval_loss": pl.Float64(),
    "metric_name": pl.String(),
    "metric_before": pl.Float64(),
    "metric_after": pl.Float64(),
    "general_loss_before": pl.Float64(),
    "general_loss_after": pl.Float64(),
    "forgetting": pl.Float64(),     # general_loss_after - general_loss_before
    "hyperparams": pl.String(),     # JSON
    "extra": pl.String(),           # JSON: objective-specific figures (reward mean, KL, ...)
    "output_dir": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
    "origin": pl.String(),          # "measured" (null in schema-1 files) or "published"
    "source": pl.String(),          # JSON {repo, commit, path, metric, license}: published records only
}


def new_record(**values) -> dict:
    bad = set(values) - set(SCHEMA)
    if bad:
        raise KeyError(f"unknown result columns: {sorted(bad)}")
    rec = {k: None for k in SCHEMA}
    rec.update(values)
    rec["schema_version"] = SCHEMA_VERSION
    rec["run_id"] = rec["run_id"] or uuid.uuid4().hex
    rec["created_at"] = rec["created_at"] or dt.datetime.now(dt.timezone.utc)
    if rec["status"] not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {rec['status']!r}")
    rec["origin"] = rec["origin"] or MEASURED
    if rec["origin"] not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, got {rec['origin']!r}")
    if rec["origin"] == PUBLISHED:
        _check_source(rec["source"])
    elif rec["source"] is not None:
        raise ValueError("source is for published records only (origin='published')")
    return rec


def _check_source(text: str | None) -> None:
    try:
        source = json.loads(text or "")
    except ValueError:
        source = None
    if not isinstance(source, dict) or any(not source.get(k) for k in SOURCE_KEYS):
        raise ValueError(f"a published record needs source JSON with {', '.join(SOURCE_KEYS)}; got {str(text)[:80]!r}")


def origin_of(value: str | None) -> str:
    """A record's origin; null (records written before schema 2) means measured."""
    return value or MEASURED


def to_frame(records: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(records, schema=SCHEMA)
