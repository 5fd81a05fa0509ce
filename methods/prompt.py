"""prompt: prompt tuning (Lester et al. 2021) — trained virtual-token embeddings before the input.

    tunebench train --stack sft:prompt --model tiny-llama --task smoke

Only ``num_virtual_tokens × hidden`` parameters train, at the input layer only. The prompt
changes the output from step 0 and cannot be merged into the weights.
"""
from pydantic import Field

from methods._common import MethodConfig
from methods._peft import peft_method


class PromptSettings(MethodConfig):
    num_virtual_tokens: int = Field(20, ge=1)


def build(cfg: PromptSettings):
    from peft import PromptTuningConfig

    return PromptTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens)


peft_method(
    name="prompt", family="soft-prompt", trains="virtual-token embeddings prepended to the input",
    config=PromptSettings, build=build, zero_init=False, mergeable=False,
    description="prompt tuning: 20 trained input embeddings; cannot be merged",
)
