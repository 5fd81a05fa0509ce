"""Crash-safety figures for the results store: kill real runs at random moments, race many writers.

    tunebench bench stress                          # 20 train kills, 20 writer kills, 8 writers x 100 records
    tunebench bench stress --kills 10 --writers 8 --records 100 --db /tmp/stress-db

Kill trials. Half start a real child training run (bench/child.py; tiny-llama, sft:lora, smoke task) into the
stress DB and SIGKILL its process group at a random moment: during start-up, during training
(after a random number of steps), or after the last step, while it evaluates, saves and writes
its record. The runs are forked from one ``bench/zygote.py`` fork server, as ``bench run`` starts
them, so the ~9 s of imports are paid once and 20 trials take about a minute on two cores
(without ``fork`` each run is a fresh interpreter). The other half SIGKILL a process that does
nothing but write large records, so the kill lands inside ``write_record`` almost every time.
After each kill the DB is checked:

- corrupt: a ``*.parquet`` file that ``read_runs`` rejects (truncated, garbage, wrong columns);
- partial: a leftover temp file (``.*.tmp``) or any other file that is not a published record (the
  store's own ``_index`` folder of published segments is not; a temp file left inside it is).

Concurrent writers: W processes each write R records with distinct run ids at the same time;
``lost`` = records a writer reported written but the DB cannot read back.

A benchmark prints figures, it does not assert them: the command exits 1 when anything was lost,
corrupt or partial, and ``tests/bench/test_stress.py`` runs a small version.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.events import EventTail
from bench.results import INDEX_DIR, read_runs, record_files, write_record

TRAIN_STEPS = 60  # enough optimizer steps (~0.05 s each on tiny-llama) for a kill to land mid-training
STARTUP_LIMIT_S = 180
DEFAULT_KILLS = 40  # 20 real training runs killed, 20 writers
# When a start-up kill lands (at the latest: the first step): a forked run loads its model and data
# in ~1 s; a fresh interpreter first imports the training stack (~9 s).
STARTUP_S = {"forked": (0.05, 1.0), "fresh": (0.5, 8.0)}
FINISH_S = 0.6  # first guess at the last step -> exit window; shrunk when a run exits before its kill
RETRIES = 2     # up to this many extra runs per asked-for kill of a run that exited before it
CHILD_ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@dataclass
class Trial:
    kind: str            # "train" or "writer"
    target: str          # the phase aimed at: startup, training, finishing, write
    phase: str = ""      # the phase the process was in when killed (from its events / the DB)
    killed_after_s: float = 0.0
    records: int = 0     # readable records it left
    corrupt: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)


def db_damage(db: Path) -> tuple[list[str], list[str]]:
    """(corrupt record files, partial/leftover files) in ``db``."""
    corrupt: list[str] = []
    read_runs(db, on_damaged=lambda p, m: corrupt.append(p.name))
    published = {p.name for p in record_files(db)}
    partial = []
    for p in db.iterdir() if db.is_dir() else []:
        if p.name == INDEX_DIR and p.is_dir():
            partial += [f"{INDEX_DIR}/{q.name}" for q in p.iterdir()
                        if q.name.startswith(".") or q.suffix != ".parquet"]
        elif p.name not in published:
            partial.append(p.name)
    return corrupt, sorted(partial)


class StepCount:
    """Steps a run has reported so far, read incrementally from its events file."""

    def __init__(self, events: Path):
        self.tail, self.n = EventTail(events), 0

    def __call__(self) -> int:
        self.n += sum(1 for e in self.tail.read() if e.get("event") == "step")
        return self.n


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _wait(cond, proc, limit_s: float, poll_s: float = 0.01) -> bool:
    """Poll until ``cond()`` or the process exits; True if the condition was met."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if cond():
            return True
        if proc.poll() is not None:
            return cond()
        time.sleep(poll_s)
    return False


