"""Ranking: fit, budget cuts, always an answer, the seeds' scenarios, evidence from the DBs, calibration."""
import json

import pytest

from advisor.catalogs import gpu, shape
from advisor.estimator import GIB, Request, estimate
from advisor.ranking import Profile, advise, answer
from advisor.recipes import DATA_KINDS, GOALS
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
    assert recs and all(r.hours <= 3 * 1.001 and r.cost_usd <= 2 * 1.001 for r in recs)
    assert all(r.budget_cut for r in recs if r.factors["data_factor"] < 1)


HARDWARE = {"cpu": 1, "t4": 1, "rtx-4090": 1, "a100-80gb": 1, "h100-sxm": 8}
BUDGETS = {"1h": {"budget_hours": 1}, "10h": {"budget_hours": 10}, "200h": {"budget_hours": 200}, "$5": {"budget_usd": 5}}


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("hw", HARDWARE)
def test_every_goal_and_data_kind_gets_a_plan_that_fits(hw, budget):
    """The issue's table: goal x data kind x hardware x budget -> at least one plan that fits, with a
    reason, and a "gives up" note wherever the budget forced a cut."""
    dev, limit = gpu(hw), BUDGETS[budget]
    for goal in GOALS:
        for kind in DATA_KINDS:
            ans = answer(Profile(goal=goal, gpu=dev, num_gpus=HARDWARE[hw], data=(kind,), **limit))
            case = (goal, kind, hw, budget)
            assert ans.recommendations, case
            for r in ans.recommendations:
                assert r.fits and r.peak_gib <= dev.memory_gib and r.why, case
                assert r.hours <= limit.get("budget_hours", float("inf")) * 1.001, case
                assert r.cost_usd <= limit.get("budget_usd", float("inf")) * 1.001, case
                assert bool(r.budget_cut) == (r.factors["data_factor"] < 1), case
                if r.budget_cut:
                    assert r.budget_cut in r.gives_up and ("epoch" in r.budget_cut), case
            assert ans.budget.startswith(("1 h", "10 h", "200 h", "$5")) and "buys" in ans.budget, case


@pytest.mark.parametrize("start,data,expect", [
    ("instruct", "feedback", {"kto"}),
    ("instruct", "preferences", {"dpo", "simpo", "orpo"}),
    ("base", "preferences", {"orpo"}),
    ("base", "feedback", {"kto"}),
    ("instruct", "constitution", {"rlaif"}),
    ("base", "prompts", {"rlaif"}),
    ("base", "teacher", {"distill"}),
    ("base", "checker", {"grpo"}),
    ("base", "corpus", {"cpt"}),
])
def test_the_starting_point_and_the_data_decide_the_first_stage(start, data, expect):
    recs = advise(Profile(goal="chat", gpu=gpu("rtx-4090"), data=(data,), start=start))
    assert recs and {objectives_of(r.stack)[0] for r in recs} <= expect, [r.stack for r in recs]


def test_goals_for_a_teacher_and_a_constitution():
    r = top("distill", "rtx-4090", "teacher", teacher="llama-3.1-8b")
    assert objectives_of(r.stack) == ["distill"] and shape(r.model).params() < 1e9  # small and fast
    r = top("constitution", "a100-80gb", "pairs,constitution")
    assert objectives_of(r.stack) == ["sft", "rlaif"]
    r = top("constitution", "a100-80gb", "constitution", start="instruct")
    assert objectives_of(r.stack) == ["rlaif"]


def test_data_the_goal_cannot_use_still_answers_and_says_what_is_missing():
    recs = advise(Profile(goal="reasoning", gpu=gpu("l4"), data=("corpus",)))
    assert recs and all(objectives_of(r.stack) == ["cpt"] for r in recs)
    assert "needs" in recs[0].gives_up and "checker" in recs[0].gives_up and "adding" in recs[0].change


def test_a_model_that_does_not_fit_gives_way_to_smaller_ones():
    ans = answer(Profile(goal="chat", gpu=gpu("rtx-3060"), model="llama-2-70b"))
    assert ans.recommendations and all(shape(r.model).params() < shape("llama-2-70b").params()
                                       for r in ans.recommendations)
    assert "smaller model than your llama-2-70b" in ans.recommendations[0].gives_up
    assert "llama-2-70b does not fit" in ans.notes[0]


def test_the_budget_line_says_what_the_budget_buys():
    ans = answer(Profile(goal="chat", gpu=gpu("a10g"), data=("pairs",), model="llama-3.1-8b", budget_usd=5, epochs=4))
    top_ = ans.recommendations[0]
    assert ans.budget.startswith("$5 on a10g buys about") and top_.stack in ans.budget and "llama-3.1-8b" in ans.budget
    assert top_.cost_usd <= 5 * 1.001 and top_.budget_cut and top_.budget_cut in ans.budget


def test_cpu_is_a_target_and_cites_the_shipped_cpu_measurements():
    recs = advise(Profile(goal="reasoning", gpu=gpu("cpu"), data=("pairs", "checker"), budget_hours=2, top=50))
    assert recs and all(r.peak_gib <= gpu("cpu").memory_gib for r in recs)
    cited = [e for r in recs for e in r.evidence_detail if e["hardware"].startswith("cpu")]
    assert cited and all(e["tier"] == "same class" or e["tier"] == "same device" for e in cited)
    assert any("measured on gsm-symbolic" in r.why for r in recs)


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


@pytest.mark.parametrize("metric, before, strong, weak", [
    ("accuracy", 0.1, 0.6, 0.12),     # higher is better: the bigger rise ranks first
    ("eval_loss", 6.3, 0.7, 6.2),     # lower is better: the bigger fall ranks first (the quality DB's figure)
])
def test_evidence_ranks_the_bigger_improvement_first_whichever_way_the_metric_points(tmp_path, metric, before,
                                                                                       strong, weak):
    from advisor.evidence import lookup
    from bench.results import read_runs

    for method, after in (("dora", strong), ("prefix", weak)):
        _run(tmp_path, task="wiki-topics", objective="sft", method=method, stack=f"sft:{method}",
             metric_name=metric, metric_before=before, metric_after=after, wall_time_s=100.0)
    ev = lookup([("db", read_runs(tmp_path))], "classify", gpu("h100"))
    assert ev[("sft", "dora")].rank == 1.0 and ev[("sft", "prefix")].rank == 0.0
    assert f"{metric} change" in ev[("sft", "dora")].text()
