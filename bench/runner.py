"""Run a benchmark matrix: each run in its own process, every outcome a result record.

    tunebench bench run --matrix smoke --db /tmp/tb-db
    tunebench bench run --matrix cpu-standard --resume --filter "objective = 'dpo'"
    tunebench bench run --matrix gpu-memory --shard 0/4 --timeout 900

Each run is one ``tunebench train`` call in a child process (an argument list, never a shell
string) with its own process group, a timeout and optionally an RLIMIT_AS cap set in the child.
The child writes its own records (ok, oom, error, cancelled). When it dies without one --
killed by the timeout, a segfault, the kernel, an import error -- the runner writes the record
for the stage that was running: ``timeout``, ``oom`` (a MemoryError / out-of-memory in its
stderr) or ``error`` with the last lines of its log. Then the matrix goes on.

Children are forked from a server that has already imported the training stack
(``bench/zygote.py``); ``--no-fork`` starts each from scratch instead. Both give one process
per run; forking only saves the ~9 s of imports each run would otherwise pay.

Run ids are ``<config hash[:16]>-<random 8>`` (stages append ``-<stage index>``), so
``--resume`` can tell which matrix runs already have an ``ok`` record for every stage.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from bench.events import EventTail
from bench.matrix import Run
from bench.results import clean_temps, read_runs, record_files, write_record
from bench.schema import new_record

LOG_TAIL_LINES = 12
KILL_GRACE_S = 20
# Python's MemoryError, torch's CPU/CUDA allocators, and Rust libraries (tokenizers, polars)
# that abort with "memory allocation of N bytes failed" when RLIMIT_AS is reached.
OOM_PATTERNS = re.compile(r"MemoryError|OutOfMemoryError|CUDA out of memory|not enough memory|can't allocate memory"
                          r"|memory allocation of \d+ bytes failed|Cannot allocate memory", re.I)
# Seconds per optimizer step when the DB has no history (FACTS.md for SmolLM2: seq 256 x batch 4,
# fp32 on this CPU: full 11.5 s, LoRA 8.1 s, NF4 9.3 s, int8 10.8 s). Generation-based objectives
# roll out before every update, hence the factor.
STEP_S = {"tiny-llama": 0.15, "tiny-llama-bias": 0.15, "smollm2-135m": 10.0}
STARTUP_S = {"tiny-llama": 4.0, "tiny-llama-bias": 4.0, "smollm2-135m": 20.0}
GENERATIVE = {"grpo": 4.0, "ppo": 4.0, "rlaif": 5.0, "distill": 1.5}
IMPORT_S = 10.0  # extra per run without the fork server


def attempt_id(run: Run) -> str:
    return f"{run.config_hash[:16]}-{uuid.uuid4().hex[:8]}"


def done_hashes(db: Path, runs: list[Run]) -> set[str]:
    """Config hashes of matrix runs with an ``ok`` record for every stage of one attempt."""
    df = read_runs(db, on_damaged=lambda p, m: None)
    if df.is_empty():
        return set()
    ok = (df.filter(pl.col("status") == "ok")
            .with_columns(attempt=pl.col("run_id").str.replace(r"-\d+$", ""))
            .group_by("attempt").agg(pl.col("stage_index").n_unique().alias("stages")))
    best: dict[str, int] = {}
    for attempt, stages in ok.iter_rows():
        prefix = attempt.split("-")[0]
        best[prefix] = max(best.get(prefix, 0), stages)
    return {r.config_hash for r in runs if best.get(r.config_hash[:16], 0) >= len(r.stages)}


# -- time estimates for --dry-run --------------------------------------------------------------
def step_history(db: Path) -> dict[tuple[str, str], float]:
    """Median seconds per step (stage wall time / steps) of ok records, by (model, stage)."""
    df = read_runs(db, on_damaged=lambda p, m: None)
    if df.is_empty():
        return {}
    per = (df.filter((pl.col("status") == "ok") & (pl.col("steps") > 0))
             .group_by("model", "stage").agg((pl.col("wall_time_s") / pl.col("steps")).median().alias("s")))
    return {(m, s): v for m, s, v in per.iter_rows() if v is not None}


def estimate_s(run: Run, history: dict, fork: bool = True) -> float | None:
    steps = int(run.hp.get("max_steps", 20))
    total = 0.0 if fork else IMPORT_S
    for stage in run.stages:
        measured = history.get((run.model, stage))
        if measured is not None:
            total += measured * steps
            continue
        if run.model not in STEP_S:
            return None
        tokens = int(run.hp.get("batch_size", 4)) * int(run.hp.get("max_length", 256)) * int(run.hp.get("grad_accum", 1))
        scale = 1.0 if run.model.startswith("tiny") else tokens / 1024
        per = STEP_S[run.model] * scale * GENERATIVE.get(stage.split(":")[0], 1.0)
        total += STARTUP_S[run.model] + per * steps
    return total


# -- launching -----------------------------------------------------------------------------------
class SpawnLauncher:
    """A fresh interpreter per run."""

    def __init__(self):
        self.proc = None

    def start(self, argv: list[str], log: Path, mem_bytes: int | None) -> int:
        def limit():
            if mem_bytes:
                import resource

                resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))

        with open(log, "ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "advisor.cli", *argv], stdin=subprocess.DEVNULL,
                                         stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=limit if mem_bytes else None)
        return self.proc.pid

    def poll(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        pass


class ForkLauncher:
    """Children forked from ``bench.zygote`` (imports paid once per matrix)."""

    def __init__(self):
        self.server = subprocess.Popen([sys.executable, "-m", "bench.zygote", "advisor.cli"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, bufsize=1)
        hello = self.server.stdout.readline()
        if not hello or not json.loads(hello).get("ready"):
            raise RuntimeError("fork server did not start")

    def start(self, argv: list[str], log: Path, mem_bytes: int | None) -> int:
        self.server.stdin.write(json.dumps({"argv": argv, "log": str(log), "mem_bytes": mem_bytes}) + "\n")
        self.server.stdin.flush()
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError("fork server exited")
        return json.loads(line)["pid"]

    def poll(self, timeout: float) -> int | None:
        ready, _, _ = select.select([self.server.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError("fork server exited")
        return int(json.loads(line)["rc"])

    def close(self):
        try:
            self.server.stdin.close()
            self.server.wait(10)
        except Exception:
            self.server.kill()


@dataclass
class Outcome:
    run: Run
    run_id: str
    status: str
    wall_s: float
    records: list[dict] = field(default_factory=list)
    error: str | None = None


def _log_tail(log: Path, n: int = LOG_TAIL_LINES) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    # Progress bars and HF log dicts are noise; keep lines that explain the failure.
    keep = [ln for ln in lines if ln.strip() and not ln.startswith("{'")]
    return "\n".join(keep[-n:])


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


class Runner:
    def __init__(self, db: Path, out_root: Path, *, timeout_s: float | None = None,
                 memory_limit_gb: float | None = None, fork: bool = True, keep_outputs: bool = True,
                 poll_s: float = 0.5):
        self.db, self.out_root = Path(db), Path(out_root)
        self.timeout_s, self.fork, self.keep_outputs, self.poll_s = timeout_s, fork, keep_outputs, poll_s
        self.mem_bytes = int(memory_limit_gb * 2**30) if memory_limit_gb else None
        self.launcher = None
        self._fingerprint = None

    def _launcher(self):
        if self.launcher is None:
            if self.fork and hasattr(os, "fork"):
                try:
                    self.launcher = ForkLauncher()
                except Exception as e:
                    sys.stderr.write(f"warning: fork server failed ({e}); starting each run from scratch\n")
                    self.fork = False
            if self.launcher is None:
                self.launcher = SpawnLauncher()
        return self.launcher

    def close(self):
        if self.launcher is not None:
            self.launcher.close()
            self.launcher = None

    def fingerprint(self) -> dict:
        if self._fingerprint is None:
            from bench.metrics import fingerprint

            self._fingerprint = fingerprint()
        return self._fingerprint

    def run_one(self, run: Run, on_step=None) -> Outcome:
        rid = attempt_id(run)
        self.out_root.mkdir(parents=True, exist_ok=True)
        self.db.mkdir(parents=True, exist_ok=True)
        log, events, out = self.out_root / f"{rid}.log", self.out_root / f"{rid}.events", self.out_root / rid
        from bench.shapes import resolve

        argv = ["train", *run.train_args(model=resolve(run.model)), "--db", str(self.db), "--matrix", run.matrix, "--run-id", rid,
                "--out", str(out), "--events", str(events), "--quiet"]
        timeout = self.timeout_s or run.timeout_s
        launcher = self._launcher()
        t0 = time.monotonic()
        mem = self.mem_bytes or (int(run.memory_limit_gb * 2**30) if run.memory_limit_gb else None)
        try:
            pid = launcher.start(argv, log, mem)
        except RuntimeError:  # the fork server died: finish the matrix with fresh interpreters
            self.close()
            self.fork = False
            launcher = self._launcher()
            pid = launcher.start(argv, log, mem)
        rc, timed_out, cancelled, tail = None, False, False, EventTail(events)
        try:
            while rc is None:
                rc = launcher.poll(self.poll_s)
                self._feed_events(tail, on_step)
                if rc is None and time.monotonic() - t0 > timeout:
                    timed_out = True
                    self._kill(pid, signal.SIGKILL)
                    rc = launcher.poll(KILL_GRACE_S)
        except KeyboardInterrupt:
            # SIGTERM lets train record 'cancelled' itself; then make sure nothing is left.
            cancelled = True
            self._kill(pid, signal.SIGTERM)
            rc = launcher.poll(KILL_GRACE_S)
            if rc is None:
                self._kill(pid, signal.SIGKILL)
                rc = launcher.poll(KILL_GRACE_S)
        wall = time.monotonic() - t0
        self._feed_events(tail, on_step)
        outcome = self._settle(run, rid, rc, timed_out, cancelled, wall, log, timeout)
        if cancelled:
            raise KeyboardInterrupt
        return outcome

    @staticmethod
    def _kill(pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    @staticmethod
    def _feed_events(tail: EventTail, on_step) -> None:
        if on_step is not None:
            for event in tail.read():
                on_step(event)

    def _records(self, rid: str) -> list[dict]:
        files = [p for p in record_files(self.db) if re.fullmatch(re.escape(rid) + r"-\d+\.parquet", p.name)]
        recs = []
        for p in files:
            try:
                recs.extend(pl.read_parquet(p).to_dicts())
            except Exception:
                continue
        return sorted(recs, key=lambda r: r["stage_index"] or 0)

    def _settle(self, run: Run, rid: str, rc: int | None, timed_out: bool, cancelled: bool, wall: float,
                log: Path, timeout: float) -> Outcome:
        records = self._records(rid)
        finished = len(records) == len(run.stages) or any(r["status"] != "ok" for r in records)
        if not finished:
            stage_index = len(records)
            tail = _log_tail(log)
            if timed_out:
                status, error = "timeout", f"timed out after {timeout:.0f} s (killed)"
            elif cancelled:
                status, error = "cancelled", "cancelled by the user (Ctrl-C)"
            elif OOM_PATTERNS.search(tail):
                status, error = "oom", "out of memory: " + tail
            elif rc is not None and rc < 0:
                status = "error"
                error = f"killed by {_signal_name(rc)}" + (" (the kernel's OOM killer sends SIGKILL)" if rc == -9 else "")
                error += ("\n" + tail) if tail else ""
            else:
                # exit 2 is a refused input: its one-line reason leads, so reports show why
                last = tail.strip().splitlines()[-1] if tail.strip() else ""
                status = "error"
                error = (f"{last} (exit {rc})\n{tail}" if rc == 2 and last else f"exit {rc}" + ("\n" + tail if tail else ""))
            stage = run.stages[stage_index]
            rec = new_record(
                run_id=f"{rid}-{stage_index}", matrix=run.matrix, stack=run.stack, stage_index=stage_index, stage=stage,
                objective=stage.split(":")[0], method=stage.split(":")[1], model=run.model, task=run.task,
                seed=run.seed, status=status, error=error[:4000], wall_time_s=wall,
                hyperparams=json.dumps({"hp": run.hp, "cfg": run.cfg, "method_cfg": run.method_cfg}, sort_keys=True),
                extra=json.dumps({"matrix_config_hash": run.config_hash, "exit": rc}),
                output_dir=str(self.out_root / rid), **self.fingerprint(),
            )
            write_record(self.db, rec)
            records.append(rec)
        bad = next((r for r in records if r["status"] != "ok"), None)
        if not self.keep_outputs and bad is None:
            import shutil

            shutil.rmtree(self.out_root / rid, ignore_errors=True)
        return Outcome(run, rid, bad["status"] if bad else "ok", wall, records,
                       (bad.get("error") or "").splitlines()[0][:200] if bad and bad.get("error") else None)


def run_matrix(runs: list[Run], db: Path, out_root: Path, *, resume: bool = False, timeout_s: float | None = None,
               memory_limit_gb: float | None = None, fork: bool = True, keep_outputs: bool = True,
               quiet: bool = False) -> list[Outcome]:
    """Run ``runs`` in order and return one Outcome per run executed (skipped ones excluded)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    clean_temps(db)
    todo = runs
    if resume:
        done = done_hashes(db, runs)
        todo = [r for r in runs if r.config_hash not in done]
    console = Console(file=sys.stderr, quiet=quiet)
    if len(todo) < len(runs):
        console.print(f"resume: {len(runs) - len(todo)} of {len(runs)} runs already have ok records; skipped")
    runner = Runner(db, out_root, timeout_s=timeout_s, memory_limit_gb=memory_limit_gb, fork=fork,
                    keep_outputs=keep_outputs)
    outcomes: list[Outcome] = []
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True, disable=quiet)
    try:
        with bar:
            overall = bar.add_task("matrix", total=len(todo), info="")
            current = bar.add_task("run", total=1, info="")
            for n, run in enumerate(todo, 1):
                steps_total = int(run.hp.get("max_steps", 20)) * len(run.stages)
                bar.update(current, description=run.stack[:28], total=steps_total, completed=0, info=run.model)
                done_steps = {"n": 0}

                def on_step(ev, run=run, done_steps=done_steps):
                    if ev.get("event") == "step":
                        done_steps["n"] += 1
                        loss = f"loss {ev['loss']:.3f}" if ev.get("loss") is not None else ""
                        bar.update(current, completed=done_steps["n"], info=loss)

                o = runner.run_one(run, on_step=on_step)
                outcomes.append(o)
                tps = next((r.get("tokens_per_s") for r in reversed(o.records) if r.get("tokens_per_s")), None)
                style = "green" if o.status == "ok" else "red"
                line = (f"[{n}/{len(todo)}] {run.label:<48} [{style}]{o.status:8}[/{style}] {o.wall_s:6.1f}s"
                        + (f" {tps:8.0f} tok/s" if tps else ""))
                if o.error:
                    line += f"  {o.error[:120]}"
                console.print(line, highlight=False, markup=True, soft_wrap=True)
                bar.update(overall, advance=1)
    finally:
        runner.close()
    return outcomes


def summarize(outcomes: list[Outcome]) -> dict:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    return {"runs": len(outcomes), "by_status": counts,
            "wall_s": sum(o.wall_s for o in outcomes),
            "median_run_s": statistics.median(o.wall_s for o in outcomes) if outcomes else None}
