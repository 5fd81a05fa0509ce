"""rslora: rank-stabilised LoRA (Kalajdzievski 2023) — scaling alpha/sqrt(r) instead of alpha/r.

    tunebench train --stack sft:rslora --model tiny-llama --task smoke

Same trainable tensors as LoRA; the gentler scaling keeps learning stable at higher ranks.
"""
from methods._peft import LoraSettings, lora_config, lora_per_token, lora_trainable, peft_method
from methods.card import ParamCard, ParamMemory

CARD = ParamCard(
    name="rslora", family="reparameterized", label="rsLoRA", peft=True,
    trains="low-rank A·B on all linear projections (alpha/sqrt(r) scaling)",
    description="LoRA with rank-stabilised scaling alpha/sqrt(r); merges into the base",
    settings=LoraSettings, memory=ParamMemory(trainable=lora_trainable, per_token=lora_per_token),
)
peft_method(CARD, lambda cfg: lora_config(cfg, use_rslora=True))
