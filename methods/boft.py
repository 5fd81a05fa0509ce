"""boft: butterfly orthogonal fine-tuning (Liu et al. 2024) — OFT with butterfly-factored rotations.

    tunebench train --stack sft:boft --model tiny-llama --task smoke

The rotation is a product of ``butterfly_factor`` block-diagonal orthogonal matrices joined by
butterfly permutations, plus a trained per-output scale; generators start at zero (identity),
so the model is unchanged at step 0. Note: peft builds the butterfly product only with its
compiled CUDA extension; without it (every CPU run) peft itself falls back to one factor, i.e.
block-diagonal OFT with block size ``block_size`` and a trained scale.
"""
from pydantic import Field

from common.shape import Shape
from methods._peft import TargetSettings, input_per_token, peft_method, targets, weight_delta_bytes
from methods.card import ParamCard, ParamMemory


class BOFTSettings(TargetSettings):
    block_size: int = Field(4, ge=2)
    butterfly_factor: int = Field(2, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)


def build(cfg: BOFTSettings):
    from peft import BOFTConfig

    return BOFTConfig(boft_block_size=cfg.block_size, boft_n_butterfly_factor=cfg.butterfly_factor,
                      boft_dropout=cfg.dropout, target_modules=list(cfg.target_modules))


def trainable(shape: Shape, cfg: "BOFTSettings") -> int:
    """butterfly_factor × (in/b) full b×b generator blocks plus a per-output scale, per projection.

    That is what peft builds with its CUDA extension; without it (every CPU run) peft uses one
    factor, i.e. the count with ``butterfly_factor=1``.
    """
    return shape.layers * sum((cfg.butterfly_factor * i * cfg.block_size + o) * k for i, o, k in targets(shape, cfg))


def layer_fixed(shape: Shape, cfg: "BOFTSettings", ab: int) -> float:
    """The weight-sized rotated weight, plus the fp32 butterfly permutations (factors × in × in) autograd keeps."""
    perms = sum(4 * cfg.butterfly_factor * i * i * k for i, _, k in targets(shape, cfg))
    return weight_delta_bytes(shape, cfg, ab) + perms


CARD = ParamCard(
    name="boft", family="reparameterized", label="BOFT", peft=True,
    trains="butterfly-factored orthogonal rotations + scale on all projections",
    description="BOFT: butterfly orthogonal rotations (block 4, 2 factors; 1 factor on CPU); merges into the base",
    settings=BOFTSettings,
    memory=ParamMemory(trainable=trainable, per_token=input_per_token, layer_fixed=layer_fixed,
                       outputs_input_dtype=True),
)
peft_method(CARD, build)
