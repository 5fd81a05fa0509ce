"""Long runs and more than one process: checkpoint resume, 2-rank DDP on CPU, two Optuna workers.

    .venv/bin/python -m pytest tests/bench/test_scaleout.py -q

- A run with ``--save-steps`` is SIGKILLed after a checkpoint; ``--resume`` continues from it
  and the record has the full step count.
- ``--launcher accelerate --num-processes 2`` trains tiny-llama with two CPU ranks (DDP over
  gloo; docs/platform-facts.md: ``--cpu`` alone would start one): both ranks report world size 2, log the same
  losses, and exactly one result record is written.
- Two ``bench tune`` workers share one study in one SQLite file (``--storage``).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import polars as pl

from bench.results import read_runs, record_files

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
SMALL = ["--model", "tiny-llama", "--task", "smoke", "--hp", "batch_size=2", "--hp", "max_length=32",
         "--hp", "eval_limit=2", "--quiet"]


def cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "advisor.cli", *argv]


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_killed_run_resumes_from_its_checkpoint(tmp_path, tiny_llama):
    out, db, ev = tmp_path / "out", tmp_path / "db", tmp_path / "ev.jsonl"
    steps = 80
    argv = cli("train", "--stack", "sft:lora", *SMALL, "--max-steps", str(steps), "--save-steps", "10",
               "--out", str(out), "--db", str(db))
    proc = subprocess.Popen([*argv, "--events", str(ev)], cwd=ROOT, env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trainer = out / "stage0-sft-lora" / "trainer"
    deadline = time.monotonic() + 240
    while not list(trainer.glob("checkpoint-*/trainer_state.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = max(e["step"] for e in events(ev) if e["event"] == "step")
    assert done_before < steps and not record_files(db)

    ev2 = tmp_path / "ev2.jsonl"
    res = subprocess.run(cli("train", "--resume", "--out", str(out), "--db", str(db), "--events", str(ev2),
                             "--quiet"), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    df = read_runs(db)
    assert len(df) == 1 and df["status"][0] == "ok" and df["steps"][0] == steps
    resumed = [e["step"] for e in events(ev2) if e["event"] == "step"]
    assert resumed[0] > 10 and resumed[-1] == steps  # continued from a checkpoint, not from step 1
    assert len(resumed) == steps - (resumed[0] - 1)
    assert (out / "stage0-sft-lora" / "adapter").is_dir()
    # resuming a finished run trains nothing more and writes no second record
    again = subprocess.run(cli("train", "--resume", "--out", str(out), "--db", str(db), "--quiet"), cwd=ROOT,
                           env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and len(record_files(db)) == 1  # nothing left to run is not a success


def test_two_cpu_ranks_ddp_write_one_record(tmp_path, tiny_llama):
    out, db, ev = tmp_path / "out", tmp_path / "db", tmp_path / "ev.jsonl"
    res = subprocess.run(cli("train", "--stack", "sft:lora", *SMALL, "--max-steps", "3", "--out", str(out),
                             "--db", str(db), "--events", str(ev), "--launcher", "accelerate", "--num-processes", "2"),
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = {0: events(ev), 1: events(Path(f"{ev}.rank1"))}
    for r, evs in ranks.items():
        ddp = [e for e in evs if e["event"] == "ddp"]
        assert ddp == [{"event": "ddp", "rank": r, "world_size": 2, "backend": "gloo"}]
    losses = {r: [e["loss"] for e in evs if e["event"] == "step"] for r, evs in ranks.items()}
    assert len(losses[0]) == 3 and losses[0] == losses[1] and losses[0][-1] is not None
    df = read_runs(db)
    assert len(df) == 1 and df["status"][0] == "ok" and df["steps"][0] == 3
    assert sorted(p.name for p in out.iterdir()) == ["stack.json", "stage0-sft-lora"]


def test_two_optuna_workers_share_one_sqlite_study(tmp_path, tiny_llama):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    db = tmp_path / "db"
    # A home of its own (tuned.json, optuna runs); the prepared tiny-llama folder passed by path.
    argv = cli("bench", "tune", "--method", "lora", "--objective", "sft", "--task", "smoke", "--model", str(tiny_llama),
               "--trials", "1", "--max-steps", "2", "--hp", "batch_size=2", "--hp", "max_length=32", "--hp",
               "eval_limit=2", "--storage", storage, "--db", str(db), "--json")
    env = {**ENV, "TUNEBENCH_HOME": str(tmp_path / "home")}
    workers = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    results = [w.communicate(timeout=400) for w in workers]
    for w, (stdout, stderr) in zip(workers, results):
        assert w.returncode == 0, stderr[-2000:]
    summaries = [json.loads(stdout) for stdout, _ in results]
    assert summaries[0]["study"] == summaries[1]["study"]
    study = optuna.load_study(study_name=summaries[0]["study"], storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 2 and {t.number for t in complete} == {0, 1}
    assert max(s["trials"] for s in summaries) == 2  # the later worker saw both trials
    runs = read_runs(db)
    assert len(runs) == 2 and set(runs["status"]) == {"ok"} and set(runs["matrix"]) == {"tune"}
    # trials score held-out train records, never the test split the comparison reports
    assert {json.loads(h)["hp"]["eval_split"] for h in runs["hyperparams"]} == {"validation"}
    assert sorted(runs["run_id"].to_list()) == sorted(t.user_attrs["run_id"] for t in complete)
    assert pl.Series([t.params["learning_rate"] for t in complete]).n_unique() == 2


def test_a_learning_rate_grid_tries_exactly_its_values(tmp_path, tiny_llama, monkeypatch):
    from bench.tune import load_store, tune

    monkeypatch.setenv("TUNEBENCH_HOME", str(tmp_path / "home"))
    entry = tune("lora", "sft", "smoke", str(tiny_llama), None, max_steps=2, db=tmp_path / "db",
                 storage=f"sqlite:///{tmp_path / 'optuna.db'}", lrs=[1e-3, 3e-2],
                 hp=["batch_size=2", "max_length=32", "eval_limit=4"], log=lambda *_: None)
    runs = read_runs(tmp_path / "db")
    lrs = sorted(json.loads(h)["hp"]["learning_rate"] for h in runs["hyperparams"])
    assert lrs == [1e-3, 3e-2] and entry["trials"] == 2  # one trial per value, nothing drawn in between
    best = runs.sort("eval_loss").row(0, named=True)
    assert entry["learning_rate"] == json.loads(best["hyperparams"])["hp"]["learning_rate"]
    assert load_store(tmp_path / "home" / "tuned.json")[f"{tiny_llama}|sft|lora|smoke"]["learning_rate"] == entry["learning_rate"]
