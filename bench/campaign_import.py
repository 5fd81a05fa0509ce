"""GPU-campaign JSON lines (bench/campaign.py) -> ordinary result records, one immutable parquet per run.

    tunebench db import-campaign campaign.jsonl                 # -> reports/reference/<gpu>-campaign/db
    tunebench db import-campaign campaign.jsonl --db /tmp/db

Every line is validated (pydantic, strict types) before anything is written: one bad line refuses
the whole file. Runs with status ok/oom/error/timeout become records (bench/schema.py); planned runs
the script skipped (qlora without bitsandbytes, prefix with checkpointing) and the header, quality
and summary lines are counted, not stored. A record's run id is a hash of its line, so importing
the same file twice adds nothing, while a new campaign (new campaign id) adds new records. The
hyper-parameters use the training records' names (``hp.max_length``, ``hp.batch_size``,
``hp.grad_ckpt``, ``hp.precision``) so the estimator's calibration reads them like any other run.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bench.results import run_ids, write_records
from bench.schema import new_record
from common.errors import UserError

FORMAT = "tunebench-campaign/1"
REFERENCE = Path(__file__).resolve().parents[1] / "reports" / "reference"
MATRIX = "gpu-campaign"
TASK = "random-tokens"
RECORDED = ("ok", "oom", "error", "timeout")
MAX_BYTES = 64 << 20  # a full campaign writes ~0.2 MB


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    format: Literal[FORMAT]
    campaign_id: str = Field(min_length=1)


class Fingerprint(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    hardware: str = Field(min_length=1)
    device_name: str
    device_count: int = Field(ge=1)
    device_memory_bytes: int = Field(ge=0)
    driver: str | None
    cuda: str | None
    packages: dict[str, str | None]
    python: str
    git_commit: str | None
    script_sha256: str
    visible_devices: int | None = None
    capability: str | None = None
    multiprocessors: int | None = None
    cudnn: int | None = None


class Header(_Line):
    kind: Literal["campaign"]
    started_at: dt.datetime
    dry: bool
    deadline_s: float
    runs_planned: int
    fingerprint: Fingerprint
    peak_bf16_tflops: float | None
    gpu_catalog_key: str | None


class Run(_Line):
    kind: Literal["run"]
    index: int = Field(ge=0)
    key: str
    priority: Literal["a"]
    model: str = Field(min_length=1)
    method: str = Field(min_length=1)
    objective: str = Field(min_length=1)
    seq_len: int = Field(ge=1)
    micro_batch: int = Field(ge=1)
    grad_ckpt: bool
    precision: str
    steps: int = Field(ge=1)
    warmup_steps: int = Field(ge=0)
    learning_rate: float
    seed: int
    method_cfg: dict
    started_at: dt.datetime
    fingerprint: Fingerprint
    status: Literal["ok", "oom", "error", "timeout", "skipped"]
    error: str | None
    build_s: float | None = None
    wall_time_s: float | None = None
    total_params: int | None = None
    trainable_params: int | None = None
    trainable_tensors_without_grad: int | None = None
    mfu_params: int | None = None
    step_times_s: list[float] | None = None
    losses: list[float] | None = None
    step_time_s: float | None = None
    tokens_per_s: float | None = None
    mfu: float | None = None
    mfu_definition: str | None = None
    peak_bf16_tflops: float | None = None
    baseline_allocated_bytes: int | None = None
    baseline_reserved_bytes: int | None = None
    peak_allocated_bytes: int | None = None
    peak_reserved_bytes: int | None = None
    nvml_baseline_bytes: int | None = None
    nvml_used_bytes: int | None = None
    leftover_allocated_bytes: int | None = None

    def check(self) -> None:
        if self.status == "ok" and None in (self.step_time_s, self.tokens_per_s, self.trainable_params,
                                            self.total_params, self.wall_time_s):
            raise ValueError("status ok without step_time_s, tokens_per_s, trainable/total params or wall time")


class Quality(_Line):
    kind: Literal["quality"]
    priority: Literal["b"]
    status: Literal["skipped"]
    reason: str


class Summary(_Line):
    kind: Literal["summary"]
    finished_at: dt.datetime
    aborted: str | None
    wall_s: float
    counts: dict[str, int]
    not_started: list[str]


LINE = TypeAdapter(Annotated[Union[Header, Run, Quality, Summary], Field(discriminator="kind")])


def read_lines(path: Path) -> tuple[list[tuple[Run, str]], dict[str, Header], int]:
    """(run lines with their canonical text, headers by campaign id, other lines); UserError on the first bad line."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UserError(f"{path} is {path.stat().st_size / 2**20:.0f} MiB; a campaign file is well under "
                            f"{MAX_BYTES >> 20} MiB (is it the right file?)")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read campaign file {path}: {getattr(e, 'strerror', None) or e}") from None
    runs, headers, other = [], {}, 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            line = LINE.validate_json(raw)
            if isinstance(line, Run):
                line.check()
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"][1:]) or "line"  # loc[0] is the kind
            raise UserError(f"{path} line {n}: {where}: {err['msg']} ({e.error_count()} problem(s)); "
                            "nothing imported") from None
        except ValueError as e:  # not JSON, or a run line that contradicts itself
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{path} line {n}: not a campaign line ({detail[:200]}); nothing imported") from None
        if isinstance(line, Header):
            headers[line.campaign_id] = line
        elif isinstance(line, Run):
            runs.append((line, json.dumps(obj, sort_keys=True, separators=(",", ":"))))
        else:
            other += 1
    missing = sorted({r.campaign_id for r, _ in runs} - set(headers))
    if missing:
        raise UserError(f"{path}: runs of campaign {missing[0]} have no header line (kind campaign); nothing imported")
    if not runs:
        raise UserError(f"{path}: no run lines (is it a campaign.jsonl from bench/campaign.py?)")
    return runs, headers, other


