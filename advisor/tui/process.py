"""A launched ``tunebench train`` child: start it in its own process group, tail its events, cancel it.

    python -m advisor.tui.process     # launches a 3-step tiny-llama try-out and prints its events

The child writes JSON-lines progress events (``bench/progress.py``) to ``--events FILE`` and its
output to ``train.log``; ``EventTail``/``LogTail`` read only what is new since the last poll.
``cancel()`` sends SIGTERM to the whole process group (the child records its stage as
'cancelled' and exits), then SIGKILL after a grace period so nothing is left behind.
``settle()`` writes the record a child could not write itself (killed before its signal handler
was installed, crashed while loading), like ``bench/runner.py`` does for matrix runs.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from advisor.tui.plan import LaunchPlan
from bench.events import EventTail, LineTail

CANCEL_GRACE_S = 20.0


class LogTail(LineTail):
    """New complete text lines of the child's log."""

    def read(self) -> list[str]:
        return [line.decode("utf-8", "replace") for line in self.new_lines()]


class TrainProcess:
    """One running plan. ``pid`` is also the process-group id (``start_new_session=True``)."""

    def __init__(self, plan: LaunchPlan, yaml_text: str, env: dict | None = None):
        self.plan = plan
        plan.out.mkdir(parents=True, exist_ok=True)
        plan.yaml_path.write_text(yaml_text)
        plan.events.unlink(missing_ok=True)
        self.log_path = plan.out / "train.log"
        self.cancelled = False
        self.t0 = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(plan.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env={**os.environ, **(env or {})},
                                         cwd=Path(__file__).resolve().parents[2])
        self.pid = self.proc.pid
        self.events = EventTail(plan.events)
        self.log = LogTail(self.log_path)

    def poll(self) -> int | None:
        return self.proc.poll()

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def cancel(self, grace_s: float = CANCEL_GRACE_S) -> int:
        """SIGTERM the group, wait for the child to record itself, SIGKILL whatever is left."""
        self.cancelled = True
        self._signal_group(signal.SIGTERM)
        try:
            rc = self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            rc = self.proc.wait(5)
        self._signal_group(signal.SIGKILL)  # grandchildren (accelerate ranks) that outlived the leader
        return rc

    def settle(self, finished_stages: list[dict]) -> dict | None:
        """Record the stage the child left without a record (killed early, crashed); None if complete."""
        from bench.results import record_files, write_record
        from bench.schema import new_record

        stages = [s.strip() for s in self.plan.stack.split(",")]
        ids = {p.stem for p in record_files(self.plan.db)}
        done = [i for i in range(len(stages)) if f"{self.plan.run_id}-{i}" in ids]
        if len(done) == len(stages) or any(s.get("status") not in (None, "ok") for s in finished_stages):
            return None
        i = len(done)
        rc = self.proc.poll()
        if self.cancelled:
            status, error = "cancelled", "cancelled from the wizard before the stage could record itself"
        else:
            status = "error"
            tail = self.log_path.read_text(errors="replace")[-1500:] if self.log_path.exists() else ""
            error = f"exit {rc}\n{tail}"
        objective, _, method = stages[i].partition(":")
        rec = new_record(run_id=f"{self.plan.run_id}-{i}", stack=self.plan.stack, stage_index=i, stage=stages[i],
                         objective=objective, method=method, model=self.plan.model, task=self.plan.task,
                         status=status, error=error, wall_time_s=time.monotonic() - self.t0,
                         output_dir=str(self.plan.out), extra=json.dumps({"exit": rc, "launched_by": "tui"}))
        write_record(self.plan.db, rec)
        return rec


class FinishedRun:
    """A run folder written earlier (``events.jsonl`` + ``train.log``), replayed by the Progress screen."""

    cancelled = False

    def __init__(self, out_dir: Path):
        self.out = Path(out_dir)
        self.events = EventTail(self.out / "events.jsonl")
        self.log = LogTail(self.out / "train.log")

    def poll(self) -> int:
        return 0

    def settle(self, finished_stages: list[dict]) -> None:
        return None  # its records were written when it ran


def run_folder(output_dir: str | None) -> Path | None:
    """The launch folder holding ``events.jsonl`` for a record's stage ``output_dir``."""
    if not output_dir:
        return None
    for p in (Path(output_dir), Path(output_dir).parent):
        if (p / "events.jsonl").is_file():
            return p
    return None


def alive(pid: int) -> bool:
    """True while a process (not a zombie) with this pid exists."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


if __name__ == "__main__":
    import uuid

    from bench.home import default_db, home

    rid = f"tui-{uuid.uuid4().hex[:8]}"
    out = home() / "runs" / rid
    plan = LaunchPlan(stack="sft:lora", model="tiny-llama", task="smoke", max_steps=3, out=out, db=default_db(),
                      events=out / "events.jsonl", run_id=rid)
    p = TrainProcess(plan, plan.yaml_text())
    while p.poll() is None:
        for e in p.events.read():
            print(e)
        time.sleep(0.5)
    for e in p.events.read():
        print(e)
    print("exit", p.poll(), "log", p.log_path)
