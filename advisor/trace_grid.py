"""The estimator scored against the tracer on a committed grid of training configurations.

    tunebench estimate trace-grid make            # (re)write reports/reference/trace-grid/grid.yaml
    tunebench estimate trace-grid run --limit 50  # trace what the results CSV lacks (resumable)
    tunebench estimate trace-grid run --retry-failed --timeout 120  # failed rows again, then the rest
    tunebench estimate trace-grid score           # estimate every traced row: CSV, plot, median / p95

``make`` draws the grid deterministically (seed 0): every parameterization and every objective
(round-robin, valid pairs only) over ten architectures from 0.1B to 72B (GQA and MHA, tied and
untied embeddings, 128k-256k vocabularies, one MoE), seq 256-8192, micro-batch 1-8,
checkpointing on/off, pure bf16 vs fp32-master mixed precision, four optimizers and ZeRO 0-3 over
1-8 GPUs. ``run`` traces each configuration once on fake tensors (bench/trace.py; ZeRO is counted on one
rank as the step runs, bench/trace_count.py), each in a child forked
after the imports (killed at ``--timeout``; a crash or kill is a failed row and the grid goes on), and
writes its row into results.csv with the traced breakdown (the file is replaced atomically after each
row, so a kill at any moment leaves a whole CSV); ``--retry-failed`` first re-traces the rows recorded
as failed, replacing them. ``score`` recomputes the analytic estimate for every row
(so estimator changes are re-scored without re-tracing), writes the estimate columns, the plot and
prints the error distribution. The estimate compared is the estimator's tensor peak: its peak less
the CUDA context and the allocator overhead, which a live-tensor trace does not contain.
"""
from __future__ import annotations

import csv
import random
import time
from pathlib import Path

import yaml

from common.errors import UserError

ROOT = Path(__file__).resolve().parents[1] / "reports" / "reference" / "trace-grid"
GRID = ROOT / "grid.yaml"
RESULTS = ROOT / "results.csv"
PLOT = ROOT / "estimate-vs-trace.png"
ARCHS = ("smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b", "gemma-2-2b", "mistral-7b", "llama-3.1-8b",
         "qwen2.5-14b", "mixtral-8x7b", "llama-3.1-70b", "qwen2.5-72b")
SEQS = (256, 512, 1024, 2048, 4096, 8192)
BATCHES = (1, 2, 4, 8)
OPTIMIZERS = ("adamw", "adamw8bit", "paged_adamw8bit", "sgd")
ZERO = ((0, 1), (1, 2), (2, 4), (3, 8), (3, 1), (2, 8), (1, 4), (3, 4))
GEN_LEN = 128
BREAKDOWN = ("weights", "trainable", "grads", "optimizer", "activations", "logits_loss", "extra_models",
             "extra_activations", "kv_cache", "backward_temp", "optimizer_temp")
TRACE_COLS = ("trace_gib", "trace_phase", "trace_step", "trace_s", *(f"t_{k}" for k in BREAKDOWN), "trace_notes")
KEYS = ("id", "model", "method", "objective", "seq_len", "micro_batch", "grad_ckpt", "precision", "optimizer",
        "zero_stage", "num_gpus")


