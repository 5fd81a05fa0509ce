"""What the Results actions need from a run's record: its reproduce command, export target, report filters.

    tunebench tui      (Results: y copies the highlighted run's command, e exports it)

Every ``tunebench train`` writes the stack it ran (model, task or data, stages, hp, seed) to
``<run folder>/stack.json``; training that file again is the run's reproduce command. Exports go
to a folder under the stage's output dir unless the user types a path.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from common.errors import UserError

EXPORTS = {"hf": ("hf", "f16", "export-hf"), "gguf": ("gguf", "q8_0", "export-q8_0.gguf")}  # key: (to, quant, name)


def stack_file(row: dict) -> Path:
    """The stack.json of the run folder that holds this stage; UserError when there is none."""
    if row.get("origin") == "published":
        raise UserError(f"run {row['run_id']} is a published figure; there is no command to reproduce it")
    if not row.get("output_dir"):
        raise UserError(f"run {row['run_id']} names no output folder, so its stack file is unknown")
    path = Path(row["output_dir"]).parent / "stack.json"
    if not path.is_file():
        raise UserError(f"run {row['run_id']}: {path} is missing (moved or deleted?)")
    return path


def reproduce_command(row: dict, db_dir: Path | str) -> str:
    """``tunebench train <run folder>/stack.json --db DB``: the same stack, recorded in the same results DB."""
    return shlex.join(["tunebench", "train", str(stack_file(row)), "--db", str(db_dir)])


def export_target(row: dict, key: str) -> tuple[str, str, Path]:
    """(to, quant, default out path) for an export choice (``hf`` folder or ``gguf`` q8_0 file)."""
    to, quant, name = EXPORTS[key]
    if not row.get("output_dir"):
        raise UserError(f"run {row['run_id']} has no saved output to export")
    return to, quant, Path(row["output_dir"]) / name


def report_filters(row: dict) -> dict[str, str]:
    """The report-builder filters that select this run's comparison report (its task, model, hardware)."""
    return {k: row[k] for k in ("hardware", "task", "model") if row.get(k)}
