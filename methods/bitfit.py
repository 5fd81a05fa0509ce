"""bitfit: train only the bias terms (Ben Zaken et al. 2022).

    tunebench train --stack sft:bitfit --model tiny-llama-bias --task smoke

Needs a model that has bias terms (tiny-llama-bias, Qwen2.5's q/k/v biases); Llama and
SmolLM2 have none, which is a clear error rather than an empty run. A reward model's
``score`` head also trains.
"""
from common.errors import UserError
from common.shape import Shape
from methods._common import (
    MethodConfig, base_name, freeze_all, register_trained, remember, train_heads,
)
from methods.card import ParamCard, ParamMemory


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


register_trained(CARD, apply, merge=lambda model: model)
