"""A fork server for matrix runs: imports the training stack once, forks one child per run.

    python -m bench.zygote [MODULE]   # started by bench/child.py's ForkServer; speaks JSON lines on stdin/stdout

Importing torch + transformers + peft + trl costs ~9 CPU-seconds per process here, more than a
whole tiny-llama smoke run trains. Each run still gets its own process (own peak memory, own
RLIMIT_AS, killable, a crash cannot reach the matrix); only the imports are shared. The server
is single-threaded Python and never runs a torch op or touches CUDA before forking.

Protocol, one JSON object per line:
  in:  {"argv": [...entry args...], "log": PATH, "mem_bytes": N|null}
  out: {"pid": PID}                      as soon as the child exists (the parent may kill it)
  out: {"pid": PID, "rc": CODE}          when it exits; -SIG if a signal ended it
"""
from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import traceback

PRELOAD = ("torch", "transformers", "peft", "trl", "datasets", "polars", "methods", "bench.train")
# The module whose ``main(argv)`` each child runs (as ``python -m MODULE ARGS`` would): bench's
# own child entry unless the parent names another.
ENTRY = sys.argv[1] if len(sys.argv) > 1 else "bench.entry"


def preload(names: tuple[str, ...] | None = None) -> None:
    """Import ``names`` (default: the training stack and ENTRY) before forking; a failure is left for the child."""
    for name in (*PRELOAD, ENTRY) if names is None else names:
        try:
            importlib.import_module(name)
        except Exception:  # the child imports it again and reports the real error in its log
            pass


def child(req: dict) -> None:
    """Runs in the forked child; never returns."""
    rc = 1
    try:
        os.setsid()  # own process group: the runner kills the whole run, not the server
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        if req.get("mem_bytes"):
            resource.setrlimit(resource.RLIMIT_AS, (req["mem_bytes"], req["mem_bytes"]))
        sys.argv = [ENTRY, *req["argv"]]
        rc = int(importlib.import_module(ENTRY).main(req["argv"]) or 0)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
        rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


def serve() -> None:
    preload()
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(req)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        out.write(json.dumps({"pid": pid, "rc": rc}) + "\n")
        out.flush()


if __name__ == "__main__":
    serve()
