"""advisor/cpu_memory.py: the --gpu cpu peak-RSS model, scored on the harness's own reference CPU runs."""
import json
from pathlib import Path

import pytest

from advisor import cpu_memory as cm
from advisor.catalogs import gpu, shape
from advisor.cli import main
from advisor.estimator import GIB, Request, estimate

REFERENCE = Path(__file__).resolve().parents[2] / "reports" / "reference" / "cpu-amd-epyc-2c-smollm2-135m" / "db"
TASKS = ("wiki-topics", "gsm-symbolic", "math-prefs", "instruct-mix", "pydocs-dapt")  # the reference runs' tasks
C = {"runtime_gib": 0.5, "allocator_factor": 0.4}


@pytest.fixture(scope="module")
def reference(smollm2):
    """Every ok record of the committed reference DB (read only) with its estimates."""
    from bench import taskdata

    for t in TASKS:
        taskdata.prepare(t)
    return cm.rows([REFERENCE])


@pytest.mark.parametrize("breakdown,allocator", [
    ({"weights": 2 * GIB, "activations": GIB, "logits": GIB / 2}, 0.6 * GIB),       # only transients count
    ({"weights": GIB, "optimizer_states": 2 * GIB, "reference_model": GIB}, 0.0),  # persistent only
    ({"gradients": GIB, "allocator_overhead": 5 * GIB, "runtime": 3 * GIB}, 0.4 * GIB),  # its own terms ignored
])
def test_overheads(breakdown, allocator):
    assert cm.overheads(breakdown, C) == pytest.approx({"allocator_overhead": allocator, "runtime": 0.5 * GIB})


@pytest.mark.parametrize("method", ["lora", "full", "qlora", "prompt"])
def test_cpu_estimate_is_tensors_plus_overheads(method):
    est = estimate(Request(shape=shape("smollm2-135m"), method=method, precision="fp32", seq_len=256, micro_batch=4,
                           gpu=gpu("cpu")))
    c, b = cm.constants(), est.breakdown
    transient = sum(v for k, v in b.items() if k not in cm.PERSISTENT and k not in cm.OWN)
    assert b["runtime"] == pytest.approx(c["runtime_gib"] * GIB)
    assert b["allocator_overhead"] == pytest.approx(c["allocator_factor"] * transient)
    assert est.peak_bytes == pytest.approx(sum(b.values())) and "cuda_context" not in b


@pytest.mark.parametrize("stage,task,batch,seq,padded", [
    ("sft:lora", "wiki-topics", 4, 256, 144),
    ("sft:lora", "gsm-symbolic", 4, 256, 232),
    ("cpt:lora", "pydocs-dapt", 4, 256, 256),     # packed: every sequence is max_length
    ("multitask:lora", "instruct-mix", 4, 256, 201),
    ("dpo:lora", "math-prefs", 2, 256, 232),      # the longer of chosen / rejected
    ("kto:lora", "math-prefs", 2, 256, 226),
    ("rlaif:lora", "math-prefs", 2, 192, 121),    # its own 16-token generations
    ("grpo:lora", "gsm-symbolic", 4, 256, 93),    # one prompt (4 completions of it); the estimator adds the rollout
])
def test_reference_padded_lengths(reference, stage, task, batch, seq, padded):
    (row,) = [r for r in reference if (r.stage, r.task, r.batch, r.seq) == (stage, task, batch, seq)]
    assert row.padded == padded


def test_reference_runs_within_10_percent_median(reference):
    fitted_on = set(json.loads(cm.CONSTANTS.read_text())["fitted_on"]["run_ids"])
    assert len(reference) == 42 and {r.run_id for r in reference} <= fitted_on
    err = cm.errors(reference)["padded_length"]
    assert err["n"] == 42 and err["median"] <= 0.10


@pytest.mark.parametrize("make,expected", [
    (lambda tmp: tmp / "missing", "not a directory"),
    (lambda tmp: (tmp / "file.parquet").write_text("x") and tmp / "file.parquet", "not a directory"),
    (lambda tmp: tmp, "no result records"),
])
def test_bad_db_exits_2(capsys, tmp_path, make, expected):
    bad = make(tmp_path)
    code = main(["estimate", "cpu-check", "--db", str(bad)])
    out, err = capsys.readouterr()
    assert code == 2 and expected in err and str(bad) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
