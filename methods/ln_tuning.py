"""ln_tuning: train only the normalization layers (Zhao et al. 2023), through peft's LNTuning.

    tunebench train --stack sft:ln_tuning --model tiny-llama --task smoke

Every RMSNorm/LayerNorm weight (input, post-attention and final norms in a Llama) trains;
peft keeps a trainable copy of each, so the model is unchanged at step 0 and merging swaps
the trained copies in.
"""
from pydantic import Field

from methods._common import MethodConfig
from methods._peft import peft_method


class LNTuningSettings(MethodConfig):
    target_modules: list[str] = Field(default_factory=lambda: ["input_layernorm", "post_attention_layernorm", "norm"])


def build(cfg: LNTuningSettings):
    from peft import LNTuningConfig

    return LNTuningConfig(target_modules=list(cfg.target_modules))


peft_method(
    name="ln_tuning", family="selective", trains="normalization-layer weights only",
    config=LNTuningSettings, build=build, zero_init=True,
    description="LayerNorm/RMSNorm tuning (peft LNTuning); merges into the base",
)
