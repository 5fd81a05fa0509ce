"""Each folklore claim at its thresholds: holds on the boundary, fails just past it, and is
'not measured' when a figure it needs is missing."""
import pytest
from report_records import GiB, TOTAL, frame, rec, sft

from reports import claims
from reports.claims import FAILS, HOLDS, NOT_MEASURED
from reports.table import build_lines


def verdicts(fn, records):
    return [v.verdict for v in fn(build_lines(frame(records)))]


@pytest.mark.parametrize("share, expected", [
    (0.001, HOLDS), (0.01, HOLDS), (0.005, HOLDS), (0.00099, FAILS), (0.0101, FAILS),
])
def test_lora_share_boundaries(share, expected):
    recs = [sft("lora", trainable_share=share, metric_after=0.8), sft("full", trainable=TOTAL, metric_after=0.8)]
    assert verdicts(claims.lora_share_and_quality, recs) == [expected]


@pytest.mark.parametrize("metric, full_after, lora_after, expected", [
    ("acc", 0.5, 0.475, HOLDS),         # exactly 5% worse
    ("acc", 0.5, 0.474, FAILS),
    ("acc", 0.5, 0.9, HOLDS),           # better than full FT
    ("eval_loss", 1.0, 1.05, HOLDS),    # lower is better: 5% higher loss is the limit
    ("eval_loss", 1.0, 1.06, FAILS),
])
def test_lora_quality_boundaries(metric, full_after, lora_after, expected):
    recs = [sft("lora", trainable_share=0.005, metric_name=metric, metric_after=lora_after),
            sft("full", trainable=TOTAL, metric_name=metric, metric_after=full_after)]
    assert verdicts(claims.lora_share_and_quality, recs) == [expected]


def test_lora_claim_not_measured():
    assert verdicts(claims.lora_share_and_quality, []) == [NOT_MEASURED]
    assert verdicts(claims.lora_share_and_quality, [sft("lora", trainable_share=0.005)]) == [NOT_MEASURED]
    # a share outside the range fails even without a full-FT run to compare with
    assert verdicts(claims.lora_share_and_quality, [sft("lora", trainable_share=0.02)]) == [FAILS]
    # a full-FT run on another task is no comparison
    assert verdicts(claims.lora_share_and_quality,
                    [sft("lora", trainable_share=0.005), sft("full", task="gsm-symbolic")]) == [NOT_MEASURED]


@pytest.mark.parametrize("qlora_gib, expected", [(6.0, HOLDS), (6.1, FAILS), (3.0, HOLDS), (12.0, FAILS)])
def test_qlora_memory_boundary(qlora_gib, expected):
    assert verdicts(claims.qlora_memory, [sft("lora", mem_gib=10.0), sft("qlora", mem_gib=qlora_gib)]) == [expected]


def test_qlora_memory_not_measured():
    assert verdicts(claims.qlora_memory, [sft("lora")]) == [NOT_MEASURED]
    assert verdicts(claims.qlora_memory, [sft("qlora")]) == [NOT_MEASURED]
    gpu = sft("qlora", mem_gib=1.0, peak_reserved_bytes=GiB)  # GPU reserved vs host RSS: not comparable
    assert verdicts(claims.qlora_memory, [sft("lora", mem_gib=10.0), gpu]) == [NOT_MEASURED]


def _prompt_case(prompt_gib=4.0, prompt_after=0.3, prompt_params=10_000):
    return [sft("prompt", trainable=prompt_params, mem_gib=prompt_gib, metric_after=prompt_after),
            sft("lora", trainable=2_000_000, mem_gib=4.0, metric_after=0.7),
            sft("ia3", trainable=100_000, mem_gib=5.0, metric_after=0.4)]


@pytest.mark.parametrize("kwargs, expected", [
    ({}, HOLDS),
    ({"prompt_gib": 4.2}, HOLDS),            # exactly 5% above the lowest other
    ({"prompt_gib": 4.24}, FAILS),
    ({"prompt_after": 0.4}, HOLDS),          # tied with the weakest other
    ({"prompt_after": 0.41}, FAILS),         # better than ia3: not the weakest
    ({"prompt_params": 100_000}, HOLDS),     # tied for fewest parameters
    ({"prompt_params": 100_001}, FAILS),
])
def test_prompt_cheapest_weakest_boundaries(kwargs, expected):
    assert verdicts(claims.prompt_cheapest_weakest, _prompt_case(**kwargs)) == [expected]


def test_prompt_not_measured():
    assert verdicts(claims.prompt_cheapest_weakest, [sft("lora")]) == [NOT_MEASURED]
    assert verdicts(claims.prompt_cheapest_weakest, [sft("prompt")]) == [NOT_MEASURED]
    assert verdicts(claims.prompt_cheapest_weakest, [sft("prompt"), sft("lora", task="other")]) == [NOT_MEASURED]


