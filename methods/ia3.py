"""ia3: (IA)^3 (Liu et al. 2022) — learned vectors that rescale keys, values and the MLP input.

    tunebench train --stack sft:ia3 --model tiny-llama --task smoke

One vector per targeted projection: k_proj and v_proj outputs, down_proj's input (the
feed-forward activation). Vectors start at 1, so the model is unchanged at step 0.
"""
from pydantic import Field

from common.shape import Shape
from methods._common import MethodConfig
from methods._peft import peft_method, targeted, targets
from methods.card import ParamCard, ParamMemory


class IA3Settings(MethodConfig):
    target_modules: list[str] = Field(default_factory=lambda: ["k_proj", "v_proj", "down_proj"])
    feedforward_modules: list[str] = Field(default_factory=lambda: ["down_proj"])


def build(cfg: IA3Settings):
    from peft import IA3Config

    return IA3Config(target_modules=list(cfg.target_modules), feedforward_modules=list(cfg.feedforward_modules))


def trainable(shape: Shape, cfg: IA3Settings) -> int:
    """One vector per targeted projection: its input size for feed-forward modules, else its output size."""
    sizes = zip(targeted(shape, cfg), targets(shape, cfg))
    return shape.layers * sum(i if m in cfg.feedforward_modules else o for m, (i, o) in sizes)


def per_token(shape: Shape, cfg: IA3Settings, e: int, ab: int, xb: int) -> float:
    """Each scaled output (k, v), kept in the compute dtype, and each feed-forward module's input, upcast to
    the vector's fp32 before it is scaled. An MoE's experts are no Linear modules: peft adapts no down_proj."""
    sizes = zip(targeted(shape, cfg), targets(shape, cfg))
    return sum(4 * i if m in cfg.feedforward_modules else e * o for m, (i, o) in sizes)


CARD = ParamCard(
    name="ia3", family="additive", label="IA3", trains="scaling vectors on k, v and the MLP activation", peft=True,
    description="(IA)^3: element-wise rescaling of keys, values and FFN activations; merges into the base",
    # peft casts the scaled output back to the base layer's dtype (autocast's), so no outputs_input_dtype
    settings=IA3Settings, memory=ParamMemory(trainable=trainable, per_token=per_token),
)
peft_method(CARD, build)
