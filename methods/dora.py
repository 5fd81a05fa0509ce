"""dora: weight-decomposed LoRA (Liu et al. 2024) — a trained magnitude per output row plus LoRA direction.

    tunebench train --stack sft:dora --model tiny-llama --task smoke

Trainable: LoRA's r·(in+out) plus one magnitude per output feature, per projection. B starts at
zero and the magnitude at the base weight's row norms, so the model is unchanged at step 0.
"""
from methods._peft import LoraSettings, lora_config, peft_method


peft_method(
    name="dora", family="reparameterized", trains="LoRA A·B + per-row magnitude on all linear projections",
    config=LoraSettings, build=lambda cfg: lora_config(cfg, use_dora=True), zero_init=True,
    description="DoRA: magnitude/direction decomposition with a LoRA direction update; merges into the base",
)