def hardware_slug(hardware: str) -> str:
    """``NVIDIA H200`` -> ``h200``; ``cpu-amd-epyc-2c`` stays."""
    return re.sub(r"[^a-z0-9]+", "-", hardware.lower()).strip("-").removeprefix("nvidia-")


def default_db(runs: list[Run], headers: dict[str, Header]) -> Path:
    hardware = sorted({r.fingerprint.hardware for r in runs})
    if len(hardware) > 1:
        raise UserError(f"the file mixes hardware ({', '.join(hardware)}); pass --db")
    if any(headers[r.campaign_id].dry for r in runs):
        raise UserError("this is a dry-run campaign (tiny shapes on a CPU); pass --db to import it anyway, "
                        "never into reports/reference")
    return REFERENCE / f"{hardware_slug(hardware[0])}-campaign" / "db"


def to_record(run: Run, line: str, dry: bool) -> dict:
    fp = run.fingerprint
    stage = f"{run.objective}:{run.method}"
    config = {"model": run.model, "stage": stage, "seq_len": run.seq_len, "micro_batch": run.micro_batch,
              "grad_ckpt": run.grad_ckpt, "precision": run.precision, "steps": run.steps,
              "warmup_steps": run.warmup_steps, "method_cfg": run.method_cfg, "task": TASK}
    hp = {"max_length": run.seq_len, "batch_size": run.micro_batch, "grad_ckpt": run.grad_ckpt,
          "precision": run.precision, "max_steps": run.warmup_steps + run.steps, "warmup_steps": run.warmup_steps,
          "learning_rate": run.learning_rate, "seed": run.seed, "optimizer": "adamw_torch_fused"}
    extra = {k: getattr(run, k) for k in ("mfu", "mfu_params", "mfu_definition", "peak_bf16_tflops", "step_times_s",
                                           "losses", "build_s", "baseline_allocated_bytes", "baseline_reserved_bytes",
                                           "nvml_baseline_bytes", "leftover_allocated_bytes",
                                           "trainable_tensors_without_grad")}
    extra.update(campaign_id=run.campaign_id, index=run.index, timed_steps=run.steps, python=fp.python,
                 script_sha256=fp.script_sha256, visible_devices=fp.visible_devices, capability=fp.capability,
                 multiprocessors=fp.multiprocessors, cudnn=fp.cudnn)
    share = run.trainable_params / run.total_params if run.trainable_params and run.total_params else None
    return new_record(
        run_id="gc-" + hashlib.sha256(line.encode()).hexdigest()[:24],
        config_hash=hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        matrix=MATRIX + ("-dry" if dry else ""), stack=stage, stage_index=0, stage=stage, objective=run.objective,
        method=run.method, model=run.model, model_params=run.total_params, task=TASK,
        hardware=fp.hardware, device_name=fp.device_name, device_count=fp.device_count,
        device_memory_bytes=fp.device_memory_bytes, driver=fp.driver, cuda=fp.cuda,
        packages=json.dumps(fp.packages, sort_keys=True), git_commit=fp.git_commit, seed=run.seed,
        status=run.status, error=run.error, total_params=run.total_params, trainable_params=run.trainable_params,
        trainable_share=share, peak_reserved_bytes=run.peak_reserved_bytes,
        peak_allocated_bytes=run.peak_allocated_bytes, nvml_used_bytes=run.nvml_used_bytes,
        tokens_per_s=run.tokens_per_s,
        samples_per_s=run.micro_batch / run.step_time_s if run.step_time_s else None,
        step_time_s=run.step_time_s, wall_time_s=run.wall_time_s,
        steps=run.warmup_steps + run.steps if run.step_time_s else None,
        train_loss=run.losses[-1] if run.losses else None,
        hyperparams=json.dumps({"hp": hp, "method_cfg": run.method_cfg}, sort_keys=True),
        extra=json.dumps(extra, sort_keys=True), created_at=run.started_at.astimezone(dt.timezone.utc),
    )


def import_campaign(path: Path, db: Path | None = None) -> dict:
    """Validate every line of ``path``, then write the new records; returns what happened (for the CLI)."""
    runs, headers, _ = read_lines(path)
    db = Path(db) if db is not None else default_db([r for r, _ in runs], headers)
    records = [to_record(r, line, headers[r.campaign_id].dry) for r, line in runs if r.status in RECORDED]
    skipped: dict[str, int] = {}
    for r, _ in runs:
        if r.status == "skipped":
            skipped[r.error or "skipped"] = skipped.get(r.error or "skipped", 0) + 1
    have = run_ids(db) if db.is_dir() else set()
    new = [rec for rec in records if rec["run_id"] not in have]
    written = write_records(db, new) if new else 0
    statuses: dict[str, int] = {}
    for rec in new:
        statuses[rec["status"]] = statuses.get(rec["status"], 0) + 1
    return {"db": db, "written": written, "present": len(records) - len(new), "statuses": statuses, "skipped": skipped}
