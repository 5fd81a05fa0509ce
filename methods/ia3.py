"""ia3: (IA)^3 (Liu et al. 2022) — learned vectors that rescale keys, values and the MLP input.

    tunebench train --stack sft:ia3 --model tiny-llama --task smoke

One vector per targeted projection: k_proj and v_proj outputs, down_proj's input (the
feed-forward activation). Vectors start at 1, so the model is unchanged at step 0.
"""
from pydantic import Field

from methods._common import MethodConfig
from methods._peft import peft_method


class IA3Settings(MethodConfig):
    target_modules: list[str] = Field(default_factory=lambda: ["k_proj", "v_proj", "down_proj"])
    feedforward_modules: list[str] = Field(default_factory=lambda: ["down_proj"])


def build(cfg: IA3Settings):
    from peft import IA3Config

    return IA3Config(target_modules=list(cfg.target_modules), feedforward_modules=list(cfg.feedforward_modules))


peft_method(
    name="ia3", family="additive", trains="scaling vectors on k, v and the MLP activation",
    config=IA3Settings, build=build, zero_init=True,
    description="(IA)^3: element-wise rescaling of keys, values and FFN activations; merges into the base",
)
