"""Live training progress: a rich progress bar, JSON-lines events, and throughput figures.

Events (one JSON object per line, written to ``--events FILE`` and read by the TUI):
``{"event": "stage_start", "stage", "index", "max_steps"}``,
``{"event": "step", "stage", "step", "max_steps", "loss", "tokens", "tokens_per_s", "rss_bytes", "eta_s"}``,
``{"event": "stage_end", "stage", "status", "run_id"}``, ``{"event": "done", "status"}``.
Throughput skips the first ``warmup`` steps (allocator warm-up, first-call compilation). A
trainer step is timed from ``on_step_begin`` to ``on_step_end``: its forward and backward passes
(with whatever the objective does inside them, e.g. GRPO's generation), clipping and the
optimizer step. Fetching and collating the batch comes before that window and logging after it,
as in ``bench overhead``'s bare loop; time the memory meter spends sampling (``paused``, a
clock of paused seconds, bench/metrics.py ``Meter.paused_s``) is taken out of the step it lands in.
"""
from __future__ import annotations

import json
import statistics
import sys
import time

import psutil
from transformers import TrainerCallback


class Progress:
    def __init__(self, events_path: str | None = None, warmup: int = 1, quiet: bool = False):
        self.events = open(events_path, "a", buffering=1) if events_path else None
        self.warmup, self.quiet = warmup, quiet
        self.bar = None
        self.proc = psutil.Process()
        self.paused = lambda: 0.0  # cumulative seconds of instrumentation to leave out of step times

    def emit(self, event: dict) -> None:
        if self.events:
            self.events.write(json.dumps(event, default=float) + "\n")

    def start_stage(self, label: str, index: int, max_steps: int, batch: int) -> None:
        self.label, self.max_steps, self.batch = label, max_steps, batch
        self.steps: list[tuple[float, int]] = []  # (step seconds, tokens)
        self.last_time = time.perf_counter()
        self.last_loss = None
        self.emit({"event": "stage_start", "stage": label, "index": index, "max_steps": max_steps})
        if not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            self.bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=False,
                           console=__import__("rich.console").console.Console(file=sys.stderr))
            self.bar.start()
            self.task = self.bar.add_task(label, total=max_steps, info="")

    def step(self, step: int, loss: float | None, tokens: int, step_time: float | None = None, **extra) -> None:
        now = time.perf_counter()
        dt = step_time if step_time is not None else now - self.last_time
        self.last_time = now
        self.steps.append((dt, tokens))
        if loss is not None:
            self.last_loss = loss
        tps = tokens / dt if dt > 0 and tokens else None
        done = len(self.steps)
        eta = statistics.median(s for s, _ in self.steps) * max(0, self.max_steps - done)
        rss = self.proc.memory_info().rss
        self.emit({"event": "step", "stage": self.label, "step": step, "max_steps": self.max_steps,
                   "loss": self.last_loss, "tokens": tokens, "tokens_per_s": tps, "rss_bytes": rss, "eta_s": eta,
                   **extra})
        if self.bar:
            info = f"loss {self.last_loss:.4f}" if self.last_loss is not None else ""
            info += f"  {tps:,.0f} tok/s" if tps else ""
            self.bar.update(self.task, completed=done, info=info)

    def end_stage(self, status: str, run_id: str | None = None) -> None:
        if self.bar:
            self.bar.stop()
            self.bar = None
        self.emit({"event": "stage_end", "stage": self.label, "status": status, "run_id": run_id})

    def summary(self) -> dict:
        """tokens/s, samples/s and median step time after warm-up (all steps if too few)."""
        steps = self.steps[self.warmup:] if len(self.steps) > self.warmup else self.steps
        if not steps:
            return {"tokens_per_s": None, "samples_per_s": None, "step_time_s": None}
        secs = sum(s for s, _ in steps)
        toks = sum(t for _, t in steps)
        return {"tokens_per_s": toks / secs if toks and secs > 0 else None,
                "samples_per_s": len(steps) * self.batch / secs if secs > 0 else None,
                "step_time_s": statistics.median(s for s, _ in steps)}

    def callback(self) -> TrainerCallback:
        return _TrainerProgress(self)

    def close(self, status: str) -> None:
        self.emit({"event": "done", "status": status})
        if self.events:
            self.events.close()


class _TrainerProgress(TrainerCallback):
    """Feeds HF/TRL trainer steps into Progress (tokens = non-padding input tokens seen).

    A step is timed from ``on_step_begin`` (called once per optimizer step, after its batches are
    fetched) to ``on_step_end``, less the meter's paused seconds in between. The trainer logs a
    step's loss just after ``on_step_end``, so the step is held until its ``on_log`` (or the next
    step's end, or the end of training) to report the loss of that same step.
    """

    def __init__(self, progress: Progress):
        self.p = progress
        self.seen = 0
        self.loss = None
        self.pending = None
        self.begin = None  # (perf_counter, paused seconds) at on_step_begin

    def on_train_begin(self, args, state, control, **kw):
        self.p.last_time = time.perf_counter()
        self.seen = int(getattr(state, "num_input_tokens_seen", 0) or 0)

    def on_step_begin(self, args, state, control, **kw):
        self.begin = (time.perf_counter(), self.p.paused())

    def on_step_end(self, args, state, control, **kw):
        now, paused = time.perf_counter(), self.p.paused()
        seen = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        # measured before _flush, which writes the previous step's event
        dt = now - self.begin[0] - (paused - self.begin[1]) if self.begin else now - self.p.last_time
        self.begin = None
        self._flush()
        self.pending = (state.global_step, seen - self.seen, dt)
        self.seen, self.p.last_time = seen, now

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])
        self._flush()

    def on_train_end(self, args, state, control, **kw):
        self._flush()

    def _flush(self):
        if self.pending:
            step, tokens, dt = self.pending
            self.pending = None
            self.p.step(step, self.loss, tokens, step_time=dt)
