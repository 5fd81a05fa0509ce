"""lora8bit: LoRA on an int8 base (LLM.int8(), Dettmers et al. 2022) through bitsandbytes.

    tunebench train --stack sft:lora8bit --model tiny-llama --task smoke

The base loads with ``load_in_8bit`` (``load_kwargs``), then ``prepare_model_for_kbit_training``
and LoRA on every linear projection. Merging dequantizes to fp32 (see methods/_quant.py).
"""
from methods._peft import LoraSettings, lora_config, peft_method
from methods._quant import bnb_kwargs


peft_method(
    name="lora8bit", family="quantized", trains="LoRA A·B on all linear projections over a frozen int8 base",
    config=LoraSettings, build=lora_config, zero_init=True, quantized=True, load_kwargs=lambda cfg: bnb_kwargs(8),
    requires=("bitsandbytes",),
    description="8-bit (LLM.int8) base (bitsandbytes) + LoRA; merge dequantizes to fp32",
)
