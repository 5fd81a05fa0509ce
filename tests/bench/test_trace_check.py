"""bench/trace_check.py: the tracer against the committed cpu-memory runs of SmolLM2-135M, at what each run fed.

The memory DB's records say what every sampled boundary fed (the meter's ``boundary_batches``); traced
there, each of these objectives (next-token with a padding mask, unpaired pairs without one, rollouts)
lands within 5% of the measured live tensor bytes.
"""
from pathlib import Path

import pytest

from bench.trace_check import model_config, recorded_batches, records, request_for, trace_fed

MEMORY = Path(__file__).resolve().parents[2] / "reports" / "reference" / "cpu-amd-epyc-2c-smollm2-135m-memory" / "db"
SUBSET = ["sft:lora", "kto:lora", "grpo:lora"]


@pytest.fixture(scope="module")
def recs(smollm2):
    return {r["stage"]: r for r in records(MEMORY) if r["stage"] in SUBSET}


def test_every_memory_record_says_what_it_fed():
    recs = records(MEMORY)
    assert len(recs) >= 30
    for rec in recs:
        fed = recorded_batches(rec)
        assert fed and len(fed) == 2 and all(len(f) == 3 and f[1] <= 256 for f in fed), (rec["stage"], fed)


@pytest.mark.parametrize("stage", SUBSET)
def test_trace_within_5_percent_as_fed(recs, stage):
    rec = recs[stage]
    fed, traced = trace_fed(rec, request_for(rec, model_config(rec["model"])))
    assert not fed.startswith("~")  # traced at the recorded lengths, not the expected ones
    assert abs(traced / rec["peak_tensor_bytes"] - 1) <= 0.05, (stage, fed, rec["peak_tensor_bytes"], traced)
