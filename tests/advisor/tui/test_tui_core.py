"""The wizard's screen-free helpers: validation, launch argv/YAML, results filtering, hardware detection.

    .venv/bin/python -m pytest -q tests/advisor/tui/test_tui_core.py
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tui_records import seed_db

from advisor.tui.hardware import Detected, catalog_key, detect
from advisor.tui.plan import Inputs, LaunchPlan, check_model, check_tryout_model, parse_number, parse_stack_yaml
from advisor.tui.runs import comparison, filter_runs, report_filters, sort_runs, with_derived
from bench.results import read_runs


def test_core_and_helpers_import_without_textual():
    code = ("import sys, advisor.estimator, advisor.ranking, advisor.tui.plan, advisor.tui.process, "
            "advisor.tui.runs, advisor.tui.hardware; sys.exit(1 if 'textual' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("text,kw,value,error", [
    ("12", {}, 12.0, None), ("", {"allow_empty": True}, None, None), ("", {}, None, "hours is required"),
    ("-5", {"allow_empty": True}, None, "hours must be >= 0, got -5"), ("abc", {}, None, "hours 'abc' is not a number"),
    ("2.5", {"integer": True}, None, "hours must be a whole number, got 2.5"), ("0", {"strict_min": True}, None,
                                                                              "hours must be > 0, got 0"),
])
def test_parse_number(text, kw, value, error):
    assert parse_number(text, "hours", **kw) == (value, error)


def test_model_checks(tmp_path):
    assert check_model("") is None and check_model("llama-3.1-8b") is None
    assert "not found" in check_model(str(tmp_path / "nope"))
    assert check_model("llama-9z").startswith("unknown model 'llama-9z'")
    assert check_tryout_model("tiny-llama") is None
    (tmp_path / "config.json").write_text('{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}')
    assert check_tryout_model(str(tmp_path)) is None and check_model(str(tmp_path)) is None
    assert check_tryout_model("gpt-5").startswith("unknown model 'gpt-5'")


def test_inputs_profile_uses_edited_memory_and_price():
    i = Inputs()
    i.set_gpu("rtx-4090")
    i.memory_gib, i.usd_per_hour = 20, 0.5
    p = i.profile(None)
    assert p.gpu.key == "rtx-4090" and p.gpu.memory_gib == 20 and p.gpu.usd_per_hour == 0.5 and p.model is None


def plan(tmp_path, gpus=1):
    return LaunchPlan(stack="sft:lora,dpo:lora", model="tiny-llama", task="smoke", max_steps=3, out=tmp_path / "o",
                      db=tmp_path / "db", events=tmp_path / "o" / "events.jsonl", run_id="r1", num_gpus=gpus,
                      learning_rate=1e-4)


def test_launch_plan_yaml_round_trips_and_argv_is_a_list(tmp_path):
    p = plan(tmp_path)
    data, err = parse_stack_yaml(p.yaml_text())
    assert err is None and data["hp"] == {"max_steps": 3, "batch_size": 4, "learning_rate": 1e-4}
    assert [s["objective"] for s in data["stages"]] == ["sft", "dpo"]
    argv = p.argv()
    assert argv[:3] == [sys.executable, "-m", "bench.entry"] and "--events" in argv and "--run-id" in argv
    assert "--launcher" not in argv and p.display_command().startswith("tunebench train ")
    multi = plan(tmp_path, gpus=4)   # bench's entry runs accelerate launch itself
    assert multi.argv()[:3] == [sys.executable, "-m", "bench.entry"]
    assert multi.argv()[-4:] == ["--launcher", "accelerate", "--num-processes", "4"]
    assert multi.display_command().startswith("tunebench train ") and "--launcher accelerate" in multi.display_command()


@pytest.mark.parametrize("text,needle", [
    ("model: tiny-llama\ntask: smoke\nstages: []\n", "stages"),
    ("model: tiny-llama\ntask: smoke\nhp: {max_steps: -1}\nstages: [{objective: sft, method: lora}]\n", "max_steps"),
    ("model: nope-model\ntask: smoke\nstages: [{objective: sft, method: lora}]\n", "nope-model"),
    ("model: [unclosed\n", "not valid YAML"),
])
def test_edited_yaml_errors_name_the_problem(text, needle):
    data, err = parse_stack_yaml(text)
    assert data is None and needle in err


def test_runs_filter_sort_compare(tmp_path):
    df = with_derived(read_runs(seed_db(tmp_path / "db")))
    ok, err = filter_runs(df, "status=ok lora")
    assert err is None and sorted(ok["run_id"]) == ["seed-0-0", "seed-2-0"]
    fast, _ = filter_runs(df, "tokens_per_s>400")
    assert sorted(fast["run_id"]) == ["seed-0-0", "seed-1-0"]
    assert filter_runs(df, "colour=red")[1].startswith("unknown column 'colour'")
    assert "needs a number" in filter_runs(df, "wall_time_s>fast")[1]
    assert sort_runs(df, "wall_time_s", False)["run_id"].to_list() == ["seed-3-0", "seed-0-0", "seed-1-0", "seed-2-0"]
    assert report_filters("task=smoke status=ok model=tiny-llama lora") == {"task": "smoke", "model": "tiny-llama"}
    rows = dict(comparison(df, ["seed-1-0", "seed-0-0"]))
    assert rows["stack"] == ["sft:dora", "sft:lora"] and rows["peak_gib"] == ["0.6", "0.6"]
    assert rows["train_s"] == ["-", "-"] and rows["est_peak_gib"] == ["-", "-"]   # seeded: no steps, no launch


def test_detect_never_raises_and_maps_names_to_the_catalog():
    d = detect()
    assert isinstance(d, Detected) and d.host_memory_gib > 0
    assert d.summary
    assert catalog_key("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert catalog_key("NVIDIA GeForce RTX 4090") == "rtx-4090"
    assert catalog_key("Tesla T4") == "t4"
    assert catalog_key("Some Unknown Accelerator") is None


def test_tui_command_refuses_without_a_terminal():
    r = subprocess.run([sys.executable, "-m", "advisor.cli", "tui"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[3])
    assert r.returncode == 2 and "needs a terminal" in r.stderr and "Traceback" not in r.stderr
