"""Every parameterization's card against the real method, table-driven, on three model shapes.

    TUNEBENCH_HOME=.tunebench HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q tests/methods/test_cards.py

For each registered parameterization × {tiny-llama, tiny-llama-bias, smollm2-135m}: apply the
method, count its trainable parameters (``methods._common.trainable_counts``) and compare them
with ``CARD.trainable_params(shape, cfg)`` — exactly, unless the row states a tolerance — and
check every trainable tensor's name against the row's regex. SmolLM2-135M is built from its
catalog dimensions on the meta device (no weights, instant). Adding a method = its file plus
one row in ROWS; a registered method without a row fails ``test_every_registered_method_has_a_row``.
"""
from __future__ import annotations

import copy
import re
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import torch

from common.errors import UserError
from common.shape import Shape, shape_from_hf_config
from methods import PARAMETERIZATIONS, parameterization
from methods._common import trainable_counts
from methods.card import FAMILIES, LATENCY

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("tiny-llama", "tiny-llama-bias", "smollm2-135m")
META = {"smollm2-135m"}  # built from the catalog's dimensions on the meta device
PROJ = r"(q|k|v|o|gate|up|down)_proj"
LORA = rf"\.{PROJ}\.lora_[AB]\.default\.weight$"


@dataclass(frozen=True)
class Row:
    """trains: every trainable tensor's name matches it (re.search).
    override: settings for every model (the tiny models have 2 layers).
    tol: relative tolerance of the card's count (0 = exact).
    meta_as: on a meta-device model, apply this method with the same settings instead, and why.
    """

    trains: str
    override: dict = field(default_factory=dict)
    tol: float = 0.0
    meta_as: tuple[str, str] | None = None


QUANT_ON_META = ("lora", "a meta model cannot be quantized: the card is checked against the same LoRA "
                 "on the unquantized model (the quantized base changes no trainable count)")
ROWS: dict[str, Row] = {
    "full": Row(r"."),
    # The last layer (of 2 in the tiny models, of 30 in SmolLM2) and the head; SmolLM2 ties it to the embedding.
    "freeze": Row(r"^(model\.layers\.(1|29)\.|lm_head\.weight$|model\.embed_tokens\.weight$)", {"layers": 1}),
    "lora": Row(LORA),
    "rslora": Row(LORA),
    "pissa": Row(LORA, meta_as=("lora", "a meta weight has no SVD; PiSSA's tensors are LoRA's, only their init differs")),
    "qlora": Row(LORA, meta_as=QUANT_ON_META),
    "lora8bit": Row(LORA, meta_as=QUANT_ON_META),
    "dora": Row(rf"\.{PROJ}\.(lora_[AB]\.default\.weight|lora_magnitude_vector\.default\.weight)$"),
    # When peft moves the adapter to another device than where it built it (meta here), its ParameterDict
    # re-wraps the rank counter ``ranknum`` (1 per projection) as a trainable parameter: 6e-5 of the count.
    "adalora": Row(rf"\.{PROJ}\.(lora_[ABE]|ranknum)\.default$", tol=1e-4),
    "loha": Row(rf"\.{PROJ}\.hada_w[12]_[ab]\.default$"),
    "lokr": Row(rf"\.{PROJ}\.lokr_w[12](_[ab])?\.default$"),
    "vera": Row(rf"\.{PROJ}\.vera_lambda_[bd]\.default$"),
    "oft": Row(rf"\.{PROJ}\.oft_R\.default\.weight$"),
    # peft builds the butterfly product only with its CUDA extension and falls back to one factor
    # on CPU; with butterfly_factor=1 the card's formula is what peft builds here, exactly.
    "boft": Row(rf"\.{PROJ}\.boft_[Rs]\.default$", {"butterfly_factor": 1}),
    "hra": Row(rf"\.{PROJ}\.hra_u\.default$"),
    "ia3": Row(r"\.(k_proj|v_proj|down_proj)\.ia3_l\.default$"),
    "ln_tuning": Row(r"(input_layernorm|post_attention_layernorm|model\.norm)\.ln_tuning_layers\.default\.weight$"),
    "prompt": Row(r"^prompt_encoder\.default\.embedding\.weight$"),
    "ptuning": Row(r"^prompt_encoder\.default\.embedding\.weight$"),
    "prefix": Row(r"^prompt_encoder\.default\.(embedding|transform\.[02])\."),
    "bitfit": Row(r"\.bias$"),
    "adapter_houlsby": Row(r"\.layers\.\d+\.(self_attn|mlp)\.bottleneck_adapter\.(down|up)\.(weight|bias)$"),
    "adapter_pfeiffer": Row(r"\.layers\.\d+\.mlp\.bottleneck_adapter\.(down|up)\.(weight|bias)$"),
}
NAMES = sorted(PARAMETERIZATIONS)


@cache
def catalog_shape(name: str) -> Shape:
    from advisor.catalogs import models

    return models()[name]


