"""The stack value and stage hyper-parameters: parsed once (string or YAML), then passed around.

    python -c "from common.stack import parse_stack; print(parse_stack('cpt:full,sft:lora', 'tiny-llama', 'smoke').label)"

YAML shape (unknown keys are errors), e.g. examples/stack.yaml::

    model: tiny-llama
    task: smoke
    seed: 0
    hp: {max_steps: 3, batch_size: 4}        # shared by every stage
    report_to: tensorboard                   # none (default) | tensorboard: a local log per stage (bench/tracking.py)
    stages:
      - {objective: sft, method: lora, method_cfg: {r: 16}}
      - {objective: dpo, method: lora, cfg: {beta: 0.2}, task: smoke, hp: {learning_rate: 5e-5}}
      - {objective: kto, method: lora, data: prefs.jsonl}   # the user's own data (bench/userdata.py)
      - {objective: sft, method: lora, data: {path: chats.parquet, format: messages, eval_fraction: 0.2}}

A stage reads its own ``data`` or ``task``, else the stack's ``data`` or ``task`` (a stack gives
one of them, not both); a relative ``data`` path is relative to the YAML file's folder.

Names are checked against the method registry by bench/stack.py ``validate``; this module knows
only the shape, so every room can read a stack.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common.errors import UserError
from common.yamlfile import load_validated

STAGE_RE = re.compile(r"^([a-z_0-9]+):([a-z_0-9]+)$")


class HyperParams(BaseModel):
    """Stage hyper-parameters common to every objective; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")
    learning_rate: float | None = Field(default=None, gt=0, le=1)
    batch_size: int = Field(default=4, ge=1, le=4096)
    grad_accum: int = Field(default=1, ge=1, le=4096)
    max_steps: int = Field(default=20, ge=1, le=10_000_000)
    max_length: int = Field(default=256, ge=8, le=1_000_000)
    seed: int = Field(default=0, ge=0)
    grad_ckpt: bool = False
    train_limit: int | None = Field(default=None, ge=1, description="use at most N training records")
    eval_limit: int = Field(default=32, ge=0, description="records for the task loss (eval_split's); 0 = skip")
    # 'validation': the task loss scores the LAST eval_limit records of the train split, which are then
    # held out of training, so a learning-rate search (bench/tune.py) never selects on the test split.
    # (The user's own --data is always scored on its held-out share, --eval-fraction.)
    eval_split: Literal["test", "validation"] = "test"
    metric_limit: int = Field(default=0, ge=0, description="lm-eval task metric on N test items; 0 = skip")
    teacher: str | None = None
    reward_model: str | None = None
    judge: str | None = None


class DataSource(BaseModel):
    """The user's own data for a stage (``--data``): a file or a datasets folder; see bench/userdata.py."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1)
    format: str | None = None  # detected from the columns when not given
    eval_fraction: float = Field(default=0.1, ge=0, lt=1)


def _as_source(v):
    """``data: FILE`` is short for ``data: {path: FILE}``."""
    return {"path": v} if isinstance(v, str) else v


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objective: str
    method: str
    task: str | None = None
    data: DataSource | None = None
    hp: dict = {}
    cfg: dict = {}
    method_cfg: dict = {}

    @field_validator("data", mode="before")
    @classmethod
    def _path_alone(cls, v):
        return _as_source(v)

    @model_validator(mode="after")
    def _one_source(self):
        if self.task and self.data:
            raise ValueError(f"stage {self.label} gives both task and data; give one")
        return self

    @property
    def label(self) -> str:
        return f"{self.objective}:{self.method}"


class StackSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    task: str | None = None
    data: DataSource | None = None
    seed: int = Field(default=0, ge=0)
    hp: dict = {}
    stages: list[StageSpec] = Field(min_length=1)
    report_to: Literal["none", "tensorboard", "mlflow"] = "none"  # experiment tracking, bench/tracking.py

    @field_validator("data", mode="before")
    @classmethod
    def _path_alone(cls, v):
        return _as_source(v)

    @model_validator(mode="after")
    def _sources(self):
        if self.task and self.data:
            raise ValueError("the stack gives both task and data; give one (a stage may name its own)")
        bare = [s.label for s in self.stages if not (s.task or s.data)]
        if bare and not (self.task or self.data):
            raise ValueError(f"stage {bare[0]} has no task or data: give the stack a task or data, "
                             "or the stage its own")
        return self

    @property
    def label(self) -> str:
        return ",".join(s.label for s in self.stages)


def parse_stack_string(text: str) -> list[StageSpec]:
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise UserError(f"malformed stack '{text}': expected OBJECTIVE:METHOD[,OBJECTIVE:METHOD...] e.g. sft:lora,dpo:lora")
    stages = []
    for p in parts:
        m = STAGE_RE.match(p)
        if not m:
            raise UserError(f"malformed stage '{p}' in stack '{text}': expected OBJECTIVE:METHOD, e.g. sft:lora")
        stages.append(StageSpec(objective=m.group(1), method=m.group(2)))
    return stages


def load_stack_yaml(path: str | Path) -> StackSpec:
    spec = load_validated(path, StackSpec, "stack file", "model, task (or data) and stages")
    # a relative data path is relative to the YAML file, wherever the command runs from
    for src in [spec.data, *(s.data for s in spec.stages)]:
        if src is not None and not Path(src.path).expanduser().is_absolute():
            src.path = str((Path(path).parent / src.path).resolve())
    return spec


def parse_stack(text: str, model: str, task: str | None, **extra) -> StackSpec:
    """``"cpt:full,sft:lora"`` (plus the model and task) as a StackSpec."""
    return StackSpec(model=model, task=task, stages=parse_stack_string(text), **extra)