def fork_server():
    """A ``bench.zygote`` fork server with the children's environment, or None where it cannot start."""
    from bench.child import ForkServer

    if not hasattr(os, "fork"):
        return None
    saved = {k: os.environ.get(k) for k in CHILD_ENV}
    os.environ.update(CHILD_ENV)  # the server's environment is every forked run's
    try:
        return ForkServer()
    except (RuntimeError, OSError):
        return None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def train_kill(db: Path, work: Path, target: str, rng: random.Random, server=None,
               timing: dict | None = None) -> Trial:
    """Start a real training run (forked from ``server`` if given) and SIGKILL it in the ``target``
    phase, at a random moment in it. ``timing["finish_s"]``: the last step -> exit window a
    finishing kill aims into; a run that exits first shrinks it for the next one."""
    timing = timing if timing is not None else {}
    from bench.child import ChildRun
    from common.stack import parse_stack

    events, out = work / "events.jsonl", work / "out"
    rid = f"stress-{work.name}-{os.urandom(4).hex()}"
    args = ["--stack", "sft:lora", "--model", "tiny-llama", "--task", "smoke", "--max-steps", str(TRAIN_STEPS),
            "--hp", "batch_size=2", "--hp", "max_length=32", "--hp", "eval_limit=8", "--db", str(db),
            "--out", str(out), "--events", str(events), "--run-id", rid, "--quiet"]
    t0 = time.monotonic()
    before = len(record_files(db))
    # never settled: the kill's aftermath in the DB is what this trial measures
    proc = ChildRun(args, spec=parse_stack("sft:lora", "tiny-llama", "smoke"), run_id=rid, db=db,
                    log=work / "train.log", events=events, out=out, env=None if server else CHILD_ENV,
                    server=server).start()
    steps = StepCount(events)
    if target == "startup":  # a random moment before the first step
        _wait(lambda: steps() >= 1, proc, rng.uniform(*STARTUP_S["forked" if server else "fresh"]), poll_s=0.002)
    elif target == "training":
        n = rng.randint(1, TRAIN_STEPS - 10)
        _wait(lambda: steps() >= n, proc, STARTUP_LIMIT_S)
    else:  # finishing: after the last step, a random moment inside eval + save + record write
        _wait(lambda: steps() >= TRAIN_STEPS, proc, STARTUP_LIMIT_S, poll_s=0.002)
        last_step, window = time.monotonic(), timing.get("finish_s", FINISH_S)
        if _wait(lambda: False, proc, rng.uniform(0.0, window), poll_s=0.002) or proc.poll() is not None:
            timing["finish_s"] = max(0.02, 0.8 * (time.monotonic() - last_step))
    killed_after = time.monotonic() - t0
    finished = proc.poll() is not None
    proc.kill()
    done = steps()
    after = len(record_files(db))
    if finished:
        phase = "exited before the kill"
    elif after > before:
        phase = "record written"
    elif not done:
        phase = "startup"
    elif done < TRAIN_STEPS:
        phase = f"training (step {done})"
    else:
        phase = "finishing (eval/save/write)"
    return Trial("train", target, phase, killed_after, after - before)


WRITE_LOOP = """
import sys, uuid
from bench.results import write_record
big = "x" * 200_000  # a large error text makes each write take a while
while True:
    write_record(sys.argv[1], {"status": "error", "run_id": "stress-" + uuid.uuid4().hex, "error": big})
"""


