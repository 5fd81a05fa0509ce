"""``tunebench bench run|list|tune|overhead|stress``: run matrices, search learning rates, measure overhead
and crash safety.

    tunebench bench run --matrix smoke --db /tmp/tb-db
    tunebench bench tune --method lora --objective sft --task smoke --model tiny-llama --trials 6
    tunebench bench overhead --model tiny-llama --steps 20
    tunebench bench stress --kills 40 --writers 8 --records 100
    tunebench bench db-scale --records 100000
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from advisor.cli import add_command
from common.errors import UserError

RUN_EXAMPLES = """  tunebench bench run --matrix smoke
  tunebench bench run --matrix smoke --dry-run
  tunebench bench run --matrix cpu-standard --db ~/tb-db --resume --filter "objective IN ('dpo','kto')"
  tunebench bench run --matrix gpu-memory --shard 0/4 --timeout 900      # job-array index 0 of 4
  tunebench bench run --matrix my-matrix.yaml --limit 3 --memory-limit-gb 8"""


def register(sub):
    p = add_command(sub, "bench", "run benchmark matrices, tune learning rates, measure harness overhead",
                    RUN_EXAMPLES.split("\n")[0] + "\n  tunebench bench tune --method lora --objective sft --task smoke --trials 6"
                    "\n  tunebench bench overhead")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    r = add_command(s, "run", "run a matrix, each run in its own process; every outcome is a result record", RUN_EXAMPLES)
    r.add_argument("--matrix", required=True, help="a name in bench/matrices (tunebench bench list) or a YAML file")
    r.add_argument("--db", type=Path, help="results database folder (default: TUNEBENCH_HOME/db)")
    r.add_argument("--filter", help="SQL WHERE clause over the runs, e.g. \"method = 'lora' AND seed = 0\" "
                                    "(columns: stack objective method model task seed stages tags max_steps batch_size "
                                    "max_length grad_ckpt config_hash)")
    r.add_argument("--limit", type=int, help="run at most N runs (after filter, shard and resume)")
    r.add_argument("--resume", action="store_true", help="skip runs that already have an ok record in --db")
    r.add_argument("--dry-run", action="store_true", help="list the runs with estimated times; run nothing")
    r.add_argument("--shard", help="I/N: run only shard I (0-based) of N, split by config hash")
    r.add_argument("--timeout", type=float, help="seconds per run (overrides the matrix's timeout_s)")
    r.add_argument("--memory-limit-gb", type=float, help="address-space cap per run (RLIMIT_AS); exceeding it is an oom record")
    r.add_argument("--out", type=Path, help="folder for run outputs and logs (default: TUNEBENCH_HOME/runs/<matrix>-<time>)")
    r.add_argument("--no-fork", action="store_true", help="start each run in a fresh interpreter instead of forking "
                                                          "from a pre-imported server (slower, same isolation)")
    r.add_argument("--delete-outputs", action="store_true", help="delete each ok run's output folder (adapters, "
                                                                 "merged models) once its records are written")
    r.add_argument("--json", action="store_true", help="print the summary (or the dry-run list) as JSON")
    r.set_defaults(func=run)

    ls = add_command(s, "list", "list the shipped matrices", "  tunebench bench list")
    ls.set_defaults(func=list_matrices)

    t = add_command(s, "tune", "Optuna learning-rate search; the best LR is stored for matrices that say lr: tuned",
                    "  tunebench bench tune --method lora --objective sft --task smoke --model tiny-llama --trials 6\n"
                    "  tunebench bench tune --method dora --objective dpo --task math-prefs --model smollm2-135m "
                    "--trials 10 --storage sqlite:////shared/optuna.db\n"
                    "  tunebench bench tune --method prefix --objective sft --task wiki-topics --model smollm2-135m "
                    "--lr 3e-4 --lr 1e-3 --lr 3e-3 --lr 1e-2 --max-steps 30 --hp batch_size=4 --hp max_length=192")
    t.add_argument("--method", required=True, help="parameterization, e.g. lora")
    t.add_argument("--objective", required=True, help="objective, e.g. sft")
    t.add_argument("--task", required=True, help="task name")
    t.add_argument("--model", default="tiny-llama", help="model name or folder (default tiny-llama)")
    t.add_argument("--trials", type=int, help="number of trials (this worker; default: one per --lr value)")
    t.add_argument("--lr", type=float, action="append", metavar="LR",
                   help="try exactly this learning rate (repeat for a grid, one trial each) instead of searching "
                        "a decade either side of the method's default")
    t.add_argument("--max-steps", type=int, default=20, help="steps per trial (default 20)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE", help="other fixed hyper-parameters")
    t.add_argument("--storage", help="Optuna storage URL (default: sqlite under TUNEBENCH_HOME); share one "
                                     "RDB URL between workers for a distributed sweep")
    t.add_argument("--db", type=Path, help="results database for the trial records (default: TUNEBENCH_HOME/db)")
    t.add_argument("--timeout", type=float, default=3600, help="seconds per trial")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=tune)

    o = add_command(s, "overhead", "train one config through the harness and through a minimal loop; print both tokens/s",
                    "  tunebench bench overhead\n  tunebench bench overhead --model tiny-llama --method lora --steps 30 --json")
    o.add_argument("--model", default="tiny-llama", help="model name or folder (default tiny-llama)")
    o.add_argument("--method", default="lora", choices=["lora", "full"], help="lora or full (default lora)")
    o.add_argument("--task", default="smoke", help="task with prompt/completion records (default smoke)")
    o.add_argument("--steps", type=int, default=20, help="optimizer steps each (default 20)")
    o.add_argument("--batch-size", type=int, default=4)
    o.add_argument("--max-length", type=int, default=64)
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=overhead)

    st = add_command(s, "stress", "kill real runs at random moments and race concurrent writers; print records "
                                  "lost, corrupt and partial (exit 1 if any)",
                     "  tunebench bench stress\n  tunebench bench stress --kills 10 --writers 8 --records 100 --json\n"
                     "  tunebench bench stress --kills 0 --writers 16 --records 500 --db /tmp/stress")
    st.add_argument("--kills", type=int, default=None, help="kill trials: half SIGKILL a real tiny-llama training "
                                                            "run (forked, as bench run does), half a process "
                                                            "mid-write (default 40: 20 runs, 20 writers)")
    st.add_argument("--writers", type=int, default=8, help="concurrent writer processes (default 8)")
    st.add_argument("--records", type=int, default=100, help="records per writer (default 100)")
    st.add_argument("--db", type=Path, help="empty or new folder for the stress databases (default: a temp folder, "
                                            "removed afterwards)")
    st.add_argument("--seed", type=int, help="seed for the kill moments (default: random)")
    st.add_argument("--json", action="store_true", help="print the figures as JSON")
    st.set_defaults(func=stress)

    ds = add_command(s, "db-scale", "time the results database at scale: write N synthetic records (one file each) "
                                    "to a temp folder, then time the first scan and db show, db sql and the "
                                    "advisor's evidence lookup (median of 5); the folder is deleted afterwards",
                     "  tunebench bench db-scale\n  tunebench bench db-scale --records 2000 --json\n"
                     "  tunebench bench db-scale --records 100000 --dir /scratch")
    ds.add_argument("--records", type=int, default=100_000, help="synthetic records to write (default 100000)")
    ds.add_argument("--dir", type=Path, help="folder to create the temporary DB in (default: the system temp folder)")
    ds.add_argument("--json", action="store_true", help="print the figures as JSON")
    ds.set_defaults(func=db_scale)


def _db(args) -> Path:
    from bench.home import default_db

    return Path(args.db).expanduser() if args.db else default_db()


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "?"
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.1f}m" if s < 7200 else f"{s / 3600:.1f}h"


def run(args):
    from bench import matrix as mx
    from bench.home import home
    from bench.runner import done_hashes, estimate_s, run_matrix, step_history, summarize

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    if args.timeout is not None and args.timeout <= 0:
        raise UserError(f"--timeout must be > 0 seconds, got {args.timeout}")
    if args.memory_limit_gb is not None and not 0 < args.memory_limit_gb <= 1_000_000:
        raise UserError(f"--memory-limit-gb must be > 0, got {args.memory_limit_gb}")
    shard = mx.parse_shard(args.shard)
    spec = mx.load(args.matrix)
    runs = mx.expand(spec)
    runs = mx.apply_filter(runs, args.filter)
    runs = mx.apply_shard(runs, shard)
    db = _db(args)
    if args.db and db.exists() and not db.is_dir():
        raise UserError(f"--db {db} is not a folder")
    if args.limit:
        runs_limited = runs
        if args.resume:
            done = done_hashes(db, runs)
            runs_limited = [r for r in runs if r.config_hash not in done]
        runs = runs_limited[: args.limit]
    if args.dry_run:
        return dry_run(runs, db, args, estimate_s, step_history, done_hashes)
    if not runs:
        print("no runs selected")
        return 0
    out = args.out or home() / "runs" / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    t0 = time.monotonic()
    outcomes = run_matrix(runs, db, out, resume=args.resume, timeout_s=args.timeout,
                          memory_limit_gb=args.memory_limit_gb, fork=not args.no_fork,
                          keep_outputs=not args.delete_outputs, quiet=args.json)
    summary = {**summarize(outcomes), "matrix": spec.name, "db": str(db), "out": str(out),
               "elapsed_s": time.monotonic() - t0}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(summary["by_status"].items())) or "nothing to do"
        print(f"{spec.name}: {summary['runs']} runs ({counts}) in {_fmt_s(summary['elapsed_s'])}; results in {db}")
    return 0 if all(o.status == "ok" for o in outcomes) else 1


def dry_run(runs, db, args, estimate_s, step_history, done_hashes):
    history = step_history(db)
    done = done_hashes(db, runs) if args.resume else set()
    rows = []
    for r in runs:
        est = estimate_s(r, history, fork=not args.no_fork)
        rows.append({"index": r.index, "config_hash": r.config_hash, "stack": r.stack, "model": r.model,
                     "task": r.task, "seed": r.seed, "hp": r.hp, "estimate_s": est,
                     "skip": r.config_hash in done, "notes": r.notes})
    todo = [x for x in rows if not x["skip"]]
    known = [x["estimate_s"] for x in todo if x["estimate_s"] is not None]
    total = sum(known) if known else None
    if args.json:
        print(json.dumps({"runs": rows, "estimate_s": total, "unknown_estimates": len(todo) - len(known)}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(todo)} runs to do" + (f", {len(rows) - len(todo)} already ok" if len(todo) < len(rows) else ""))
    for col in ("#", "hash", "stack", "model", "task", "seed", "steps", "est", "note"):
        t.add_column(col)
    for x in rows:
        t.add_row(str(x["index"]), x["config_hash"][:10], x["stack"], x["model"], x["task"], str(x["seed"]),
                  str(x["hp"].get("max_steps", "")), "skip" if x["skip"] else _fmt_s(x["estimate_s"]),
                  " ".join(x["notes"]))
    Console().print(t)
    unknown = len(todo) - len(known)
    print(f"estimated total: {_fmt_s(total)}" + (f" (+{unknown} runs without an estimate)" if unknown else "")
          + (" (from this DB's history where it has one)" if history else ""))
    return 0


def list_matrices(args):
    from bench import matrix as mx

    for name in mx.matrix_names():
        spec = mx.load(name)
        try:
            n = len(mx.expand(spec))
        except UserError as e:
            n = f"invalid: {e}"
        print(f"{name:16} {n:>5} runs  {spec.description}")
    return 0


def tune(args):
    from bench.tune import tune as search

    if args.max_steps < 1:
        raise UserError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.timeout <= 0:
        raise UserError(f"--timeout must be > 0 seconds, got {args.timeout}")
    entry = search(args.method, args.objective, args.task, args.model, args.trials, storage=args.storage,
                   max_steps=args.max_steps, seed=args.seed, db=args.db, hp=args.hp, timeout_s=args.timeout,
                   lrs=args.lr, log=(lambda *_: None) if args.json else print)
    if args.json:
        print(json.dumps(entry, indent=2))
    else:
        print(f"best learning_rate {entry['learning_rate']:.3g} (eval loss {entry['value']:.4f}, "
              f"{entry['trials']} trials) stored for {args.model} {args.objective}:{args.method} {args.task}")
    return 0


def stress(args):
    import shutil
    import tempfile

    from bench.stress import DEFAULT_KILLS, failed, stress as run_stress

    if args.kills is None:
        args.kills = DEFAULT_KILLS
    for flag, value, lo in (("--kills", args.kills, 0), ("--writers", args.writers, 1), ("--records", args.records, 1)):
        if value < lo:
            raise UserError(f"{flag} must be >= {lo}, got {value}")
    if args.writers > 256 or args.records > 100_000:
        raise UserError("--writers must be <= 256 and --records <= 100000")
    if args.db and args.db.exists() and (not args.db.is_dir() or any(args.db.iterdir())):
        raise UserError(f"--db {args.db} must be a new or empty folder (stress writes test records into it)")
    db = args.db or Path(tempfile.mkdtemp(prefix="tunebench-stress-"))
    try:
        figures = run_stress(db, kills=args.kills, writers=args.writers, records=args.records, seed=args.seed,
                             log=(lambda *_: None) if args.json else print)
    finally:
        if not args.db:
            shutil.rmtree(db, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        k, w = figures["kills"], figures["writers"]
        t = Table(title="results store under stress")
        for col in ("test", "records read", "lost", "corrupt", "partial"):
            t.add_column(col, justify="left" if col == "test" else "right")
        t.add_row(f"SIGKILL: {k['train']} train runs, {k['writer']} writers", str(k["records_left"]), "-",
                  str(k["corrupt"]), str(k["partial"]))
        t.add_row(f"{w['writers']} writers x {w['records_each']} records", f"{w['read_back']}/{w['written']}",
                  str(w["lost"]), str(w["corrupt"]), str(w["partial"]))
        Console().print(t)
        phases = ", ".join(sorted({d["phase"].split(" (step")[0] for d in k["detail"] if d["kind"] == "train"}))
        print(f"train runs killed in: {phases or '-'}; writers wrote {w['records_per_s']:.0f} records/s; "
              f"{figures['wall_s']:.0f} s in all")
    return 1 if failed(figures) else 0


def overhead(args):
    from bench.overhead import compare

    if args.steps < 3:
        raise UserError(f"--steps must be >= 3 (the first step is warm-up), got {args.steps}")
    if args.batch_size < 1 or args.max_length < 8:
        raise UserError(f"--batch-size must be >= 1 and --max-length >= 8, got {args.batch_size} and {args.max_length}")
    res = compare(args.model, args.method, args.task, args.steps, args.batch_size, args.max_length)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"harness  {res['harness_tokens_per_s']:10.0f} tok/s   ({res['harness_wall_s']:.1f} s wall)")
        print(f"minimal  {res['minimal_tokens_per_s']:10.0f} tok/s   ({res['minimal_wall_s']:.1f} s wall)")
        print(f"ratio harness/minimal: {res['ratio']:.3f}   ({args.model} {args.method}, {args.steps} steps, "
              f"batch {args.batch_size}, max length {args.max_length})")
    return 0


def _db_scale_queries(db: Path) -> dict:
    """The reads a user waits on, as the commands run them (output swallowed)."""
    import contextlib
    import io

    from advisor.catalogs import gpu
    from advisor.cli import main
    from advisor import evidence
    from bench.dbscale import SHOW_WHERE, SQL_QUERY

    def command(argv):
        def run():
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                rc = main(argv)
            if rc != 0:
                raise RuntimeError(f"tunebench {' '.join(argv[:2])} exited {rc}")
        return run

    def lookup():
        evidence._read.cache_clear()  # time the read of the DB (through its index), not the cache
        return evidence.gather("reasoning", gpu("l4"), db)

    return {"db show --where (method, task, seed, status)": command(["db", "show", "--db", str(db), "--where", SHOW_WHERE]),
            "db sql (GROUP BY method, objective)": command(["db", "sql", "--db", str(db), SQL_QUERY]),
            "advise's evidence lookup (goal reasoning)": lookup}


def db_scale(args):
    from bench.dbscale import measure, table

    if not 1 <= args.records <= 1_000_000:
        raise UserError(f"--records must be between 1 and 1000000, got {args.records}")
    if args.dir is not None and not args.dir.is_dir():
        raise UserError(f"--dir {args.dir} is not an existing folder")
    fig = measure(args.records, _db_scale_queries, parent=args.dir,
                  log=(lambda *_: None) if args.json else print)
    if args.json:
        print(json.dumps(fig, indent=2))
    else:
        print(table(fig))
        print(f"target: each query <= {fig['target_ms']:.0f} ms after the first scan: "
              f"{'met' if fig['met'] else 'NOT met'}")
    return 0
