"""oft: orthogonal fine-tuning (Qiu et al. 2023) — a block-diagonal rotation of each weight's input space.

    tunebench train --stack sft:oft --model tiny-llama --task smoke

Each block is a Cayley-parameterized orthogonal matrix from a skew-symmetric generator that
starts at zero (identity rotation), so the model is unchanged at step 0. Every targeted
projection's input size must be divisible by ``block_size``.
"""
from pydantic import Field

from methods._peft import TargetSettings, peft_method


class OFTSettings(TargetSettings):
    block_size: int = Field(32, ge=2)


def build(cfg: OFTSettings):
    from peft import OFTConfig

    return OFTConfig(r=0, oft_block_size=cfg.block_size, target_modules=list(cfg.target_modules))


peft_method(
    name="oft", family="reparameterized", trains="block-diagonal orthogonal rotations of all linear projections",
    config=OFTSettings, build=build, zero_init=True,
    description="OFT: orthogonal block rotations (block size 32) of each weight; merges into the base",
)
