"""bench/trace_check.py: the tracer against the committed cpu-memory runs of SmolLM2-135M, at what each run fed.

The memory DB's records say what every sampled boundary fed (the meter's ``boundary_batches``); traced
there, each of these objectives (one per family: next-token, packed, pairs, unpaired pairs, rollouts)
lands within 5% of the measured live tensor bytes.
"""
from pathlib import Path

import pytest

from bench.trace_check import check, recorded_batches, records

MEMORY = Path(__file__).resolve().parents[2] / "reports" / "reference" / "cpu-amd-epyc-2c-smollm2-135m-memory" / "db"
SUBSET = ["sft:lora", "cpt:lora", "dpo:lora", "kto:lora", "grpo:lora"]


@pytest.fixture(scope="module")
def rows(smollm2):
    return {f"{r.objective}:{r.method}": r for r in check(MEMORY, set(SUBSET))}


def test_every_memory_record_says_what_it_fed():
    recs = records(MEMORY)
    assert len(recs) >= 30
    for rec in recs:
        fed = recorded_batches(rec)
        assert fed and len(fed) == 2 and all(len(f) == 3 and f[1] <= 256 for f in fed), (rec["stage"], fed)


@pytest.mark.parametrize("stage", SUBSET)
def test_trace_within_5_percent_as_fed(rows, stage):
    row = rows[stage]
    assert row.fed is not None and not row.fed.startswith("~")
    assert abs(row.fed_error) <= 0.05, (stage, row.fed, row.measured, row.traced_fed)
