"""One child training run: start ``python -m bench.entry`` (or fork it), tail its events, cancel it, settle it.

    python -m bench.child              # a 2-step tiny-llama run: prints its events and its settled record

Every child run in bench -- the matrix runner, the LR search, the overhead and stress benchmarks
-- and the wizard's launcher start here. The child runs in its own process group (killing the run
never reaches its parent) and writes its own records (ok, oom, error, cancelled). ``settle()``
records what it could not: when it died without a record -- killed by a timeout or a signal, out
of memory, a crash while loading -- the stage that was running gets a ``timeout``, ``oom``,
``error`` or ``cancelled`` record with the first line of the reason; a refused run (exit 2) leads
with its one-line reason. A record file of this run that cannot be read is reported (the same
``on_damaged`` callback ``bench.results.read_runs`` takes) and never overwritten.

``ForkServer`` keeps one ``bench/zygote.py`` process that has imported the training stack and
forks a child per run (the ~9 s of imports paid once per matrix); without it each child is a
fresh interpreter.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.events import EventTail
from bench.results import OnDamaged, read_file, record_files, warn_damaged, write_record
from bench.schema import new_record
from common.stack import StackSpec

ENTRY = "bench.entry"
GRACE_S = 20.0          # SIGTERM -> SIGKILL, and how long to wait for a killed child to exit
LOG_TAIL_LINES = 12
REFUSED = 2             # bench.entry's exit code for refused input
# Python's MemoryError, torch's CPU/CUDA allocators, and Rust libraries (tokenizers, polars)
# that abort with "memory allocation of N bytes failed" when RLIMIT_AS is reached.
OOM_PATTERNS = re.compile(r"MemoryError|OutOfMemoryError|CUDA out of memory|not enough memory|can't allocate memory"
                          r"|memory allocation of \d+ bytes failed|Cannot allocate memory", re.I)


def entry_argv(args: list[str]) -> list[str]:
    """The child's command line (an argument list, never a shell string)."""
    return [sys.executable, "-m", ENTRY, *args]


