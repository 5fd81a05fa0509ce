"""dora: weight-decomposed LoRA (Liu et al. 2024) — a trained magnitude per output row plus LoRA direction.

    tunebench train --stack sft:dora --model tiny-llama --task smoke

Trainable: LoRA's r·(in+out) plus one magnitude per output feature, per projection. B starts at
zero and the magnitude at the base weight's row norms, so the model is unchanged at step 0.
"""
from common.shape import Shape
from methods._peft import LoraSettings, lora_config, lora_per_token, lora_trainable, peft_method, targets
from methods.card import ParamCard, ParamMemory


def trainable(shape: Shape, cfg: LoraSettings) -> int:
    """LoRA's r·(in+out) plus one magnitude per output feature, per targeted projection."""
    return lora_trainable(shape, cfg) + shape.layers * sum(o for _, o in targets(shape, cfg))


def per_token(shape: Shape, cfg: LoraSettings, e: int, ab: int, xb: int) -> float:
    """LoRA's, plus the base and LoRA outputs each projection keeps for the magnitude gradient."""
    return lora_per_token(shape, cfg, e, ab, xb) + sum(2 * ab * o for _, o in targets(shape, cfg))


CARD = ParamCard(
    name="dora", family="reparameterized", label="DoRA", trains="LoRA A·B + per-row magnitude on all linear projections", peft=True,
    description="DoRA: magnitude/direction decomposition with a LoRA direction update; merges into the base",
    settings=LoraSettings, memory=ParamMemory(trainable=trainable, per_token=per_token),
)
peft_method(CARD, lambda cfg: lora_config(cfg, use_dora=True))
