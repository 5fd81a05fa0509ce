"""lora: low-rank adapters (Hu et al. 2021) on every linear projection, base frozen.

    tunebench train --stack sft:lora --model tiny-llama --task smoke

W' = W + (alpha/r)·B·A with A (r×in) random and B (out×r) zero, so the model is unchanged at
step 0; r·(in+out) trainable parameters per targeted projection.
"""
from methods._peft import LoraSettings, lora_config, lora_per_token, lora_trainable, peft_method
from methods.card import ParamCard, ParamMemory

CARD = ParamCard(
    name="lora", family="reparameterized", label="LoRA", trains="low-rank A·B on q/k/v/o/gate/up/down", peft=True,
    description="LoRA (r=8, alpha=16) on all linear projections; merges into the base",
    settings=LoraSettings, memory=ParamMemory(trainable=lora_trainable, per_token=lora_per_token),
)
peft_method(CARD, lora_config)
