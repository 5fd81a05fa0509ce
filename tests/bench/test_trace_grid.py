"""The committed trace grid (reports/reference/trace-grid): a fixed subset re-traced and re-scored.

Re-tracing a few small-model rows must reproduce the committed traced peaks (the tracer is
deterministic: a change that moves them changes every committed figure, so it must be deliberate),
and the analytic estimator must stay within a loose bound of them.
"""
import pytest

from advisor import trace_grid

SUBSET = (6, 7, 10)  # qwen2.5-0.5b multitask:freeze, orpo:full (fp32 master), rm:ln_tuning; ~4 s each


def _rows():
    grid = {c["id"]: c for c in trace_grid.load_grid()}
    done = {int(r["id"]): r for r in trace_grid.read_results() if r.get("trace_gib")}
    return [(grid[i], done[i]) for i in SUBSET]


def test_grid_is_complete_enough():
    grid = trace_grid.load_grid()
    assert len(grid) >= 500
    assert {c["method"] for c in grid} >= {"full", "lora", "qlora", "prefix", "ia3"}
    assert len({c["model"] for c in grid}) >= 8 and len({c["objective"] for c in grid}) >= 13


@pytest.mark.parametrize("i", range(len(SUBSET)))
def test_subset_retraces_to_the_committed_peak(i):
    cfg, row = _rows()[i]
    again = trace_grid.trace_row(cfg)
    assert again["trace_gib"] == pytest.approx(float(row["trace_gib"]), rel=0.005)
    est = trace_grid.estimate_row(row)
    # today: -28%, -27%, 0% (freeze's tied head and ORPO's fp32 NLL are not modelled yet)
    assert abs(est / float(row["trace_gib"]) - 1) < 0.35, (est, row["trace_gib"])
