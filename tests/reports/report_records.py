"""Synthetic result records for the report tests: known numbers in, known cells out."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from bench.schema import new_record, to_frame

GiB = 2**30
TOTAL = 134_515_008
BASE = dict(model="smollm2-135m", model_params=TOTAL, total_params=TOTAL,
            hardware="cpu-test-2c", device_name="Test CPU", device_count=1, matrix="test")


def rec(stage: str, task: str = "wiki-topics", seed: int = 0, status: str = "ok", stack: str | None = None,
        stage_index: int = 0, **values) -> dict:
    """One record of ``stage`` ("sft:lora"); only the figures given are recorded."""
    objective, method = stage.split(":")
    return new_record(stage=stage, objective=objective, method=method, task=task, seed=seed, status=status,
                      stack=stack or stage, stage_index=stage_index,
                      created_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=seed),
                      **{**BASE, **values})


def sft(method: str, trainable: int = 1_000_000, mem_gib: float = 4.0, metric_after: float = 0.5,
        forgetting: float = 0.1, seed: int = 0, task: str = "wiki-topics", **values) -> dict:
    """An ok SFT record with every figure the table shows."""
    figures = dict(trainable_params=trainable, trainable_share=trainable / TOTAL, peak_rss_bytes=int(mem_gib * GiB),
                   tokens_per_s=100.0 + seed, wall_time_s=60.0 + seed, metric_name="acc", metric_before=0.25,
                   metric_after=metric_after, forgetting=forgetting)
    return rec(f"sft:{method}", task=task, seed=seed, **{**figures, **values})


def frame(records: list[dict]) -> pl.DataFrame:
    return to_frame(records)


def write_db(db: Path, records: list[dict]) -> Path:
    db.mkdir(parents=True, exist_ok=True)
    for r in records:
        to_frame([r]).write_parquet(db / f"{r['run_id']}.parquet")
    return db
