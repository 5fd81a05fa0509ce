"""The GPU campaign's run list: which model × method × sequence × checkpointing runs, in priority order.

    python -m bench.campaign --plan          # prints the list (no torch needed)

Reads bench/campaign_shapes.json (model dimensions, method settings, GPU peaks, step counts).
Stdlib only: bench/campaign.py must run where only torch, transformers, peft, accelerate and
nvidia-ml-py are installed (the lent GPU machine), so nothing here imports the project's
pydantic method cards; tests/bench/test_campaign.py checks the JSON against the cards and catalogs.

Order: rounds of (sequence length, checkpointing) — longest sequence without checkpointing first,
the most common fine-tuning setting — and within a round every model, small to large, with every
method. A deadline that cuts the campaign short then loses whole low-priority rounds, not models.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

SHAPES = Path(__file__).with_name("campaign_shapes.json")
METHODS = ("full", "lora", "dora", "ia3", "prefix", "adapter_houlsby", "qlora")
OBJECTIVE = "cpt"  # next-token loss on every token of random sequences: continued pretraining
# Planned but not run (a "skipped" line says why): peft's get_peft_model raises for this combination.
PREFIX_CKPT = "peft refuses prefix tuning with gradient checkpointing (ValueError in get_peft_model)"


def spec() -> dict:
    with open(SHAPES) as f:
        return json.load(f)


@dataclass(frozen=True)
class Run:
    index: int
    model: str
    dims: dict = field(hash=False)
    method: str
    method_cfg: dict = field(hash=False)
    seq_len: int
    micro_batch: int
    grad_ckpt: bool
    steps: int
    warmup_steps: int
    learning_rate: float
    precision: str = "bf16"
    objective: str = OBJECTIVE
    seed: int = 0
    skip: str | None = None     # why this planned run is not measured

    @property
    def key(self) -> str:
        return f"{self.model}/{self.method}/s{self.seq_len}/b{self.micro_batch}/ckpt{int(self.grad_ckpt)}/{self.precision}"

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.micro_batch


def approx_params(d: dict) -> int:
    """Parameter count from the dimensions (for ordering and time estimates only; the run counts the real ones)."""
    h, hd = d["hidden"], d["hidden"] // d["heads"]
    q, kv = d["heads"] * hd, d["kv_heads"] * hd
    layer = h * q + 2 * h * kv + q * h + 3 * h * d["intermediate"] + 2 * h
    return d["vocab"] * h * (1 if d["tied"] else 2) + d["layers"] * layer + h


def runs(dry: bool = False, models: list[str] | None = None, methods: list[str] | None = None) -> list[Run]:
    """Every run of the campaign (or of the CPU dry run), highest priority first."""
    s = spec()
    table = s["dry_models"] if dry else s["models"]
    plan = s["dry_plan"] if dry else s["plan"]
    names = sorted(table, key=lambda n: approx_params(table[n]))
    unknown = [m for m in (models or []) if m not in table] + [m for m in (methods or []) if m not in s["methods"]]
    if unknown:
        raise ValueError(f"unknown model or method {unknown[0]!r} (models: {', '.join(names)}; "
                         f"methods: {', '.join(s['methods'])})")
    out: list[Run] = []
    rounds = [(seq, ckpt) for seq in plan["seq_lens"] for ckpt in (False, True)]
    for seq, ckpt in rounds:
        for name in names:
            if models and name not in models:
                continue
            for method in METHODS:
                if methods and method not in methods:
                    continue
                out.append(Run(index=len(out), model=name, dims=table[name], method=method,
                               method_cfg=s["methods"][method], seq_len=seq, micro_batch=plan["micro_batch"],
                               grad_ckpt=ckpt, steps=plan["steps"], warmup_steps=plan["warmup_steps"],
                               learning_rate=plan["learning_rate"],
                               skip=PREFIX_CKPT if method == "prefix" and ckpt else None))
    return out


def hf_config(dims: dict):
    """The transformers config of a catalog shape (sdpa attention, no KV cache while training)."""
    from transformers import AutoConfig

    return AutoConfig.for_model(
        dims["model_type"], vocab_size=dims["vocab"], hidden_size=dims["hidden"],
        intermediate_size=dims["intermediate"], num_hidden_layers=dims["layers"],
        num_attention_heads=dims["heads"], num_key_value_heads=dims["kv_heads"],
        tie_word_embeddings=dims["tied"], max_position_embeddings=dims["max_position_embeddings"],
        rms_norm_eps=dims["rms_norm_eps"], use_cache=False,
    )


def peak_bf16_tflops(device_name: str) -> tuple[str | None, float | None]:
    """(catalog key, dense bf16 peak) of the first GPU entry whose words all occur in the name."""
    low = device_name.lower()
    for g in spec()["gpus"]:
        if all(w in low for w in g["words"]):
            return g["key"], float(g["bf16_tflops"])
    return None, None