class ForkServer:
    """Children forked from ``bench.zygote`` (imports paid once); one child at a time."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.zygote", ENTRY], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        hello = self.proc.stdout.readline()
        if not hello or not json.loads(hello).get("ready"):
            self.close()
            raise RuntimeError("fork server did not start")

    def start(self, args: list[str], log: Path, mem_bytes: int | None) -> int:
        try:
            self.proc.stdin.write(json.dumps({"argv": args, "log": str(log), "mem_bytes": mem_bytes}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise RuntimeError("fork server exited") from None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("fork server exited")
        return json.loads(line)["pid"]

    def wait(self, timeout: float) -> int | None:
        """The running child's exit code, or None if it is still running after ``timeout`` s."""
        ready, _, _ = select.select([self.proc.stdout], [], [], max(timeout, 0))
        if not ready:
            return None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("fork server exited")
        return int(json.loads(line)["rc"])

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def log_tail(log: Path, n: int = LOG_TAIL_LINES) -> str:
    """The last lines of a child's log that explain a failure (progress bars and HF log dicts dropped)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    keep = [ln for ln in lines if ln.strip() and not ln.startswith("{'")]
    return "\n".join(keep[-n:])


def signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def kill_group(pid: int, sig: int) -> None:
    """Signal the child's process group (its pid), or the child alone if the group is gone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class ChildRun:
    """One ``python -m bench.entry ARGS`` child whose records are ``<run_id>-<stage index>`` in ``db``.

    ``spec`` names the stages (for the record of a stage the child could not write); ``args`` are
    the entry's arguments and must carry the same ``--run-id``/``--db``/``--events``.
    """

    def __init__(self, args: list[str], *, spec: StackSpec, run_id: str, db: Path, log: Path,
                 events: Path | None = None, out: Path | None = None, matrix: str | None = None,
                 hyperparams: str | None = None, extra: dict | None = None, fingerprint: dict | None = None,
                 mem_bytes: int | None = None, env: dict | None = None, cwd: Path | None = None,
                 server: ForkServer | None = None, on_damaged: OnDamaged | None = None):
        self.args, self.spec, self.run_id, self.db, self.log_path = list(args), spec, run_id, Path(db), Path(log)
        self.events_path, self.out = (Path(events) if events else None), out
        self.matrix, self.hyperparams = matrix, hyperparams
        self.extra, self.fingerprint = extra or {}, fingerprint or {}
        self.mem_bytes, self.env, self.cwd, self.server = mem_bytes, env, cwd, server
        self.on_damaged = on_damaged or warn_damaged
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.rc: int | None = None
        self.t0 = self.wall_s = None
        self.timeout_s: float | None = None
        self.timed_out = self.cancelled = False
        self.cancel_reason = "cancelled by the user before the stage could record itself"
        self.events = EventTail(self.events_path) if self.events_path else None
        self.written: dict | None = None   # the record settle() wrote, if any
        self.damaged: list[tuple[Path, str]] = []

    # -- starting and waiting ----------------------------------------------------------------
    def argv(self) -> list[str]:
        return entry_argv(self.args)

    def start(self) -> "ChildRun":
        """Start the child; RuntimeError if the fork server has died (start again without it)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic()
        if self.server is not None:
            if self.env:
                raise ValueError("a forked child shares the server's environment; pass env without a server")
            self.pid = self.server.start(self.args, self.log_path, self.mem_bytes)
            return self
        mem = self.mem_bytes

        def limit():
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))

        with open(self.log_path, "ab") as fh:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=limit if mem else None,
                                         env={**os.environ, **self.env} if self.env else None,
                                         cwd=self.cwd)
        self.pid = self.proc.pid
        return self

    def poll(self, timeout: float = 0.0) -> int | None:
        """The exit code (negative: the signal), or None while it runs; waits up to ``timeout`` s."""
        if self.rc is None:
            if self.server is not None:
                rc = self.server.wait(timeout)
            elif timeout > 0:
                try:
                    rc = self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    rc = None
            else:
                rc = self.proc.poll()
            if rc is not None:
                self.rc, self.wall_s = rc, time.monotonic() - self.t0
        return self.rc

    def read_events(self) -> list[dict]:
        """Progress events appended since the last call (complete lines only)."""
        return self.events.read() if self.events is not None else []

    def wait(self, timeout_s: float | None = None, on_event=None, poll_s: float = 0.5) -> int:
        """Wait for the exit, feeding each new event to ``on_event``; past ``timeout_s`` kill it (status timeout)."""
        self.timeout_s = timeout_s
        while self.poll(poll_s) is None:
            self.feed(on_event)
            if timeout_s is not None and time.monotonic() - self.t0 > timeout_s:
                self.timed_out = True
                self.kill()
        self.feed(on_event)
        return self.rc

    def feed(self, on_event) -> None:
        if on_event is not None:
            for event in self.read_events():
                on_event(event)

    def elapsed(self) -> float:
        return self.wall_s if self.wall_s is not None else time.monotonic() - self.t0

    # -- stopping --------------------------------------------------------------------------------
    def kill(self) -> int | None:
        """SIGKILL the whole group and wait for the exit."""
        kill_group(self.pid, signal.SIGKILL)
        return self.poll(GRACE_S)

    def cancel(self, grace_s: float = GRACE_S, reason: str | None = None) -> int | None:
        """SIGTERM the group (the child records its stage 'cancelled'), SIGKILL whatever is left after ``grace_s``."""
        self.cancelled = True
        if reason:
            self.cancel_reason = reason
        if self.poll() is None:
            kill_group(self.pid, signal.SIGTERM)
            if self.poll(grace_s) is None:
                self.kill()
        try:
            os.killpg(self.pid, signal.SIGKILL)  # grandchildren (accelerate ranks) that outlived the leader
        except (ProcessLookupError, PermissionError):
            pass
        return self.rc

    # -- settling ----------------------------------------------------------------------------------
    def records(self) -> tuple[list[dict], set[int]]:
        """(readable records of this run by stage, stage indexes that have a file); damaged files are reported."""
        pattern = re.compile(re.escape(self.run_id) + r"-(\d+)\.parquet")
        recs, present = [], set()
        for p in record_files(self.db):
            m = pattern.fullmatch(p.name)
            if not m:
                continue
            present.add(int(m.group(1)))
            try:
                recs.extend(read_file(p).to_dicts())
            except Exception as e:
                if all(d[0] != p for d in self.damaged):
                    self.damaged.append((p, str(e)))
                    self.on_damaged(p, str(e))
        return sorted(recs, key=lambda r: r["stage_index"] or 0), present

    def settle(self) -> list[dict]:
        """This run's records after the child exited, writing the one for the stage it left without one."""
        if self.poll() is None:
            raise RuntimeError("settle() needs an exited child; wait(), kill() or cancel() first")
        records, present = self.records()
        n = len(self.spec.stages)
        if len(present) >= n or any(r["status"] != "ok" for r in records):
            return records
        i = min(set(range(n)) - present)
        from bench.userdata import task_label

        status, error = self.cause()
        stage = self.spec.stages[i]
        extra = {**self.extra, "exit": self.rc}
        rec = new_record(
            run_id=f"{self.run_id}-{i}", matrix=self.matrix, stack=self.spec.label, stage_index=i, stage=stage.label,
            objective=stage.objective, method=stage.method, model=self.spec.model, task=task_label(self.spec, stage),
            seed=self.spec.seed, status=status, error=error[:4000], wall_time_s=self.elapsed(),
            hyperparams=self.hyperparams, extra=json.dumps(extra),
            output_dir=str(self.out) if self.out else None, **self.fingerprint,
        )
        try:
            write_record(self.db, rec)
        except FileExistsError:  # the child's own record appeared after all: it stands
            return self.records()[0]
        self.written = rec
        return sorted([*records, rec], key=lambda r: r["stage_index"] or 0)

    def cause(self) -> tuple[str, str]:
        """(status, error text) of a child that exited without recording its stage."""
        rc, tail = self.rc, log_tail(self.log_path)
        if self.timed_out:
            return "timeout", f"timed out after {self.timeout_s:.0f} s (killed)"
        if self.cancelled:
            return "cancelled", self.cancel_reason
        if OOM_PATTERNS.search(tail):
            return "oom", "out of memory: " + tail
        if rc is not None and rc < 0:
            error = f"killed by {signal_name(rc)}" + (" (the kernel's OOM killer sends SIGKILL)" if rc == -9 else "")
            return "error", error + (("\n" + tail) if tail else "")
        # exit 2 is a refused input: its one-line reason leads, so reports show why
        last = tail.strip().splitlines()[-1] if tail.strip() else ""
        if rc == REFUSED and last:
            return "error", f"{last} (exit {rc})\n{tail}"
        return "error", f"exit {rc}" + ("\n" + tail if tail else "")


if __name__ == "__main__":
    import tempfile
    import uuid

    from common.stack import parse_stack

    work = Path(tempfile.mkdtemp(prefix="tb-child-"))
    rid = f"child-{uuid.uuid4().hex[:8]}"
    args = ["--stack", "sft:lora", "--model", "tiny-llama", "--task", "smoke", "--max-steps", "2", "--db",
            str(work / "db"), "--out", str(work / "out"), "--events", str(work / "events.jsonl"), "--run-id", rid,
            "--quiet"]
    child = ChildRun(args, spec=parse_stack("sft:lora", "tiny-llama", "smoke"), run_id=rid, db=work / "db",
                     log=work / "train.log", events=work / "events.jsonl", out=work / "out").start()
    child.wait(600, on_event=print)
    for r in child.settle():
        print(r["run_id"], r["status"], r["error"])
