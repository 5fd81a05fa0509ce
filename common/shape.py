"""Config dimensions of a decoder-only transformer: what memory, FLOPs and trainable counts depend on.

    python -c "from common.shape import Shape; print(Shape('x', 576, 30, 9, 3, 1536, 49152, tied=True).params())"

``Shape`` is read from a model catalog entry or from an HF ``config.json``
(``shape_from_hf_config``). The method cards (methods/card.py) take a Shape to give their
trainable-parameter counts and memory traits, so this lives at the bottom where every room reads it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from common.errors import UserError


@dataclass(frozen=True)
class Shape:
    """Config dimensions of a decoder-only transformer."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool = False
    mlp: str = "gated"        # gated (gate+up+down) or plain (up+down)
    bias: str = "none"        # none | qkv | attn (q,k,v,o) | linear (every block linear) | all (+ norm biases)
    head_dim: int | None = None
    experts: int = 1
    experts_per_token: int = 1

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        return self.heads * self.hd

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.hd

    def linears(self) -> dict[str, tuple[int, int]]:
        """Per-layer linear modules as name -> (in_features, out_features); MLP per expert."""
        h, i = self.hidden, self.intermediate
        mods = {"q_proj": (h, self.q_dim), "k_proj": (h, self.kv_dim), "v_proj": (h, self.kv_dim),
                "o_proj": (self.q_dim, h), "up_proj": (h, i), "down_proj": (i, h)}
        if self.mlp == "gated":
            mods["gate_proj"] = (h, i)
        return mods

    def bias_params(self) -> int:
        """Bias parameters per layer (what bitfit trains)."""
        if self.bias == "none":
            return 0
        if self.bias == "qkv":
            return self.q_dim + 2 * self.kv_dim
        if self.bias == "attn":  # a Llama with attention_bias: q, k, v and o
            return self.q_dim + 2 * self.kv_dim + self.hidden
        mlp = ("gate_proj", "up_proj", "down_proj")
        linear = sum(o * (self.experts if k in mlp else 1) for k, (_, o) in self.linears().items())
        if self.bias == "linear":  # a Llama with attention_bias and mlp_bias: RMSNorms have no bias
            return linear
        return linear + 2 * self.hidden  # + layer-norm biases

    def _attn_mlp(self) -> tuple[int, int]:
        """Per-layer weights of the attention projections and of one MLP (one expert in an MoE)."""
        attn = mlp = 0
        for k, (i, o) in self.linears().items():
            if k in ("q_proj", "k_proj", "v_proj", "o_proj"):
                attn += i * o
            else:
                mlp += i * o
        return attn, mlp

    def layer_params(self) -> int:
        attn, mlp = self._attn_mlp()
        router = self.hidden * self.experts if self.experts > 1 else 0
        return attn + mlp * self.experts + router + 2 * self.hidden + self.bias_params()

    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    def params(self) -> int:
        head = 0 if self.tied else self.vocab * self.hidden
        return self.embedding_params() + head + self.layers * self.layer_params() + self.hidden

    def linear_params(self) -> int:
        """Parameters inside the blocks' linear maps: Linear modules and an MoE's fused experts."""
        attn, mlp = self._attn_mlp()
        return self.layers * (attn + mlp * self.experts)

    def expert_params(self) -> int:
        """Parameters of an MoE's experts: fused 3-D tensors in transformers 5 (MixtralExperts.gate_up_proj),
        not Linear modules, so bitsandbytes leaves them unquantized and peft's target_modules miss them."""
        return 0 if self.experts == 1 else self.layers * self._attn_mlp()[1] * self.experts

    def quantizable_params(self) -> int:
        """Parameters in the blocks' Linear modules: what bitsandbytes' 4/8-bit layers store."""
        return self.linear_params() - self.expert_params()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["params"] = self.params()
        return d


def shape_from_hf_config(cfg: dict, name: str) -> Shape:
    """A Shape from the parsed contents of an HF ``config.json``."""
    cfg = cfg.get("text_config", cfg)  # multimodal wrappers (Gemma-3, ...) keep the LM here

    def pick(*keys, default=None):
        for k in keys:
            if cfg.get(k) is not None:
                return cfg[k]
        return default

    hidden = pick("hidden_size", "n_embd", "d_model")
    layers = pick("num_hidden_layers", "n_layer", "num_layers")
    heads = pick("num_attention_heads", "n_head")
    if not (hidden and layers and heads):
        raise UserError(f"{name}: not a decoder config (needs hidden_size, num_hidden_layers, num_attention_heads)")
    model_type = str(cfg.get("model_type", ""))
    act = str(pick("hidden_act", "activation_function", default="silu"))
    plain = model_type in ("phi", "opt", "falcon", "gpt2", "gpt_neox", "gptj", "bloom") or act in ("gelu_new", "relu") and "gate" not in json.dumps(cfg)
    kv = pick("num_key_value_heads", "n_head_kv", default=None)
    if kv is None:
        kv = 1 if cfg.get("multi_query") else heads
    if model_type in ("phi", "opt", "gpt2", "gpt_neox", "bloom"):
        bias = "all"
    elif model_type in ("qwen2", "qwen"):
        bias = "qkv"
    elif cfg.get("attention_bias"):  # Llama-style: o_proj too, and the MLP with mlp_bias
        bias = "linear" if cfg.get("mlp_bias") else "attn"
    else:
        bias = "none"
    return Shape(
        name=name,
        hidden=int(hidden), layers=int(layers), heads=int(heads), kv_heads=int(kv),
        intermediate=int(pick("intermediate_size", "ffn_dim", "n_inner", default=4 * int(hidden))),
        vocab=int(pick("vocab_size", default=32000)),
        tied=bool(cfg.get("tie_word_embeddings", model_type in ("opt", "gemma", "gemma2", "gemma3_text"))),
        mlp="plain" if plain else "gated", bias=bias,
        head_dim=cfg.get("head_dim"),
        experts=int(pick("num_local_experts", "num_experts", default=1) or 1),
        experts_per_token=int(pick("num_experts_per_tok", default=1) or 1),
    )
