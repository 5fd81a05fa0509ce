"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021), which PEFT does not ship.

An adapter is h + up(act(down(h))) with down: d→m and up: m→d (both with bias), i.e.
2·d·m + d + m parameters. ``up`` starts at zero, so every adapter is the identity at step 0.
Each adapter becomes a child (``bottleneck_adapter``) of the sub-block whose output it
transforms, and a forward hook on that sub-block applies it; base parameter names stay
unchanged, and a deepcopy (e.g. a reference model) carries its own adapters because the hook
reads the adapter from the module it runs on.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, create_model

from methods._common import (
    MethodConfig, decoder_layers, freeze_all, load_trained, remember, save_trained, train_heads,
)
from methods.registry import Parameterization, register

CHILD = "bottleneck_adapter"
ACTS = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "silu": torch.nn.SiLU, "tanh": torch.nn.Tanh}


class AdapterSettings(MethodConfig):
    reduction_factor: int = Field(16, ge=1, description="bottleneck size m = hidden_size // reduction_factor")
    activation: Literal["relu", "gelu", "silu", "tanh"] = "relu"
    init_std: float = Field(1e-2, ge=0, description="std of the down-projection's normal init (near-identity)")


class Bottleneck(torch.nn.Module):
    def __init__(self, d: int, m: int, activation: str, init_std: float, like: torch.Tensor):
        super().__init__()
        self.down = torch.nn.Linear(d, m, device=like.device, dtype=like.dtype)
        self.act = ACTS[activation]()
        self.up = torch.nn.Linear(m, d, device=like.device, dtype=like.dtype)
        with torch.no_grad():
            torch.nn.init.normal_(self.down.weight, std=init_std)
            self.down.bias.zero_()
            self.up.weight.zero_()  # identity at step 0
            self.up.bias.zero_()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.act(self.down(h)))


def _apply_adapter(module, args, output):
    adapter = getattr(module, CHILD)
    if isinstance(output, tuple):  # attention returns (hidden, attn_weights, ...)
        return (adapter(output[0]), *output[1:])
    return adapter(output)


def bottleneck_size(model, cfg: AdapterSettings) -> int:
    return max(1, model.config.hidden_size // cfg.reduction_factor)


def insert(model, cfg: AdapterSettings, sites: tuple[str, ...]):
    """Add an adapter after each named sub-block (``self_attn``, ``mlp``) of every decoder layer."""
    d, m = model.config.hidden_size, bottleneck_size(model, cfg)
    freeze_all(model)
    for layer in decoder_layers(model):
        for site in sites:
            block = getattr(layer, site)
            if hasattr(block, CHILD):
                raise ValueError(f"{site} already has a bottleneck adapter")
            like = next(block.parameters())
            block.add_module(CHILD, Bottleneck(d, m, cfg.activation, cfg.init_std, like))
            block.register_forward_hook(_apply_adapter)
    train_heads(model)
    for n, p in model.named_parameters():
        if f".{CHILD}." in n:
            p.requires_grad_(True)
    return model


def adapter_method(*, name: str, sites: tuple[str, ...], activation: str, trains: str, description: str):
    """Register a bottleneck-adapter parameterization placed after the given sub-blocks."""

    Settings = create_model(
        f"{name.title().replace('_', '')}Settings", __base__=AdapterSettings,
        activation=(Literal["relu", "gelu", "silu", "tanh"], activation),
    )

    def apply(model, cfg):
        return remember(insert(model, cfg, sites), cfg)

    def save(model, out_dir):
        save_trained(model, out_dir, name)

    def load(base, in_dir, cfg):
        return load_trained(apply(base, cfg), in_dir, name)

    return register(Parameterization(
        name=name, family="additive", trains=trains, config=Settings, apply=apply, save=save,
        load=load, merge=None, zero_init=True, description=description,
    ))
