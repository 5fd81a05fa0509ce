"""A launched training child for the wizard: bench's ChildRun plus the log lines the Progress screen shows.

    python -m advisor.tui.process     # launches a 3-step tiny-llama try-out and prints its events

The child (``bench/child.py``: ``python -m bench.entry``, its own process group) writes JSON-lines
progress events (``bench/progress.py``) to ``--events FILE`` and its output to ``train.log``;
``events``/``log`` read only what is new since the last poll. ``cancel()`` sends SIGTERM to the
whole group (the child records its stage as 'cancelled'), then SIGKILL after a grace period.
``estimate.json`` (advisor/tui/estimates.py) keeps the launch's estimate beside it.
``settle()`` writes the record a child could not write itself (killed before its signal handler
was installed, crashed while loading) -- bench's settling, the same as for matrix runs.
"""
from __future__ import annotations

from pathlib import Path

from advisor.tui.estimates import write_estimate
from advisor.tui.plan import LaunchPlan
from bench.child import GRACE_S, ChildRun
from bench.events import EventTail, LineTail
from common.stack import StackSpec

CANCEL_REASON = "cancelled from the wizard before the stage could record itself"


class LogTail(LineTail):
    """New complete text lines of the child's log."""

    def read(self) -> list[str]:
        return [line.decode("utf-8", "replace") for line in self.new_lines()]


class TrainProcess:
    """One running plan. ``pid`` is also the process-group id."""

    def __init__(self, plan: LaunchPlan, yaml_text: str, env: dict | None = None, estimate: dict | None = None):
        self.plan = plan
        plan.out.mkdir(parents=True, exist_ok=True)
        plan.yaml_path.write_text(yaml_text)
        if estimate is not None:  # what the Results screen compares the measured run with
            write_estimate(plan.out, estimate)
        plan.events.unlink(missing_ok=True)
        self.log_path = plan.out / "train.log"
        self.child = ChildRun(plan.train_args(), spec=StackSpec(**plan.spec()), run_id=plan.run_id, db=plan.db,
                              log=self.log_path, events=plan.events, out=plan.out, extra={"launched_by": "tui"},
                              env=env, cwd=Path(__file__).resolve().parents[2]).start()
        self.pid = self.child.pid
        self.events = self.child.events
        self.log = LogTail(self.log_path)

    @property
    def cancelled(self) -> bool:
        return self.child.cancelled

    def poll(self) -> int | None:
        return self.child.poll()

    def cancel(self, grace_s: float = GRACE_S) -> int | None:
        """SIGTERM the group, wait for the child to record itself, SIGKILL whatever is left."""
        return self.child.cancel(grace_s, reason=CANCEL_REASON)

    def settle(self, finished_stages: list[dict]) -> dict | None:
        """Record the stage the child left without a record (killed early, crashed); None if complete."""
        self.child.settle()
        return self.child.written


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
    p.child.wait(on_event=print)
    print("exit", p.poll(), "log", p.log_path, "settled", p.settle([]))
