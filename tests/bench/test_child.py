"""One child training run (bench/child.py): start, tail events, settle; cancel; a refused run.

    .venv/bin/python -m pytest tests/bench/test_child.py -q
"""
import time

from bench.child import ChildRun
from bench.results import read_runs
from common.stack import parse_stack

SMALL = ["--hp", "batch_size=2", "--hp", "max_length=32", "--hp", "eval_limit=2", "--quiet"]


def child(tmp_path, rid, steps, task="smoke"):
    db, events, out = tmp_path / "db", tmp_path / f"{rid}.events", tmp_path / rid
    args = ["--stack", "sft:lora", "--model", "tiny-llama", "--task", task, "--max-steps", str(steps), *SMALL,
            "--db", str(db), "--out", str(out), "--events", str(events), "--run-id", rid]
    return ChildRun(args, spec=parse_stack("sft:lora", "tiny-llama", task), run_id=rid, db=db,
                    log=tmp_path / f"{rid}.log", events=events, out=out)


def test_child_trains_tails_its_events_and_settles_ok(tmp_path, tiny_llama):
    c = child(tmp_path, "ok", 2).start()
    assert c.argv()[1:3] == ["-m", "bench.entry"]
    events = []
    assert c.wait(300, on_event=events.append) == 0, c.log_path.read_text()[-2000:]
    assert [e["step"] for e in events if e.get("event") == "step"] == [1, 2]
    records = c.settle()
    assert [(r["run_id"], r["status"]) for r in records] == [("ok-0", "ok")] and c.written is None
    assert records[0]["steps"] == 2


def test_cancelled_child_gets_a_cancelled_record(tmp_path):
    # Cancelled while it still imports (before its own signal handler): settle writes the record.
    c = child(tmp_path, "cancel", 100_000).start()
    time.sleep(0.2)
    rc = c.cancel(grace_s=30)
    assert rc is not None and c.cancelled
    records = c.settle()
    assert [(r["run_id"], r["status"]) for r in records] == [("cancel-0", "cancelled")]
    assert c.written is not None and c.written["stage"] == "sft:lora"
    assert read_runs(tmp_path / "db")["status"].to_list() == ["cancelled"]


def test_refused_child_records_its_one_line_reason(tmp_path):
    c = child(tmp_path, "refused", 2, task="no-such-task").start()
    assert c.wait(300) == 2
    (rec,) = c.settle()
    assert rec["status"] == "error" and "no-such-task" in rec["error"].splitlines()[0]
    assert rec["error"].splitlines()[0].startswith("error:")
