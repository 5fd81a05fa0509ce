"""rslora: rank-stabilised LoRA (Kalajdzievski 2023) — scaling alpha/sqrt(r) instead of alpha/r.

    tunebench train --stack sft:rslora --model tiny-llama --task smoke

Same trainable tensors as LoRA; the gentler scaling keeps learning stable at higher ranks.
"""
from methods._peft import LoraSettings, lora_config, peft_method


peft_method(
    name="rslora", family="reparameterized", trains="low-rank A·B on all linear projections (alpha/sqrt(r) scaling)",
    config=LoraSettings, build=lambda cfg: lora_config(cfg, use_rslora=True), zero_init=True,
    description="LoRA with rank-stabilised scaling alpha/sqrt(r); merges into the base",
)
