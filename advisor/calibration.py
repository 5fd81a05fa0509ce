"""Fit the estimator's non-derivable constants on measured GPU runs in a results DB.

    tunebench estimate calibrate --db ~/.cache/tunebench/db

Calibration data = rows with status "ok" and a measured ``peak_reserved_bytes``. Every 4th
run (by a stable hash of its run id) is held out; the constants are fitted on the rest and the
median/worst relative error on the held-out rows is reported before and after. Fitted:
``activation_scale`` (multiplies activations and logits: the part the mechanisms model least
exactly) and ``mfu`` (achieved fraction of the GPU's peak FLOPs, from tokens/s).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import statistics
from pathlib import Path

from advisor.catalogs import Gpu, Shape, generic_shape, gpus, models, shape_from_config
from advisor.estimator import CALIBRATION, Request, cards_for, constants, estimate, trainable_params
from advisor.timing import train_flops_per_token
from common.errors import UserError


def _gpu_for(device_name: str | None, memory_bytes: int | None = None) -> Gpu | None:
    """Match an NVML device name ("NVIDIA H100 80GB HBM3") to a catalog entry; memory breaks ties."""
    if not device_name:
        return None
    low = device_name.lower()
    found = []
    for g in gpus().values():
        words = [w for w in g.name.lower().replace("nvidia", "").replace("geforce", "").split() if not w.endswith("gb")]
        if words and (all(w in low for w in words[:2]) or any(ch.isdigit() for ch in words[0]) and words[0] in low):
            found.append(g)
    if not found:
        return None
    if memory_bytes:
        return min(found, key=lambda g: abs(g.memory_gib * 2**30 - memory_bytes))
    return found[0]


def _shape_for(row: dict) -> Shape | None:
    name = row.get("model") or ""
    if name.lower() in models():
        return models()[name.lower()]
    try:
        from bench.home import models_dir

        cfg = models_dir() / name / "config.json"
        if cfg.exists():
            return shape_from_config(cfg)
    except Exception:  # a missing home is normal; fall back to the parameter count
        pass
    if row.get("model_params"):
        return generic_shape(row["model_params"] / 1e9)
    return None


def request_from_run(row: dict) -> Request | None:
    """Rebuild the estimator's input from one result record (None if it lacks what is needed)."""
    s = _shape_for(row)
    if s is None or not row.get("method") or not row.get("objective"):
        return None
    try:
        card, _ = cards_for(row["method"], row["objective"])
    except UserError:
        return None
    hp = json.loads(row.get("hyperparams") or "{}")
    common, mcfg = hp.get("hp", hp), hp.get("method_cfg", {})
    # The run's method settings, as far as this version's card knows them (a record from an older
    # version may carry keys since renamed; a setting that no longer validates drops the row).
    method_cfg = {k: v for k, v in (mcfg or {}).items() if k in card.settings.model_fields}
    targets = method_cfg.get("target_modules")
    if isinstance(targets, (list, tuple)):
        method_cfg["target_modules"] = [t for t in targets if t in s.linears()] or list(s.linears())
    elif targets is not None:  # a peft shorthand such as "all-linear"
        method_cfg.pop("target_modules")
    try:
        card.make_config(method_cfg)
    except UserError:
        return None
    g = _gpu_for(row.get("device_name"), row.get("device_memory_bytes"))
    return Request(
        shape=s, method=row["method"], objective=row["objective"],
        precision=common.get("precision", "bf16" if g is None or g.bf16 else "fp16"),
        seq_len=int(common.get("max_length", 256)), micro_batch=int(common.get("batch_size", 4)),
        grad_ckpt=bool(common.get("grad_ckpt", False)), method_cfg=method_cfg,
        num_gpus=int(row.get("device_count") or 1), gpu=g,
    )


def held_out(run_id: str) -> bool:
    return int(hashlib.sha1(run_id.encode()).hexdigest(), 16) % 4 == 0


def _errors(pairs, consts) -> list[float]:
    return [abs(estimate(req, consts).reserved_bytes / meas - 1) for req, meas in pairs]


def _stats(errs: list[float]) -> dict:
    return {"median": statistics.median(errs), "worst": max(errs)} if errs else {"median": None, "worst": None}


def calibration_rows(db_dir: Path) -> list[tuple[str, Request, float, dict]]:
    from bench.results import read_runs

    frame = read_runs(db_dir)
    if frame.is_empty():
        return []
    frame = frame.filter((frame["status"] == "ok") & frame["peak_reserved_bytes"].is_not_null())
    out = []
    for row in frame.iter_rows(named=True):
        req = request_from_run(row)
        if req is not None and row["peak_reserved_bytes"] > 0:
            out.append((row["run_id"], req, float(row["peak_reserved_bytes"]), row))
    return out


def fit(rows, base: dict) -> dict:
    """Grid-search activation_scale for the lowest median error; median achieved MFU."""
    fitted = dict(base)
    pairs = [(req, meas) for _, req, meas, _ in rows]
    if pairs:
        grid = [0.5 + 0.01 * k for k in range(151)]
        fitted["activation_scale"] = min(
            grid, key=lambda a: (statistics.median(_errors(pairs, {**base, "activation_scale": a, "logits_scale": a})), abs(a - 1)))
        fitted["logits_scale"] = fitted["activation_scale"]
    mfus = []
    for _, req, _, row in rows:
        if req.gpu is None or not row.get("tokens_per_s"):
            continue
        par, obj = cards_for(req.method, req.objective)
        peak = (req.gpu.bf16_tflops if req.precision != "fp32" else req.gpu.fp32_tflops) * 1e12 * req.num_gpus
        mfus.append(row["tokens_per_s"] * train_flops_per_token(req, par, obj, trainable_params(req, par)) / obj.memory.sequences / peak)
    if mfus:
        fitted["mfu"] = round(statistics.median(mfus), 4)
    return fitted


def calibrate(db_dir: Path, out: Path = CALIBRATION) -> dict:
    rows = calibration_rows(db_dir)
    if not rows:
        raise UserError(f"no calibration data in {db_dir}: need runs with status ok and a measured GPU peak (peak_reserved_bytes)")
    train = [r for r in rows if not held_out(r[0])]
    test = [r for r in rows if held_out(r[0])]
    if not test and len(train) > 1:
        test, train = train[:1], train[1:]
    base = constants()
    fitted = fit(train, base)
    pairs = [(req, meas) for _, req, meas, _ in test]
    before, after = _stats(_errors(pairs, base)), _stats(_errors(pairs, fitted))
    old = json.loads(out.read_text()) if out.exists() else {}
    doc = {
        "version": int(old.get("version", 0)) + 1,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "db": str(db_dir), "rows_fit": len(train), "rows_held_out": len(test),
        "constants": fitted,
        "held_out_error": {"before": before, "after": after},
        "held_out_run_ids": [r[0] for r in test],
        # what each constant was fitted on (calibration hygiene: tracer output, this project's own
        # measurements, peft method_comparison result files; never other published tables)
        "fitted_on": {**old.get("fitted_on", {}),
                      **{k: f"measured GPU runs in {db_dir} ({len(train)} runs)" for k in fitted
                         if fitted.get(k) != base.get(k)}},
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    constants.cache_clear()
    return doc
