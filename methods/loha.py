"""loha: low-rank Hadamard product (Hyeon-Woo et al. 2022, LyCORIS) — ΔW = (B1·A1) ⊙ (B2·A2).

    tunebench train --stack sft:loha --model tiny-llama --task smoke

Two rank-r pairs per projection (2·r·(in+out) parameters) reach an effective rank up to r².
One factor starts at zero, so the model is unchanged at step 0.
"""
from pydantic import Field

from common.shape import Shape
from methods._peft import TargetSettings, lora_per_token, peft_method, targets, weight_delta_bytes
from methods.card import ParamCard, ParamMemory


class LoHaSettings(TargetSettings):
    r: int = Field(8, ge=1)
    alpha: float = Field(8, gt=0)


def build(cfg: LoHaSettings):
    from peft import LoHaConfig

    return LoHaConfig(r=cfg.r, alpha=cfg.alpha, target_modules=list(cfg.target_modules))


def trainable(shape: Shape, cfg: LoHaSettings) -> int:
    return shape.layers * sum(2 * cfg.r * (i + o) * k for i, o, k in targets(shape, cfg))


CARD = ParamCard(
    name="loha", family="reparameterized", label="LoHa", peft=True,
    trains="Hadamard product of two low-rank pairs on all linear projections",
    description="LoHa (LyCORIS): Hadamard-product low-rank update; merges into the base",
    settings=LoHaSettings,
    memory=ParamMemory(trainable=trainable, per_token=lora_per_token, layer_fixed=weight_delta_bytes,
                       outputs_input_dtype=True),
)
peft_method(CARD, build)
