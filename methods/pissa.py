"""pissa: LoRA initialised from the principal singular vectors of W (Meng et al. 2024).

    tunebench train --stack sft:pissa --model tiny-llama --task smoke

A and B start as the top-r SVD factors and the base keeps the residual W - B·A, so the model
output is unchanged at step 0 (up to float rounding) while training moves the principal part.
By default the SVD is the paper's fast randomized one (``svd_iters=4``; a full SVD of every
projection takes minutes on a CPU even for a 135M model); ``svd_iters=0`` runs the exact SVD.
The init runs under a fixed seed, so loading re-derives the same residual from a fresh base
before restoring the trained A and B.
"""
from pydantic import Field

from methods._peft import LoraSettings, lora_config, lora_per_token, lora_trainable, peft_method
from methods.card import ParamCard, ParamMemory


class PissaSettings(LoraSettings):
    svd_iters: int = Field(4, ge=0, description="randomized-SVD iterations; 0 = exact full SVD")


def build(cfg: PissaSettings):
    init = f"pissa_niter_{cfg.svd_iters}" if cfg.svd_iters else "pissa"
    return lora_config(cfg, init_lora_weights=init)


CARD = ParamCard(
    name="pissa", family="reparameterized", label="PiSSA", trains="LoRA A·B initialised from W's top-r singular vectors", peft=True,
    description="PiSSA: principal-singular-vector LoRA init (fast SVD), residual base frozen; merges into the base",
    settings=PissaSettings, memory=ParamMemory(trainable=lora_trainable, per_token=lora_per_token),
)
peft_method(CARD, build, init_seed=0)
