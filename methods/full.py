"""full: full fine-tuning — every parameter trains.

    tunebench train --stack sft:full --model tiny-llama --task smoke

The baseline every other method is measured against. Saving writes a complete HF model folder
(``save_pretrained``), which is also the merged result.
"""
from pathlib import Path

from common.errors import UserError
from common.shape import Shape
from methods._common import MethodConfig
from methods.card import ParamCard, ParamMemory
from methods.registry import register


class FullSettings(MethodConfig):
    pass


def trainable(shape: Shape, cfg: FullSettings) -> int:
    """Every parameter (a tied head counts once)."""
    return shape.params()


def per_token(shape: Shape, cfg: FullSettings, e: int, ab: int, xb: int) -> float:
    """Every linear keeps its input (q/k/v share one, gate/up share one) and both norms their weighted input."""
    return e * (shape.hidden + shape.q_dim + shape.hidden + shape.intermediate * shape.experts_per_token) \
        + 2 * e * shape.hidden


CARD = ParamCard(
    name="full", family="full", label="Full FT", trains="every parameter",
    description="full fine-tuning: all weights train; the saved folder is a complete model",
    settings=FullSettings, shares_base=False,
    memory=ParamMemory(trainable=trainable, in_base=True, per_token=per_token, trains_base_linears=True,
                       trains_head=lambda cfg: True),
)


def apply(model, cfg):
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def save(model, out_dir):
    model.save_pretrained(out_dir, safe_serialization=True)


def load(base, in_dir, cfg):
    if not Path(in_dir, "config.json").exists():
        raise UserError(f"{in_dir} is not a saved full fine-tune (no config.json)")
    like = next(base.parameters())
    return apply(type(base).from_pretrained(in_dir, dtype=like.dtype).to(like.device), cfg)


register(CARD, apply=apply, save=save, load=load, merge=lambda model: model)
