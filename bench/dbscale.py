"""The results database at scale: N synthetic records, then the reads a user waits on.

    tunebench bench db-scale                    # 100,000 records (a few minutes on 2 cores)
    tunebench bench db-scale --records 2000     # a quick look
    tunebench bench db-scale --json

Every record is synthetic and says so: ``matrix = "synthetic-db-scale"``, ``hardware =
"synthetic"``, ``{"synthetic": "db-scale"}`` in ``hyperparams`` and ``extra``. They are typed by
the real schema (``bench.schema.new_record``) and written one immutable file each through the real
writer (``bench.results.write_records``, without fsync: a scratch DB) into a temporary folder that
is deleted afterwards. Timed, in this process (no interpreter start-up in the figures):

- generation: building and writing the N record files;
- first scan: ``read_runs`` on the new folder, which reads every file and builds ``_index``;
- then the median of 5 runs of each query the caller passes (the command times ``tunebench db
  show --where ...``, ``tunebench db sql`` with a GROUP BY, and the ranking's evidence lookup, the
  function that finds measured runs on a close task) -- each one lists the folder and reads the index.

Target: each query <= ``TARGET_MS`` after the first scan.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MATRIX = "synthetic-db-scale"
TAG = json.dumps({"synthetic": "db-scale"})
TARGET_MS = 200.0
REPEATS = 5
_CHUNK = 5000  # records built and written per batch (bounds memory)

_STACKS = [("sft", m) for m in ("lora", "qlora", "dora", "full", "ia3", "prefix", "loha", "vera")] + \
          [("dpo", m) for m in ("lora", "qlora", "full")] + [("grpo", "lora"), ("kto", "lora"), ("cpt", "full")]
_TASKS = ["gsm-symbolic", "math-prefs", "wiki-topics", "pydocs-dapt", "instruct-mix", "smoke", "general-text"]
_MODELS = [("smollm2-135m", 134_515_008), ("tiny-llama", 1_050_000), ("llama-3.1-8b", 8_030_261_248)]

SHOW_WHERE = "method = 'lora' AND task = 'gsm-symbolic' AND seed = 3 AND status = 'ok'"
SQL_QUERY = ("SELECT method, objective, count(*) AS n, median(tokens_per_s) AS tps, avg(peak_rss_bytes) AS rss "
             "FROM runs WHERE status = 'ok' GROUP BY method, objective ORDER BY tps DESC")


def synthetic_record(i: int, rng: random.Random, t0: dt.datetime) -> dict:
    objective, method = _STACKS[i % len(_STACKS)]
    model, params = _MODELS[(i // len(_STACKS)) % len(_MODELS)]
    task = _TASKS[(i // 7) % len(_TASKS)]
    status = "oom" if rng.random() < 0.05 else "error" if rng.random() < 0.02 else "ok"
    ok = status == "ok"
    before = rng.uniform(1.0, 3.0)
    tps = rng.uniform(20, 20_000)
    wall = rng.uniform(10, 5000)
    return {
        "run_id": f"synthetic-{i:07d}", "config_hash": f"{i:016x}", "matrix": MATRIX,
        "stack": f"{objective}:{method}", "stage_index": 0, "stage": f"{objective}:{method}",
        "objective": objective, "method": method, "model": model, "model_params": params, "task": task,
        "hardware": "synthetic", "device_name": "synthetic", "device_count": 1, "seed": i % 5,
        "status": status, "error": None if ok else f"synthetic {status}",
        "total_params": params, "trainable_params": params // 50, "trainable_share": 0.02,
        "peak_rss_bytes": rng.randrange(1 << 30, 64 << 30), "tokens_per_s": tps if ok else None,
        "samples_per_s": tps / 256 if ok else None, "wall_time_s": wall, "steps": 100,
        "train_loss": rng.uniform(0.5, 2.0) if ok else None, "eval_loss": rng.uniform(0.5, 2.0) if ok else None,
        "metric_name": "eval_loss", "metric_before": before if ok else None,
        "metric_after": before - rng.uniform(-0.1, 0.8) if ok else None,
        "hyperparams": TAG, "extra": TAG, "created_at": t0 + dt.timedelta(seconds=i),
    }


def generate(db: Path, n: int, seed: int = 0) -> None:
    from bench.results import write_records

    rng = random.Random(seed)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for start in range(0, n, _CHUNK):
        write_records(db, (synthetic_record(i, rng, t0) for i in range(start, min(n, start + _CHUNK))),
                      durable=False)


def _median_ms(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


Queries = Callable[[Path], dict[str, Callable[[], object]]]


def measure(records: int, queries: Queries, parent: Path | None = None,
            log: Callable[[str], None] = print) -> dict:
    """Generate, scan, then time ``queries(db)`` (name -> callable); returns the figures.

    The temporary DB is removed in every case, also when a query fails.
    """
    from bench.results import INDEX_DIR, read_runs

    db = Path(tempfile.mkdtemp(prefix="tunebench-db-scale-", dir=parent))
    try:
        log(f"writing {records} synthetic records (matrix {MATRIX}) into {db} (deleted afterwards) ...")
        t = time.perf_counter()
        generate(db, records)
        gen_s = time.perf_counter() - t
        damaged: list[str] = []
        t = time.perf_counter()
        frame = read_runs(db, on_damaged=lambda p, m: damaged.append(p.name))
        scan_s = time.perf_counter() - t
        if len(frame) != records or damaged:
            raise RuntimeError(f"read back {len(frame)} of {records} records, {len(damaged)} damaged")
        index_bytes = sum(p.stat().st_size for p in (db / INDEX_DIR).glob("*"))
        del frame
        medians = {name: _median_ms(fn) for name, fn in queries(db).items()}
    finally:
        shutil.rmtree(db, ignore_errors=True)
    return {"records": records, "generate_s": gen_s, "first_scan_s": scan_s, "index_bytes": index_bytes,
            "queries_ms": medians, "target_ms": TARGET_MS, "repeats": REPEATS,
            "met": all(v <= TARGET_MS for v in medians.values())}


def table(fig: dict) -> str:
    rows = [(f"generate {fig['records']} record files", f"{fig['generate_s']:.1f} s",
             f"{fig['records'] / max(fig['generate_s'], 1e-9):.0f} files/s"),
            ("first scan (reads every file, builds _index)", f"{fig['first_scan_s']:.2f} s",
             f"index {fig['index_bytes'] / 2**20:.1f} MiB" if fig["index_bytes"] else "no index (small DB)")]
    for name, ms in fig["queries_ms"].items():
        rows.append((name, f"{ms:.0f} ms", f"median of {fig['repeats']}, "
                                            f"{'ok' if ms <= fig['target_ms'] else 'over'} (<= {fig['target_ms']:.0f} ms)"))
    w = [max(len(r[k]) for r in rows + [("step", "time", "note")]) for k in range(3)]
    lines = [f"{'step':<{w[0]}}  {'time':>{w[1]}}  note", f"{'-' * w[0]}  {'-' * w[1]}  {'-' * w[2]}"]
    lines += [f"{a:<{w[0]}}  {b:>{w[1]}}  {c}" for a, b, c in rows]
    return "\n".join(lines)
