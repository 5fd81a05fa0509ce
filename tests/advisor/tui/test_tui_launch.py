"""The launch of a recommendation without screens: model resolution, the plan and YAML, data counts,
the saved estimate joined onto results, and the people-readable numbers.

    .venv/bin/python -m pytest -q tests/advisor/tui/test_tui_launch.py
"""
from __future__ import annotations

import json

import pytest
import yaml
from tui_records import seed_db

from advisor.tui import fmt
from advisor.tui.estimates import launch_estimate, with_estimates, write_estimate
from advisor.tui.local_models import launchable
from advisor.tui.plan import Inputs, data_counts, parse_stack_yaml, recommended_plan
from advisor.tui.runs import with_derived
from bench.home import models_dir
from bench.results import read_runs, write_record
from bench.schema import new_record
from bench.userdata import inspect_data


@pytest.mark.parametrize("fn,value,text", [
    (fmt.gib, 10.24, "10.2 GiB"), (fmt.gib, 0.01, "<0.1 GiB"), (fmt.gib, None, "-"),
    (fmt.gib_bytes, 3 * 2**30, "3.0 GiB"), (fmt.hours, 4.6, "4.6 h"), (fmt.hours, 0.58, "35 min"),
    (fmt.hours, 100, "4.2 days"), (fmt.seconds, 41.3, "41 s"), (fmt.seconds, 2.34, "2.3 s"), (fmt.usd, 4.6, "$4.60"),
    (fmt.usd, 1250, "$1,250.00"), (fmt.number, 23.5402, "23.5"), (fmt.number, 24.0, "24"), (fmt.number, None, ""),
])
def test_numbers_for_people(fn, value, text):
    assert fn(value) == text


def test_memory_bar_reads_one_decimal():
    from advisor.tui.widgets.memory_bar import memory_bar

    assert memory_bar(10.2, 23.5402).plain.endswith(" 10.2/23.5")   # was "10.2/23.5402"


def test_launchable_models_are_never_replaced(tmp_path):
    assert launchable("tiny-llama") == ("tiny-llama", None)                 # bench builds it
    assert launchable("smollm2-135m") == ("smollm2-135m", None)
    (tmp_path / "config.json").write_text("{}")
    assert launchable(str(tmp_path)) == (str(tmp_path.resolve()), None)
    value, err = launchable("llama-3.1-8b")
    assert value is None and err.startswith("llama-3.1-8b is not on this machine: download it as an HF folder")
    assert str(models_dir() / "llama-3.1-8b") in err
    assert launchable(str(tmp_path / "nope"))[1].startswith(f"model folder {tmp_path / 'nope'} not found")
    assert launchable("gpt-9")[1].startswith("unknown model 'gpt-9'")
    assert launchable(" ")[1] == "model is required"


def pairs(tmp_path, n=50):
    path = tmp_path / "pairs.jsonl"
    rows = (json.dumps({"prompt": f"q{k} " * 20, "completion": f"a{k} " * 10}) for k in range(n))
    path.write_text("".join(r + "\n" for r in rows))
    return path


def inputs_with(path) -> Inputs:
    i = Inputs(data_path=str(path), model="smollm2-135m")
    i.data_info = inspect_data(path)
    return i


def test_detected_data_sets_kind_counts_and_sequence_length(tmp_path):
    i = inputs_with(pairs(tmp_path))
    info = i.data_info
    assert data_counts(info) == ("pairs", {"pairs": info.train_rows})
    assert info.length_p99 == 31 and i.seq_len() == 64 == i.profile(None).seq_len   # 121 chars / 4, up to 64
    assert Inputs().profile(None).seq_len == 1024                                     # no data: the advisor's


REC = {"stack": "sft:lora", "model": "smollm2-135m", "peak_gib": 2.1, "hours": 0.01, "cost_usd": 0.0,
       "stages": [{"stage": "sft:lora", "peak_gib": 2.1, "micro_batch": 4, "grad_ckpt": True, "hours": 0.01}]}


