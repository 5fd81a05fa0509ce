"""Random-initialised models with real architecture shapes, for memory and throughput only.

    python -m bench.shapes qwen2.5-0.5b          # builds $TUNEBENCH_HOME/models/shape-qwen2.5-0.5b
    tunebench bench run --matrix gpu-memory       # matrices name them as shape:NAME

Memory and speed depend on the architecture, not on the weights, so a
random model with Llama-3.x / Qwen2.5 / Mistral dimensions measures what the real one would.
The configs below are the published ones (hidden size, layers, heads, KV heads, MLP width,
vocabulary, tied embeddings). The tokenizer is the tiny project tokenizer: its ids are a subset
of every vocabulary here, while embeddings and logits keep the real vocabulary size. Weights
are written in bf16 (what a GPU run loads); built on the GPU when there is one.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from filelock import FileLock

from bench.home import models_dir
from common.errors import unknown

# name: (architecture, config values)
SHAPES: dict[str, tuple[str, dict]] = {
    "qwen2.5-0.5b": ("qwen2", dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                   num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                                   tie_word_embeddings=True)),
    "llama-3.2-1b": ("llama", dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                   num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                   tie_word_embeddings=True)),
    "qwen2.5-3b": ("qwen2", dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                                 num_attention_heads=16, num_key_value_heads=2, vocab_size=151936,
                                 tie_word_embeddings=True)),
    "mistral-7b": ("mistral", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                   num_attention_heads=32, num_key_value_heads=8, vocab_size=32768,
                                   tie_word_embeddings=False)),
    "llama-3.1-8b": ("llama", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                   num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                   tie_word_embeddings=False)),
}
PREFIX = "shape:"


def build(name: str, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from bench.models import build_tokenizer

    arch, values = SHAPES[name]
    tok = build_tokenizer()
    cfg = AutoConfig.for_model(arch, max_position_embeddings=8192, bos_token_id=tok.bos_token_id,
                               eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **values)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def resolve(model: str) -> str:
    """``shape:NAME`` -> the built folder (built once, atomically); any other name unchanged."""
    if not model.startswith(PREFIX):
        return model
    name = model[len(PREFIX):]
    if name not in SHAPES:
        raise unknown("model shape", name, SHAPES)
    target = models_dir() / f"shape-{name}"
    if (target / "config.json").exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").exists():
            tmp = Path(tempfile.mkdtemp(prefix=f".shape-{name}-", dir=target.parent))
            try:
                build(name, tmp)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


if __name__ == "__main__":  # python -m bench.shapes NAME
    print(resolve(PREFIX + sys.argv[1]))
