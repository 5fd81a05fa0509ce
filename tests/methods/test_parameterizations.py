"""Every registered parameterization, table-driven, on the tiny random Llamas (seconds each).

    TUNEBENCH_HOME=.tunebench HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q tests/methods/test_parameterizations.py

Per method: trainable count (closed form where one exists), which tensors one AdamW step
changes, zero-init, save -> load round trip, merge, and the reward-model ``score`` head.
A method is added by registering it and adding its rows to TRAINS (and CLOSED_FORM if it has one).
"""
from __future__ import annotations

import json
import re
from functools import cache

import pytest
import torch

from methods import PARAMETERIZATIONS, parameterization
from methods._common import trainable_counts
from common.errors import UserError
from methods.registry import FAMILIES

ALL = [
    "full", "freeze", "lora", "rslora", "dora", "pissa", "qlora", "lora8bit", "ia3", "prefix", "prompt",
    "ptuning", "adalora", "loha", "lokr", "vera", "oft", "boft", "ln_tuning", "bitfit", "adapter_houlsby",
    "adapter_pfeiffer",
]
NAMES = sorted(PARAMETERIZATIONS)
PROJ = r"(q|k|v|o|gate|up|down)_proj"
LORA = rf"\.{PROJ}\.lora_[AB]\.default\.weight$"
# What each method says trains: every trainable tensor's name must match (re.search).
TRAINS = {
    "full": r".",
    "freeze": r"^(model\.layers\.1\.|lm_head\.weight$)",  # with layers=1 on the 2-layer model
    "lora": LORA, "rslora": LORA, "pissa": LORA, "qlora": LORA, "lora8bit": LORA,
    "dora": rf"\.{PROJ}\.(lora_[AB]\.default\.weight|lora_magnitude_vector\.default\.weight)$",
    "adalora": rf"\.{PROJ}\.lora_[ABE]\.default$",
    "loha": rf"\.{PROJ}\.hada_w[12]_[ab]\.default$",
    "lokr": rf"\.{PROJ}\.lokr_w[12](_[ab])?\.default$",
    "vera": rf"\.{PROJ}\.vera_lambda_[bd]\.default$",
    "oft": rf"\.{PROJ}\.oft_R\.default\.weight$",
    "boft": rf"\.{PROJ}\.boft_[Rs]\.default$",
    "ia3": r"\.(k_proj|v_proj|down_proj)\.ia3_l\.default$",
    "ln_tuning": r"(input_layernorm|post_attention_layernorm|model\.norm)\.ln_tuning_layers\.default\.weight$",
    "prompt": r"^prompt_encoder\.default\.embedding\.weight$",
    "ptuning": r"^prompt_encoder\.default\.embedding\.weight$",
    "prefix": r"^prompt_encoder\.default\.(embedding|transform\.[02])\.",
    "bitfit": r"\.bias$",
    "adapter_houlsby": r"\.layers\.\d+\.(self_attn|mlp)\.bottleneck_adapter\.(down|up)\.(weight|bias)$",
    "adapter_pfeiffer": r"\.layers\.\d+\.mlp\.bottleneck_adapter\.(down|up)\.(weight|bias)$",
}
OVERRIDES = {"freeze": {"layers": 1}}  # the tiny model has 2 layers; train only the last
QUANTIZED = {"qlora", "lora8bit"}
# LLM.int8 also quantizes activations in the unmerged forward; the merged fp32 model does not.
MERGE_ATOL = {"lora8bit": 3e-2}
TEXT = "def add(a, b):\n    return a + b\n"
# Known, harmless peft warnings: BOFT's optional CUDA kernel (it falls back, see methods/boft.py)
# and LNTuning's generic notice for RMSNorm, which it handles like any module it copies.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Failed to load the CUDA extension"),
    pytest.mark.filterwarnings("ignore:Setting boft_n_butterfly_factor to 1"),
    pytest.mark.filterwarnings("ignore:Unsupported layer type.*RMSNorm"),
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices: one thread is as fast, and avoids thrashing when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def model_for(name: str) -> str:
    return "tiny-llama-bias" if name == "bitfit" else "tiny-llama"


