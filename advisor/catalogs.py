"""The GPU and model catalogs (data in ``advisor/catalog/*.yaml``) and model-shape lookup.

    tunebench gpus
    tunebench models --json

``gpu(name)`` and ``shape(name_or_path, params_b=None)`` raise UserError with the closest
names for anything unknown. A model can be a catalog name, a local folder or file with an HF
``config.json``, or just a parameter count (``params_b``), which gets a generic Llama shape.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from methods.errors import UserError, unknown

CATALOG = Path(__file__).parent / "catalog"


@dataclass(frozen=True)
class Gpu:
    key: str
    name: str
    memory_gib: float
    bf16_tflops: float
    fp32_tflops: float
    bandwidth_gbs: float
    usd_per_hour: float
    bf16: bool = True
    source: str = ""

    @property
    def is_cpu(self) -> bool:
        return self.key == "cpu"


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
    bias: str = "none"        # none | qkv | all
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
        mods = self.linears()
        return sum(o for _, o in mods.values()) + 2 * self.hidden  # + layer-norm biases

    def layer_params(self) -> int:
        mods = self.linears()
        attn = sum(i * o for k, (i, o) in mods.items() if k in ("q_proj", "k_proj", "v_proj", "o_proj"))
        mlp = sum(i * o for k, (i, o) in mods.items() if k not in ("q_proj", "k_proj", "v_proj", "o_proj"))
        router = self.hidden * self.experts if self.experts > 1 else 0
        return attn + mlp * self.experts + router + 2 * self.hidden + self.bias_params()

    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    def params(self) -> int:
        head = 0 if self.tied else self.vocab * self.hidden
        return self.embedding_params() + head + self.layers * self.layer_params() + self.hidden

    def linear_params(self) -> int:
        """Parameters inside the blocks' linear layers (what 4/8-bit quantization stores)."""
        mods = self.linears()
        per = sum(i * o for k, (i, o) in mods.items() if k in ("q_proj", "k_proj", "v_proj", "o_proj"))
        per += sum(i * o for k, (i, o) in mods.items() if k not in ("q_proj", "k_proj", "v_proj", "o_proj")) * self.experts
        return self.layers * per

    def to_dict(self) -> dict:
        d = asdict(self)
        d["params"] = self.params()
        return d


def _load(name: str) -> dict:
    with open(CATALOG / name) as f:
        return yaml.safe_load(f)


@lru_cache(maxsize=None)
def gpus() -> dict[str, Gpu]:
    out = {}
    for key, v in _load("gpus.yaml").items():
        v = dict(v)
        v.pop("aliases", None)
        out[key] = Gpu(key=key, **v)
    return out


@lru_cache(maxsize=None)
def _gpu_aliases() -> dict[str, str]:
    out = {}
    for key, v in _load("gpus.yaml").items():
        for a in v.get("aliases", []):
            out[str(a)] = key
    return out


def gpu(name: str) -> Gpu:
    """A catalog GPU by key or alias (case and spaces/underscores ignored)."""
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    key = key.removeprefix("nvidia-").removeprefix("geforce-")
    table = gpus()
    key = _gpu_aliases().get(key, key)
    if key not in table:
        raise unknown("GPU", name, list(table) + list(_gpu_aliases()))
    return table[key]


@lru_cache(maxsize=None)
def models() -> dict[str, Shape]:
    return {k: Shape(name=k, **v) for k, v in _load("models.yaml").items()}


def generic_shape(params_b: float) -> Shape:
    """A Llama-style shape with about ``params_b`` billion parameters (for --params-b)."""
    if params_b <= 0:
        raise UserError(f"--params-b must be positive, got {params_b}")
    n = params_b * 1e9
    layers = 16 if n < 3e8 else 24 if n < 1.5e9 else 28 if n < 5e9 else 32 if n < 1e10 else 48 if n < 2.5e10 else 64 if n < 5e10 else 80
    vocab = 32000 if n < 1e9 else 128256
    # Per layer ~ 2h^2 (attention with 4:1 GQA, ~2.5 h^2) + 3*h*(3.5h) (SwiGLU) ~ 13 h^2.
    body = max(n - vocab * math.sqrt(n / (13 * layers)) * 2, n * 0.5)
    hidden = max(128, int(round(math.sqrt(body / (13 * layers)) / 64)) * 64)
    heads = max(1, hidden // 64 if hidden < 1024 else hidden // 128)
    kv = max(1, heads // 4) if heads % 4 == 0 else heads
    inter = int(round(3.5 * hidden / 64)) * 64
    return Shape(name=f"generic-{params_b:g}b", hidden=hidden, layers=layers, heads=heads,
                 kv_heads=kv, intermediate=inter, vocab=vocab, tied=False)


def shape_from_config(path: Path) -> Shape:
    """Read an HF config.json (a folder holding one, or the file itself)."""
    cfg_file = path / "config.json" if path.is_dir() else path
    try:
        cfg = json.loads(cfg_file.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read model config {cfg_file}: {e}") from None
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
        raise UserError(f"{cfg_file}: not a decoder config (needs hidden_size, num_hidden_layers, num_attention_heads)")
    model_type = str(cfg.get("model_type", ""))
    act = str(pick("hidden_act", "activation_function", default="silu"))
    plain = model_type in ("phi", "opt", "falcon", "gpt2", "gpt_neox", "gptj", "bloom") or act in ("gelu_new", "relu") and "gate" not in json.dumps(cfg)
    kv = pick("num_key_value_heads", "n_head_kv", default=None)
    if kv is None:
        kv = 1 if cfg.get("multi_query") else heads
    bias = "all" if model_type in ("phi", "opt", "gpt2", "gpt_neox", "bloom") else "qkv" if model_type in ("qwen2", "qwen") or cfg.get("attention_bias") else "none"
    return Shape(
        name=path.name if path.is_dir() else path.parent.name,
        hidden=int(hidden), layers=int(layers), heads=int(heads), kv_heads=int(kv),
        intermediate=int(pick("intermediate_size", "ffn_dim", "n_inner", default=4 * int(hidden))),
        vocab=int(pick("vocab_size", default=32000)),
        tied=bool(cfg.get("tie_word_embeddings", model_type in ("opt", "gemma", "gemma2", "gemma3_text"))),
        mlp="plain" if plain else "gated", bias=bias,
        head_dim=cfg.get("head_dim"),
        experts=int(pick("num_local_experts", "num_experts", default=1) or 1),
        experts_per_token=int(pick("num_experts_per_tok", default=1) or 1),
    )


def shape(model: str | None = None, params_b: float | None = None) -> Shape:
    """Resolve --model NAME|PATH or --params-b X to a Shape."""
    if model:
        table = models()
        key = model.strip().lower()
        if key in table:
            return table[key]
        p = Path(model).expanduser()
        if p.exists():
            return shape_from_config(p)
        raise unknown("model", model, table)
    if params_b is not None:
        return generic_shape(params_b)
    raise UserError("give --model NAME|PATH or --params-b X")
