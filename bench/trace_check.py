"""The tracer against measured runs: traced vs the harness's ``peak_tensor_bytes``.

    tunebench estimate trace-check --db reports/reference/cpu-amd-epyc-2c-smollm2-135m/db

For every ok record of a results DB, the same configuration (model folder's config.json, method
and its settings, objective and its settings, batch size, max_length, checkpointing from the
record's ``hyperparams``) is traced in fp32 on fake tensors (bench/trace.py). The measured figure
(bench/metrics.py) is live tensor bytes at the forward->backward boundary of the first two steps,
so the traced figure compared with it is the live bytes at the same boundary (``Trace.boundary_bytes``),
the larger of the two steps; the traced all-op peak is printed beside it.

Runs feed real data: unpacked batches are padded to their longest sequence, usually shorter than
max_length, and their attention mask then holds zeros, which transformers materializes (and SDPA
repeats k/v to every head). The check therefore also traces what the run fed: each sampled
boundary's batch length and whether it had a mask, as the meter recorded them (``boundary_batches``
in the record's extra; trace step k against boundary k); for records from before the meter kept
them, the expected length the first two batches were padded to, with a mask (``padded_seq``: the
expected longest of the records they draw from the task's train records, bench/seqlen.py).
Packed runs (cpt's ``packing``) fill every sequence to max_length and compare like for like.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError


@dataclass
class CheckRow:
    objective: str
    method: str
    batch: int
    seq: int
    packed: bool
    measured: int
    traced_boundary: int
    traced_peak: int
    seconds: float
    fed: str | None = None  # the lengths traced as fed: "158,140" as recorded, "~249" expected
    traced_fed: int | None = None  # traced boundary bytes at those lengths

    @property
    def error(self) -> float:
        return self.traced_boundary / self.measured - 1

    @property
    def fed_error(self) -> float | None:
        return None if self.traced_fed is None else self.traced_fed / self.measured - 1


def model_config(model: str) -> dict:
    """The config.json of a model the harness knows (bench/models.py), as a dict with model_type."""
    from bench.models import model_path
    from common.files import read_json_object

    cfg = read_json_object(Path(model_path(model)) / "config.json", "model config")
    drop = ("architectures", "_model_name_or_path", "transformers_version", "dtype", "torch_dtype")
    return {k: v for k, v in cfg.items() if k not in drop}


def records(db: Path) -> list[dict]:
    import polars as pl

    from bench.results import read_runs

    df = read_runs(db)
    if df.is_empty():
        raise UserError(f"{db}: no result records")
    df = df.filter((pl.col("status") == "ok") & pl.col("peak_tensor_bytes").is_not_null())
    return df.sort("objective", "method").to_dicts()


LEAN_SFT_COMMIT = "a319c55"  # methods/_trl.py LeanSFTTrainer: CPU SFT loss over full logits from here on


def sft_head(commit: str | None) -> str:
    """Which LM head the run's SFT-family trainer used: stock TRL SFTTrainer's fused head (with its
    entropy / top-1 logs) before LeanSFTTrainer, the model's own full-logit CE on CPU after it."""
    import subprocess

    if not commit:
        return "fused_logs"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["git", "-C", str(root), "merge-base", "--is-ancestor", LEAN_SFT_COMMIT, commit],
                         capture_output=True, timeout=10)
    return "full" if out.returncode == 0 else "fused_logs"


def request_for(rec: dict, config: dict):
    from bench.trace import TraceRequest

    h = json.loads(rec["hyperparams"])
    hp, cfg = h["hp"], h.get("cfg", {})
    gen = int(cfg.get("max_completion_length") or cfg.get("max_new_tokens") or 16)
    return TraceRequest(config=config, method=rec["method"], method_cfg=h.get("method_cfg", {}),
                        objective=rec["objective"], objective_cfg=cfg, seq_len=int(hp["max_length"]),
                        micro_batch=int(hp["batch_size"]), grad_ckpt=bool(hp.get("grad_ckpt", False)),
                        precision="fp32", optimizer="adamw", gen_len=gen, lm_head=sft_head(rec.get("git_commit")))


def first_batches(cfg: dict) -> int:
    """Batches the meter's two boundaries (bench/metrics.py) see: the first two steps' batches, but PPO
    runs several backward passes over its first rollout's mini-batches."""
    return 1 if cfg.get("rollout_batch") else 2


def recorded_batches(rec: dict) -> list[list] | None:
    """The meter's ``boundary_batches`` ([batch, seq, masked] per sampled boundary) from the record's extra."""
    try:
        return json.loads(rec.get("extra") or "{}").get("boundary_batches")
    except ValueError:
        return None


def trace_fed(rec: dict, req) -> tuple[str, int] | None:
    """Traced boundary bytes at what the run fed: step k traced at boundary k's recorded length and
    mask (the max over boundaries), else at the expected padded length of its first batches."""
    from dataclasses import replace

    from bench.seqlen import padded_seq
    from bench.trace import trace_peak
    from methods import objective

    fed = recorded_batches(rec)
    if fed:
        # a generating objective's forward fed prompt + completion; the trace adds gen_len itself
        gen = req.gen_len if objective(req.objective).card.memory.generates else 0
        traces, out = {}, 0
        for k, (_, t, masked) in enumerate(fed):
            key = (max(1, t - gen), bool(masked))
            if key not in traces:
                traces[key] = trace_peak(replace(req, seq_len=key[0], padded=key[1])).boundary_bytes
            out = max(out, traces[key][min(k, max(traces[key]))])
        return ",".join(str(t) for _, t, _ in fed), out
    if req.objective_cfg.get("packing"):
        return None
    seq = padded_seq(rec, req.objective, req.seq_len, req.micro_batch, first_batches(req.objective_cfg))
    if seq is None:
        return None
    return f"~{seq}", max(trace_peak(replace(req, seq_len=seq, padded=True)).boundary_bytes.values())


def check(db: Path, only: set[str] | None = None, progress=None) -> list[CheckRow]:
    from bench.trace import trace_peak

    rows, configs = [], {}
    recs = [r for r in records(db) if not only or f"{r['objective']}:{r['method']}" in only]
    for rec in recs:
        if rec["model"] not in configs:
            configs[rec["model"]] = model_config(rec["model"])
        req = request_for(rec, configs[rec["model"]])
        t = trace_peak(req)
        packed = bool(req.objective_cfg.get("packing"))
        row = CheckRow(rec["objective"], rec["method"], req.micro_batch, req.seq_len, packed,
                       int(rec["peak_tensor_bytes"]), max(t.boundary_bytes.values()), t.peak_bytes, t.seconds)
        fed = trace_fed(rec, req)
        if fed is not None:
            row.fed, row.traced_fed = fed
        rows.append(row)
        if progress:
            progress(rows[-1])
    return rows
