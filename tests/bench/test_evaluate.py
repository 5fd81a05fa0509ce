"""lm-eval scoring end to end, offline, on the tiny random Llama: smoke and a sample of each task.

    .venv/bin/python -m pytest -q tests/bench/test_evaluate.py

The tiny model scores near chance; these tests check that every metric kind runs through
lm-eval from the prepared local files and returns the documented shape, not model quality.
"""
import json
import math

import pytest

from advisor.cli import main
from bench import taskdata
from bench.evaluate import evaluate, general_loss

LIMIT = 6


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("evalhome")
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNEBENCH_HOME", str(home))
    for t in taskdata.list_tasks():
        taskdata.prepare(t.name, limit=20)
    yield home
    mp.undo()


def _check(res, task, n):
    t = taskdata.get_task(task)
    assert res["task"] == task and res["metric"] == t.metric.name and res["n"] + res["skipped"] == n and res["n"] > 0
    assert res["higher_is_better"] == t.metric.higher_is_better
    assert math.isfinite(res["value"]) and res["metrics"][res["metric"]] == res["value"]


def test_smoke_via_cli_json(tiny_llama, capsys):
    assert main(["eval", "--model", str(tiny_llama), "--task", "smoke", "--limit", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    _check(res, "smoke", 4)
    assert 0.0 <= res["value"] <= 1.0


@pytest.mark.parametrize("task", ["wiki-topics", "math-prefs", "gsm-symbolic", "pydocs-dapt", "general-text", "instruct-mix"])
def test_each_task_scores_offline(tiny_llama, sample_home, task):
    # 16 new tokens: enough to exercise generate_until and the checker on a random model.
    res = evaluate(str(tiny_llama), task, limit=LIMIT, batch_size=4, max_gen_toks=16)
    _check(res, task, LIMIT)
    if taskdata.get_task(task).metric.kind in ("multiple_choice", "preference_ll", "generate_number"):
        assert 0.0 <= res["value"] <= 1.0
    else:
        assert res["value"] > 0


def test_peft_adapter_is_applied(tiny_llama, sample_home, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():  # a visibly different model, so the score must move
        for n, p in peft.named_parameters():
            if "lora_" in n:
                p.normal_(0, 1.0)
    peft.save_pretrained(tmp_path / "adapter")
    base = evaluate(str(tiny_llama), "general-text", limit=4)
    both = evaluate(str(tiny_llama), "general-text", adapter_dir=str(tmp_path / "adapter"), limit=4)
    _check(both, "general-text", 4)
    assert both["value"] != pytest.approx(base["value"], rel=1e-3)
    # A folder without adapter_config.json is a user error, not a traceback.
    assert main(["eval", "--model", str(tiny_llama), "--adapter", str(tmp_path), "--task", "smoke"]) == 2


def test_general_loss_takes_a_folder_or_a_loaded_model(tiny_llama, sample_home):
    from transformers import AutoModelForCausalLM

    by_dir = general_loss(str(tiny_llama), limit=8)
    by_model = general_loss(AutoModelForCausalLM.from_pretrained(tiny_llama), limit=8)
    assert by_dir == pytest.approx(by_model, rel=1e-5)
    # Random 1024-token vocabulary: loss near ln(1024) ~ 6.9 nats.
    assert 5.0 < by_dir < 8.0


@pytest.mark.parametrize("stack", ["sft:prompt", "sft:qlora"])
def test_harness_records_forgetting_for_soft_prompt_and_quantized_bases(tiny_llama, sample_home, stack, tmp_path):
    """Soft prompts prepend positions to the logits; quantized bases need their own baseline."""
    from common.stack import StackSpec, parse_stack_string
    from bench.train import StackRun

    spec = StackSpec(model=str(tiny_llama), task="smoke", hp={"max_steps": 2, "eval_limit": 4},
                     stages=parse_stack_string(stack))
    [rec] = StackRun(spec, tmp_path / "out", db=None, quiet=True).run()
    assert rec["status"] == "ok", rec["error"]
    assert math.isfinite(rec["forgetting"])
    assert rec["forgetting"] == pytest.approx(rec["general_loss_after"] - rec["general_loss_before"])


@pytest.mark.parametrize("content", ["FIFO", b"\x00\xb2binary", b"{\"half\": ", b"[1, 2]", b""])
def test_damaged_baseline_cache_is_recomputed_not_fatal(tiny_llama, tmp_path, monkeypatch, content):
    """The baseline cache is disposable: a damaged one is treated as empty, then rewritten."""
    import os

    from bench.quality import baseline

    monkeypatch.setenv("TUNEBENCH_HOME", str(tmp_path))
    cache = tmp_path / "cache" / "baselines.json"
    cache.parent.mkdir(parents=True)
    if content == "FIFO":
        os.mkfifo(cache)
    else:
        cache.write_bytes(content)
    calls = []
    assert baseline(tiny_llama, "metric-x", "smoke", 4, lambda: calls.append(1) or 0.25) == 0.25
    assert baseline(tiny_llama, "metric-x", "smoke", 4, lambda: calls.append(1) or 0.5) == 0.25  # now cached
    assert calls == [1] and cache.is_file()
