"""Stack specs: parse ``"cpt:full,sft:lora,dpo:lora"`` or a YAML file into validated stages.

    tunebench train --stack "cpt:full,sft:lora,dpo:lora" --model tiny-llama --task smoke --max-steps 3
    tunebench train examples/stack.yaml

YAML shape (unknown keys are errors)::

    model: tiny-llama
    task: smoke
    seed: 0
    hp: {max_steps: 3, batch_size: 4}        # shared by every stage
    stages:
      - {objective: sft, method: lora, method_cfg: {r: 16}}
      - {objective: dpo, method: lora, cfg: {beta: 0.2}, task: smoke, hp: {learning_rate: 5e-5}}
"""
from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from methods import check_combination, objective, parameterization
from methods.errors import UserError
from methods.yamlfile import first_error, load_validated

STAGE_RE = re.compile(r"^([a-z_0-9]+):([a-z_0-9]+)$")
DEFAULT_LR = {"full": 2e-5, "selective": 1e-4, "reparameterized": 2e-4, "quantized": 2e-4,
              "additive": 1e-3, "soft-prompt": 1e-2}


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
    eval_limit: int = Field(default=32, ge=0, description="test records for the task loss; 0 = skip")
    metric_limit: int = Field(default=0, ge=0, description="lm-eval task metric on N test items; 0 = skip")
    teacher: str | None = None
    reward_model: str | None = None
    judge: str | None = None


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objective: str
    method: str
    task: str | None = None
    hp: dict = {}
    cfg: dict = {}
    method_cfg: dict = {}

    @property
    def label(self) -> str:
        return f"{self.objective}:{self.method}"


class StackSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    task: str
    seed: int = Field(default=0, ge=0)
    hp: dict = {}
    stages: list[StageSpec] = Field(min_length=1)

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
    return load_validated(path, StackSpec, "stack file", "model, task and stages")


def stage_hp(spec: StackSpec, stage: StageSpec) -> HyperParams:
    """Defaults < stack hp < stage hp; the learning rate defaults by parameterization family."""
    values = {"seed": spec.seed, **spec.hp, **stage.hp}
    try:
        hp = HyperParams(**values)
    except ValidationError as e:
        raise UserError(f"stage {stage.label}: bad hyper-parameter {first_error(e)}") from None
    if hp.learning_rate is None:
        hp.learning_rate = DEFAULT_LR[parameterization(stage.method).family]
    return hp


def validate(spec: StackSpec) -> None:
    """Every name, combination and config checked before anything trains or is written."""
    n = len(spec.stages)
    for i, st in enumerate(spec.stages):
        obj, par = objective(st.objective), parameterization(st.method)
        check_combination(obj.name, par.name)
        obj.make_config(st.cfg)
        par.make_config(st.method_cfg)
        stage_hp(spec, st)
        if i < n - 1 and obj.head == "causal_lm" and par.merge is None:
            raise UserError(f"stage {st.label} cannot be followed by another stage: {par.name} cannot be merged "
                            "into the base; make it the last stage")
    if any(s.objective == "ppo" for s in spec.stages):
        for i, st in enumerate(spec.stages):
            if st.objective == "ppo" and not stage_hp(spec, st).reward_model and \
                    not any(s.objective == "rm" for s in spec.stages[:i]):
                raise UserError("ppo needs a reward model: put an rm stage before it (e.g. rm:lora,ppo:lora) "
                                "or pass --hp reward_model=DIR")
