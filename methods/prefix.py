"""prefix: prefix tuning (Li & Liang 2021) — trained key/value prefixes at every layer, MLP-reparameterized.

    tunebench train --stack sft:prefix --model tiny-llama --task smoke

As in the paper, the per-layer prefixes are produced by an MLP over a small embedding table
during training (peft ``prefix_projection=True``); saving runs the MLP once and stores the
resulting key/value table, so the reloaded adapter is the table alone (inference only).
Compare ``ptuning``: the same deep prompts trained directly, without the MLP.
"""
from pydantic import Field

from common.shape import Shape
from methods._common import MethodConfig
from methods._peft import peft_method
from methods.card import ParamCard, ParamMemory


class PrefixSettings(MethodConfig):
    num_virtual_tokens: int = Field(20, ge=1)
    encoder_hidden_size: int = Field(512, ge=1)


def build(cfg: PrefixSettings):
    from peft import PrefixTuningConfig

    return PrefixTuningConfig(
        num_virtual_tokens=cfg.num_virtual_tokens, prefix_projection=True, encoder_hidden_size=cfg.encoder_hidden_size
    )


def trainable(shape: Shape, cfg: PrefixSettings) -> int:
    """Embedding (tokens × kv_dim), then Linear(kv_dim → enc) and Linear(enc → 2·layers·kv_dim), with biases.

    peft sizes the prefix by the key/value width (kv_heads · head_dim) for grouped-query attention.
    """
    kv, enc = shape.kv_dim, cfg.encoder_hidden_size
    return cfg.num_virtual_tokens * kv + (kv + 1) * enc + (enc + 1) * 2 * shape.layers * kv


CARD = ParamCard(
    name="prefix", family="soft-prompt", label="Prefix tuning", peft=True,
    trains="per-layer key/value prefixes via an MLP reparameterization",
    description="prefix tuning with the MLP reparameterization (Li & Liang); cannot be merged",
    settings=PrefixSettings, mergeable=False, latency="extra-tokens", zero_init=False,
    memory=ParamMemory(trainable=trainable, extra_attended=lambda cfg: cfg.num_virtual_tokens),
)
peft_method(CARD, build)
