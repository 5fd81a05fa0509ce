"""ptuning: P-Tuning v2 (Liu et al. 2022) — *deep prompts*: trained key/value prefixes at every layer.

    tunebench train --stack sft:ptuning --model tiny-llama --task smoke

This is the deep-prompt variant, not the P-Tuning v1 prompt encoder (an LSTM/MLP feeding
input-level virtual tokens). PEFT implements P-Tuning v2 as prefix tuning without the
reparameterization MLP (``PrefixTuningConfig(prefix_projection=False)``), which is what runs
here: a ``num_virtual_tokens × (2 · layers · kv_dim)`` table trained directly.
"""
from pydantic import Field

from common.shape import Shape
from methods._common import MethodConfig
from methods._peft import peft_method
from methods.card import ParamCard, ParamMemory


class PTuningSettings(MethodConfig):
    num_virtual_tokens: int = Field(20, ge=1)


def build(cfg: PTuningSettings):
    from peft import PrefixTuningConfig

    return PrefixTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, prefix_projection=False)


def trainable(shape: Shape, cfg: PTuningSettings) -> int:
    """A key and a value (kv_heads · head_dim wide) per virtual token and layer."""
    return cfg.num_virtual_tokens * 2 * shape.layers * shape.kv_dim


CARD = ParamCard(
    name="ptuning", family="soft-prompt", label="P-Tuning v2", peft=True,
    trains="deep prompts: per-layer key/value prefixes, trained directly",
    description="P-Tuning v2 deep prompts (prefix tuning without reparameterization); cannot be merged",
    settings=PTuningSettings, mergeable=False, latency="extra-tokens", zero_init=False,
    memory=ParamMemory(trainable=trainable, extra_attended=lambda cfg: cfg.num_virtual_tokens),
)
peft_method(CARD, build)
