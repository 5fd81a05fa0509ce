"""The cpu-quality matrix keeps the properties its numbers rely on (issue 18 part 1): three seeds per
row, seed-major order (a run stopped early has completed the lower seeds), every seed
parameterization on a classification and a generation task, and each row scored on its task's
whole test split.

    .venv/bin/python -m pytest tests/bench/test_cpu_quality_matrix.py -q
"""
import pytest

from bench import matrix as mx
from bench.taskdata import get_task

SEED_METHODS = {"full", "lora", "qlora", "dora", "adapter_houlsby", "adapter_pfeiffer", "prefix", "prompt", "ptuning",
                "ia3"}
OBJECTIVES = {"dpo", "ipo", "kto", "orpo", "simpo", "ppo", "grpo", "rlaif", "distill", "cpt"}


@pytest.fixture(scope="module")
def runs():
    return mx.expand(mx.load("cpu-quality"))


def test_three_seeds_per_row_in_seed_major_order(runs):
    seeds: dict[tuple, set] = {}
    for r in runs:
        seeds.setdefault((r.stack, r.task), set()).add(r.seed)
    once = {k for k, v in seeds.items() if v == {0}}
    assert once == {("sft:bitfit", "wiki-topics")}  # the refusal is recorded once
    assert all(v == {0, 1, 2} for k, v in seeds.items() if k not in once)
    order = [r.seed for r in runs]
    assert order == sorted(order)


@pytest.mark.parametrize(("task", "objectives"), [("wiki-topics", {"sft"}), ("gsm-symbolic", {"sft"})])
def test_every_seed_parameterization_on_both_sft_tasks(runs, task, objectives):
    assert {r.method for r in runs if r.task == task and r.objective in objectives} >= SEED_METHODS


def test_objectives_present(runs):
    assert {r.objective for r in runs} >= OBJECTIVES


def test_scored_on_the_whole_test_split(runs):
    for r in runs:
        assert r.hp["eval_limit"] == get_task(r.task).splits["test"], r.label
