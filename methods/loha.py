"""loha: low-rank Hadamard product (Hyeon-Woo et al. 2022, LyCORIS) — ΔW = (B1·A1) ⊙ (B2·A2).

    tunebench train --stack sft:loha --model tiny-llama --task smoke

Two rank-r pairs per projection (2·r·(in+out) parameters) reach an effective rank up to r².
One factor starts at zero, so the model is unchanged at step 0.
"""
from pydantic import Field

from methods._peft import TargetSettings, peft_method


class LoHaSettings(TargetSettings):
    r: int = Field(8, ge=1)
    alpha: float = Field(8, gt=0)


def build(cfg: LoHaSettings):
    from peft import LoHaConfig

    return LoHaConfig(r=cfg.r, alpha=cfg.alpha, target_modules=list(cfg.target_modules))


peft_method(
    name="loha", family="reparameterized", trains="Hadamard product of two low-rank pairs on all linear projections",
    config=LoHaSettings, build=build, zero_init=True,
    description="LoHa (LyCORIS): Hadamard-product low-rank update; merges into the base",
)
