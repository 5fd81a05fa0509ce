"""lokr: low-rank Kronecker product (LyCORIS) — ΔW = C ⊗ (B·A).

    tunebench train --stack sft:lokr --model tiny-llama --task smoke

The weight shape is factored into a small Kronecker factor C and a larger one given as a rank-r
product; the low-rank factor starts at zero, so the model is unchanged at step 0.
"""
from pydantic import Field

from common.shape import Shape
from methods._peft import TargetSettings, lora_per_token, peft_method, targets, weight_delta_bytes
from methods.card import ParamCard, ParamMemory


class LoKrSettings(TargetSettings):
    r: int = Field(8, ge=1)
    alpha: float = Field(8, gt=0)
    decompose_factor: int = Field(-1, description="Kronecker factor size; -1 picks the most balanced split")


def build(cfg: LoKrSettings):
    from peft import LoKrConfig

    return LoKrConfig(r=cfg.r, alpha=cfg.alpha, decompose_factor=cfg.decompose_factor,
                      target_modules=list(cfg.target_modules))


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """peft.tuners.lokr.layer.factorization: (m, n) with m·n = dimension, m <= n, near sqrt or near ``factor``."""
    if factor > 0 and dimension % factor == 0:
        return factor, dimension // factor
    if factor == -1:
        factor = dimension
    m, n = 1, dimension
    length = m + n
    while m < n:
        new_m = m + 1
        while dimension % new_m != 0:
            new_m += 1
        new_n = dimension // new_m
        if new_m + new_n > length or new_m > factor:
            break
        m, n = new_m, new_n
    return (n, m) if m > n else (m, n)


def layer_count(i: int, o: int, cfg: "LoKrSettings") -> int:
    """One Linear's LoKr tensors: w1 (out_l × in_m) full; w2 (out_k × in_n) full, or as a rank-r pair when
    r < max(out_k, in_n) / 2 (peft, decompose_both=False)."""
    in_m, in_n = factorization(i, cfg.decompose_factor)
    out_l, out_k = factorization(o, cfg.decompose_factor)
    w2 = out_k * in_n if cfg.r >= max(out_k, in_n) / 2 else cfg.r * (out_k + in_n)
    return out_l * in_m + w2


def trainable(shape: Shape, cfg: "LoKrSettings") -> int:
    return shape.layers * sum(layer_count(i, o, cfg) for i, o in targets(shape, cfg))


CARD = ParamCard(
    name="lokr", family="reparameterized", label="LoKr", trains="Kronecker factor ⊗ low-rank pair on all linear projections", peft=True,
    description="LoKr (LyCORIS): Kronecker-product update; merges into the base",
    settings=LoKrSettings,
    memory=ParamMemory(trainable=trainable, per_token=lora_per_token, layer_fixed=weight_delta_bytes,
                       outputs_input_dtype=True),
)
peft_method(CARD, build)
