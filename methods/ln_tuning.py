"""ln_tuning: train only the normalization layers (Zhao et al. 2023), through peft's LNTuning.

    tunebench train --stack sft:ln_tuning --model tiny-llama --task smoke

Every RMSNorm/LayerNorm weight (input, post-attention and final norms in a Llama) trains;
peft keeps a trainable copy of each, so the model is unchanged at step 0 and merging swaps
the trained copies in.
"""
from pydantic import Field

from common.shape import Shape
from methods._common import MethodConfig
from methods._peft import peft_method
from methods.card import ParamCard, ParamMemory

LAYER_NORMS = ("input_layernorm", "post_attention_layernorm")


class LNTuningSettings(MethodConfig):
    target_modules: list[str] = Field(default_factory=lambda: ["input_layernorm", "post_attention_layernorm", "norm"])


def build(cfg: LNTuningSettings):
    from peft import LNTuningConfig

    return LNTuningConfig(target_modules=list(cfg.target_modules))


def trainable(shape: Shape, cfg: LNTuningSettings) -> int:
    """hidden per targeted norm (2·hidden where LayerNorms carry a bias): two per layer, one final."""
    per_norm = shape.hidden * (2 if shape.bias == "all" else 1)
    per_layer = sum(m in cfg.target_modules for m in LAYER_NORMS)
    return per_norm * (shape.layers * per_layer + ("norm" in cfg.target_modules))


CARD = ParamCard(
    name="ln_tuning", family="selective", label="LN tuning", trains="normalization-layer weights only", peft=True,
    description="LayerNorm/RMSNorm tuning (peft LNTuning); merges into the base",
    settings=LNTuningSettings,
    memory=ParamMemory(trainable=trainable, in_base=True, per_token=lambda shape, cfg, e, ab, xb: 2 * e * shape.hidden),
)
peft_method(CARD, build)
