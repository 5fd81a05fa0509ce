"""boft: butterfly orthogonal fine-tuning (Liu et al. 2024) — OFT with butterfly-factored rotations.

    tunebench train --stack sft:boft --model tiny-llama --task smoke

The rotation is a product of ``butterfly_factor`` block-diagonal orthogonal matrices joined by
butterfly permutations, plus a trained per-output scale; generators start at zero (identity),
so the model is unchanged at step 0. Note: peft builds the butterfly product only with its
compiled CUDA extension; without it (every CPU run) peft itself falls back to one factor, i.e.
block-diagonal OFT with block size ``block_size`` and a trained scale.
"""
from pydantic import Field

from methods._peft import TargetSettings, peft_method


class BOFTSettings(TargetSettings):
    block_size: int = Field(4, ge=2)
    butterfly_factor: int = Field(2, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)


def build(cfg: BOFTSettings):
    from peft import BOFTConfig

    return BOFTConfig(boft_block_size=cfg.block_size, boft_n_butterfly_factor=cfg.butterfly_factor,
                      boft_dropout=cfg.dropout, target_modules=list(cfg.target_modules))


peft_method(
    name="boft", family="reparameterized", trains="butterfly-factored orthogonal rotations + scale on all projections",
    config=BOFTSettings, build=build, zero_init=True,
    description="BOFT: butterfly orthogonal rotations (block 4, 2 factors; 1 factor on CPU); merges into the base",
)