def make_grid(n: int = 520, seed: int = 0) -> list[dict]:
    """``n`` valid configurations; every parameterization and objective appears."""
    from advisor.catalogs import shape
    from advisor.estimator import REQUIREMENTS
    from methods.registry import OBJECTIVES, PARAMETERIZATIONS, _load, check_combination

    _load()
    rng = random.Random(seed)
    methods, objectives = sorted(PARAMETERIZATIONS), sorted(OBJECTIVES)
    rows, i = [], 0
    while len(rows) < n:
        method, obj = methods[i % len(methods)], objectives[(i // len(methods) + i) % len(objectives)]
        i += 1
        try:
            check_combination(obj, method)
        except UserError:
            continue
        card = PARAMETERIZATIONS[method].card
        archs = [a for a in ARCHS if all(REQUIREMENTS[r][0](shape(a)) for r in card.requires if r in REQUIREMENTS)]
        if not archs:
            continue
        zs, gpus = rng.choice(ZERO)
        rows.append(dict(id=len(rows), model=rng.choice(archs), method=method, objective=obj,
                         seq_len=rng.choice(SEQS), micro_batch=rng.choice(BATCHES), grad_ckpt=rng.random() < 0.5,
                         precision=rng.choice(("bf16", "mixed")), optimizer=rng.choice(OPTIMIZERS),
                         zero_stage=zs, num_gpus=gpus))
    return rows


def write_grid(path: Path = GRID) -> int:
    rows = make_grid()
    path.parent.mkdir(parents=True, exist_ok=True)
    head = ("# The estimator-vs-tracer grid (make_grid, seed 0, in the trace-grid module of the estimate command): "
            "one training configuration\n"
            "# per entry. `tunebench estimate trace-grid run` traces them, `... score` scores the estimator.\n")
    path.write_text(head + yaml.safe_dump(rows, sort_keys=False, width=200))
    return len(rows)


def load_grid(path: Path = GRID) -> list[dict]:
    if not path.exists():
        raise UserError(f"{path}: no grid file (make it with `tunebench estimate trace-grid make`)")
    return yaml.safe_load(path.read_text())


def read_results(path: Path = RESULTS) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def trace_row(cfg: dict) -> dict:
    """Trace one grid configuration; the CSV row's trace columns."""
    from advisor.catalogs import shape
    from bench.trace import TraceRequest, trace_peak

    req = TraceRequest(shape=shape(cfg["model"]), method=cfg["method"], objective=cfg["objective"],
                       seq_len=cfg["seq_len"], micro_batch=cfg["micro_batch"], grad_ckpt=cfg["grad_ckpt"],
                       precision=cfg["precision"], optimizer=cfg["optimizer"], gen_len=GEN_LEN,
                       objective_cfg=ppo_batches(cfg), zero_stage=cfg["zero_stage"], num_gpus=cfg["num_gpus"])
    t = trace_peak(req)
    gib = 2**30
    return {"trace_gib": round(t.peak_bytes / gib, 4), "trace_phase": t.peak_phase, "trace_step": t.peak_step + 1,
            "trace_s": round(t.seconds, 1), **{f"t_{k}": round(t.breakdown.get(k, 0) / gib, 4) for k in BREAKDOWN},
            "trace_notes": " | ".join(t.notes)}


def ppo_batches(cfg: dict) -> dict:
    """PPO's rollout and update batches follow the micro-batch (the estimator's meaning of it)."""
    if cfg["objective"] == "ppo":
        return {"rollout_batch": cfg["micro_batch"], "mini_batch": cfg["micro_batch"]}
    return {}


# What the parent imports before forking, so each child starts with the stack loaded (not re-imported per row).
PRELOAD = ("torch", "transformers", "peft", "trl", "bitsandbytes", "bench.trace", "bench.trace_model",
           "bench.trace_count", "advisor.catalogs", "transformers.models.llama.modeling_llama",
           "transformers.models.qwen2.modeling_qwen2", "transformers.models.mixtral.modeling_mixtral",
           "transformers.models.gpt_neox.modeling_gpt_neox")


def _preload() -> None:
    from bench.zygote import preload

    preload(PRELOAD)
    try:
        from methods.registry import _load

        _load()
    except Exception:  # each child imports what is missing again and records the real error in its row
        pass


def _child(trace, cfg: dict, conn, cpu_s: int) -> None:
    """In the forked child: trace one row, send ``("ok", cols)`` or ``("error", text)``. The kernel
    ends the child (SIGXCPU) once it has used ``cpu_s`` CPU-seconds, inside a C++ kernel too."""
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    try:
        conn.send(("ok", trace(cfg)))
    except Exception as e:  # a configuration the tracer cannot run is recorded, not skipped silently
        conn.send(("error", f"{type(e).__name__}: {str(e)[:200]}"))
    finally:
        conn.close()


def trace_in_child(cfg: dict, timeout_s: int, trace=None, wall_s: float | None = None) -> dict:
    """Trace ``cfg`` in a forked child; a crash, kill or error is a failed row.

    SIGALRM in the same process cannot stop a C++ kernel (TRL's fused head) and a crash there took the
    whole grid down; a child process can always be killed, and the parent only reads what it sent.
    The limit is ``timeout_s`` seconds of the child's CPU time: the grid runs at nice 19 beside
    benchmarks, where wall time says more about the neighbours than about the tracer. A child that
    stops using CPU (a hang) is killed after ``wall_s`` (default 50 x timeout_s) of wall time.
    ``trace(cfg)`` returns the row's trace columns (default ``trace_row``)."""
    import multiprocessing as mp
    import signal

    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(trace or trace_row, cfg, send, int(timeout_s)), daemon=True)
    proc.start()
    send.close()
    timed_out = {"trace_gib": "", "trace_notes": f"FAILED timeout: tracing took over {timeout_s} CPU-seconds (killed)"}
    msg, answered = None, recv.poll(wall_s or 50 * timeout_s)  # a message, or EOF when the child died
    if answered:
        try:
            msg = recv.recv()
        except EOFError:
            pass
    recv.close()
    if answered:
        proc.join(30)
    if proc.is_alive():
        proc.kill()
        proc.join()
        if not answered:
            return {**timed_out, "trace_notes": f"FAILED hang: no answer after {wall_s or 50 * timeout_s:g} s "
                                                "of wall time (killed)"}
    if msg is None and proc.exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
        return timed_out
    if msg is None:
        return {"trace_gib": "", "trace_notes": f"FAILED crash: the tracing process exited with {proc.exitcode}"}
    kind, body = msg
    return body if kind == "ok" else {"trace_gib": "", "trace_notes": f"FAILED {body}"}


def write_results(rows: list[dict], path: Path = RESULTS) -> None:
    """Rewrite the CSV atomically (temp file + os.replace): a kill at any moment leaves a whole file."""
    import os
    import tempfile

    cols = [*KEYS, *TRACE_COLS]
    for r in rows:  # score's estimate columns, where the file has them
        cols += [c for c in r if c not in cols]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".csv")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make the committed file private
        with os.fdopen(fd, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def redo_ids(spec: str, grid_path: Path = GRID) -> set[int]:
    """``--redo``: "zero" = every row sharded over more than one GPU, else a comma list of row ids."""
    grid = load_grid(grid_path)
    if spec == "zero":
        return {c["id"] for c in grid if c["zero_stage"] and c["num_gpus"] > 1}
    try:
        ids = {int(x) for x in spec.split(",") if x.strip()}
    except ValueError:
        raise UserError(f"--redo takes 'zero' or a comma list of row ids, got {spec!r}") from None
    unknown = ids - {c["id"] for c in grid}
    if unknown:
        raise UserError(f"--redo: no grid rows {sorted(unknown)} (the grid has ids 0-{len(grid) - 1})")
    return ids


def failed(row: dict) -> bool:
    return not row.get("trace_gib")


def _say(line: str) -> None:
    print(line, flush=True)  # the grid runs for hours under nohup: each row shows up in its log at once


def run(limit: int | None = None, ids: set[int] | None = None, progress=_say, timeout_s: int = 150,
        retry_failed: bool = False, grid_path: Path = GRID, results: Path = RESULTS, trace=None, jobs: int = 1) -> int:
    """Trace the grid rows results.csv lacks (first its failed rows again, with ``retry_failed``), or
    exactly the rows ``ids`` when given (traced before or not), each in its own child process,
    ``jobs`` children at a time; every finished row is written at once (by this process only),
    replacing the row of the same id. Returns how many rows ran."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    grid = load_grid(grid_path)
    rows = read_results(results)
    at = {int(r["id"]): i for i, r in enumerate(rows)}
    if ids is not None:  # these rows again, traced or not (after a tracer change that moves them)
        todo = [c for c in grid if c["id"] in ids][:limit]
    else:
        retry = [c for c in grid if c["id"] in at and retry_failed and failed(rows[at[c["id"]]])]
        todo = (retry + [c for c in grid if c["id"] not in at])[:limit]
    results.parent.mkdir(parents=True, exist_ok=True)
    for stale in results.parent.glob(".results-*.csv"):  # a temp file a killed runner left before its replace
        stale.unlink()
    if todo:
        _preload()

    def one(cfg: dict) -> tuple[dict, float]:
        t0 = time.perf_counter()
        return {**cfg, **trace_in_child(cfg, timeout_s, trace)}, time.perf_counter() - t0

    # threads only wait on their children (the tracing itself runs in forked processes)
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for n, done in enumerate(as_completed([pool.submit(one, cfg) for cfg in todo]), 1):
            row, secs = done.result()
            if row["id"] in at:
                rows[at[row["id"]]] = row
            else:
                at[row["id"]] = len(rows)
                rows.append(row)
            write_results(rows, results)
            progress(f"[{n}/{len(todo)}] #{row['id']} {row['model']} {row['objective']}:{row['method']} "
                     f"{row['micro_batch']}x{row['seq_len']} -> {row['trace_gib'] or 'failed'} GiB "
                     f"({secs:.1f} s){'' if row['trace_gib'] else ' ' + row['trace_notes'][:120]}")
    if jobs > 1 and todo:  # children finish out of order: leave the file in id order
        write_results(sorted(rows, key=lambda r: int(r["id"])), results)
    return len(todo)


def estimate_row(row: dict) -> float:
    """The estimator's tensor peak (GiB) for one grid row."""
    from advisor.catalogs import shape
    from advisor.estimator import Request, estimate

    req = Request(shape=shape(row["model"]), method=row["method"], objective=row["objective"],
                  precision="bf16", master_weights=row["precision"] == "mixed", seq_len=int(row["seq_len"]),
                  micro_batch=int(row["micro_batch"]), grad_ckpt=str(row["grad_ckpt"]) == "True",
                  optimizer=row["optimizer"], num_gpus=int(row["num_gpus"]), zero_stage=int(row["zero_stage"]),
                  gen_len=GEN_LEN, lm_head="fused")  # the trace runs tunebench's (TRL's) fused head
    est = estimate(req)
    b = est.breakdown
    # the trace counts tensors, not the CUDA context, the allocator, or ZeRO-3's gathered layer and buckets
    outside = ("cuda_context", "allocator_overhead", "zero3_gathered_layer")
    return (est.peak_bytes - sum(b.get(k, 0.0) for k in outside)) / 2**30


def score(path: Path = RESULTS, plot: Path | None = PLOT) -> dict:
    """Estimate every traced row; rewrite the CSV's estimate columns; plot; error summary."""
    import statistics

    rows = [r for r in read_results(path) if r.get("trace_gib")]
    for r in rows:
        r["est_gib"] = round(estimate_row(r), 4)
        r["error"] = round(r["est_gib"] / float(r["trace_gib"]) - 1, 4)
    every = read_results(path)
    by_id = {r["id"]: r for r in rows}
    write_results([by_id.get(r["id"], r) for r in every], path)
    errs = sorted(abs(r["error"]) for r in rows)
    out = {"rows": len(rows), "failed": len(every) - len(rows)}
    if errs:
        out |= {"median": statistics.median(errs), "p95": errs[min(len(errs) - 1, int(0.95 * len(errs)))],
                "worst": errs[-1], "signed_median": statistics.median(r["error"] for r in rows)}
        if plot is not None:
            _plot(rows, plot, out)
    return out


def _plot(rows: list[dict], path: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [float(r["trace_gib"]) for r in rows]
    y = [float(r["est_gib"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 6))
    ax.scatter(x, y, s=8, alpha=0.6)
    lo, hi = min(x + y) * 0.8, max(x + y) * 1.25
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("traced peak (GiB, live tensors, per rank)")
    ax.set_ylabel("estimated tensor peak (GiB)")
    ax.set_title(f"estimate vs trace: {summary['rows']} configs, median |err| {summary['median']:.1%}, "
                 f"p95 {summary['p95']:.1%}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
