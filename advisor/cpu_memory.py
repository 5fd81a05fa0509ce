"""Peak host RSS of a ``tunebench train`` run on a CPU: runtime baseline + tensors + the allocator.

    tunebench estimate cpu-check --db reports/reference/cpu-amd-epyc-2c-smollm2-135m/db
    tunebench estimate cpu-check --db DIR --db DIR2 --fit     # refit advisor/cpu_memory.json on them
    python -m advisor.cpu_memory                               # measure the runtime baseline here

On a CPU the estimate (advisor/estimator.py, ``--gpu cpu``) is the run's peak RSS, three terms:

- the **runtime baseline**: the process before any tensor exists -- Python with torch,
  transformers, peft, trl, datasets, polars and bitsandbytes imported (a run forks from
  bench/zygote.py, which imported them; the shared pages count in the child's RSS), TRL's trainer
  classes, the tokenizer and the task's records. Measured, not fitted: ``measure_runtime()``.
- the **tensors** of the estimator's breakdown (fp32 on CPU). Weights, adapters, optimizer states
  and frozen extra models stay allocated through the step; gradients, activations, logits and
  their temporaries come and go every step.
- the **allocator term**: torch's CPU allocator is glibc malloc. Blocks above the dynamic mmap
  threshold (at most 32 MiB) go back to the kernel when freed; smaller ones -- a step's many
  activations -- come from heap arenas that keep freed chunks resident. Measured on a SmolLM2
  LoRA step (4x128 tokens): at the RSS peak malloc held 1081 MiB in use and 832 MiB freed but
  resident (mallinfo2). So RSS grows with the *transient* bytes, not the persistent ones:
  ``allocator_overhead = allocator_factor x transient``, the factor fitted on this project's own
  CPU records (``fitted_on`` in advisor/cpu_memory.json lists them).

Runs pad each batch to its longest sequence, usually well below max_length, so ``cpu-check``
scores the estimate at max_length (what a user states) and at the padded length of the run's own
batches (bench/seqlen.py: its task's train records tokenized the way its objective builds them);
the factor is fitted at the padded length, where the tensor terms are the ones that ran.
The evaluation phases (task loss and the general-text probe, 8 sequences per forward,
no autograd) stay below the training peak in every reference run, so they are not a term.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import statistics
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bench.seqlen import padded_seq
from common.errors import UserError

GIB = 2**30
CONSTANTS = Path(__file__).with_suffix(".json")
# Breakdown entries that stay allocated through the step (one large allocation each); the rest is transient.
PERSISTENT = frozenset({"weights", "adapter_weights", "optimizer_states", "reference_model", "teacher_model",
                        "reward_model", "value_model"})
OWN = ("allocator_overhead", "runtime")  # the terms this module sets (GPU values are replaced on CPU)
FACTORS = [round(0.01 * k, 2) for k in range(301)]  # allocator_factor candidates, 0 .. 3


@lru_cache(maxsize=None)
def constants() -> dict:
    """The measured baseline and the fitted allocator factor (advisor/cpu_memory.json); before the
    first fit, the estimator's flat ``cpu_runtime_gib`` and no allocator term."""
    if not CONSTANTS.exists():
        from advisor.estimator import constants as estimator_constants

        return {"runtime_gib": estimator_constants()["cpu_runtime_gib"], "allocator_factor": 0.0}
    doc = json.loads(CONSTANTS.read_text())
    return {"runtime_gib": doc["runtime_gib"], "allocator_factor": doc["allocator_factor"]}


def overheads(breakdown: dict[str, float], consts: dict | None = None) -> dict[str, float]:
    """What a CPU run's RSS holds beyond the breakdown's tensors: {"allocator_overhead", "runtime"} in bytes."""
    c = consts or constants()
    transient = sum(v for k, v in breakdown.items() if k not in PERSISTENT and k not in OWN)
    return {"allocator_overhead": c["allocator_factor"] * transient, "runtime": c["runtime_gib"] * GIB}


def measure_runtime(model: str = "smollm2-135m", task: str = "wiki-topics") -> dict:
    """RSS of this process after the run's imports, trainer classes, tokenizer and task records
    (call in a fresh process: what was imported or allocated before counts too)."""
    import psutil

    from bench.zygote import preload

    preload()
    import trl  # the trainer classes bench/train.py's objectives instantiate (imported lazily by trl)
    from trl import DPOTrainer, GRPOTrainer, KTOTrainer, RewardTrainer, SFTTrainer  # noqa: F401

    from bench.models import model_path
    from bench.train import StackRun, load_tokenizer, quiet_libraries
    from common.stack import parse_stack

    quiet_libraries()
    proc = psutil.Process()
    imports = proc.memory_info().rss
    StackRun(parse_stack("sft:lora", model, task), Path("."), db=None, quiet=True).prepare_inputs()
    load_tokenizer(model_path(model))
    rss = proc.memory_info().rss
    return {"rss_bytes": rss, "imports_bytes": imports, "model": model, "task": task,
            "trl": trl.__version__, "measured_at": _now()}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Row:
    """One ok CPU record: its estimate at max_length and at the length its batches were padded to."""

    run_id: str
    stage: str
    task: str
    batch: int
    seq: int
    padded: int | None           # padded_seq(): the expected longest sequence of a batch
    measured: int                # peak_rss_bytes
    tensors: dict                # estimator breakdown at max_length (no CPU terms), bytes
    tensors_padded: dict | None  # the same at the padded length

    def predict(self, consts: dict | None = None, padded: bool = False) -> float | None:
        b = self.tensors_padded if padded else self.tensors
        return None if b is None else sum(b.values()) + sum(overheads(b, consts).values())

    def error(self, consts: dict | None = None, padded: bool = False) -> float | None:
        p = self.predict(consts, padded)
        return None if p is None else p / self.measured - 1