@cache
def meta_model(name: str):
    """A causal LM of the catalog's dimensions on the meta device (no weights are allocated)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    s = catalog_shape(name)
    cfg = LlamaConfig(
        hidden_size=s.hidden, num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
        intermediate_size=s.intermediate, vocab_size=s.vocab, tie_word_embeddings=s.tied, head_dim=s.hd,
        attention_bias=s.bias != "none", name_or_path=name,
    )
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg)


@cache
def tiny_model(name: str):
    from transformers import AutoModelForCausalLM

    from bench.models import prepare

    return AutoModelForCausalLM.from_pretrained(prepare(name), dtype=torch.float32)


def model_and_shape(model_name: str, method: str, cfg):
    """A fresh base for ``method`` and its Shape (the quantized methods load their own quantized base)."""
    if model_name in META:
        return copy.deepcopy(meta_model(model_name)), catalog_shape(model_name)
    par = parameterization(method)
    if par.load_kwargs:
        from transformers import AutoModelForCausalLM

        from bench.models import prepare

        model = AutoModelForCausalLM.from_pretrained(prepare(model_name), dtype=torch.float32, **par.load_kwargs(cfg))
    else:
        model = copy.deepcopy(tiny_model(model_name))
    return model, shape_from_hf_config(model.config.to_dict(), model_name)


def test_every_registered_method_has_a_row():
    assert sorted(ROWS) == NAMES


def test_cards_load_without_torch():
    code = ("import sys, methods; cards = methods.cards(); "
            "bad = [m for m in ('torch', 'peft', 'transformers', 'trl', 'bitsandbytes') if m in sys.modules]; "
            "assert not bad, bad; print(len(cards))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout) >= len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_card_is_consistent(name):
    card = parameterization(name).card
    assert card.name == name and card.family in FAMILIES and card.label and card.trains and card.description
    cfg = card.settings()  # every setting has a default
    assert card.make_config(card.defaults()) == cfg
    assert card.latency in LATENCY
    assert (card.latency == "none") == card.mergeable
    assert (card.latency == "extra-tokens") == (card.family == "soft-prompt")
    assert card.shares_base == (name not in ("full", "freeze"))
    assert card.memory.in_base == (card.family in ("full", "selective"))
    assert (card.memory.base != "dense") == (card.family == "quantized") == ("bitsandbytes" in card.requires)
    s = catalog_shape("qwen-7b")  # has bias terms
    assert card.trainable_params(s) > 0 and card.memory.per_token(s, cfg, 2, 4, 4) >= 0


def test_labels_are_unique():
    labels = [parameterization(n).card.label for n in NAMES]
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("name", NAMES)
def test_card_counts_what_the_method_trains(name, model_name):
    row, par = ROWS[name], parameterization(name)
    cfg = par.make_config(row.override)
    model, shape = model_and_shape(model_name, name, cfg)
    expected = par.card.trainable_params(shape, row.override)
    if "bias terms" in par.card.requires and shape.bias == "none":
        assert expected == 0
        with pytest.raises(UserError, match="bias"):
            par.apply(model, cfg)
        return
    applier = par
    if model_name in META and row.meta_as:
        applier = parameterization(row.meta_as[0])
        cfg = applier.make_config({k: v for k, v in cfg.model_dump().items() if k in applier.card.settings.model_fields})
    if name == "full":  # the Shape itself describes the model
        assert shape.params() == trainable_counts(model)[1]
    model = applier.apply(model, cfg)
    trainable, _ = trainable_counts(model)
    if row.tol:
        assert abs(trainable - expected) <= row.tol * expected, (trainable, expected)
    else:
        assert trainable == expected
    wrong = [n for n, p in model.named_parameters() if p.requires_grad and not re.search(row.trains, n)]
    assert not wrong, f"{name} trains {wrong[:3]}"


@pytest.mark.parametrize("name", NAMES)
def test_peft_trait_matches_the_registration(name):
    """``card.peft`` (read by the estimator: fp32 adapters, the reference as the disabled adapter) is
    exactly the methods registered through methods/_peft.py's peft_method."""
    par = parameterization(name)
    assert par.card.peft == (par.apply.__module__ == "methods._peft")


@pytest.mark.parametrize("name", [n for n in NAMES if parameterization(n).card.peft])
def test_moe_experts_are_not_peft_targets(name):
    """transformers 5 stores an MoE's experts as fused 3-D parameters, not Linear modules, so a target
    list that names the MLP adapts only the attention (trace-grid row 59: mixtral lora, 0.03 GiB)."""
    moe = catalog_shape("mixtral-8x7b")
    dense = Shape("dense", moe.hidden, moe.layers, moe.heads, moe.kv_heads, moe.intermediate, moe.vocab)
    card = parameterization(name).card
    if "target_modules" not in card.settings.model_fields:
        return
    mlp = ("gate_proj", "up_proj", "down_proj")
    attn_only = {"target_modules": [m for m in card.settings().target_modules if m not in mlp]}
    assert card.trainable_params(moe) == card.trainable_params(dense, attn_only)
