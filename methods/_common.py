"""Helpers every parameterization shares: counting, freezing, heads, saving trained tensors.

A reward model (``AutoModelForSequenceClassification``) carries a freshly initialised ``score``
head; it must train under every parameterization, so ``head_names`` finds it and each method
marks it trainable. Torch is imported inside the functions, so method files (and their cards) load without it.
Methods that are not PEFT adapters (freeze, bitfit, bottleneck adapters)
save exactly their trainable tensors with ``save_trained`` and restore them with ``load_trained``.
"""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from methods.card import MethodConfig  # noqa: F401  (re-exported: method files import it from here)

HEAD_NAMES = ("score", "classifier")
TRAINED_FILE = "trained.safetensors"
CONFIG_FILE = "tunebench_method.json"


def is_seq_cls(model) -> bool:
    archs = getattr(getattr(model, "config", None), "architectures", None) or []
    name = type(model).__name__
    return name.endswith("ForSequenceClassification") or any(a.endswith("ForSequenceClassification") for a in archs)


def head_names(model) -> list[str]:
    """Top-level names of a classification head that must train (empty for a causal LM)."""
    import torch

    if not is_seq_cls(model):
        return []
    return [n for n in HEAD_NAMES if isinstance(getattr(model, n, None), torch.nn.Module)]


def param_count(p) -> int:
    """Logical parameter count; bitsandbytes packs two 4-bit values per stored byte."""
    import torch

    n = p.numel()
    if type(p).__name__ == "Params4bit":
        storage = getattr(p, "quant_storage", torch.uint8)
        n *= 2 * torch.empty((), dtype=storage).element_size()
    return n


def trainable_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters; shared (tied) tensors count once."""
    trainable = total = 0
    for _, p in model.named_parameters():
        n = param_count(p)
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


def freeze_all(model) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def train_heads(model) -> None:
    for name in head_names(model):
        for p in getattr(model, name).parameters():
            p.requires_grad_(True)


def base_name(model) -> str:
    """The model's folder name for error messages (``tiny-llama`` rather than a long path)."""
    path = getattr(getattr(model, "config", None), "name_or_path", "") or "this model"
    return Path(str(path)).name or str(path)


def remember(model, cfg: BaseModel):
    """Keep the method's settings on the model so ``save_trained`` can write them alongside."""
    model.tunebench_config = cfg.model_dump()
    return model


def save_trained(model, out_dir: str, method: str) -> None:
    """Write only the trainable tensors (safetensors) plus the method name and its config."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(tensors, str(out / TRAINED_FILE), metadata={"format": "pt", "method": method})
    meta = {"method": method, "config": getattr(model, "tunebench_config", None)}
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load_trained(model, in_dir: str, method: str):
    """Copy saved tensors into ``model`` (already prepared by the method's apply)."""
    from safetensors.torch import load_file

    from common.errors import UserError

    src = Path(in_dir)
    meta_path, weights = src / CONFIG_FILE, src / TRAINED_FILE
    if not meta_path.exists() or not weights.exists():
        raise UserError(f"{src} is not a saved {method} result (needs {CONFIG_FILE} and {TRAINED_FILE})")
    saved_method = json.loads(meta_path.read_text()).get("method")
    if saved_method != method:
        raise UserError(f"{src} holds a {saved_method} result, not {method}")
    import torch

    tensors = load_file(str(weights))
    params = dict(model.named_parameters())
    missing = sorted(set(tensors) - set(params))
    if missing:
        raise UserError(f"{src} does not fit this model: no parameter {missing[0]}")
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    return model


def decoder_layers(model):
    """The stack of transformer blocks (``model.model.layers`` in a Llama), found by its length."""
    import torch

    cfg = getattr(model, "config", None)
    n = getattr(cfg, "num_hidden_layers", None)
    for _, m in model.named_modules():
        if isinstance(m, torch.nn.ModuleList) and len(m) == n and n:
            return m
    raise ValueError(f"cannot find the {n} decoder layers of {type(model).__name__}")


def register_trained(card, apply, merge=None):
    """Register a method whose result is just its trained tensors (freeze, bitfit, bottleneck adapters):
    saving writes them, loading re-applies the method to a fresh base and copies them in."""
    from methods.registry import register

    def save(model, out_dir):
        save_trained(model, out_dir, card.name)

    def load(base, in_dir, cfg):
        return load_trained(apply(base, cfg), in_dir, card.name)

    return register(card, apply=apply, save=save, load=load, merge=merge)