def request_for(rec: dict):
    """The estimator's Request for a CPU record: its model, method and settings, batch and max_length,
    fp32 on --gpu cpu, the LM head its SFT trainer used, its rollouts' length and count."""
    from advisor.calibration import request_from_run
    from advisor.catalogs import gpu
    from bench.trace_check import sft_head

    req = request_from_run(rec)
    if req is None:
        return None
    cfg = json.loads(rec.get("hyperparams") or "{}").get("cfg") or {}
    gen = cfg.get("max_completion_length") or cfg.get("max_new_tokens")
    return dataclasses.replace(
        req, gpu=gpu("cpu"), precision="fp32", num_gpus=1,
        lm_head="full" if sft_head(rec.get("git_commit")) == "full" else "fused",
        gen_len=int(gen) if gen else req.gen_len, generations=int(cfg.get("num_generations") or req.generations))


def _tensors(req) -> dict:
    from advisor.estimator import estimate

    return {k: v for k, v in estimate(req).breakdown.items() if k not in OWN}


def rows(dbs: list[Path]) -> list[Row]:
    """Every ok record with a measured peak RSS in the DBs (read only: no index is written)."""
    import polars as pl

    from bench.results import read_runs

    out = []
    for db in dbs:
        if not Path(db).is_dir():
            raise UserError(f"--db {db}: not a directory")
        df = read_runs(db, index=False)
        if df.is_empty():
            raise UserError(f"--db {db}: no result records")
        df = df.filter((pl.col("status") == "ok") & pl.col("peak_rss_bytes").is_not_null()
                       & pl.col("hardware").str.starts_with("cpu"))
        for rec in df.sort("stage", "task", "run_id").iter_rows(named=True):
            req = request_for(rec)
            if req is None:
                continue
            pad = padded_seq(rec, req.objective, req.seq_len, req.micro_batch)
            out.append(Row(rec["run_id"], rec["stage"], rec["task"], req.micro_batch, req.seq_len, pad,
                           int(rec["peak_rss_bytes"]), _tensors(req),
                           _tensors(dataclasses.replace(req, seq_len=pad)) if pad else None))
    if not out:
        raise UserError(f"no ok CPU records with a peak RSS in {', '.join(map(str, dbs))}")
    return out


def stats(errors: list[float]) -> dict:
    """median and p90 of |error| (nearest rank), and the count."""
    e = sorted(abs(x) for x in errors)
    if not e:
        return {"n": 0, "median": None, "p90": None}
    return {"n": len(e), "median": statistics.median(e), "p90": e[math.ceil(0.9 * len(e)) - 1]}


def fit(rs: list[Row], runtime_gib: float) -> float:
    """The allocator factor with the lowest median |error| at the runs' padded length (ties: the smaller)."""
    fitted = [r for r in rs if r.tensors_padded is not None]
    if not fitted:
        raise UserError("no record's task records are prepared here to tell its padded length; cannot fit")

    def median_error(f: float) -> float:
        c = {"runtime_gib": runtime_gib, "allocator_factor": f}
        return stats([r.error(c, padded=True) for r in fitted])["median"]

    return min(FACTORS, key=lambda f: (median_error(f), f))


def errors(rs: list[Row], consts: dict | None = None) -> dict:
    """median / p90 |error| of the estimate at max_length and at the runs' padded length."""
    return {"max_length": stats([r.error(consts) for r in rs]),
            "padded_length": stats([r.error(consts, padded=True) for r in rs if r.tensors_padded is not None])}


def write(rs: list[Row], dbs: list[Path], runtime: dict, out: Path = CONSTANTS) -> dict:
    """Fit the factor on ``rs`` with the measured ``runtime`` and write the constants file."""
    before = {**constants(), **errors(rs, constants())}
    runtime_gib = round(runtime["rss_bytes"] / GIB, 3)
    factor = fit(rs, runtime_gib)
    c = {"runtime_gib": runtime_gib, "allocator_factor": factor}
    doc = {
        **c,
        "runtime": {**runtime, "how": "python -m advisor.cpu_memory: RSS of a fresh process after bench/zygote.py's "
                    "imports, TRL's trainer classes, the task's records and the tokenizer (no tensor alive)"},
        "fitted_on": {"what": "allocator_factor: lowest median |error| of the estimate at each run's padded "
                              "length (padded_seq: its task's train records, tokenized) against its peak_rss_bytes",
                      "dbs": [str(d) for d in dbs], "run_ids": [r.run_id for r in rs if r.tensors_padded is not None]},
        "error": {"before": before, "after": errors(rs, c)},
        "fitted_at": _now(),
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    constants.cache_clear()
    return doc


if __name__ == "__main__":  # python -m advisor.cpu_memory [MODEL [TASK]]
    import sys

    print(json.dumps(measure_runtime(*sys.argv[1:3])))  # one line: the last line of stdout
