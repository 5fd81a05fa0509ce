"""Each folklore claim at its thresholds: holds on the boundary, fails just past it, is
'inconclusive' when an interval straddles the threshold or a figure has a single run, and
'not measured' when a figure it needs is missing.

Most cases use three seeds with equal figures (a zero-width 95% interval), so the boundary
checks are exact; ``one``/``spread`` cases check the interval logic itself.
"""
import pytest
from report_records import GiB, TOTAL, frame, rec, sft

from reports import claims
from reports.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_MEASURED
from reports.table import build_lines

SEEDS = (0, 1, 2)


def verdicts(fn, records):
    return [v.verdict for v in fn(build_lines(frame(records)))]


def x3(make, *args, **kw) -> list[dict]:
    """The same record for seeds 0, 1, 2 (equal figures: a zero-width interval, n=3)."""
    return [make(*args, seed=s, **kw) for s in SEEDS]


def spread(make, *args, key: str, values, **kw) -> list[dict]:
    """One record per value of ``key`` (seeds 0..n-1): a real interval."""
    return [make(*args, seed=s, **{key: v}, **kw) for s, v in enumerate(values)]


@pytest.mark.parametrize("share, expected", [
    (0.001, HOLDS), (0.01, HOLDS), (0.005, HOLDS), (0.00099, FAILS), (0.0101, FAILS),
])
def test_lora_share_boundaries(share, expected):
    recs = x3(sft, "lora", trainable_share=share, metric_after=0.8) + x3(sft, "full", trainable=TOTAL, metric_after=0.8)
    assert verdicts(claims.lora_share_and_quality, recs) == [expected]


@pytest.mark.parametrize("metric, full_after, lora_after, expected", [
    ("acc", 0.5, 0.475, HOLDS),         # exactly 5% worse
    ("acc", 0.5, 0.474, FAILS),
    ("acc", 0.5, 0.9, HOLDS),           # better than full FT
    ("eval_loss", 1.0, 1.05, HOLDS),    # lower is better: 5% higher loss is the limit
    ("eval_loss", 1.0, 1.06, FAILS),
])
def test_lora_quality_boundaries(metric, full_after, lora_after, expected):
    recs = (x3(sft, "lora", trainable_share=0.005, metric_name=metric, metric_after=lora_after)
            + x3(sft, "full", trainable=TOTAL, metric_name=metric, metric_after=full_after))
    assert verdicts(claims.lora_share_and_quality, recs) == [expected]


def test_lora_quality_interval():
    full = x3(sft, "full", trainable=TOTAL, metric_after=0.5)
    lora = lambda vals: spread(sft, "lora", key="metric_after", values=vals, trainable_share=0.005)  # noqa: E731
    assert verdicts(claims.lora_share_and_quality, full + lora([0.47, 0.48, 0.49])) == [INCONCLUSIVE]  # straddles 5%
    assert verdicts(claims.lora_share_and_quality, full + lora([0.485, 0.49, 0.495])) == [HOLDS]
    assert verdicts(claims.lora_share_and_quality, full + lora([0.40, 0.41, 0.42])) == [FAILS]
    # a single run has no interval: the quality half cannot be decided
    assert verdicts(claims.lora_share_and_quality, [sft("full", trainable=TOTAL, metric_after=0.5),
                                                   sft("lora", trainable_share=0.005, metric_after=0.3)]) == [INCONCLUSIVE]


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
    assert verdicts(claims.qlora_memory, x3(sft, "lora", mem_gib=10.0) + x3(sft, "qlora", mem_gib=qlora_gib)) == [expected]


@pytest.mark.parametrize("qlora_gibs, expected", [
    ([5.0, 5.1, 5.2], HOLDS), ([5.5, 6.0, 6.5], INCONCLUSIVE), ([7.0, 7.5, 8.0], FAILS),
])
def test_qlora_memory_interval(qlora_gibs, expected):
    recs = x3(sft, "lora", mem_gib=10.0) + spread(sft, "qlora", key="mem_gib", values=qlora_gibs)
    assert verdicts(claims.qlora_memory, recs) == [expected]


def test_single_runs_are_inconclusive():
    assert verdicts(claims.qlora_memory, [sft("lora", mem_gib=10.0), sft("qlora", mem_gib=3.0)]) == [INCONCLUSIVE]
    (v,) = claims.qlora_memory(build_lines(frame([sft("lora", mem_gib=10.0), sft("qlora", mem_gib=3.0)])))
    assert "n=1: no interval" in v.evidence


def test_qlora_memory_not_measured():
    assert verdicts(claims.qlora_memory, [sft("lora")]) == [NOT_MEASURED]
    assert verdicts(claims.qlora_memory, [sft("qlora")]) == [NOT_MEASURED]
    gpu = sft("qlora", mem_gib=1.0, peak_reserved_bytes=GiB)  # GPU reserved vs host RSS: not comparable
    assert verdicts(claims.qlora_memory, [sft("lora", mem_gib=10.0), gpu]) == [NOT_MEASURED]


