"""The tracer against measured runs: traced vs the harness's ``peak_tensor_bytes``.

    tunebench estimate trace-check --db reports/reference/cpu-amd-epyc-2c-smollm2-135m/db

For every ok record of a results DB, the same configuration (model folder's config.json, method
and its settings, objective and its settings, batch size, max_length, checkpointing from the
record's ``hyperparams``) is traced in fp32 on fake tensors (bench/trace.py). The measured figure
(bench/metrics.py) is live tensor bytes at the forward->backward boundary of the first two steps,
so the traced figure compared with it is the live bytes at the same boundary (``Trace.boundary_bytes``),
the larger of the two steps; the traced all-op peak is printed beside it.

Runs feed real data: unpacked batches are padded to their longest sequence, which may be shorter
than max_length, so the trace (at max_length) is an upper bound there. The check therefore also
traces at the mean sequence length the run really fed (its tokens seen per step over its sequences,
``data_seq``); padding to the batch's longest sequence sits between the two.
Packed runs (cpt's ``packing``) fill every sequence to max_length and compare like for like; the
``packed`` column says which.
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
    data_seq: int | None = None  # mean tokens per sequence the run really fed (tokens seen / sequences)
    traced_data: int | None = None  # traced boundary bytes at data_seq

    @property
    def error(self) -> float:
        return self.traced_boundary / self.measured - 1

    @property
    def data_error(self) -> float | None:
        return None if self.traced_data is None else self.traced_data / self.measured - 1


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


def data_seq(rec: dict, req) -> int | None:
    """Mean tokens per sequence the run fed: tokens/s x s/step over the sequences of a step (pairs
    count twice; a generating objective's completion tokens are added by the trace itself)."""
    from methods import objective

    tps, sps = rec.get("tokens_per_s"), rec.get("step_time_s")
    if not tps or not sps:
        return None
    card = objective(req.objective).card
    seqs = req.micro_batch * card.memory.sequences
    seq = tps * sps / seqs - (req.gen_len if card.memory.generates else 0)
    return max(8, min(req.seq_len, int(round(seq))))


def check(db: Path, only: set[str] | None = None, progress=None, with_data: bool = True) -> list[CheckRow]:
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
        seq = data_seq(rec, req)
        if with_data and seq is not None and seq != req.seq_len:
            from dataclasses import replace

            td = trace_peak(replace(req, seq_len=seq))
            row.data_seq, row.traced_data = seq, max(td.boundary_bytes.values())
        elif seq is not None:
            row.data_seq, row.traced_data = seq, row.traced_boundary
        rows.append(row)
        if progress:
            progress(rows[-1])
    return rows
