"""Matrices and the runner: expansion, filters, shards, records per run, resume, oom, kills.

    .venv/bin/python -m pytest tests/bench/test_runner.py -q
"""
import json
import signal
import time

import polars as pl
import pytest

from advisor.cli import main
from bench import matrix as mx
from bench.results import read_runs, record_files
from bench.runner import Runner, run_matrix
from bench.schema import SCHEMA
from common.errors import UserError

HP = {"max_steps": 2, "batch_size": 2, "max_length": 32, "eval_limit": 2}


def write_matrix(path, runs, **defaults):
    spec = {"name": "t", "defaults": {"model": "tiny-llama", "task": "smoke", "hp": HP, "timeout_s": 300, **defaults},
            "runs": runs}
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def test_shipped_matrices_expand():
    for name in mx.matrix_names():
        runs = mx.expand(mx.load(name))
        assert runs and len({r.config_hash for r in runs}) == len(runs), name
    smoke = mx.expand(mx.load("smoke"))
    methods = {r.method for r in smoke if r.objective == "sft"}
    objectives = {r.objective for r in smoke}
    from methods import OBJECTIVES, PARAMETERIZATIONS

    assert methods == set(PARAMETERIZATIONS) and objectives == set(OBJECTIVES)


def test_grid_seeds_filter_and_shards(tmp_path):
    path = write_matrix(tmp_path / "m.yaml", [{"stack": "sft:lora", "grid": {"hp.max_length": [32, 64], "seed": [0, 1]}},
                                              {"stack": "sft:full"}], seeds=[0, 1])
    runs = mx.expand(mx.load(str(path)))
    assert len(runs) == 6
    assert {(r.hp["max_length"], r.seed) for r in runs if r.method == "lora"} == {(32, 0), (32, 1), (64, 0), (64, 1)}
    assert len(mx.apply_filter(runs, "method = 'full'")) == 2
    assert len(mx.apply_filter(runs, "max_length = 64 AND seed = 1")) == 1
    shards = [mx.apply_shard(runs, (i, 3)) for i in range(3)]
    assert sorted(r.index for s in shards for r in s) == list(range(6))
    with pytest.raises(UserError, match="--filter"):
        mx.apply_filter(runs, "nonsense ===")
    with pytest.raises(UserError):
        mx.parse_shard("3/3")
    assert runs[0].train_args()[:2] == ["--stack", "sft:lora"]


def test_bad_matrices_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nruns: [{stack: 'sft:nope'}]\ndefaults: {model: tiny-llama, task: smoke}\n")
    with pytest.raises(UserError, match="nope"):
        mx.expand(mx.load(str(bad)))
    bad.write_text("name: x\nruns: [{stack: 'sft:lora', colour: red}]\n")
    with pytest.raises(UserError, match="colour"):
        mx.load(str(bad))
    with pytest.raises(UserError, match="unknown matrix"):
        mx.load("smokee")
    assert main(["bench", "run", "--matrix", "smokee"]) == 2


