"""Experiment tracking for a run: ``report_to: tensorboard`` writes a local TensorBoard log per stage.

    tunebench train --stack sft:lora --model tiny-llama --task smoke --report-to tensorboard
    tensorboard --logdir OUT/stage0-sft-lora/tensorboard

Offline by construction: the event files go into the stage's output folder
(``<output_dir>/tensorboard``), the path is kept in the result record's ``extra`` JSON
(``report_dir``), and ``scalars(path, "train/loss")`` reads a curve back (the TUI and tests use it).
The trainer's own ``TensorBoardCallback`` writes them, given a writer on that folder (transformers
5 dropped ``TrainingArguments.logging_dir``). MLflow installs from PyPI but is not a dependency:
its smallest client (mlflow-skinny 3.17.2) brings 24 packages (a web server among them), its local
file store is in maintenance mode (refused unless ``MLFLOW_ALLOW_FILE_STORE=true``; with it, the
trainer's MLflowCallback logged a tiny run's loss offline) and its sqlite store needs the full
mlflow (41 packages). So ``report_to: mlflow`` is refused in one line.
"""
from __future__ import annotations

from pathlib import Path

from common.errors import UserError

REPORT_TO = ("none", "tensorboard", "mlflow")
FOLDER = {"tensorboard": "tensorboard"}


def check(report_to: str) -> None:
    """Refuse an unknown or uninstalled tracker before anything trains."""
    import importlib.util

    if report_to not in REPORT_TO:
        raise UserError(f"report_to must be one of {', '.join(REPORT_TO)}, got {report_to!r}")
    if report_to == "mlflow":
        raise UserError("report_to mlflow is not supported: mlflow is not a tunebench dependency "
                        "(use tensorboard, which writes a local log offline)")
    if report_to == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise UserError("report_to tensorboard needs the tensorboard package: pip install tensorboard==2.21.0")


def log_dir(report_to: str, stage_dir: Path) -> Path | None:
    return stage_dir / FOLDER[report_to] if report_to in FOLDER else None


def callbacks(report_to: str, stage_dir: Path) -> list:
    """Trainer callbacks writing this stage's tracking log ([] for none)."""
    folder = log_dir(report_to, stage_dir)
    if folder is None:
        return []
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return [TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(folder)))]


def record_extra(report_to: str, stage_dir: Path) -> dict:
    """What the result record's ``extra`` JSON keeps: the tracker and its log folder."""
    folder = log_dir(report_to, stage_dir)
    return {"report_to": report_to, "report_dir": str(folder)} if folder is not None else {}


def scalars(folder: Path | str, tag: str = "train/loss") -> list[tuple[int, float]]:
    """(step, value) of ``tag`` from the TensorBoard event files in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return []
    return [(e.step, e.value) for e in acc.Scalars(tag)]
