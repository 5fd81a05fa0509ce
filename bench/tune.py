"""Learning-rate search per method, so methods are compared at their own best LR.

    tunebench bench tune --method lora --objective sft --task smoke --model tiny-llama --trials 8
    tunebench bench tune --method dora --objective sft --task gsm-symbolic --model smollm2-135m \\
        --trials 12 --storage postgresql://host/optuna      # several workers share one study

Each Optuna trial is one child training run (``bench/child.py``, an argument list) that records its
result in the DB like any run (matrix ``tune``); the trial's value is that record's held-out
``eval_loss`` (``train_loss`` where the objective has no LM loss, e.g. ``rm``). Trials score a
validation set carved from the train split (``eval_split=validation``: the last ``eval_limit`` train
records, held out of training), never the test split the comparison reports: an LR picked on the
test loss would flatter the tuned methods. The best LR is
kept in ``$TUNEBENCH_HOME/tuned.json`` keyed by model/objective/method/task; a matrix that says
``learning_rate: tuned`` reads it from there (bench/matrix.py).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
import uuid
from pathlib import Path

from filelock import FileLock

from bench.home import home
from common.errors import UserError


def store_path() -> Path:
    return home() / "tuned.json"


def _key(model: str, objective: str, method: str, task: str) -> str:
    return f"{model}|{objective}|{method}|{task}"


def load_store(path: Path | None = None) -> dict:
    path = path or store_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"tuned-values file {path} is unreadable ({e}); delete it or fix it") from None
    return data if isinstance(data, dict) else {}


def lookup(model: str, objective: str, method: str, task: str, store: dict | None = None) -> float | None:
    entry = (store if store is not None else load_store()).get(_key(model, objective, method, task))
    return float(entry["learning_rate"]) if entry else None


def save_best(model: str, objective: str, method: str, task: str, entry: dict, path: Path | None = None) -> None:
    """Merge one entry into the store atomically (a lock, a temp file and a rename)."""
    path = path or store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        data = load_store(path)
        data[_key(model, objective, method, task)] = entry
        fd, tmp = tempfile.mkstemp(prefix=".tuned.", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)


def default_storage() -> str:
    home().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home() / 'optuna.db'}"


def lr_range(method: str) -> tuple[float, float]:
    """A decade either side of the family's default LR (the method card's default_lr)."""
    from methods import parameterization

    base = parameterization(method).card.default_lr
    return base / 10, min(base * 10, 1.0)


def trial_value(db: Path, run_id: str) -> tuple[float | None, dict | None]:
    from bench.results import read_runs
    import polars as pl

    df = read_runs(db, on_damaged=lambda p, m: None).filter(pl.col("run_id") == run_id)
    if df.is_empty():
        return None, None
    rec = df.row(0, named=True)
    if rec["status"] != "ok":
        return None, rec
    value = rec["eval_loss"] if rec["eval_loss"] is not None else rec["train_loss"]
    return (float(value) if value is not None and math.isfinite(value) else None), rec


def open_study(optuna, name: str, storage: str, attempts: int = 5, sampler=None):
    """Create or load the shared study. Workers that start together on a new database race to
    create its tables ("table ... already exists", "database is locked"): the losers retry."""
    import random
    import time

    for attempt in range(attempts):
        try:
            return optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True,
                                       sampler=sampler)
        except Exception as e:  # a bad URL, an unreachable database, or a lost creation race
            text = str(e)
            racing = any(m in text for m in ("already exists", "database is locked", "UNIQUE constraint"))
            if not racing or attempt == attempts - 1:
                raise UserError(f"cannot open Optuna storage {storage}: {text.splitlines()[0]}") from None
            time.sleep(0.2 + random.random() * (attempt + 1))


def tune(method: str, objective: str, task: str, model: str, trials: int | None, *, storage: str | None = None,
         max_steps: int = 20, seed: int = 0, db: Path | None = None, hp: list[str] | None = None,
         timeout_s: float = 3600, lrs: list[float] | None = None, log=print) -> dict:
    """Search the learning rate (Optuna's default sampler over a decade either side of the card's
    default), or with ``lrs`` try exactly those values (a grid: one trial each, ``trials`` defaults to
    their count) -- with few trials a grid shows the loss-vs-LR curve that random draws may miss."""
    import optuna

    from bench.child import ChildRun, log_tail
    from bench.home import default_db
    from bench.stack import validate
    from common.stack import parse_stack

    if lrs and not all(0 < x <= 1 for x in lrs):
        raise UserError(f"--lr values must be in (0, 1], got {', '.join(f'{x:g}' for x in lrs)}")
    trials = trials if trials is not None else len(lrs or [])
    if trials < 1:
        raise UserError(f"--trials must be >= 1, got {trials} (or give --lr values)")
    if any(x.split("=", 1)[0].strip() == "eval_split" for x in hp or []):
        raise UserError("bench tune always scores its trials on eval_split=validation (held-out train records); "
                        "drop --hp eval_split")
    stage = f"{objective}:{method}"
    spec = parse_stack(stage, model, task, seed=seed)
    validate(spec)
    db = Path(db or default_db())
    storage = storage or default_storage()
    lo, hi = (min(lrs), max(lrs)) if lrs else lr_range(method)
    # trials of one study share every setting but the LR (the fixed --hp values are part of its name), and
    # score held-out train records ("validation": studies from before that scored the test split stay apart)
    name = f"lr|{model}|{stage}|{task}|steps{max_steps}|seed{seed}|{' '.join(sorted(hp or []))}|validation"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.GridSampler({"learning_rate": sorted(set(lrs))}, seed=seed) if lrs else None
    study = open_study(optuna, name, storage, sampler=sampler)
    out_root = home() / "runs" / "tune"
    out_root.mkdir(parents=True, exist_ok=True)

    def run_trial(trial):
        lr = trial.suggest_float("learning_rate", lo, hi, log=True)
        rid = f"tune-{uuid.uuid4().hex[:12]}"
        args = ["--stack", stage, "--model", model, "--task", task, "--seed", str(seed), "--max-steps", str(max_steps),
                "--hp", f"learning_rate={lr!r}", "--hp", "eval_split=validation",
                *sum((["--hp", x] for x in hp or []), []),
                "--db", str(db), "--matrix", "tune", "--run-id", rid, "--out", str(out_root / rid), "--quiet"]
        child = ChildRun(args, spec=spec, run_id=rid, db=db, log=out_root / f"{rid}.log", out=out_root / rid,
                         matrix="tune").start()
        child.wait(timeout_s)
        child.settle()  # a trial that died without a record (timeout, crash) gets one
        if child.timed_out:
            raise RuntimeError(f"trial {trial.number} timed out after {timeout_s:.0f} s")
        value, rec = trial_value(db, f"{rid}-0")
        if value is None:
            why = (rec or {}).get("error") or log_tail(child.log_path, 1) or f"exit {child.rc}"
            raise RuntimeError(f"trial {trial.number} lr={lr:.3g} failed: {why.splitlines()[0][:200]}")
        trial.set_user_attr("run_id", f"{rid}-0")
        log(f"trial {trial.number:3}  lr {lr:.3g}  loss {value:.4f}")
        return value

    study.optimize(run_trial, n_trials=trials, catch=(RuntimeError,))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise UserError(f"every trial failed for {stage} on {task}; see the error records in {db}")
    best = study.best_trial
    entry = {"learning_rate": best.params["learning_rate"], "value": best.value, "metric": "eval_loss",
             "scored_on": "validation: the last eval_limit train records, held out of training",
             "trials": len(done), "study": name, "storage": storage, "run_id": best.user_attrs.get("run_id"),
             "max_steps": max_steps, "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    save_best(model, objective, method, task, entry)
    return entry
