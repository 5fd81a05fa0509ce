"""prompt: prompt tuning (Lester et al. 2021) — trained virtual-token embeddings before the input.

    tunebench train --stack sft:prompt --model tiny-llama --task smoke

Only ``num_virtual_tokens × hidden`` parameters train, at the input layer only. The prompt
changes the output from step 0 and cannot be merged into the weights.
"""
from pydantic import Field

from common.shape import Shape
from methods._common import MethodConfig
from methods._peft import peft_method
from methods.card import ParamCard, ParamMemory


class PromptSettings(MethodConfig):
    num_virtual_tokens: int = Field(20, ge=1)


def build(cfg: PromptSettings):
    from peft import PromptTuningConfig

    return PromptTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens)


def trainable(shape: Shape, cfg: PromptSettings) -> int:
    return cfg.num_virtual_tokens * shape.hidden


CARD = ParamCard(
    name="prompt", family="soft-prompt", label="Prompt tuning", trains="virtual-token embeddings prepended to the input", peft=True,
    description="prompt tuning: 20 trained input embeddings; cannot be merged",
    settings=PromptSettings, mergeable=False, latency="extra-tokens", zero_init=False,
    memory=ParamMemory(trainable=trainable, extra_tokens=lambda cfg: cfg.num_virtual_tokens),
)
peft_method(CARD, build)
