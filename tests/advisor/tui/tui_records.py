"""Helpers for the TUI tests: a fixed results DB, fixed hardware, and driving fields by keys."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from advisor.tui.hardware import Detected
from bench.results import write_record
from bench.schema import new_record

NO_GPU = Detected((), 16.0, "no GPU detected (LibraryNotFound)")
HERE = Path(__file__).parent
RECORDED_RUN = HERE / "data" / "run-tiny"   # events.jsonl + train.log of a real 3-step tiny-llama run


def seed_db(db: Path) -> Path:
    """Four records with fixed numbers and timestamps (sorting, filtering, comparing have something to do)."""
    base = dict(model="tiny-llama", task="smoke", hardware="cpu-test-2c", device_name="Test CPU", device_count=1,
                seed=0, steps=3, metric_name="eval_loss")
    rows = [("sft:lora", "ok", 6.94, 530.0, 570, 3.0), ("sft:dora", "ok", 6.91, 410.0, 610, 3.9),
            ("dpo:lora", "ok", 0.69, 300.0, 640, 4.4), ("sft:full", "cancelled", None, None, None, 1.2)]
    for i, (stage, status, loss, tps, rss_mib, wall) in enumerate(rows):
        obj, method = stage.split(":")
        write_record(db, new_record(
            run_id=f"seed-{i}-0", stack=stage, stage=stage, stage_index=0, objective=obj, method=method,
            status=status, train_loss=loss, eval_loss=None if loss is None else loss - 0.05, tokens_per_s=tps,
            peak_rss_bytes=None if rss_mib is None else rss_mib * 2**20, wall_time_s=wall,
            created_at=dt.datetime(2026, 1, 1, 12, i, tzinfo=dt.timezone.utc), **base))
    return db


async def type_into(pilot, selector: str, text: str) -> None:
    """Focus an Input, clear it with backspaces and type ``text`` key by key."""
    from textual.widgets import Input

    box = pilot.app.screen.query_one(selector, Input)
    box.focus()
    await pilot.pause()
    box.cursor_position = len(box.value)
    await pilot.press(*(["backspace"] * len(box.value)))
    await pilot.press(*[{" ": "space", "-": "minus", ".": "full_stop", "/": "slash", "_": "underscore"}.get(c, c)
                        for c in text])
    await pilot.pause()


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry))
    return out


def seed_launched(root: Path) -> Path:
    """A DB holding one run the wizard launched on user data, with the estimate.json it saved (fixed numbers
    from a real 2-step smollm2-135m sft:lora run on a 50-row JSONL); returns the DB folder."""
    import json

    out = root / "runs" / "tui-launched"
    (out / "stage0-sft-lora").mkdir(parents=True, exist_ok=True)
    (out / "estimate.json").write_text(json.dumps({"run_id": "tui-launched", "gpu": "cpu", "num_gpus": 1, "stages": [
        {"index": 0, "stage": "sft:lora", "precision": "fp32", "micro_batch": 4, "grad_ckpt": False, "seq_len": 48,
         "steps": 2, "tokens": 176, "peak_gib": 1.943, "reserved_gib": 0.943, "hours": 0.00037}]}))
    db = root / "db"
    write_record(db, new_record(
        run_id="tui-launched-0", stack="sft:lora", stage="sft:lora", stage_index=0, objective="sft", method="lora",
        model="smollm2-135m", task="data:pairs.jsonl@e886858c", hardware="cpu-test-2c", device_name="Test CPU",
        device_count=1, seed=0, status="ok", steps=2, train_loss=0.72, eval_loss=0.54, tokens_per_s=116.0,
        step_time_s=1.65, peak_rss_bytes=2_627_317_760, wall_time_s=48.5, output_dir=str(out / "stage0-sft-lora"),
        created_at=dt.datetime(2026, 1, 2, 9, 0, tzinfo=dt.timezone.utc)))
    return db
