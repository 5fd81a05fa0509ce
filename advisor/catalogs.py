"""The GPU and model catalogs (data in ``advisor/catalog/*.yaml``) and model-shape lookup.

    tunebench gpus
    tunebench models --json

``gpu(name)`` and ``shape(name_or_path, params_b=None)`` raise UserError with the closest
names for anything unknown. A model can be a catalog name, a local folder or file with an HF
``config.json``, or just a parameter count (``params_b``), which gets a generic Llama shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from common.errors import UserError, unknown
from common.files import read_json_object
from common.shape import Shape, shape_from_hf_config

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
    cfg = read_json_object(cfg_file, "model config")
    return shape_from_hf_config(cfg, path.name if path.is_dir() else path.parent.name)


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
