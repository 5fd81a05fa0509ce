"""Every registered parameterization, table-driven, on the tiny random Llamas (seconds each).

    TUNEBENCH_HOME=.tunebench HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q tests/methods/test_parameterizations.py

Per method: which tensors one AdamW step changes, zero-init (as the card says), save -> load
round trip, merge (for cards that say mergeable), and the reward-model ``score`` head. What each
method trains and how many parameters (the card's formula) is tests/methods/test_cards.py.
"""
from __future__ import annotations

import json
from functools import cache

import pytest
import torch

from common.errors import UserError
from common.shape import shape_from_hf_config
from methods import PARAMETERIZATIONS, parameterization
from methods._quant import keep_training_layout
from methods.card import FAMILIES

NAMES = sorted(PARAMETERIZATIONS)  # the one list: tests/methods/test_cards.py has a row for each
OVERRIDES = {"freeze": {"layers": 1}}  # the tiny model has 2 layers; train only the last
QUANTIZED = {"qlora", "lora8bit"}
# LLM.int8 also quantizes activations in the unmerged forward; the merged fp32 model does not.
MERGE_ATOL = {"lora8bit": 3e-2}
TEXT = "def add(a, b):\n    return a + b\n"


def model_for(name: str) -> str:
    return "tiny-llama-bias" if "bias terms" in PARAMETERIZATIONS[name].card.requires else "tiny-llama"


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
        keep_training_layout(base)  # evaluate a quantized base with the NF4 kernel the method trains with
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


def test_registered_with_families():
    assert len(NAMES) >= 23
    for name in NAMES:
        par = parameterization(name)
        assert par.family in FAMILIES and par.card.trains and par.card.description, name
        assert (par.merge is None) == (not par.card.mergeable)
    assert {n for n in NAMES if not parameterization(n).card.mergeable} == {
        "prefix", "prompt", "ptuning", "adapter_houlsby", "adapter_pfeiffer"}


def test_methods_json_lists_all(capsys):
    from advisor.cli import main

    assert main(["methods", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) >= {"parameterizations", "objectives"}
    rows = {r["name"]: r for r in info["parameterizations"]}
    assert sorted(rows) == NAMES
    assert rows["bitfit"]["requires"] == ["bias terms"] and "bitsandbytes" in rows["qlora"]["requires"]
    assert rows["lora"]["config"]["r"] == 8 and rows["lora"]["mergeable"] and not rows["prefix"]["mergeable"]


def test_methods_model_measures_trainable_share(capsys):
    from advisor.cli import main

    assert main(["methods", "--json", "--model", "tiny-llama"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["parameterizations"]}
    assert "tiny-llama-bias" in rows["bitfit"]["error"]
    assert rows["full"]["trainable_share"] == 1.0
    shape = shape_from_hf_config(load("lora")[0].config.to_dict(), "tiny-llama")
    assert rows["lora"]["trainable_params"] == parameterization("lora").card.trainable_params(shape)
    assert all(0 < r["trainable_share"] <= 1 for n, r in rows.items() if n != "bitfit")


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


@pytest.mark.parametrize("name", [n for n in NAMES if PARAMETERIZATIONS[n].card.zero_init])
def test_zero_init_leaves_outputs_unchanged(name, trained):
    t = trained(name)
    # The base is loaded like the method loads it (NF4/int8 for qlora/lora8bit). The tolerance
    # is for PiSSA, which moves W's principal part into A·B (float rounding).
    torch.testing.assert_close(t["init"], t["base_logits"], atol=1e-5, rtol=1e-5)


def test_soft_prompts_change_outputs_from_the_start(trained):
    for name in ("prefix", "prompt", "ptuning"):
        assert not PARAMETERIZATIONS[name].card.zero_init
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


@pytest.mark.parametrize("method", ["qlora", "lora8bit"])
def test_quantized_base_trains_the_same_after_a_no_grad_evaluation(method):
    """The harness scores the loaded base (no grad) before applying the method; bitsandbytes must not
    repack the quantized layers for inference then, or training goes through another layout (QLoRA
    learned ~5x less on SmolLM2 before this was caught)."""
    import torch

    from bench.models import model_path
    from bench.train import load_model

    par = parameterization(method)
    cfg = par.make_config({})
    x = torch.randint(0, 100, (4, 32))

    def losses(evaluate_first: bool) -> list[float]:
        torch.manual_seed(0)
        model = load_model(model_path("tiny-llama"), "causal_lm", par.load_kwargs(cfg))
        if evaluate_first:
            model.eval()
            with torch.no_grad():
                model(input_ids=x)
            model.train()
        model = par.apply(model, cfg)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
        out = []
        for _ in range(6):
            loss = model(input_ids=x, labels=x).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            out.append(loss.item())
        return out

    assert losses(True) == pytest.approx(losses(False), rel=1e-3)  # int8 matmuls differ in the 5th digit
