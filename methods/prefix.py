"""prefix: prefix tuning (Li & Liang 2021) — trained key/value prefixes at every layer, MLP-reparameterized.

    tunebench train --stack sft:prefix --model tiny-llama --task smoke

As in the paper, the per-layer prefixes are produced by an MLP over a small embedding table
during training (peft ``prefix_projection=True``); saving runs the MLP once and stores the
resulting key/value table, so the reloaded adapter is the table alone (inference only).
Compare ``ptuning``: the same deep prompts trained directly, without the MLP.
"""
from pydantic import Field

from methods._common import MethodConfig
from methods._peft import peft_method


class PrefixSettings(MethodConfig):
    num_virtual_tokens: int = Field(20, ge=1)
    encoder_hidden_size: int = Field(512, ge=1)


def build(cfg: PrefixSettings):
    from peft import PrefixTuningConfig

    return PrefixTuningConfig(
        num_virtual_tokens=cfg.num_virtual_tokens, prefix_projection=True, encoder_hidden_size=cfg.encoder_hidden_size
    )


peft_method(
    name="prefix", family="soft-prompt", trains="per-layer key/value prefixes via an MLP reparameterization",
    config=PrefixSettings, build=build, zero_init=False, mergeable=False,
    description="prefix tuning with the MLP reparameterization (Li & Liang); cannot be merged",
)