def test_recommended_plan_carries_stack_model_data_and_stage_knobs(tmp_path):
    data = pairs(tmp_path)
    i = inputs_with(data)
    plan = recommended_plan(REC, i, out=tmp_path / "run", db=tmp_path / "db", run_id="r1", task="smoke")
    text = plan.yaml_text()
    spec = yaml.safe_load(text)
    steps = -(-2 * i.data_info.train_rows // 4)   # 2 epochs at micro-batch 4
    assert spec == {"model": "smollm2-135m", "data": {"path": str(data)}, "seed": 0,
                    "hp": {"max_steps": steps, "max_length": 64},
                    "stages": [{"objective": "sft", "method": "lora", "hp": {"batch_size": 4, "grad_ckpt": True}}]}
    assert "precision sft:lora fp32" in text and f"max_steps = 2 epochs x {i.data_info.train_rows} rows" in text
    assert parse_stack_yaml(text) == (spec, None)
    no_data = recommended_plan(REC, Inputs(), out=tmp_path / "r2", db=tmp_path / "db", run_id="r2", task="smoke")
    assert no_data.spec()["task"] == "smoke" and "data" not in no_data.spec()


def test_a_stage_the_data_cannot_train_is_refused_before_launch(tmp_path):
    rec = {**REC, "stack": "sft:lora,dpo:lora", "stages": [*REC["stages"], {"stage": "dpo:lora", "micro_batch": 1,
                                                                          "grad_ckpt": False}]}
    plan = recommended_plan(rec, inputs_with(pairs(tmp_path)), out=tmp_path / "run", db=tmp_path / "db",
                            run_id="r1", task="smoke")
    data, err = parse_stack_yaml(plan.yaml_text())
    assert data is None and "stage dpo:lora trains on preference records" in err
    missing = plan.yaml_text().replace("model: smollm2-135m", "model: llama-3.1-8b")
    assert parse_stack_yaml(missing)[1].startswith("llama-3.1-8b is not on this machine")


def test_saved_estimate_is_joined_onto_its_runs_only(tmp_path):
    data = pairs(tmp_path)
    i = inputs_with(data)
    plan = recommended_plan(REC, i, out=tmp_path / "runs" / "tui-x", db=tmp_path / "db", run_id="tui-x",
                            task="smoke", max_steps=3)
    doc = launch_estimate(plan.spec(), i, REC, "tui-x")
    st = doc["stages"][0]
    assert (st["stage"], st["steps"], st["micro_batch"], st["grad_ckpt"], st["seq_len"], st["precision"]) == (
        "sft:lora", 3, 4, True, 64, "fp32")
    mean = round(i.data_info.train_tokens / i.data_info.train_rows)   # rows of 91-121 chars, / 4
    assert mean == 29 and st["tokens"] == 3 * 4 * mean and st["peak_gib"] > 0 and st["hours"] > 0
    plan.out.mkdir(parents=True)
    write_estimate(plan.out, doc)
    db = seed_db(tmp_path / "db")
    write_record(db, new_record(run_id="tui-x-0", stack="sft:lora", stage="sft:lora", stage_index=0, status="ok",
                                model="smollm2-135m", task="data:pairs.jsonl", peak_rss_bytes=3 * 2**30, steps=3,
                                step_time_s=2.0, output_dir=str(plan.out / "stage0-sft-lora")))
    df = with_estimates(with_derived(read_runs(db)))
    got = {r["run_id"]: r for r in df.iter_rows(named=True)}
    assert got["tui-x-0"]["est_peak_gib"] == st["peak_gib"] and got["tui-x-0"]["est_train_s"] == st["hours"] * 3600
    assert got["tui-x-0"]["peak_gib"] == 3.0 and got["tui-x-0"]["train_s"] == 6.0
    assert got["seed-0-0"]["est_peak_gib"] is None and got["seed-0-0"]["est_train_s"] is None