def dims(cfg) -> dict:
    d, i, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    kv = cfg.num_key_value_heads * (getattr(cfg, "head_dim", None) or d // cfg.num_attention_heads)
    shapes = [(d, d), (d, kv), (d, kv), (d, d), (d, i), (d, i), (i, d)] * L  # (in, out) of q k v o gate up down
    return dict(d=d, i=i, L=L, kv=kv, shapes=shapes, io=sum(a + b for a, b in shapes), out=sum(b for _, b in shapes))


def closed_form(name: str, base, cfg) -> int | None:
    """Trainable parameters the papers' formulas give on this model; None where there is none."""
    k = dims(base.config)
    d, L, kv, shapes = k["d"], k["L"], k["kv"], k["shapes"]
    total = sum(p.numel() for p in base.parameters())
    adapter = lambda m: 2 * d * m + d + m  # noqa: E731  (down + up with biases)
    forms = {
        "full": lambda: total,
        "freeze": lambda: (sum(p.numel() for p in base.model.layers[-cfg.layers:].parameters())
                           + base.lm_head.weight.numel()),
        "lora": lambda: cfg.r * k["io"],
        "dora": lambda: cfg.r * k["io"] + k["out"],
        "adalora": lambda: cfg.init_r * k["io"] + cfg.init_r * len(shapes),
        "loha": lambda: 2 * cfg.r * k["io"],
        "vera": lambda: sum(cfg.r + o for _, o in shapes),
        "oft": lambda: sum(i // cfg.block_size * cfg.block_size * (cfg.block_size - 1) // 2 for i, _ in shapes),
        "ia3": lambda: L * (2 * kv + k["i"]),
        "ln_tuning": lambda: (2 * L + 1) * d,
        "prompt": lambda: cfg.num_virtual_tokens * d,
        "ptuning": lambda: cfg.num_virtual_tokens * 2 * L * kv,
        "prefix": lambda: (cfg.num_virtual_tokens * kv + (kv + 1) * cfg.encoder_hidden_size
                           + (cfg.encoder_hidden_size + 1) * 2 * L * kv),
        "bitfit": lambda: sum(p.numel() for n, p in base.named_parameters() if n.endswith(".bias")),
        "adapter_houlsby": lambda: 2 * L * adapter(d // cfg.reduction_factor),
        "adapter_pfeiffer": lambda: L * adapter(d // cfg.reduction_factor),
    }
    for alias in ("rslora", "pissa", "qlora", "lora8bit"):
        forms[alias] = forms["lora"]
    return forms[name]() if name in forms else None


def load(name: str, head: str = "causal_lm"):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from bench.models import prepare

    par = parameterization(name)
    cfg = par.make_config(OVERRIDES.get(name))
    kw = dict(dtype=torch.float32, **(par.load_kwargs(cfg) if par.load_kwargs else {}))
    path = prepare(model_for(name))
    if head == "seq_cls":
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **kw), par, cfg
    return AutoModelForCausalLM.from_pretrained(path, **kw), par, cfg


@cache
def batch(model_name: str) -> torch.Tensor:
    from transformers import AutoTokenizer

    from bench.models import prepare

    return AutoTokenizer.from_pretrained(prepare(model_name))(TEXT, return_tensors="pt")["input_ids"]


def logits(model, ids) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = model(input_ids=ids).logits
    return out[:, -ids.shape[1]:]  # prompt tuning prepends virtual-token positions


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """name -> one applied model after one AdamW step, with everything the tests compare."""

    @cache
    def run(name: str) -> dict:
        torch.manual_seed(0)
        ids = batch(model_for(name))
        base, _, _ = load(name)
        model, par, cfg = load(name)
        model = par.apply(model, cfg)
        before = {n: t.detach().clone() for n, t in model.state_dict().items() if isinstance(t, torch.Tensor)}
        init = logits(model, ids)
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        after = logits(model, ids)
        out = tmp_path_factory.mktemp(name)
        par.save(model, str(out))
        return dict(model=model, par=par, cfg=cfg, ids=ids, base=base, base_logits=logits(base, ids),
                    init=init, after=after, before=before, loss=loss.item(), saved=out)

    return run


def test_all_22_registered_with_families():
    assert sorted(ALL) == NAMES
    for name in NAMES:
        par = parameterization(name)
        assert par.family in FAMILIES and par.trains and par.description, name
        assert (par.merge is None) == (name in {"prefix", "prompt", "ptuning", "adapter_houlsby", "adapter_pfeiffer"})
    assert set(TRAINS) == set(NAMES)


def test_methods_json_lists_all(capsys):
    from advisor.cli import main

    assert main(["methods", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) >= {"parameterizations", "objectives"}
    rows = {r["name"]: r for r in info["parameterizations"]}
    assert sorted(rows) == sorted(ALL)
    assert rows["bitfit"]["requires"] == ["bias terms"] and "bitsandbytes" in rows["qlora"]["requires"]
    assert rows["lora"]["config"]["r"] == 8 and rows["lora"]["mergeable"] and not rows["prefix"]["mergeable"]


def test_methods_model_measures_trainable_share(capsys):
    from advisor.cli import main

    assert main(["methods", "--json", "--model", "tiny-llama"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["parameterizations"]}
    assert "tiny-llama-bias" in rows["bitfit"]["error"]
    assert rows["full"]["trainable_share"] == 1.0
    assert rows["lora"]["trainable_params"] == 8 * dims(load("lora")[0].config)["io"]
    assert all(0 < r["trainable_share"] <= 1 for n, r in rows.items() if n != "bitfit")


@pytest.mark.parametrize("name", NAMES)
def test_apply_trains_exactly_the_method_weights(name, trained):
    t = trained(name)
    trainable, _ = trainable_counts(t["model"])
    assert trainable > 0
    expected = closed_form(name, t["base"], t["cfg"])
    if expected is not None:
        assert trainable == expected
    names = [n for n, p in t["model"].named_parameters() if p.requires_grad]
    wrong = [n for n in names if not re.search(TRAINS[name], n)]
    assert not wrong, f"{name} trains {wrong[:3]}"


@pytest.mark.parametrize("name", NAMES)
def test_one_step_changes_only_trained_tensors(name, trained):
    t = trained(name)
    assert t["loss"] > 0
    params = dict(t["model"].named_parameters())
    state = {n: v for n, v in t["model"].state_dict().items() if isinstance(v, torch.Tensor)}
    changed = {n for n, v in state.items() if not torch.equal(v, t["before"][n])}
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert changed, f"{name}: the step changed nothing"
    assert changed <= trainable, f"{name}: frozen tensors changed: {sorted(changed - trainable)[:3]}"
    assert not torch.equal(t["after"], t["init"])


@pytest.mark.parametrize("name", [n for n in NAMES if PARAMETERIZATIONS[n].zero_init])
def test_zero_init_leaves_outputs_unchanged(name, trained):
    t = trained(name)
    # The base is loaded like the method loads it (NF4/int8 for qlora/lora8bit). The tolerance
    # is for PiSSA, which moves W's principal part into A·B (float rounding).
    torch.testing.assert_close(t["init"], t["base_logits"], atol=1e-5, rtol=1e-5)


def test_soft_prompts_change_outputs_from_the_start(trained):
    for name in ("prefix", "prompt", "ptuning"):
        assert not PARAMETERIZATIONS[name].zero_init
        assert not torch.allclose(trained(name)["init"], trained(name)["base_logits"])


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, trained):
    t = trained(name)
    fresh, par, cfg = load(name)
    torch.manual_seed(123)  # a different seed: nothing may depend on init randomness
    restored = par.load(fresh, str(t["saved"]), cfg)
    assert torch.equal(logits(restored, t["ids"]), t["after"])


@pytest.mark.parametrize("name", [n for n in NAMES if PARAMETERIZATIONS[n].merge is not None])
def test_merge_equals_unmerged(name, trained):
    t = trained(name)
    fresh, par, cfg = load(name)
    merged = par.merge(par.load(fresh, str(t["saved"]), cfg))
    assert not hasattr(merged, "peft_config") and type(merged).__name__.endswith("ForCausalLM")
    assert not any(type(m).__module__.startswith(("peft", "bitsandbytes")) for m in merged.modules())
    torch.testing.assert_close(logits(merged, t["ids"]), t["after"], atol=MERGE_ATOL.get(name, 1e-5), rtol=1e-4)


@pytest.mark.parametrize("name", sorted(QUANTIZED))
def test_quantized_base_runs_through_bitsandbytes(name, trained):
    import bitsandbytes as bnb

    model = trained(name)["model"]
    kind = bnb.nn.Linear4bit if name == "qlora" else bnb.nn.Linear8bitLt
    layers = [m for m in model.modules() if isinstance(m, kind)]
    assert len(layers) == 7 * model.config.num_hidden_layers
    if name == "qlora":
        assert all(m.weight.quant_state.quant_type == "nf4" for m in layers)
        assert all(m.compute_dtype == torch.float32 for m in layers)
    fp32, par, cfg = load("lora")  # the same method on a full-precision base is refused
    with pytest.raises(UserError, match=name):
        parameterization(name).apply(fp32, parameterization(name).make_config())


def test_bitfit_without_bias_names_a_model_that_has_them():
    model, par, cfg = load("lora")  # tiny-llama: no bias terms
    with pytest.raises(UserError, match=r"tiny-llama has none.*tiny-llama-bias"):
        parameterization("bitfit").apply(model, parameterization("bitfit").make_config())


@pytest.mark.parametrize("name", NAMES)
def test_reward_model_score_head_trains_and_is_saved(name, tmp_path):
    from safetensors import safe_open

    model, par, cfg = load(name, head="seq_cls")
    model = par.apply(model, cfg)
    assert any("score" in n for n, p in model.named_parameters() if p.requires_grad)
    par.save(model, str(tmp_path))
    keys = [k for f in tmp_path.glob("*.safetensors") for k in safe_open(str(f), "pt").keys()]
    assert any("score" in k for k in keys)


def test_bad_config_is_a_user_error():
    with pytest.raises(UserError, match="'rank'"):
        parameterization("lora").make_config({"rank": 4})
    with pytest.raises(UserError, match="tinit"):
        parameterization("adalora").make_config({"total_step": 10, "tinit": 10})
