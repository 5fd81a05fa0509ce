"""freeze: freeze tuning — only the last N decoder layers and the output head train.

    tunebench train --stack sft:freeze --model tiny-llama --task smoke

Everything below the last ``layers`` blocks stays frozen. With ``train_head`` the LM head
trains too; in models that tie it to the input embeddings (SmolLM2) that means the shared
embedding matrix trains. A reward model's ``score`` head always trains.
"""
from pydantic import Field

from common.errors import UserError
from common.shape import Shape
from methods._common import (
    MethodConfig, decoder_layers, freeze_all, register_trained, remember, train_heads,
)
from methods.card import ParamCard, ParamMemory
from methods.full import per_token as full_per_token


class FreezeSettings(MethodConfig):
    layers: int = Field(2, ge=1, description="how many of the last decoder layers train")
    train_head: bool = True


def trainable(shape: Shape, cfg: FreezeSettings) -> int:
    """The last ``layers`` blocks, plus the LM head (the embedding matrix when tied) with ``train_head``."""
    if cfg.layers > shape.layers:
        raise UserError(f"freeze: layers={cfg.layers} but {shape.name} has {shape.layers} decoder layers")
    return cfg.layers * shape.layer_params() + (shape.vocab * shape.hidden if cfg.train_head else 0)


def kept_layers(shape: Shape, cfg: FreezeSettings) -> int:
    """The trained layers; every layer when the head trains and is tied to the input embedding: the
    embedding's gradient then needs the backward through the whole stack."""
    return shape.layers if cfg.train_head and shape.tied else cfg.layers


def per_token(shape: Shape, cfg: FreezeSettings, e: int, ab: int, xb: int) -> float:
    """The trained layers keep what full fine-tuning keeps (full.per_token), spread over the kept layers
    (the frozen ones below a trained tied embedding keep only what every layer keeps)."""
    return full_per_token(shape, cfg, e, ab, xb) * cfg.layers / kept_layers(shape, cfg)


CARD = ParamCard(
    name="freeze", family="selective", label="Freeze (last N layers)", trains="last N decoder layers + LM head",
    description="freeze tuning: the last 2 layers and the head train, the rest stays frozen",
    settings=FreezeSettings, shares_base=False,
    memory=ParamMemory(trainable=trainable, in_base=True, kept_layers=kept_layers,
                       per_token=per_token, trains_base_linears=True,
                       trains_head=lambda cfg: cfg.train_head),
)


def apply(model, cfg):
    blocks = decoder_layers(model)
    if cfg.layers > len(blocks):
        raise UserError(f"freeze: layers={cfg.layers} but the model has {len(blocks)} decoder layers")
    freeze_all(model)
    for block in list(blocks)[-cfg.layers:]:
        for p in block.parameters():
            p.requires_grad_(True)
    head = model.get_output_embeddings() if cfg.train_head else None
    if head is not None:
        for p in head.parameters():
            p.requires_grad_(True)
    train_heads(model)
    return remember(model, cfg)


register_trained(CARD, apply, merge=lambda model: model)
