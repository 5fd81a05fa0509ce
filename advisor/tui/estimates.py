"""The estimate a launch was made with, kept next to its run, and joined back onto the results.

    python -m advisor.tui.estimates RUN_DIR       # prints the estimate.json of a wizard launch

At launch the wizard estimates each stage exactly as it will run (the YAML as edited: model,
micro-batch, checkpointing, max_length, steps, on the GPU the user planned for) and writes
``estimate.json`` into the run's folder. A result record's ``output_dir`` (the stage folder, or
the run folder for a record the wizard settled) leads back to it, so the Results screen shows
estimated next to measured peak memory and training time. Measured: ``peak_reserved_bytes`` on
a GPU, else the run's peak host RSS; training time = median step time x steps (loading and
evaluation excluded, as in the estimate).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import polars as pl

from advisor.tui.local_models import local_folder
from common.errors import UserError

FILE = "estimate.json"
GIB = 2**30


def _shape(model: str):
    from advisor.catalogs import shape, shape_from_config

    folder = local_folder(model)
    return shape_from_config(folder) if folder is not None else shape(model)


def mean_length(info) -> int:
    """Average example length of the user's data (its train tokens per row; the median if not given)."""
    tokens = getattr(info, "train_tokens", None)
    return max(1, round(tokens / info.train_rows)) if tokens and info.train_rows else info.length_p50


def stage_estimates(spec: dict, inputs, avg_tokens: int | None) -> list[dict]:
    """One estimate per stage of ``spec`` (the launch YAML as a dict) on the planned GPU."""
    from advisor.estimator import Request, estimate
    from advisor.tui.plan import precision_for
    from common.stack import HyperParams, StackSpec

    s = StackSpec(**spec)
    g = inputs.gpu()
    out = []
    for i, st in enumerate(s.stages):
        hp = HyperParams(**{**s.hp, **st.hp})
        seen = min(hp.max_length, avg_tokens) if avg_tokens else hp.max_length // 2  # half-full, as the advisor
        tokens = hp.max_steps * hp.batch_size * hp.grad_accum * inputs.num_gpus * seen
        row = {"index": i, "stage": st.label, "precision": precision_for(g), "micro_batch": hp.batch_size,
               "grad_ckpt": hp.grad_ckpt, "seq_len": hp.max_length, "steps": hp.max_steps, "tokens": tokens}
        try:
            e = estimate(Request(shape=_shape(s.model), method=st.method, objective=st.objective,
                                 precision=row["precision"], seq_len=hp.max_length, micro_batch=hp.batch_size,
                                 grad_ckpt=hp.grad_ckpt, gpu=g, num_gpus=inputs.num_gpus, tokens=tokens))
        except UserError as e:  # a model without a shape the estimator knows: say so, launch anyway
            out.append({**row, "error": str(e)})
            continue
        out.append({**row, "peak_gib": round(e.peak_gib, 3), "reserved_gib": round(e.reserved_bytes / GIB, 3),
                    "hours": e.hours, "cost_usd": e.cost_usd, "notes": e.notes})
    return out


def launch_estimate(spec: dict, inputs, rec: dict | None, run_id: str) -> dict:
    """The document written as ``estimate.json``: planned device, per-stage estimates, the advisor's view."""
    info = inputs.data_info if (spec.get("data") and inputs.data_info is not None) else None
    avg = mean_length(info) if info is not None else None
    g = inputs.gpu()
    return {
        "run_id": run_id, "launched_by": "tunebench tui",
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "gpu": g.key, "num_gpus": inputs.num_gpus, "memory_gib": inputs.memory_gib, "usd_per_hour": g.usd_per_hour,
        "stages": stage_estimates(spec, inputs, avg),
        "recommendation": None if rec is None else {k: rec.get(k) for k in ("stack", "model", "peak_gib", "hours",
                                                                          "cost_usd", "stages")},
        "data": None if info is None else {k: getattr(info, k, None) for k in (
            "path", "format", "rows", "train_rows", "eval_rows", "length_unit", "length_p50", "length_p90",
            "length_p99")},
    }


def write_estimate(out: Path, doc: dict) -> Path:
    path = Path(out) / FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def read_estimate(output_dir: str | None) -> dict | None:
    """The launch's estimate for a record's ``output_dir`` (its stage folder or the run folder)."""
    if not output_dir:
        return None
    for folder in (Path(output_dir), Path(output_dir).parent):
        path = folder / FILE
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                return None  # a damaged sidecar hides the estimate, never the run
    return None


def with_estimates(df: pl.DataFrame) -> pl.DataFrame:
    """Fill est_peak_gib / est_train_s from each launch's estimate.json (runs launched elsewhere stay empty).

    The estimate's reserved bytes stand next to a measured device peak, its peak bytes next to host RSS."""
    peaks, secs = [], []
    cache: dict[str, dict | None] = {}
    for rid, out, idx, reserved in zip(df["run_id"].to_list(), df["output_dir"].to_list(),
                                       df["stage_index"].to_list(), df["peak_reserved_bytes"].to_list()):
        if out not in cache:
            cache[out] = read_estimate(out)
        doc, st = cache[out], {}
        if doc and rid and idx is not None and rid == f"{doc.get('run_id')}-{idx}" and idx < len(doc["stages"]):
            st = doc["stages"][idx]
        peaks.append(st.get("reserved_gib" if reserved is not None else "peak_gib"))
        secs.append(None if st.get("hours") is None else st["hours"] * 3600)
    return df.with_columns(pl.Series("est_peak_gib", peaks, dtype=pl.Float64),
                           pl.Series("est_train_s", secs, dtype=pl.Float64))


if __name__ == "__main__":
    print(json.dumps(read_estimate(sys.argv[1]), indent=2))
