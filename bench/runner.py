"""Run a benchmark matrix: each run in its own process, every outcome a result record.

    tunebench bench run --matrix smoke --db /tmp/tb-db
    tunebench bench run --matrix cpu-standard --resume --filter "objective = 'dpo'"
    tunebench bench run --matrix gpu-memory --shard 0/4 --timeout 900

Each run is one child training run (``bench/child.py``: ``python -m bench.entry`` with an
argument list, never a shell string) with its own process group, a timeout and optionally an
RLIMIT_AS cap set in the child. The child writes its own records (ok, oom, error, cancelled).
When it dies without one -- killed by the timeout, a segfault, the kernel, an import error --
the stage that was running gets a ``timeout``, ``oom`` (a MemoryError / out-of-memory in its
log) or ``error`` record with the last lines of its log. A record file of the run that cannot be
read is reported (like any damaged file) and the run counts as an error. Then the matrix goes on.

Children are forked from a server that has already imported the training stack
(``bench/zygote.py``); ``--no-fork`` starts each from scratch instead. Both give one process
per run; forking only saves the ~9 s of imports each run would otherwise pay.

Run ids are ``<config hash[:16]>-<random 8>`` (stages append ``-<stage index>``), so
``--resume`` can tell which matrix runs already have an ``ok`` record for every stage.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from bench.child import ChildRun, ForkServer
from bench.matrix import Run
from bench.results import OnDamaged, clean_temps, read_runs, warn_damaged
from methods import objective

# Seconds per optimizer step when the DB has no history (docs/platform-facts.md for SmolLM2: seq 256 x batch 4,
# fp32 on this CPU: full 11.5 s, LoRA 8.1 s, NF4 9.3 s, int8 10.8 s). Objectives that roll out or
# judge cost more per step: the factor is their card's ``memory.step_time``.
STEP_S = {"tiny-llama": 0.15, "tiny-llama-bias": 0.15, "smollm2-135m": 10.0}
STARTUP_S = {"tiny-llama": 4.0, "tiny-llama-bias": 4.0, "smollm2-135m": 20.0}
IMPORT_S = 10.0  # extra per run without the fork server


def attempt_id(run: Run) -> str:
    return f"{run.config_hash[:16]}-{uuid.uuid4().hex[:8]}"


def done_hashes(db: Path, runs: list[Run], on_damaged: OnDamaged | None = None) -> set[str]:
    """Config hashes of matrix runs with an ``ok`` record for every stage of one attempt
    (damaged files are reported through ``on_damaged`` and do not count)."""
    df = read_runs(db, on_damaged=on_damaged)
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
    hp = run.hyperparams
    steps = hp.max_steps
    total = 0.0 if fork else IMPORT_S
    for stage in run.spec.stages:
        measured = history.get((run.model, stage.label))
        if measured is not None:
            total += measured * steps
            continue
        if run.model not in STEP_S:
            return None
        tokens = hp.batch_size * hp.max_length * hp.grad_accum
        scale = 1.0 if run.model.startswith("tiny") else tokens / 1024
        per = STEP_S[run.model] * scale * objective(stage.objective).card.memory.step_time
        total += STARTUP_S[run.model] + per * steps
    return total


# -- running -------------------------------------------------------------------------------------
@dataclass
class Outcome:
    run: Run
    run_id: str
    status: str
    wall_s: float
    records: list[dict] = field(default_factory=list)
    error: str | None = None


class Runner:
    def __init__(self, db: Path, out_root: Path, *, timeout_s: float | None = None,
                 memory_limit_gb: float | None = None, fork: bool = True, keep_outputs: bool = True,
                 poll_s: float = 0.5, on_damaged: OnDamaged | None = None):
        self.db, self.out_root = Path(db), Path(out_root)
        self.timeout_s, self.fork, self.keep_outputs, self.poll_s = timeout_s, fork, keep_outputs, poll_s
        self.mem_bytes = int(memory_limit_gb * 2**30) if memory_limit_gb else None
        self.on_damaged = on_damaged or warn_damaged
        self.server: ForkServer | None = None
        self._fingerprint = None

    def _server(self) -> ForkServer | None:
        if self.server is None and self.fork and hasattr(os, "fork"):
            try:
                self.server = ForkServer()
            except Exception as e:
                sys.stderr.write(f"warning: fork server failed ({e}); starting each run from scratch\n")
                self.fork = False
        return self.server

    def close(self):
        if self.server is not None:
            self.server.close()
            self.server = None

    def fingerprint(self) -> dict:
        if self._fingerprint is None:
            from bench.metrics import fingerprint

            self._fingerprint = fingerprint()
        return self._fingerprint

    def child(self, run: Run, rid: str) -> ChildRun:
        """The child for one attempt of ``run`` (not started)."""
        from bench.shapes import resolve

        log, events, out = self.out_root / f"{rid}.log", self.out_root / f"{rid}.events", self.out_root / rid
        args = [*run.train_args(model=resolve(run.model)), "--db", str(self.db), "--matrix", run.matrix,
                "--run-id", rid, "--out", str(out), "--events", str(events), "--quiet"]
        mem = self.mem_bytes or (int(run.memory_limit_gb * 2**30) if run.memory_limit_gb else None)
        return ChildRun(args, spec=run.spec, run_id=rid, db=self.db, log=log, events=events, out=out,
                        matrix=run.matrix, mem_bytes=mem, fingerprint=self.fingerprint(),
                        hyperparams=json.dumps({"hp": run.hp, "cfg": run.cfg, "method_cfg": run.method_cfg},
                                               sort_keys=True),
                        extra={"matrix_config_hash": run.config_hash}, server=self._server(),
                        on_damaged=self.on_damaged)

    def run_one(self, run: Run, on_step=None) -> Outcome:
        rid = attempt_id(run)
        self.out_root.mkdir(parents=True, exist_ok=True)
        self.db.mkdir(parents=True, exist_ok=True)
        child = self.child(run, rid)
        try:
            child.start()
        except RuntimeError:  # the fork server died: finish the matrix with fresh interpreters
            self.close()
            self.fork = False
            child.server = None
            child.start()
        cancelled = False
        try:
            child.wait(self.timeout_s or run.timeout_s, on_event=on_step, poll_s=self.poll_s)
        except KeyboardInterrupt:
            # SIGTERM lets the child record 'cancelled' itself; then make sure nothing is left.
            cancelled = True
            child.cancel(reason="cancelled by the user (Ctrl-C)")
            child.feed(on_step)
        outcome = self.settle(run, child)
        if cancelled:
            raise KeyboardInterrupt
        return outcome

    def settle(self, run: Run, child: ChildRun) -> Outcome:
        """The attempt's Outcome from its records (the child's, or the one settle writes for it).

        A record file of this attempt that cannot be read is reported through ``on_damaged`` and
        makes the outcome an error; the matrix goes on."""
        records = child.settle()
        bad = next((r for r in records if r["status"] != "ok"), None)
        status, error = (bad["status"], bad.get("error")) if bad else ("ok", None)
        if bad is None and child.damaged:
            path, message = child.damaged[0]
            status, error = "error", f"result file {path.name} is damaged: {message.strip()}"
        if not self.keep_outputs and status == "ok":
            import shutil

            shutil.rmtree(self.out_root / child.run_id, ignore_errors=True)
        return Outcome(run, child.run_id, status, child.elapsed(), records,
                       error.splitlines()[0][:200] if error and error.strip() else None)


@contextlib.contextmanager
def sigterm_cancels():
    """A SIGTERM (kill, a scheduler's stop) cancels the matrix as Ctrl-C does: the running child records
    'cancelled' and is reaped. Python's default SIGTERM ends the runner at once, and the child, in its own
    process group, trained on and wrote its record beside whatever ran next."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_matrix(runs: list[Run], db: Path, out_root: Path, *, resume: bool = False, timeout_s: float | None = None,
               memory_limit_gb: float | None = None, fork: bool = True, keep_outputs: bool = True,
               quiet: bool = False, on_damaged: OnDamaged | None = None) -> list[Outcome]:
    """Run ``runs`` in order and return one Outcome per run executed (skipped ones excluded).
    Damaged record files are passed to ``on_damaged`` (default: one warning line on stderr)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    clean_temps(db)
    todo = runs
    if resume:
        done = done_hashes(db, runs, on_damaged)
        todo = [r for r in runs if r.config_hash not in done]
    console = Console(file=sys.stderr, quiet=quiet)
    if len(todo) < len(runs):
        console.print(f"resume: {len(runs) - len(todo)} of {len(runs)} runs already have ok records; skipped")
    runner = Runner(db, out_root, timeout_s=timeout_s, memory_limit_gb=memory_limit_gb, fork=fork,
                    keep_outputs=keep_outputs, on_damaged=on_damaged)
    outcomes: list[Outcome] = []
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True, disable=quiet)
    try:
        with sigterm_cancels(), bar:
            overall = bar.add_task("matrix", total=len(todo), info="")
            current = bar.add_task("run", total=1, info="")
            for n, run in enumerate(todo, 1):
                steps_total = run.hyperparams.max_steps * len(run.stages)
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
