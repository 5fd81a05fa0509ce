"""Ranking: fit and budget filters, the seeds' scenarios, evidence from the DB, calibration."""
import json

import pytest

from advisor.catalogs import gpu, shape
from advisor.estimator import GIB, Request, estimate
from advisor.ranking import Profile, advise
from bench.results import write_record
from bench.schema import new_record

ADAPTERS = {"lora", "qlora", "dora", "ia3", "rslora"}


def methods_of(stack):
    return [s.split(":")[1] for s in stack.split(",")]


def objectives_of(stack):
    return [s.split(":")[0] for s in stack.split(",")]


@pytest.mark.parametrize("g", ["rtx-3060", "t4", "l4", "rtx-4090", "a100-80gb", "h200"])
@pytest.mark.parametrize("goal,data", [("chat", "pairs,preferences"), ("domain", "corpus,pairs"), ("reasoning", "pairs,checker")])
def test_never_recommends_a_stack_that_does_not_fit(g, goal, data):
    dev = gpu(g)
    for r in advise(Profile(goal=goal, gpu=dev, data=tuple(data.split(",")))):
        assert r.fits and r.peak_gib <= dev.memory_gib
        for st in r.stages:
            assert st["peak_gib"] <= dev.memory_gib


def test_budget_is_respected():
    recs = advise(Profile(goal="chat", gpu=gpu("l4"), data=("pairs", "preferences"), budget_hours=3, budget_usd=2))
    assert recs and all(r.hours <= 3 and r.cost_usd <= 2 for r in recs)


def test_nothing_fits_gives_no_recommendation():
    assert advise(Profile(goal="chat", gpu=gpu("rtx-3060"), model="llama-2-70b")) == []


def top(goal, g, data, **kw):
    recs = advise(Profile(goal=goal, gpu=gpu(g), data=tuple(data.split(",")), **kw))
    assert recs, (goal, g, data)
    return recs[0]


def test_scenario_customer_service_qa():
    r = top("chat", "l4", "pairs", budget_hours=10)
    assert objectives_of(r.stack) == ["sft"] and set(methods_of(r.stack)) <= ADAPTERS


def test_scenario_domain_expertise():
    r = top("domain", "a100-80gb", "corpus,pairs", budget_hours=48)
    assert objectives_of(r.stack)[:2] == ["cpt", "sft"]


def test_scenario_many_departments_share_one_base():
    recs = advise(Profile(goal="multi-tenant", gpu=gpu("l4"), data=("pairs",), budget_hours=12))
    assert recs and all(methods_of(r.stack)[-1] in ADAPTERS for r in recs)


def test_scenario_chatgpt_like_assistant():
    r = top("chat", "h100", "pairs,preferences", budget_hours=24)
    assert objectives_of(r.stack)[0] == "sft" and objectives_of(r.stack)[-1] in ("dpo", "simpo", "ppo")


def test_scenario_one_small_gpu():
    r = top("chat", "rtx-3060", "pairs", budget_hours=8)
    assert set(methods_of(r.stack)) <= {"qlora", "lora", "ia3", "dora"} and r.peak_gib <= 12


def test_scenario_writing_style():
    r = top("style", "rtx-4090", "corpus,pairs", budget_hours=12)
    assert set(objectives_of(r.stack)) <= {"cpt", "sft"} and set(methods_of(r.stack)) <= ADAPTERS


def test_scenario_reasoning_with_a_checker():
    r = top("reasoning", "h100", "pairs,checker", budget_hours=24)
    assert "grpo" in objectives_of(r.stack)


def test_missing_data_limits_the_recipes():
    recs = advise(Profile(goal="chat", gpu=gpu("a100-80gb"), data=("pairs",)))
    assert all(objectives_of(r.stack) == ["sft"] for r in recs)
    assert "adding" in recs[0].change or "would rank higher" in recs[0].change


def _run(db, **kw):
    rec = new_record(status="ok", device_name="NVIDIA H100 80GB HBM3", device_count=1,
                     device_memory_bytes=80 * GIB, **kw)
    write_record(db, rec)
    return rec["run_id"]


def test_measured_evidence_is_cited_and_moves_the_ranking(tmp_path):
    prof = dict(goal="reasoning", gpu=gpu("h100"), data=("pairs", "checker"), model="llama-3.2-3b")
    before = [r.stack for r in advise(Profile(**prof))]
    good = [_run(tmp_path, task="gsm-symbolic", objective=o, method="ia3", stack=f"{o}:ia3",
                 metric_before=0.1, metric_after=0.6, wall_time_s=100.0) for o in ("sft", "grpo")]
    for o in ("sft", "grpo"):
        for m in ("lora", "full", "dora", "qlora"):
            _run(tmp_path, task="gsm-symbolic", objective=o, method=m, stack=f"{o}:{m}",
                 metric_before=0.1, metric_after=0.12, wall_time_s=100.0)
    recs = advise(Profile(**prof, db=tmp_path))
    assert recs[0].stack == "sft:ia3,grpo:ia3" != before[0]
    assert set(good) <= set(recs[0].evidence)


def test_calibration_recovers_a_known_activation_scale(tmp_path):
    from advisor.calibration import calibrate

    s = shape("llama-3.2-1b")
    for i, (seq, mb, method) in enumerate([(s_, b, m) for s_ in (256, 512, 1024, 2048) for b in (1, 4) for m in ("lora", "full")]):
        req = Request(shape=s, method=method, seq_len=seq, micro_batch=mb)
        truth = estimate(req, {"activation_scale": 1.3, "logits_scale": 1.3}).reserved_bytes
        _run(tmp_path, model="llama-3.2-1b", method=method, objective="sft", task="smoke",
             hyperparams=json.dumps({"hp": {"batch_size": mb, "max_length": seq}, "method_cfg": {"r": 8}}),
             peak_reserved_bytes=int(truth), tokens_per_s=5000.0)
    out = tmp_path / "calibration.json"
    doc = calibrate(tmp_path, out)
    assert json.loads(out.read_text())["version"] == doc["version"] >= 1
    assert doc["constants"]["activation_scale"] == pytest.approx(1.3, abs=0.02)
    assert doc["held_out_error"]["after"]["median"] < doc["held_out_error"]["before"]["median"]
    assert doc["rows_held_out"] >= 1 and 0 < doc["constants"]["mfu"] < 1


def test_calibration_without_gpu_runs_is_a_user_error(tmp_path):
    from advisor.calibration import calibrate
    from common.errors import UserError

    _run(tmp_path, model="llama-3.2-1b", method="lora", objective="sft", task="smoke")  # no peak measured
    with pytest.raises(UserError, match="no calibration data"):
        calibrate(tmp_path, tmp_path / "c.json")
