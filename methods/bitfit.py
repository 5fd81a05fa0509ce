"""bitfit: train only the bias terms (Ben Zaken et al. 2022).

    tunebench train --stack sft:bitfit --model tiny-llama-bias --task smoke

Needs a model that has bias terms (tiny-llama-bias, Qwen2.5's q/k/v biases); Llama and
SmolLM2 have none, which is a clear error rather than an empty run. A reward model's
``score`` head also trains.
"""
from common.errors import UserError
from common.shape import Shape
from methods._common import (
    MethodConfig, base_name, freeze_all, load_trained, remember, save_trained, train_heads,
)
from methods.card import ParamCard, ParamMemory
from methods.registry import register


class BitFitSettings(MethodConfig):
    pass


def trainable(shape: Shape, cfg: BitFitSettings) -> int:
    """Every bias term: per layer (Shape.bias_params) plus the final LayerNorm's where norms have biases."""
    return shape.layers * shape.bias_params() + (shape.hidden if shape.bias == "all" else 0)


CARD = ParamCard(
    name="bitfit", family="selective", label="BitFit", trains="bias terms only",
    description="BitFit: only the bias vectors train (needs a model with biases, e.g. tiny-llama-bias)",
    settings=BitFitSettings, requires=("bias terms",), memory=ParamMemory(trainable=trainable, in_base=True),
)


def bias_params(model):
    return [p for n, p in model.named_parameters() if n.endswith(".bias")]


def apply(model, cfg):
    biases = bias_params(model)
    if not biases:
        raise UserError(
            f"bitfit trains bias terms and {base_name(model)} has none; use a model with biases, e.g. tiny-llama-bias"
        )
    freeze_all(model)
    for p in biases:
        p.requires_grad_(True)
    train_heads(model)
    return remember(model, cfg)


def save(model, out_dir):
    save_trained(model, out_dir, "bitfit")


def load(base, in_dir, cfg):
    return load_trained(apply(base, cfg), in_dir, "bitfit")


register(CARD, apply=apply, save=save, load=load, merge=lambda model: model)
