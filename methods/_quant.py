"""bitsandbytes plumbing for qlora (NF4 base) and lora8bit (int8 base).

The base is quantized at load time (``load_kwargs`` -> ``BitsAndBytesConfig``); LoRA trains in
fp32 on top. Merging into a quantized base would re-quantize the merged weight and change the
model, so ``merge_dequantized`` instead dequantizes every bnb layer to a plain fp32
``nn.Linear`` with the LoRA delta added: the result equals the unmerged adapter's outputs and
is an ordinary transformers model that ``save_pretrained`` writes without a quantization config.
Torch and bitsandbytes are imported inside the functions (method cards load without them).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# The head stays in full precision (transformers skips lm_head by default; a reward model's
# fresh `score` head must not be quantized either).
SKIP = ["lm_head", "score"]


def bnb_kwargs(bits: int) -> dict:
    import torch
    from transformers import BitsAndBytesConfig

    if bits == 4:
        q = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32,
            bnb_4bit_use_double_quant=False, llm_int8_skip_modules=SKIP,
        )
    else:
        q = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=SKIP)
    return {"quantization_config": q}


def is_quantized(model) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def prepare_kbit(model):
    from peft import prepare_model_for_kbit_training

    # Checkpointing is the caller's choice (docs/platform-facts.md: slower on CPU); peft defaults it on.
    return keep_training_layout(prepare_model_for_kbit_training(model, use_gradient_checkpointing=False))


def keep_training_layout(model):
    """Turn off bitsandbytes' CPU inference repack of NF4 layers.

    On CPUs with AVX512-BF16, a Linear4bit repacks itself on its first no-grad eval forward and
    rounds its fp32 absmax to bf16 for good: the frozen base would change between evaluation and
    training, and a merge would no longer match the trained adapter. Keep the layout training uses.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    return model


def _dequantized_linear(base: torch.nn.Module, delta: torch.Tensor | None) -> torch.nn.Linear:
    import torch
    from peft.utils.integrations import dequantize_bnb_weight

    w = dequantize_bnb_weight(base.weight, state=getattr(base, "state", None)).to(torch.float32)
    if delta is not None:
        w = w + delta.to(torch.float32)
    lin = torch.nn.Linear(base.in_features, base.out_features, bias=base.bias is not None, device=w.device)
    with torch.no_grad():
        lin.weight.copy_(w)
        if base.bias is not None:
            lin.bias.copy_(base.bias.to(torch.float32))
    return lin


def _set(root: torch.nn.Module, dotted: str, module: torch.nn.Module) -> None:
    parent, _, child = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


def merge_dequantized(peft_model):
    """LoRA on a bnb base -> a plain fp32 transformers model with the adapter folded in."""
    import bitsandbytes as bnb
    from peft.tuners.lora import LoraLayer

    bnb_types = (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    inner = peft_model.get_base_model()
    for name, module in list(inner.named_modules()):
        if isinstance(module, LoraLayer) and isinstance(module.get_base_layer(), bnb_types):
            delta = sum(module.get_delta_weight(a) for a in module.active_adapters if a in module.lora_A)
            _set(inner, name, _dequantized_linear(module.get_base_layer(), delta))
    for name, module in list(inner.named_modules()):  # layers LoRA did not target
        if isinstance(module, bnb_types):
            _set(inner, name, _dequantized_linear(module, None))
    merged = peft_model.merge_and_unload()  # unwraps what is left (e.g. the saved score head)
    merged.hf_quantizer = None
    merged.is_loaded_in_4bit = merged.is_loaded_in_8bit = False
    merged.is_quantized = False
    if hasattr(merged.config, "quantization_config"):
        del merged.config.quantization_config
    return merged
