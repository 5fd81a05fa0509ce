"""pissa: LoRA initialised from the principal singular vectors of W (Meng et al. 2024).

    tunebench train --stack sft:pissa --model tiny-llama --task smoke

A and B start as the top-r SVD factors and the base keeps the residual W - B·A, so the model
output is unchanged at step 0 (up to float rounding) while training moves the principal part.
The full SVD is deterministic, so loading re-derives the same residual from a fresh base before
restoring the trained A and B.
"""
from methods._peft import LoraSettings, lora_kwargs, peft_method


def build(cfg: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(**lora_kwargs(cfg), init_lora_weights="pissa")


peft_method(
    name="pissa", family="reparameterized", trains="LoRA A·B initialised from W's top-r singular vectors",
    config=LoraSettings, build=build, zero_init=True,
    description="PiSSA: principal-singular-vector LoRA init, residual base frozen; merges into the base",
)
