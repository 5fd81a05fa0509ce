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
from methods._peft import TargetSettings, input_per_token, peft_method, targeted, targets
from methods.card import ParamCard, ParamMemory


class BOFTSettings(TargetSettings):
    block_size: int = Field(4, ge=2)
    butterfly_factor: int = Field(2, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)


def build(cfg: BOFTSettings):
    from peft import BOFTConfig

    return BOFTConfig(boft_block_size=cfg.block_size, boft_n_butterfly_factor=cfg.butterfly_factor,
                      boft_dropout=cfg.dropout, target_modules=list(cfg.target_modules))


# peft builds the butterfly product only with its JIT-compiled CUDA extension (nvcc + ninja at run
# time); without it (every CPU run, and GPU installs without a CUDA toolkit) it sets the factor to 1.
# The memory model follows the fallback, which the tracer runs (bench/trace.py).
FACTORS = 1
# Modules fed from the residual stream through a norm: their input is fp32 with fp32 master weights.
NORM_FED = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")


def trainable(shape: Shape, cfg: "BOFTSettings") -> int:
    """FACTORS × (in/b) b×b generator blocks plus a per-output scale, per projection."""
    return shape.layers * sum(FACTORS * i * cfg.block_size + o for i, o in targets(shape, cfg))


def per_token(shape: Shape, cfg: "BOFTSettings", e: int, ab: int, xb: int) -> float:
    """The input, kept for the rotation's gradient, and the base layer's output, kept for the scale's."""
    return input_per_token(shape, cfg, e, ab, xb) + sum(e * o for _, o in targets(shape, cfg))


def layer_fixed(shape: Shape, cfg: "BOFTSettings", ab: int, xb: int) -> float:
    """Per projection peft (BOFT Linear.forward) builds an in×in rotation from the block-diagonal
    generators and the permutation P (``bmm(P, bmm(BD, Pᵀ))``, then ``@ eye``) and rotates the input
    with it. Kept for the backward, in in×in units: on a compute-dtype input P's cast, the eye and the
    rotation (3 × 2 bytes); on an fp32 input under autocast the bf16 casts of P (twice: bmm does not
    cache buffer casts), the eye and the rotation (4 × 2); in plain fp32 the eye and the rotation
    (2 × 4). ``xb`` is the residual stream's bytes (4 with fp32 master weights), which the norm-fed
    projections see; the others take the compute dtype. Read off the tracer on SmolLM2-135M."""
    def per_in2(name: str) -> int:
        x = xb if name in NORM_FED else ab
        return 8 if x == 4 else 3 * x

    mods = shape.linears()
    return sum(per_in2(m) * mods[m][0] ** 2 for m in targeted(shape, cfg))


def frozen_extra(shape: Shape, cfg: "BOFTSettings") -> float:
    """peft's ``boft_P`` buffer, fp32 (factors, in, in) per projection: frozen, outside the optimizer, and
    whole on every rank at ZeRO-3 (DeepSpeed and FSDP shard parameters, not buffers)."""
    return shape.layers * sum(4 * FACTORS * i * i for i, _ in targets(shape, cfg))


CARD = ParamCard(
    name="boft", family="reparameterized", label="BOFT", peft=True,
    trains="butterfly-factored orthogonal rotations + scale on all projections",
    description="BOFT: butterfly orthogonal rotations (block 4, 2 factors; 1 without peft's CUDA extension); merges into the base",
    settings=BOFTSettings,
    memory=ParamMemory(trainable=trainable, per_token=per_token, layer_fixed=layer_fixed,
                       frozen_extra=frozen_extra, outputs_input_dtype=True),
)
peft_method(CARD, build)
