"""full: full fine-tuning — every parameter trains.

    tunebench train --stack sft:full --model tiny-llama --task smoke

The baseline every other method is measured against. Saving writes a complete HF model folder
(``save_pretrained``), which is also the merged result.
"""
from pathlib import Path

from methods._common import MethodConfig
from common.errors import UserError
from methods.registry import Parameterization, register


class FullSettings(MethodConfig):
    pass


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


register(Parameterization(
    name="full", family="full", trains="every parameter", config=FullSettings, apply=apply, save=save,
    load=load, merge=lambda model: model, zero_init=True,
    description="full fine-tuning: all weights train; the saved folder is a complete model",
))