def test_three_runs_write_three_typed_records_and_resume_skips(tmp_path, tiny_llama, capsys):
    path = write_matrix(tmp_path / "m.yaml", [{"grid": {"stack": ["sft:lora", "sft:full", "dpo:lora"]}}])
    db = tmp_path / "db"
    argv = ["bench", "run", "--matrix", str(path), "--db", str(db), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    df = read_runs(db)
    assert df.schema == pl.Schema(SCHEMA)
    assert len(df) == 3 and set(df["status"]) == {"ok"} and set(df["stage"]) == {"sft:lora", "sft:full", "dpo:lora"}
    assert df["tokens_per_s"].null_count() == 0 and df["peak_rss_bytes"].min() > 0
    assert df["peak_tensor_bytes"].min() > 0 and set(df["matrix"]) == {"t"}
    assert main([*argv, "--resume"]) == 0
    assert "3 of 3 runs already have ok records" in capsys.readouterr().err
    assert len(read_runs(db)) == 3
    assert main([*argv, "--resume", "--dry-run"]) == 0
    assert "0 runs to do" in capsys.readouterr().out


def test_memory_error_becomes_oom_and_the_next_run_happens(tmp_path, tiny_llama):
    # LoRA rank 10M on a 64-wide model: one 2.56 GB tensor, above the 1.5 GB left under the cap.
    import resource

    vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
    cap_gb = max(vm, 3 * 2**30) / 2**30 + 1.5
    path = write_matrix(tmp_path / "m.yaml", [
        {"stack": "sft:lora", "method_cfg": {"r": 10_000_000}, "memory_limit_gb": cap_gb},
        {"stack": "sft:lora"},
    ])
    db = tmp_path / "db"
    outcomes = run_matrix(mx.expand(mx.load(str(path))), db, tmp_path / "out", quiet=True)
    assert [o.status for o in outcomes] == ["oom", "ok"]
    df = read_runs(db).sort("status")
    assert df["status"].to_list() == ["ok", "oom"]
    assert "allocate" in df["error"][1] or "MemoryError" in df["error"][1]
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY  # the runner itself is not capped


def test_timeout_kill_leaves_no_partial_file_and_records_timeout(tmp_path, tiny_llama):
    path = write_matrix(tmp_path / "m.yaml", [{"stack": "sft:full", "hp": {**HP, "max_steps": 100000}, "timeout_s": 8},
                                              {"stack": "sft:lora"}])
    db = tmp_path / "db"
    outcomes = run_matrix(mx.expand(mx.load(str(path))), db, tmp_path / "out", quiet=True)
    assert [o.status for o in outcomes] == ["timeout", "ok"]
    damaged = []
    df = read_runs(db, on_damaged=lambda p, m: damaged.append(p))
    assert not damaged and len(df) == 2 and not list(db.glob(".*"))
    rec = df.filter(pl.col("status") == "timeout").row(0, named=True)
    assert rec["stage"] == "sft:full" and "timed out" in rec["error"] and rec["hardware"]


def test_sigterm_cancels_the_running_child(tmp_path, tiny_llama):
    """kill <runner> (SIGTERM) ends the matrix like Ctrl-C: the child records 'cancelled' and is gone, instead of
    training on and recording beside the next matrix."""
    import subprocess
    import sys

    path = write_matrix(tmp_path / "m.yaml", [{"stack": "sft:lora", "hp": {**HP, "max_steps": 100000}}])
    db, out = tmp_path / "db", tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "advisor.cli", "bench", "run", "--matrix", str(path), "--db", str(db),
                             "--out", str(out), "--no-fork"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and not any('"step"' in p.read_text() for p in out.glob("*.events")):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 130, proc.stderr.read().decode()[-2000:]
    left = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
    assert not left, left  # the child (its argv names the out folder) was reaped
    assert read_runs(db)["status"].to_list() == ["cancelled"]


def test_crash_without_record_is_an_error_record(tmp_path, tiny_llama):
    # A missing model makes the child exit 2 before it trains: the runner records why.
    path = write_matrix(tmp_path / "m.yaml", [{"stack": "sft:lora", "model": "no-such-model"}])
    db = tmp_path / "db"
    runner = Runner(db, tmp_path / "out", fork=False)
    try:
        o = runner.run_one(mx.expand(mx.load(str(path)))[0])
    finally:
        runner.close()
    assert o.status == "error" and "no-such-model" in o.records[0]["error"].splitlines()[0]  # the reason leads
    assert len(record_files(db)) == 1


def test_run_one_feeds_each_step_event_once(tmp_path, tiny_llama):
    path = write_matrix(tmp_path / "m.yaml", [{"stack": "sft:lora", "hp": {**HP, "max_steps": 3}}])
    runner = Runner(tmp_path / "db", tmp_path / "out", fork=False)
    events = []
    try:
        o = runner.run_one(mx.expand(mx.load(str(path)))[0], on_step=events.append)
    finally:
        runner.close()
    assert o.status == "ok"
    assert [e["step"] for e in events if e.get("event") == "step"] == [1, 2, 3]


def test_unreadable_record_of_the_runs_own_is_reported_and_the_matrix_goes_on(tmp_path, monkeypatch):
    # The first run's record name is taken by a damaged file (the child is refused: it writes none).
    # Settling must report that file, not skip it silently nor abort on FileExistsError.
    import bench.runner as runner_mod
    from bench.runner import done_hashes

    monkeypatch.setattr(runner_mod, "attempt_id", lambda run: f"{run.config_hash[:16]}-fixed000")
    path = write_matrix(tmp_path / "m.yaml", [{"grid": {"stack": ["sft:lora", "sft:full"]}, "model": "no-such-model"}])
    runs = mx.expand(mx.load(str(path)))
    db = tmp_path / "db"
    db.mkdir()
    damaged_file = db / f"{runs[0].config_hash[:16]}-fixed000-0.parquet"
    damaged_file.write_bytes(b"not a parquet file")
    reported = []
    outcomes = run_matrix(runs, db, tmp_path / "out", fork=False, quiet=True,
                          on_damaged=lambda p, m: reported.append(p))
    assert [o.status for o in outcomes] == ["error", "error"]
    assert reported == [damaged_file] and "damaged" in outcomes[0].error
    assert "no-such-model" in outcomes[1].records[0]["error"].splitlines()[0]
    assert damaged_file.read_bytes() == b"not a parquet file"  # reported, never overwritten
    reported.clear()
    assert done_hashes(db, runs, on_damaged=lambda p, m: reported.append(p)) == set()
    assert reported == [damaged_file]  # --resume reports it too, and reruns the run
