"""lokr: low-rank Kronecker product (LyCORIS) — ΔW = C ⊗ (B·A).

    tunebench train --stack sft:lokr --model tiny-llama --task smoke

The weight shape is factored into a small Kronecker factor C and a larger one given as a rank-r
product; the low-rank factor starts at zero, so the model is unchanged at step 0.
"""
from pydantic import Field

from methods._peft import TargetSettings, peft_method


class LoKrSettings(TargetSettings):
    r: int = Field(8, ge=1)
    alpha: float = Field(8, gt=0)
    decompose_factor: int = Field(-1, description="Kronecker factor size; -1 picks the most balanced split")


def build(cfg: LoKrSettings):
    from peft import LoKrConfig

    return LoKrConfig(r=cfg.r, alpha=cfg.alpha, decompose_factor=cfg.decompose_factor,
                      target_modules=list(cfg.target_modules))


peft_method(
    name="lokr", family="reparameterized", trains="Kronecker factor ⊗ low-rank pair on all linear projections",
    config=LoKrSettings, build=build, zero_init=True,
    description="LoKr (LyCORIS): Kronecker-product update; merges into the base",
)
