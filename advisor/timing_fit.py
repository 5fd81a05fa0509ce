"""Fit the time model's per-hardware-class MFU and method/objective slowdowns on measured runs.

    tunebench estimate calibrate-time --db reports/reference/cpu-amd-epyc-2c-smollm2-135m/db

Only this project's own measurements count (records without ``origin: published``): published
tables are what the advisor is judged on, never what it is fitted on. Each ok run with a measured
tokens/s becomes one ratio measured / predicted-at-100%-MFU; ``timing.fit_speed`` turns the ratios
of a class (cpu: hardware labels "cpu-..."; gpu: everything else) into an MFU and slowdown factors,
and the in-sample and leave-one-out errors go into ``advisor/timing.json`` beside them.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

from advisor import timing
from advisor.catalogs import gpu
from common.errors import UserError


def speed_rows(db_dirs: list[Path]) -> dict[str, list[tuple[str, str, float]]]:
    """{class: [(method, objective, measured / predicted tokens/s)]} from the DBs' own runs."""
    from advisor.calibration import request_from_run
    from advisor.estimator import DTYPE_BYTES, _weights_bytes, cards_for, trainable_params
    from bench.metrics import measured_quietly
    from bench.results import read_runs

    out: dict[str, list] = {}
    for db in db_dirs:
        df = read_runs(db)
        if df.is_empty():
            continue
        for row in df.iter_rows(named=True):
            if row["status"] != "ok" or not row.get("tokens_per_s") or row.get("origin") == "published":
                continue
            if not measured_quietly(row.get("extra")):  # slowed by other work on the machine
                continue
            req = request_from_run(row)
            if req is None:
                continue
            cpu = (row.get("hardware") or "").startswith("cpu")
            if cpu:  # CPU runs train in fp32 (bf16 is ~11x slower on these CPUs)
                req = dataclasses.replace(req, gpu=gpu("cpu"), precision="fp32")
            elif req.gpu is None:
                continue  # a GPU the catalog does not know: no peak FLOPs to divide by
            req = dataclasses.replace(req, tokens=1_000_000)
            par, obj = cards_for(req.method, req.objective)
            pred = timing.predicted_tokens_per_s(req, par, obj, req.precision, trainable_params(req, par),
                                                 _weights_bytes(req.shape, par.memory.base, DTYPE_BYTES[req.precision]))
            out.setdefault("cpu" if cpu else "gpu", []).append((req.method, req.objective, row["tokens_per_s"] / pred))
    return out


def calibrate_time(db_dirs: list[Path], out: Path = timing.TIMING) -> dict:
    rows = speed_rows(db_dirs)
    if not rows:
        raise UserError(f"no measured runs with tokens/s in {', '.join(map(str, db_dirs))}")
    classes = {}
    for cls, rs in sorted(rows.items()):
        fit = timing.fit_speed(rs)
        classes[cls] = {"mfu": round(fit["mfu"], 5),
                        "method": {k: round(v, 4) for k, v in sorted(fit["method"].items())},
                        "objective": {k: round(v, 4) for k, v in sorted(fit["objective"].items())},
                        "runs": len(rs), "error": timing.speed_errors(rs)}
    doc = {"version": 1, "fitted": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "fitted_on": [str(d) for d in db_dirs],
           "note": "this project's own measured runs only (published results are never fitted on)",
           "classes": classes}
    out.write_text(json.dumps(doc, indent=1) + "\n")
    timing._fitted.cache_clear()
    return doc
