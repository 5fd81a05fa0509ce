"""hra: Householder reflection adaptation (Yuan et al. 2024) — W·H_1·…·H_r with H_i = I − 2·u_i·u_iᵀ/‖u_i‖².

    tunebench train --stack sft:hra --model tiny-llama --task smoke

Each targeted projection trains r vectors u_i of its input size (r·in parameters); the product
of r reflections is an orthogonal map of the input space, like OFT but low-rank. With an even
r, peft initialises the vectors in identical pairs (H·H = I), so the model is unchanged at
step 0. The update is a weight product, so it merges into the base.
"""
from pydantic import Field, field_validator

from common.shape import Shape
from methods._peft import TargetSettings, input_per_token, peft_method, targets
from methods.card import ParamCard, ParamMemory


class HRASettings(TargetSettings):
    r: int = Field(8, ge=2, description="reflections per projection (even: the identity init pairs them)")
    apply_gs: bool = Field(False, description="Gram-Schmidt-orthogonalise the vectors (slower, exact orthogonality)")

    @field_validator("r")
    @classmethod
    def _even(cls, r: int) -> int:
        if r % 2:
            raise ValueError("r must be even (peft's identity init pairs the reflections)")
        return r


def build(cfg: HRASettings):
    from peft import HRAConfig

    return HRAConfig(r=cfg.r, apply_GS=cfg.apply_gs, target_modules=list(cfg.target_modules))


def trainable(shape: Shape, cfg: HRASettings) -> int:
    """r vectors of the input size per targeted projection."""
    return shape.layers * sum(cfg.r * i for i, _ in targets(shape, cfg))


def layer_fixed(shape: Shape, cfg: HRASettings, ab: int, xb: int) -> float:
    """Per projection the forward (peft HRALinear) builds the reflection product step by step from an
    in×in identity: each of the r ``weight @ u`` matmuls and the final ``eye @ product`` keep their
    in×in left operand in the dtype the matmul runs in (``ab``; autocast's cast) for the backward, and
    the rotated weight (out×in) is kept by the linear that applies it (``xb`` does not enter)."""
    return sum(ab * ((cfg.r + 1) * i * i + i * o) for i, o in targets(shape, cfg))


CARD = ParamCard(
    name="hra", family="reparameterized", label="HRA", peft=True,
    trains="r Householder reflection vectors per linear projection (orthogonal input rotation)",
    description="HRA: products of r=8 Householder reflections on all linear projections; merges into the base",
    settings=HRASettings,
    memory=ParamMemory(trainable=trainable, per_token=input_per_token, layer_fixed=layer_fixed,
                       outputs_input_dtype=True),
)
peft_method(CARD, build)