def _prompt_case(prompt_gib=4.0, prompt_after=0.3, prompt_params=10_000):
    return (x3(sft, "prompt", trainable=prompt_params, mem_gib=prompt_gib, metric_after=prompt_after)
            + x3(sft, "lora", trainable=2_000_000, mem_gib=4.0, metric_after=0.7)
            + x3(sft, "ia3", trainable=100_000, mem_gib=5.0, metric_after=0.4))


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
    recs = [sft("lora", trainable=3_000_000), sft("adapter_houlsby", trainable=houlsby)]  # counts are exact: n=1 decides
    if pfeiffer:
        recs.append(sft("adapter_pfeiffer", trainable=pfeiffer))
    assert verdicts(claims.adapters_more_params, recs) == [expected]


def test_adapters_not_measured():
    assert verdicts(claims.adapters_more_params, [sft("lora")]) == [NOT_MEASURED]
    oom = rec("sft:adapter_houlsby", status="oom", trainable_params=9_000_000)
    assert verdicts(claims.adapters_more_params, [sft("lora"), oom]) == [NOT_MEASURED]


@pytest.mark.parametrize("full, expected", [(0.2, HOLDS), (0.3, HOLDS), (0.19, FAILS)])
def test_full_forgets_most(full, expected):
    recs = x3(sft, "full", forgetting=full) + x3(sft, "lora", forgetting=0.2) + x3(sft, "prompt", forgetting=0.01)
    assert verdicts(claims.full_forgets_most, recs) == [expected]


def test_full_forgets_most_interval():
    recs = spread(sft, "full", key="forgetting", values=[0.15, 0.2, 0.25]) + x3(sft, "lora", forgetting=0.2)
    assert verdicts(claims.full_forgets_most, recs) == [INCONCLUSIVE]


def test_full_forgets_most_not_measured():
    assert verdicts(claims.full_forgets_most, [sft("full", forgetting=0.3)]) == [NOT_MEASURED]
    assert verdicts(claims.full_forgets_most, [sft("full", forgetting=None), sft("lora")]) == [NOT_MEASURED]


def _rlhf(dpo_wall, dpo_gib, method="lora", dpo_task="math-prefs"):
    return (x3(rec, f"dpo:{method}", task=dpo_task, wall_time_s=dpo_wall, peak_rss_bytes=int(dpo_gib * GiB))
            + x3(rec, "rm:lora", task="math-prefs", stack="rm:lora,ppo:lora", wall_time_s=100.0, peak_rss_bytes=3 * GiB)
            + x3(rec, "ppo:lora", task="math-prefs", stack="rm:lora,ppo:lora", stage_index=1, wall_time_s=200.0,
                 peak_rss_bytes=5 * GiB))


@pytest.mark.parametrize("dpo_wall, dpo_gib, expected", [
    (299.0, 5.0, HOLDS),    # memory equal to the larger RLHF stage still counts
    (300.0, 4.0, FAILS),    # as slow as RM + PPO together: not cheaper
    (100.0, 5.5, FAILS),    # faster but more memory
])
def test_dpo_cheaper_than_rlhf(dpo_wall, dpo_gib, expected):
    assert verdicts(claims.dpo_cheaper_than_rlhf, _rlhf(dpo_wall, dpo_gib)) == [expected]


def test_dpo_claim_not_measured_and_task_note():
    assert verdicts(claims.dpo_cheaper_than_rlhf, _rlhf(10.0, 1.0, method="full")) == [NOT_MEASURED]
    assert verdicts(claims.dpo_cheaper_than_rlhf, _rlhf(10.0, 1.0)[:6]) == [NOT_MEASURED]  # no ppo
    (v,) = claims.dpo_cheaper_than_rlhf(build_lines(frame(_rlhf(10.0, 1.0, dpo_task="other"))))
    assert v.verdict == HOLDS and "different tasks" in v.task


@pytest.mark.parametrize("grpo_gib, expected", [(9.5, HOLDS), (9.6, FAILS), (10.0, FAILS)])
def test_grpo_saves_memory(grpo_gib, expected):
    recs = (x3(rec, "grpo:lora", task="gsm", peak_rss_bytes=int(grpo_gib * GiB))
            + x3(rec, "ppo:lora", task="gsm", peak_rss_bytes=10 * GiB))
    assert verdicts(claims.grpo_saves_memory, recs) == [expected]


def test_grpo_not_measured():
    recs = [rec("grpo:lora", task="gsm", peak_rss_bytes=GiB), rec("ppo:full", task="gsm", peak_rss_bytes=10 * GiB)]
    assert verdicts(claims.grpo_saves_memory, recs) == [NOT_MEASURED]


def test_evaluate_runs_every_claim_once_on_an_empty_group():
    out = claims.evaluate(build_lines(frame([])))
    assert [v.claim for v in out] == [fn(build_lines(frame([])))[0].claim for fn in claims.CLAIMS]
    assert {v.verdict for v in out} == {NOT_MEASURED}
