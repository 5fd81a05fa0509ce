"""lora8bit: LoRA on an int8 base (LLM.int8(), Dettmers et al. 2022) through bitsandbytes.

    tunebench train --stack sft:lora8bit --model tiny-llama --task smoke

The base loads with ``load_in_8bit`` (``load_kwargs``), then ``prepare_model_for_kbit_training``
and LoRA on every linear projection. Merging dequantizes to fp32 (see methods/_quant.py).
"""
from methods._peft import LoraSettings, lora_config, lora_per_token, lora_trainable, peft_method
from methods._quant import bnb_kwargs
from methods.card import ParamCard, ParamMemory

CARD = ParamCard(
    name="lora8bit", family="quantized", label="LoRA (int8 base)", trains="LoRA A·B on all linear projections over a frozen int8 base",
    description="8-bit (LLM.int8) base (bitsandbytes) + LoRA; merge dequantizes to fp32",
    settings=LoraSettings, requires=("bitsandbytes",),
    memory=ParamMemory(trainable=lora_trainable, per_token=lora_per_token, base="int8"),
)
peft_method(CARD, lora_config, load_kwargs=lambda cfg: bnb_kwargs(8))
