"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021), which PEFT does not ship.

An adapter is h + up(act(down(h))) with down: d→m and up: m→d (both with bias), i.e.
2·d·m + d + m parameters with m = hidden // reduction_factor. ``up`` starts at zero, so every
adapter is the identity at step 0. This module holds the settings, the card's formulas and the
registration; the torch module and its insertion live in methods/_bottleneck_module.py,
imported only when a model is adapted.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from common.shape import Shape
from methods._common import MethodConfig, register_trained, remember
from methods.card import ParamCard, ParamMemory
from methods.registry import Parameterization

Activation = Literal["relu", "gelu", "silu", "tanh"]


class AdapterSettings(MethodConfig):
    reduction_factor: int = Field(16, ge=1, description="bottleneck size m = hidden_size // reduction_factor")
    activation: Activation = "relu"
    init_std: float = Field(1e-2, ge=0, description="std of the down-projection's normal init (near-identity)")


def bottleneck_size(hidden: int, cfg: AdapterSettings) -> int:
    return max(1, hidden // cfg.reduction_factor)


def bottleneck_memory(n_sites: int) -> ParamMemory:
    """The card's memory for ``n_sites`` adapters per layer."""

    def trainable(shape: Shape, cfg: AdapterSettings) -> int:
        d, m = shape.hidden, bottleneck_size(shape.hidden, cfg)
        return shape.layers * n_sites * (2 * d * m + d + m)

    def per_token(shape: Shape, cfg: AdapterSettings, e: int, ab: int, xb: int) -> float:
        # Each adapter keeps its input (for down's weight gradient) and its m-wide hidden twice
        # (before and after the activation, the latter for up's weight gradient).
        return n_sites * (e * shape.hidden + 2 * e * bottleneck_size(shape.hidden, cfg))

    return ParamMemory(trainable=trainable, per_token=per_token)


def adapter_method(card: ParamCard, sites: tuple[str, ...]) -> Parameterization:
    """Register a bottleneck-adapter card whose adapters sit after the given sub-blocks."""
    def apply(model, cfg):
        from methods._bottleneck_module import insert

        return remember(insert(model, cfg, sites, bottleneck_size(model.config.hidden_size, cfg)), cfg)

    return register_trained(card, apply)
