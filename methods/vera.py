"""vera: vector-based random matrix adaptation (Kopiczko et al. 2024).

    tunebench train --stack sft:vera --model tiny-llama --task smoke

One pair of frozen random projections A (r×in), B (out×r) is shared by every layer; each
projection trains only two scaling vectors, λ_d (r) and λ_b (out): ΔW = Λ_b·B·Λ_d·A.
λ_b starts at zero, so the model is unchanged at step 0. The saved adapter includes the shared
projections so it reloads without re-deriving them from the PRNG key.
"""
from pydantic import Field

from common.shape import Shape
from methods._peft import TargetSettings, peft_method, targets
from methods.card import ParamCard, ParamMemory


class VeraSettings(TargetSettings):
    r: int = Field(256, ge=1)
    d_initial: float = Field(0.1, gt=0)
    seed: int = Field(0, description="PRNG key of the shared random projections")


def build(cfg: VeraSettings):
    from peft import VeraConfig

    return VeraConfig(r=cfg.r, d_initial=cfg.d_initial, projection_prng_key=cfg.seed, save_projection=True,
                      target_modules=list(cfg.target_modules))


def trainable(shape: Shape, cfg: VeraSettings) -> int:
    """λ_d (r) and λ_b (out) per projection; A and B are frozen buffers."""
    return shape.layers * sum(cfg.r + o for _, o in targets(shape, cfg))


def per_token(shape: Shape, cfg: VeraSettings, e: int, ab: int, xb: int) -> float:
    """The projections are frozen, so no input is kept: only what the two vectors multiply (rank-r hidden, output)."""
    return sum(ab * (cfg.r + o) for _, o in targets(shape, cfg))


def frozen_extra(shape: Shape, cfg: VeraSettings) -> float:
    """The shared fp32 A (r × largest in) and B (largest out × r)."""
    sizes = targets(shape, cfg)
    return 4 * cfg.r * (max(i for i, _ in sizes) + max(o for _, o in sizes))


CARD = ParamCard(
    name="vera", family="reparameterized", label="VeRA", peft=True,
    trains="two scaling vectors per projection over shared frozen random A, B",
    description="VeRA (r=256): per-layer scaling vectors over shared random projections; merges into the base",
    settings=VeraSettings, memory=ParamMemory(trainable=trainable, per_token=per_token, frozen_extra=frozen_extra,
                                              outputs_input_dtype=True),
)
peft_method(CARD, build)
