"""Estimator error against published peak-memory measurements (tests/data/published_memory.csv).

    .venv/bin/python -m advisor.validation

Each row names its source, model, method and settings; the estimate is compared with the
measured torch reserved peak (the CUDA context is not part of that figure). Nothing is fitted
on these rows.
"""
from __future__ import annotations

import csv
import statistics
from pathlib import Path

from advisor.catalogs import gpu, shape
from advisor.estimator import GIB, Request, estimate

PUBLISHED = Path(__file__).resolve().parent.parent / "tests" / "data" / "published_memory.csv"


def request_from_row(row: dict) -> Request:
    return Request(
        shape=shape(row["model"]), method=row["method"], objective=row.get("objective") or "sft",
        precision=row["precision"], seq_len=int(row["seq_len"]), micro_batch=int(row["micro_batch"]),
        grad_ckpt=row["grad_ckpt"] in ("1", "true", "True"), optimizer=row["optimizer"],
        lora_r=int(row["lora_r"]) or None, targets=row["targets"] or None,  # empty: the method's default
        virtual_tokens=int(row["virtual_tokens"]) or None, gpu=gpu(row["gpu"]), amp=row["amp"] in ("1", "true", "True"),
    )


def errors(path: Path = PUBLISHED, consts: dict | None = None) -> list[dict]:
    out = []
    with open(path) as f:
        for row in csv.DictReader(f):
            est = estimate(request_from_row(row), consts)
            got, want = est.reserved_bytes / GIB, float(row["measured_gib"])
            out.append({"source": row["source"], "method": row["method"], "estimate_gib": got,
                        "measured_gib": want, "rel_error": got / want - 1})
    return out


def summary(rows: list[dict]) -> dict:
    errs = [abs(r["rel_error"]) for r in rows]
    return {"rows": len(rows), "median_abs_error": statistics.median(errs), "worst_abs_error": max(errs)}


if __name__ == "__main__":
    rows = errors()
    for r in rows:
        print(f"{r['method']:10} est {r['estimate_gib']:6.2f} GiB  measured {r['measured_gib']:6.2f}  {r['rel_error']:+.1%}  {r['source'].rsplit('/', 1)[-1]}")
    s = summary(rows)
    print(f"{s['rows']} rows: median |error| {s['median_abs_error']:.1%}, worst {s['worst_abs_error']:.1%}")
