"""The per-task differences table: "worse"/"more"/"slower" only where intervals are apart,
"not distinguishable" where they overlap or a line has a single run."""
from report_records import frame, sft

from reports.compare import COLUMNS, SAME, task_rows
from reports.table import build_lines


def rows_by_stage(records, task="wiki-topics"):
    metric, rows = task_rows(build_lines(frame(records)), task)
    return metric, {r[0]: dict(zip(COLUMNS, r)) for r in rows}


def three(method, accs, mems, tps=(100.0, 101.0, 102.0)):
    return [sft(method, seed=s, metric_after=a, mem_gib=m, tokens_per_s=t) for s, (a, m, t) in enumerate(zip(accs, mems, tps))]


def test_apart_and_overlapping_intervals():
    metric, rows = rows_by_stage(
        three("full", [0.80, 0.81, 0.82], [5.0, 5.0, 5.0], (50.0, 51.0, 52.0))
        + three("lora", [0.70, 0.71, 0.72], [4.0, 4.1, 4.2])          # quality apart from full's: worse
        + three("dora", [0.78, 0.80, 0.82], [4.0, 4.5, 5.0]))         # overlaps full's quality and lora's memory
    assert metric == "acc"
    assert list(rows) == ["sft:full", "sft:dora", "sft:lora"]         # best quality first (acc: higher)
    assert rows["sft:full"]["vs best quality"] == "best"
    assert rows["sft:lora"]["vs best quality"] == "worse" and rows["sft:dora"]["vs best quality"] == SAME
    assert rows["sft:lora"]["vs lowest memory"] == "best" and rows["sft:dora"]["vs lowest memory"] == SAME
    assert rows["sft:full"]["vs lowest memory"] == "more"
    assert rows["sft:full"]["vs fastest"] == "slower" and rows["sft:lora"]["n"] == "3"


def test_single_runs_are_never_distinguishable():
    _, rows = rows_by_stage([sft("full", metric_after=0.9), sft("lora", metric_after=0.1)])
    assert rows["sft:full"]["vs best quality"] == "best"
    assert rows["sft:lora"]["vs best quality"] == SAME and rows["sft:lora"]["quality after"] == "0.1"


def test_lower_is_better_metric_sorts_ascending():
    _, rows = rows_by_stage([sft("full", seed=s, metric_name="eval_loss", metric_after=1.0) for s in range(3)]
                            + [sft("lora", seed=s, metric_name="eval_loss", metric_after=2.0) for s in range(3)])
    assert list(rows) == ["sft:full", "sft:lora"] and rows["sft:lora"]["vs best quality"] == "worse"
