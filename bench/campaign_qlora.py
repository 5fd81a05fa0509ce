"""QLoRA's base for the GPU campaign: a random-init model whose decoder linears are NF4 from the start.

Used by bench/campaign_run.py when bitsandbytes imports (the GPU machine lacks it; its 41 MiB wheel
can be carried). A real QLoRA load (``from_pretrained`` with a BitsAndBytesConfig) never holds the
whole bf16 model on the device, and neither does this: the model is built on the meta device, each
decoder linear gets a random bf16 weight on the device that is quantized at once (one weight alive
at a time), and only the rest (embeddings, norms, LM head, rotary tables) is materialised in bf16.
Quantization as methods/_quant.py loads it: NF4, no double quantization, the LM head kept in full
precision; compute dtype bf16 (the project's fp32 there is a CPU choice: bf16 is slow on its CPU).
"""
from __future__ import annotations


def param_count(p) -> int:
    """Logical parameter count; bitsandbytes packs two 4-bit values per stored byte (as methods/_common.py)."""
    import torch

    n = p.numel()
    if type(p).__name__ == "Params4bit":
        n *= 2 * torch.empty((), dtype=getattr(p, "quant_storage", torch.uint8)).element_size()
    return n


def _nf4_linear(lin, std: float, device: str):
    import bitsandbytes as bnb
    import torch

    q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None, compute_dtype=torch.bfloat16,
                          compress_statistics=False, quant_type="nf4", device="meta")
    w = torch.empty(lin.out_features, lin.in_features, dtype=torch.bfloat16, device=device).normal_(std=std)
    # Params4bit quantizes on .to(device); the bf16 weight is dropped when this returns
    q.weight = bnb.nn.Params4bit(w, requires_grad=False, compress_statistics=False, quant_type="nf4",
                                 module=q).to(device)
    if lin.bias is not None:
        q.bias = torch.nn.Parameter(torch.zeros(lin.out_features, dtype=torch.bfloat16, device=device),
                                    requires_grad=False)
    return q


def _materialise(model, std: float, device: str) -> None:
    """Embeddings and head (random), norm scales (ones) and the rotary tables, on the device in bf16."""
    import itertools

    import torch

    inner = model.model

    def weight(shape, fill=None):
        t = torch.empty(shape, dtype=torch.bfloat16, device=device)
        return torch.nn.Parameter(t.fill_(fill) if fill is not None else t.normal_(std=std))

    with torch.no_grad():
        inner.embed_tokens.weight = weight(inner.embed_tokens.weight.shape)
        model.lm_head.weight = (inner.embed_tokens.weight if model.config.tie_word_embeddings
                                else weight(model.lm_head.weight.shape))
        for mod in model.modules():
            for name, p in list(mod.named_parameters(recurse=False)):
                if p.is_meta:  # what is left are the RMSNorm scales
                    setattr(mod, name, weight(p.shape, 1.0))
        with torch.device(device):
            inner.rotary_emb = type(inner.rotary_emb)(config=model.config)
    left = [n for n, t in itertools.chain(model.named_parameters(), model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"qlora base: {len(left)} tensors were not materialised, e.g. {left[0]}")


def nf4_model(dims: dict, device: str):
    """The model of ``dims`` (a campaign shape) with NF4 decoder linears, marked 4-bit for peft."""
    import torch
    from transformers import AutoModelForCausalLM

    from bench.campaign_plan import hf_config

    cfg = hf_config(dims)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    for layer in model.model.layers:
        for parent in list(layer.modules()):
            for name, lin in list(parent.named_children()):
                if type(lin) is torch.nn.Linear:
                    setattr(parent, name, _nf4_linear(lin, cfg.initializer_range, device))
    _materialise(model, cfg.initializer_range, device)
    model.is_loaded_in_4bit = True  # peft wraps Linear4bit layers with its bnb LoRA layers only then
    return model