def writer_kill(db: Path, rng: random.Random) -> Trial:
    """SIGKILL a process that writes records back to back: the kill lands inside a write."""
    t0 = time.monotonic()
    before = len(record_files(db))
    proc = subprocess.Popen([sys.executable, "-c", WRITE_LOOP, str(db)], start_new_session=True,
                            stdin=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    _wait(lambda: len(record_files(db)) > before, proc, 60)
    time.sleep(rng.uniform(0.05, 0.5))
    killed_after = time.monotonic() - t0
    _kill(proc)
    return Trial("writer", "write", "writing records", killed_after, len(record_files(db)) - before)


def _writer(db: str, worker: int, n: int, done) -> None:
    written = 0
    for i in range(n):
        write_record(db, {"status": "ok", "run_id": f"w{worker}-{i}", "seed": i, "hyperparams": json.dumps({"i": i})})
        written += 1
    done.put((worker, written))


def concurrent_writers(db: Path, writers: int, records: int) -> dict:
    """``writers`` processes write ``records`` each at once; count what reads back."""
    ctx = mp.get_context("spawn")
    done = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(db), w, records, done)) for w in range(writers)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    reported = {}
    for _ in procs:
        worker, n = done.get(timeout=600)
        reported[worker] = n
    for p in procs:
        p.join(60)
    wall = time.monotonic() - t0
    corrupt: list[str] = []
    df = read_runs(db, on_damaged=lambda p, m: corrupt.append(p.name))
    ids = set(df["run_id"].to_list())
    expected = {f"w{w}-{i}" for w, n in reported.items() for i in range(n)}
    _, partial = db_damage(db)
    return {"writers": writers, "records_each": records, "written": sum(reported.values()),
            "read_back": len(ids & expected), "lost": len(expected - ids), "corrupt": len(corrupt),
            "partial": len(partial), "failed_writers": sum(1 for p in procs if p.exitcode != 0),
            "wall_s": wall, "records_per_s": sum(reported.values()) / wall if wall > 0 else None}


def stress(db: Path, kills: int = DEFAULT_KILLS, writers: int = 8, records: int = 100, seed: int | None = None,
           log=print, fork: bool = True) -> dict:
    """Run the kill trials and the concurrent-writer race in ``db``; return the figures."""
    t_start = time.monotonic()
    rng = random.Random(seed)
    db.mkdir(parents=True, exist_ok=True)
    kill_db, race_db, work = db / "kills", db / "writers", db / "work"
    for d in (kill_db, race_db, work):
        d.mkdir(parents=True, exist_ok=True)
    trials: list[Trial] = []
    targets = ["startup", "training", "finishing"]
    n_train = (kills + 1) // 2
    server = fork_server() if fork and n_train else None
    forked = killed = runs = 0
    timing: dict = {}

    def checked(trial: Trial, label: str) -> None:
        trial.corrupt, trial.partial = db_damage(kill_db)
        trials.append(trial)
        log(f"{label}: {trial.kind:6} aimed at {trial.target:9} killed after {trial.killed_after_s:5.1f} s "
            f"in {trial.phase}; corrupt {len(trial.corrupt)}, partial {len(trial.partial)}")

    try:
        # A run that finishes before its kill is checked too, but does not count: another run takes its place.
        while killed < n_train and runs < n_train * (1 + RETRIES):
            target = targets[killed % len(targets)]
            trial_dir = work / f"train{runs}"
            trial_dir.mkdir()
            runs += 1
            try:
                trial = train_kill(kill_db, trial_dir, target, rng, server, timing)
                forked += server is not None
            except RuntimeError:  # the fork server died: go on with fresh interpreters
                server = None
                trial = train_kill(kill_db, trial_dir / "fresh", target, rng, None, timing)
            killed += trial.phase != "exited before the kill"
            checked(trial, f"train run {runs} (killed {killed}/{n_train})")
    finally:
        if server is not None:
            server.close()
    for k in range(kills - n_train):
        checked(writer_kill(kill_db, rng), f"writer kill {k + 1}/{kills - n_train}")
    corrupt, partial = db_damage(kill_db)
    race = concurrent_writers(race_db, writers, records) if writers else None
    return {
        "db": str(db),
        "kills": {"trials": killed + kills - n_train, "train": killed, "writer": kills - n_train,
                  "train_runs": runs, "exited_before_kill": runs - killed,
                  "records_left": len(record_files(kill_db)), "corrupt": len(corrupt), "partial": len(partial),
                  "corrupt_files": corrupt, "partial_files": partial, "forked_runs": forked,
                  "detail": [asdict(t) for t in trials]},
        "writers": race,
        "wall_s": round(time.monotonic() - t_start, 1),
    }


def failed(figures: dict) -> bool:
    k, w = figures["kills"], figures["writers"] or {}
    return bool(k["corrupt"] or k["partial"] or w.get("lost") or w.get("corrupt") or w.get("partial")
                or w.get("failed_writers"))

