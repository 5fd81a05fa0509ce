"""ptuning: P-Tuning v2 (Liu et al. 2022) — *deep prompts*: trained key/value prefixes at every layer.

    tunebench train --stack sft:ptuning --model tiny-llama --task smoke

This is the deep-prompt variant, not the P-Tuning v1 prompt encoder (an LSTM/MLP feeding
input-level virtual tokens). PEFT implements P-Tuning v2 as prefix tuning without the
reparameterization MLP (``PrefixTuningConfig(prefix_projection=False)``), which is what runs
here: a ``num_virtual_tokens × (2 · layers · kv_dim)`` table trained directly.
"""
from pydantic import Field

from methods._common import MethodConfig
from methods._peft import peft_method


class PTuningSettings(MethodConfig):
    num_virtual_tokens: int = Field(20, ge=1)


def build(cfg: PTuningSettings):
    from peft import PrefixTuningConfig

    return PrefixTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, prefix_projection=False)


peft_method(
    name="ptuning", family="soft-prompt", trains="deep prompts: per-layer key/value prefixes, trained directly",
    config=PTuningSettings, build=build, zero_init=False, mergeable=False,
    description="P-Tuning v2 deep prompts (prefix tuning without reparameterization); cannot be merged",
)
