"""oft: orthogonal fine-tuning (Qiu et al. 2023) — a block-diagonal rotation of each weight's input space.

    tunebench train --stack sft:oft --model tiny-llama --task smoke

Each block is a Cayley-parameterized orthogonal matrix from a skew-symmetric generator that
starts at zero (identity rotation), so the model is unchanged at step 0. Every targeted
projection's input size must be divisible by ``block_size``. peft 0.21 rotates the input (an einsum
over the blocks) rather than the weight, so no weight-sized tensor is built in the forward.
"""
from pydantic import Field

from common.shape import Shape
from methods._peft import TargetSettings, input_per_token, peft_method, targets
from methods.card import ParamCard, ParamMemory


class OFTSettings(TargetSettings):
    block_size: int = Field(32, ge=2)


def build(cfg: OFTSettings):
    from peft import OFTConfig

    return OFTConfig(r=0, oft_block_size=cfg.block_size, target_modules=list(cfg.target_modules))


def block_size(in_features: int, wanted: int) -> int:
    """peft's OFTLayer.adjust_oft_parameters: the nearest divisor of in_features (the lower on a tie)."""
    if in_features % wanted == 0 and wanted <= in_features:
        return wanted
    if wanted >= in_features:
        return in_features
    higher = wanted
    while higher <= in_features and in_features % higher != 0:
        higher += 1
    lower = wanted
    while lower > 1 and in_features % lower != 0:
        lower -= 1
    return lower if wanted - lower <= higher - wanted else higher


def trainable(shape: Shape, cfg: "OFTSettings") -> int:
    """in/b blocks of b(b-1)/2 skew-symmetric generator entries per projection."""
    total = 0
    for i, _ in targets(shape, cfg):
        b = block_size(i, cfg.block_size)
        total += (i // b) * (b * (b - 1) // 2)
    return shape.layers * total


CARD = ParamCard(
    name="oft", family="reparameterized", label="OFT", trains="block-diagonal orthogonal rotations of all linear projections", peft=True,
    description="OFT: orthogonal block rotations (block size 32) of each weight; merges into the base",
    settings=OFTSettings,
    memory=ParamMemory(trainable=trainable, per_token=input_per_token, outputs_input_dtype=True),
)
peft_method(CARD, build)
