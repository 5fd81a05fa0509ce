"""The typed contract between bench/train.py and every objective's ``train``.

    train(ctx: StageContext) -> StageResult

bench/train.py builds the context (model with the parameterization applied, records in the
card's format, the stage's HyperParams, the objective's validated settings and the extras named
by the card's ``needs``); the objective returns what it measured. Torch-free, like the cards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from common.stack import HyperParams


@dataclass
class StageContext:
    """Everything an objective's ``train`` needs.

    model: the base with the parameterization applied (only its weights trainable).
    train/eval: records in the objective's data format (common/records.py).
    hp: the stage's hyper-parameters (learning_rate, batch_size, max_steps, max_length, seed, ...).
    config: the objective's validated settings (its card's ``settings`` model).
    extra: what the card ``needs`` and bench supplies, by name (teacher, reward_model, judge, checker).
    """

    model: Any
    tokenizer: Any
    train: list[dict]
    eval: list[dict]
    hp: HyperParams
    config: BaseModel
    out_dir: Path
    parameterization: str
    callbacks: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    emit: Callable[[dict], None] = lambda event: None
    save_steps: int | None = None  # Trainer checkpoints every N steps in out_dir/trainer (for resume)
    resume: bool = False  # continue from the last complete checkpoint there, if any


@dataclass
class StageResult:
    """What an objective's ``train`` reports.

    train_loss: mean training loss; final_loss: the last logged one.
    tokens_seen: non-padding tokens the steps processed (tokens/s rests on it).
    log_history: the trainer's log records (one dict per logging step).
    metric: the objective's own (name, before, after), e.g. rm's pairwise accuracy; None if none.
    extra: objective-specific figures written to the result record's ``extra`` column.
    """

    train_loss: float | None
    final_loss: float | None
    steps: int
    tokens_seen: int
    log_history: list[dict] = field(default_factory=list)
    metric: tuple[str, float, float] | None = None
    extra: dict = field(default_factory=dict)

    def losses(self) -> list[float]:
        return [h["loss"] for h in self.log_history if "loss" in h]
