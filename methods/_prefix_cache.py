"""Prefix tuning / P-Tuning v2 under gradient checkpointing: the prefix cache kept, read-only.

peft hands the trained key/value prefixes to the base model as a ``DynamicCache``. With gradient
checkpointing on, transformers 5's ``GradientCheckpointingLayer`` drops ``past_key_values`` from
every checkpointed decoder layer (a layer that writes the cache would write it again when the
backward pass recomputes it), while the causal mask was already built for prefix + sequence: the
step fails with "size of tensor a (T) must match the size of tensor b (T + virtual tokens)". peft
itself refuses checkpointing that is on before the adapter is added ("does not work with gradient
checkpointing"); the trainers turn it on afterwards, so a run crashed in the first step.

The fix: while gradients are recorded (a training forward and its recompute) the prefix cache only
*reads* — ``update`` returns prefix + new keys/values without storing them — so the recompute sees
exactly what the forward saw, and the decoder layers may keep the cache when checkpointed.
Generation (no grad) stores as usual.
"""
from __future__ import annotations


def _read_only_class(cls):
    """``cls`` (peft's cache class) with an ``update`` that does not store while grad is enabled."""

    class PrefixCache(cls):
        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            import torch

            if not torch.is_grad_enabled():
                return super().update(key_states, value_states, layer_idx, *args, **kwargs)
            layer = self.layers[layer_idx]
            return torch.cat([layer.keys, key_states], dim=-2), torch.cat([layer.values, value_states], dim=-2)

    PrefixCache.__name__ = f"ReadOnlyPrefix{cls.__name__}"
    return PrefixCache


_CLASSES: dict[type, type] = {}


def keep_prefix_under_checkpointing(model) -> None:
    """Make a peft prefix-tuning ``model`` train with gradient checkpointing (see the module docstring)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    get_prompt = model.get_prompt

    def read_only_prompt(*args, **kwargs):
        cache = get_prompt(*args, **kwargs)
        if hasattr(cache, "layers"):  # a transformers Cache (not the legacy tuple of older stacks)
            cls = type(cache)
            cache.__class__ = _CLASSES.setdefault(cls, _read_only_class(cls))
        return cache

    model.get_prompt = read_only_prompt
    for m in model.get_base_model().modules():
        if isinstance(m, GradientCheckpointingLayer):
            m._can_checkpoint_with_cache = True  # safe: the cache no longer changes inside a training forward