@pytest.mark.parametrize("houlsby, pfeiffer, expected", [
    (3_000_001, None, HOLDS), (3_000_000, None, FAILS), (4_000_000, 3_500_000, HOLDS), (4_000_000, 2_000_000, FAILS),
])
def test_adapters_more_params(houlsby, pfeiffer, expected):
    recs = [sft("lora", trainable=3_000_000), sft("adapter_houlsby", trainable=houlsby)]
    if pfeiffer:
        recs.append(sft("adapter_pfeiffer", trainable=pfeiffer))
    assert verdicts(claims.adapters_more_params, recs) == [expected]


def test_adapters_not_measured():
    assert verdicts(claims.adapters_more_params, [sft("lora")]) == [NOT_MEASURED]
    oom = rec("sft:adapter_houlsby", status="oom", trainable_params=9_000_000)
    assert verdicts(claims.adapters_more_params, [sft("lora"), oom]) == [NOT_MEASURED]


@pytest.mark.parametrize("full, expected", [(0.2, HOLDS), (0.3, HOLDS), (0.19, FAILS)])
def test_full_forgets_most(full, expected):
    recs = [sft("full", forgetting=full), sft("lora", forgetting=0.2), sft("prompt", forgetting=0.01)]
    assert verdicts(claims.full_forgets_most, recs) == [expected]


def test_full_forgets_most_not_measured():
    assert verdicts(claims.full_forgets_most, [sft("full", forgetting=0.3)]) == [NOT_MEASURED]
    assert verdicts(claims.full_forgets_most, [sft("full", forgetting=None), sft("lora")]) == [NOT_MEASURED]


def _rlhf(dpo_wall, dpo_gib, method="lora", dpo_task="math-prefs"):
    return [rec(f"dpo:{method}", task=dpo_task, wall_time_s=dpo_wall, peak_rss_bytes=int(dpo_gib * GiB)),
            rec("rm:lora", task="math-prefs", stack="rm:lora,ppo:lora", wall_time_s=100.0, peak_rss_bytes=3 * GiB),
            rec("ppo:lora", task="math-prefs", stack="rm:lora,ppo:lora", stage_index=1, wall_time_s=200.0,
                peak_rss_bytes=5 * GiB)]


@pytest.mark.parametrize("dpo_wall, dpo_gib, expected", [
    (299.0, 5.0, HOLDS),    # memory equal to the larger RLHF stage still counts
    (300.0, 4.0, FAILS),    # as slow as RM + PPO together: not cheaper
    (100.0, 5.5, FAILS),    # faster but more memory
])
def test_dpo_cheaper_than_rlhf(dpo_wall, dpo_gib, expected):
    assert verdicts(claims.dpo_cheaper_than_rlhf, _rlhf(dpo_wall, dpo_gib)) == [expected]


def test_dpo_claim_not_measured_and_task_note():
    assert verdicts(claims.dpo_cheaper_than_rlhf, _rlhf(10.0, 1.0, method="full")) == [NOT_MEASURED]
    assert verdicts(claims.dpo_cheaper_than_rlhf, _rlhf(10.0, 1.0)[:2]) == [NOT_MEASURED]  # no ppo
    (v,) = claims.dpo_cheaper_than_rlhf(build_lines(frame(_rlhf(10.0, 1.0, dpo_task="other"))))
    assert v.verdict == HOLDS and "different tasks" in v.task


@pytest.mark.parametrize("grpo_gib, expected", [(9.5, HOLDS), (9.6, FAILS), (10.0, FAILS)])
def test_grpo_saves_memory(grpo_gib, expected):
    recs = [rec("grpo:lora", task="gsm", peak_rss_bytes=int(grpo_gib * GiB)),
            rec("ppo:lora", task="gsm", peak_rss_bytes=10 * GiB)]
    assert verdicts(claims.grpo_saves_memory, recs) == [expected]


def test_grpo_not_measured():
    recs = [rec("grpo:lora", task="gsm", peak_rss_bytes=GiB), rec("ppo:full", task="gsm", peak_rss_bytes=10 * GiB)]
    assert verdicts(claims.grpo_saves_memory, recs) == [NOT_MEASURED]


def test_evaluate_runs_every_claim_once_on_an_empty_group():
    out = claims.evaluate(build_lines(frame([])))
    assert [v.claim for v in out] == [fn(build_lines(frame([])))[0].claim for fn in claims.CLAIMS]
    assert {v.verdict for v in out} == {NOT_MEASURED}
