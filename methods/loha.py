"""loha: low-rank Hadamard product (Hyeon-Woo et al. 2022, LyCORIS) — ΔW = (B1·A1) ⊙ (B2·A2).

    tunebench train --stack sft:loha --model tiny-llama --task smoke

Two rank-r pairs per projection (2·r·(in+out) parameters) reach an effective rank up to r².
One factor starts at zero, so the model is unchanged at step 0.
"""
from pydantic import Field

from common.shape import Shape
from methods._peft import TargetSettings, lora_per_token, peft_method, targeted, targets, weight_delta_bytes
from methods.card import ParamCard, ParamMemory


class LoHaSettings(TargetSettings):
    r: int = Field(8, ge=1)
    alpha: float = Field(8, gt=0)


def build(cfg: LoHaSettings):
    from peft import LoHaConfig

    return LoHaConfig(r=cfg.r, alpha=cfg.alpha, target_modules=list(cfg.target_modules))


def trainable(shape: Shape, cfg: LoHaSettings) -> int:
    return shape.layers * sum(2 * cfg.r * (i + o) for i, o in targets(shape, cfg))


def per_token(shape: Shape, cfg: LoHaSettings, e: int, ab: int, xb: int) -> float:
    """Each adapted projection keeps its input for ``F.linear(x, ΔW)``. peft builds ΔW with matmuls, which
    autocast runs in the compute dtype, and casts x to ΔW's dtype: a copy per projection where the input
    differs (an fp32 stream under autocast, as ``lora_per_token``), else the input itself, so projections
    fed by one tensor keep it once: the first norm's output (q, k, v), the second's (gate, up), down_proj's
    input; o_proj's input is the attention kernel's output, already kept. Read off the tracer (bf16
    SmolLM2-135M: 8 x hidden bytes per token and layer below one copy each)."""
    if xb != ab:
        return lora_per_token(shape, cfg, e, ab, xb)
    used = set(targeted(shape, cfg))  # an MoE's MLP names match nothing (its experts are no Linear modules)
    groups = [({"q_proj", "k_proj", "v_proj"}, shape.hidden), ({"gate_proj", "up_proj"}, shape.hidden),
              ({"down_proj"}, shape.linears()["down_proj"][0])]
    return sum(ab * (size + cfg.r) for names, size in groups if used & names)


CARD = ParamCard(
    name="loha", family="reparameterized", label="LoHa", peft=True,
    trains="Hadamard product of two low-rank pairs on all linear projections",
    description="LoHa (LyCORIS): Hadamard-product low-rank update; merges into the base",
    settings=LoHaSettings,
    memory=ParamMemory(trainable=trainable, per_token=per_token, layer_fixed=weight_delta_bytes,
                       outputs_input_dtype=True),
)
peft_method(CARD, build)
