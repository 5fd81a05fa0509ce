"""adalora: adaptive-budget LoRA (Zhang et al. 2023) — SVD-form P·Λ·Q whose ranks are pruned while training.

    tunebench train --stack sft:adalora --model tiny-llama --task smoke

Each projection starts at ``init_r`` and the budget shrinks to an average of ``target_r`` by
importance scores. The pruning happens only when the training loop calls
``model.base_model.update_and_allocate(step)`` after each optimizer step — bench/train.py does
so through ``step_hook`` — and ``total_step`` defaults to the run's ``max_steps``. Λ starts at zero, so the model is unchanged at step 0.
"""
from pydantic import Field, model_validator

from common.shape import Shape
from methods._peft import TargetSettings, peft_method, targets
from methods.card import ParamCard, ParamMemory


class AdaLoraSettings(TargetSettings):
    init_r: int = Field(12, ge=1)
    target_r: int = Field(8, ge=1)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    total_step: int = Field(1000, ge=1)
    tinit: int = Field(0, ge=0)
    tfinal: int = Field(0, ge=0)
    delta_t: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _schedule(self):
        if self.tinit >= self.total_step - self.tfinal:
            raise ValueError("tinit must be < total_step - tfinal (no steps left for budget allocation)")
        return self


def build(cfg: AdaLoraSettings):
    from peft import AdaLoraConfig

    return AdaLoraConfig(
        init_r=cfg.init_r, target_r=cfg.target_r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules), total_step=cfg.total_step, tinit=cfg.tinit, tfinal=cfg.tfinal,
        deltaT=cfg.delta_t,
    )


def reallocate(model, step: int) -> None:
    """After each optimizer step (gradients still present): update importance, prune ranks."""
    model.base_model.update_and_allocate(step)


def trainable(shape: Shape, cfg: AdaLoraSettings) -> int:
    """P (init_r×in), Q (out×init_r) and Λ (init_r) per projection; pruning masks ranks, the tensors keep their size."""
    return shape.layers * sum(cfg.init_r * (i + o) + cfg.init_r for i, o in targets(shape, cfg))


def per_token(shape: Shape, cfg: AdaLoraSettings, e: int, ab: int, xb: int) -> float:
    """Like LoRA at rank init_r: the adapter's own input copy and its rank-wide hidden."""
    return sum(ab * i + ab * cfg.init_r for i, _ in targets(shape, cfg))


CARD = ParamCard(
    name="adalora", family="reparameterized", label="AdaLoRA", peft=True,
    trains="SVD-form low-rank P·Λ·Q with rank budget reallocation",
    description="AdaLoRA: init_r=12 pruned to an average target_r=8 by importance; merges into the base",
    settings=AdaLoraSettings, memory=ParamMemory(trainable=trainable, per_token=per_token),
)
peft_method(CARD, build, step_hook=reallocate, run_defaults=lambda hp: {"total_step": hp.max_steps})
