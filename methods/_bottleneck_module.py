"""The torch side of bottleneck adapters (methods/_bottleneck.py): the module and its insertion.

Imported lazily by ``_bottleneck.adapter_method``'s apply, so the adapter cards load without torch.
Each adapter becomes a child (``bottleneck_adapter``) of the sub-block whose output it
transforms, and a forward hook on that sub-block applies it; base parameter names stay
unchanged, and a deepcopy (e.g. a reference model) carries its own adapters because the hook
reads the adapter from the module it runs on.
"""
from __future__ import annotations

import torch

from methods._common import decoder_layers, freeze_all, train_heads

CHILD = "bottleneck_adapter"
ACTS = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "silu": torch.nn.SiLU, "tanh": torch.nn.Tanh}


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


def insert(model, cfg, sites: tuple[str, ...], m: int):
    """Add an adapter of width ``m`` after each named sub-block (``self_attn``, ``mlp``) of every layer."""
    d = model.config.hidden_size
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
