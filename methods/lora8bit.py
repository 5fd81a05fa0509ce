"""lora8bit: LoRA on an int8 base (LLM.int8(), Dettmers et al. 2022) through bitsandbytes.

    tunebench train --stack sft:lora8bit --model tiny-llama --task smoke

The base loads with ``load_in_8bit`` (``load_kwargs``), then ``prepare_model_for_kbit_training``
and LoRA on every linear projection. Merging dequantizes to fp32 (see methods/_quant.py).
"""
from common.shape import Shape
from methods._peft import LoraSettings, lora_config, lora_per_token, lora_trainable, peft_method
from methods._quant import bnb_kwargs
from methods.card import ParamCard, ParamMemory


def int8_inputs(shape: Shape, e: int) -> float:
    """bitsandbytes' int8 matmul (MatMul8bitLt on GPU, MatMul8bitFp on CPU) keeps its input as a ``ctx``
    attribute, outside autograd's saved tensors, so checkpointing cannot free it. q/k/v share the
    attention norm's output and gate/up the MLP norm's, both fp32 (prepare_model_for_kbit_training
    upcasts norms and embeddings, so the residual stream is fp32); o_proj's and down_proj's inputs come
    out of autocast ops in the compute dtype. An MoE's fused experts are no bnb layers."""
    mlp = 4 * shape.hidden + e * shape.intermediate if shape.experts == 1 else 0
    return 4 * shape.hidden + e * shape.q_dim + mlp


CARD = ParamCard(
    name="lora8bit", family="quantized", label="LoRA (int8 base)", peft=True,
    trains="LoRA A·B on all linear projections over a frozen int8 base",
    description="8-bit (LLM.int8) base (bitsandbytes) + LoRA; merge dequantizes to fp32",
    settings=LoraSettings, requires=("bitsandbytes",),
    memory=ParamMemory(trainable=lora_trainable, per_token=lora_per_token, base="int8",
                       unfreed_per_token=int8_inputs),
)
peft_method(CARD, lora_config, load_kwargs=lambda cfg: bnb_kwargs(8))
