"""qlora: LoRA on a 4-bit NF4 base (Dettmers et al. 2023) through bitsandbytes.

    tunebench train --stack sft:qlora --model tiny-llama --task smoke

The base loads quantized (``load_kwargs``: NF4, compute dtype fp32 — bf16 is ~11x slower on
this CPU), then ``prepare_model_for_kbit_training`` and LoRA on every linear projection.
Merging dequantizes to an fp32 model with the update folded in (see methods/_quant.py).
"""
from methods._peft import LoraSettings, lora_config, lora_per_token, lora_trainable, peft_method
from methods._quant import bnb_kwargs
from methods.card import ParamCard, ParamMemory

CARD = ParamCard(
    name="qlora", family="quantized", label="QLoRA", trains="LoRA A·B on all linear projections over a frozen NF4 base", peft=True,
    description="QLoRA: 4-bit NF4 base (bitsandbytes) + LoRA; merge dequantizes to fp32",
    settings=LoraSettings, requires=("bitsandbytes",),
    memory=ParamMemory(trainable=lora_trainable, per_token=lora_per_token, base="nf4"),
)
peft_method(CARD, lora_config, load_kwargs=lambda cfg: bnb_kwargs(4))
