"""Published results as result records: someone else's measurements, with where each figure came from.

    tunebench db import reports/published/peft/method_comparison/MetaMathQA --db reports/published/peft-method-comparison/db
    python -m bench.published reports/published/peft/method_comparison/MetaMathQA    # prints the records, writes nothing

A published folder holds the raw result files exactly as their authors committed them and a
``source.json`` manifest: ``{repo, commit, license, license_file, url, format, files: {name: {path, blob}}}``
(``path`` inside the repository, ``blob`` its git blob sha, checked against the file before
anything is read, so a hand-edited or damaged copy is refused). ``format`` names the reader:
so far ``peft-method-comparison`` (huggingface/peft ``method_comparison/MetaMathQA/results``).

Each file becomes one record with ``origin="published"`` and ``source`` JSON ``{repo, commit,
path, blob, license, url, metric}`` (``metric``: what each imported column means in the source).
Figures are copied as stated; the one derived figure (tokens/s = the file's total training
tokens / its training time) says so in ``metric``. What the schema has no column for (average and
99th-percentile reserved memory, training time without evaluation, the experiment name) goes to
``extra``. Reading validates every file first: bad input raises UserError and nothing is written.
Run ids come from the file's name and blob, so importing the same folder twice adds nothing.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from common.errors import UserError

MANIFEST = "source.json"


class FileRef(BaseModel):
    path: str
    blob: str


class Manifest(BaseModel):
    repo: str
    commit: str
    license: str
    license_file: str | None = None   # where the licence text is kept next to the copied files
    url: str
    format: str
    files: dict[str, FileRef]


# --- the peft method_comparison format (method_comparison/MetaMathQA/utils.py log_results) --------

class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class PeftRunInfo(_Loose):
    created_at: dt.datetime
    total_time: float
    experiment_name: str
    train_config: dict
    peft_config: dict | None
    error_msg: str = ""


class PeftTrainInfo(_Loose):
    accelerator_memory_reserved_avg: int
    accelerator_memory_max: int
    accelerator_memory_reserved_99th: int
    train_time: float
    file_size: int
    num_trainable_params: int
    num_total_params: int
    status: str
    metrics: list[dict]


class PeftResult(_Loose):
    run_info: PeftRunInfo
    train_info: PeftTrainInfo
    meta_info: dict


# peft's type -> this project's parameterization, only where they are the same method; any other
# type keeps peft's name (lower case), e.g. P_TUNING is P-Tuning v1 (a prompt encoder), not our
# ``ptuning`` (P-Tuning v2 deep prompts), and stays "p_tuning".
PEFT_METHODS = {"ADALORA": "adalora", "BOFT": "boft", "HRA": "hra", "IA3": "ia3", "LN_TUNING": "ln_tuning",
                "LOHA": "loha", "LOKR": "lokr", "OFT": "oft", "PREFIX_TUNING": "prefix",
                "PROMPT_TUNING": "prompt", "VERA": "vera"}
PEFT_STATUS = {"success": "ok", "canceled": "cancelled", "cancelled": "cancelled", "failed": "error"}
PEFT_METRIC = {
    "metric_after": "test accuracy: share of the whole GSM8K test split whose parsed final answer equals the "
                    "reference, after max_steps of SFT on MetaMathQA (train_info.metrics[-1]['test accuracy'])",
    "peak_reserved_bytes": "train_info.accelerator_memory_max: torch max_memory_reserved at the end minus at the start",
    "avg_reserved_bytes (extra)": "train_info.accelerator_memory_reserved_avg: mean memory_reserved over training steps",
    "reserved_99th_bytes (extra)": "train_info.accelerator_memory_reserved_99th",
    "train_time_s (extra)": "train_info.train_time: training wall time without evaluation",
    "wall_time_s": "run_info.total_time: the whole run, loading and evaluation included",
    "tokens_per_s": "derived: train_info.metrics[-1]['train total tokens'] / train_info.train_time",
    "forgetting": "train_info.metrics[-1]['forgetting']: mean per-token loss on 100 Wikipedia (finewiki) "
                  "texts after minus before training",
    "train_loss": "train_info.metrics[-1]['train loss'] (mean over the last eval interval)",
    "adapter_bytes": "train_info.file_size: saved adapter file; for full fine-tuning an estimate "
                     "(parameters x dtype size)",
    "trainable_params / total_params": "train_info.num_trainable_params / num_total_params (adapter included)",
    "hardware": "meta_info.system_info.accelerator",
}


def _peft_method(peft_config: dict | None) -> str:
    if peft_config is None:
        return "full"  # no adapter config: peft's run.py performs full fine-tuning
    kind = str(peft_config.get("peft_type") or "unknown")
    if kind == "LORA":
        return "dora" if peft_config.get("use_dora") else "rslora" if peft_config.get("use_rslora") else "lora"
    return PEFT_METHODS.get(kind, kind.lower())


def _final(metrics: list[dict], key: str):
    """The last logged value of ``key`` (peft logs the test figures once, at the end)."""
    vals = [m[key] for m in metrics if key in m]
    return vals[-1] if vals else None


def peft_record(raw: bytes, name: str, man: Manifest) -> dict:
    """One peft method_comparison result file as a record (``source`` and ``origin`` included)."""
    try:
        res = PeftResult.model_validate_json(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "top level"
        raise UserError(f"{name}: not a peft method_comparison result ({where}: {err['msg']})") from None
    run, train = res.run_info, res.train_info
    tc, pc = run.train_config, run.peft_config
    method = _peft_method(pc)
    tokens, train_time = _final(train.metrics, "train total tokens"), train.train_time
    system = res.meta_info.get("system_info") or {}
    packages = {k.removesuffix("-version"): v for k, v in (res.meta_info.get("package_info") or {}).items()
                if k.endswith("-version")}
    ref = man.files[name]
    source = dict(repo=man.repo, commit=man.commit, path=ref.path, blob=ref.blob, license=man.license,
                  url=man.url, metric=PEFT_METRIC)
    extra = dict(experiment=run.experiment_name, peft_type=(pc or {}).get("peft_type"),
                 train_time_s=train_time, avg_reserved_bytes=train.accelerator_memory_reserved_avg,
                 reserved_99th_bytes=train.accelerator_memory_reserved_99th, train_total_tokens=tokens,
                 peft_commit=(res.meta_info.get("package_info") or {}).get("peft-commit-hash"))
    config = json.dumps({"train_config": tc, "peft_config": pc}, sort_keys=True, default=str)
    return dict(
        run_id=f"peft-{re.sub(r'[^A-Za-z0-9_.=-]', '_', name.removesuffix('.json'))}-{ref.blob[:10]}",
        config_hash=hashlib.sha256(config.encode()).hexdigest()[:16],
        matrix="peft-method-comparison/MetaMathQA", stack=f"sft:{method}", stage_index=0, stage=f"sft:{method}",
        objective="sft", method=method, model=tc.get("model_id"), task="metamathqa",
        hardware=system.get("accelerator"), device_name=system.get("accelerator"),
        packages=json.dumps(packages, sort_keys=True), seed=tc.get("seed"),
        status=PEFT_STATUS.get(train.status, "error"), error=run.error_msg or None,
        total_params=train.num_total_params, trainable_params=train.num_trainable_params,
        trainable_share=train.num_trainable_params / train.num_total_params if train.num_total_params else None,
        adapter_bytes=train.file_size, peak_reserved_bytes=train.accelerator_memory_max,
        tokens_per_s=tokens / train_time if tokens and train_time else None, wall_time_s=run.total_time,
        steps=_final(train.metrics, "step"), train_loss=_final(train.metrics, "train loss"),
        metric_name="gsm8k_test_accuracy", metric_after=_final(train.metrics, "test accuracy"),
        forgetting=_final(train.metrics, "forgetting"), hyperparams=config,
        extra=json.dumps(extra, sort_keys=True), created_at=run.created_at.astimezone(dt.timezone.utc),
        origin="published", source=json.dumps(source, sort_keys=True))


READERS: dict[str, Callable[[bytes, str, Manifest], dict]] = {"peft-method-comparison": peft_record}


def git_blob_sha(data: bytes) -> str:
    """The sha git gives a file's content (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise UserError(f"published folder {folder} {what} (give the folder holding {MANIFEST})")
    try:
        man = Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{folder} has no {MANIFEST} (the provenance manifest: repo, commit, license, files)") from None
    except ValidationError as e:
        err = e.errors()[0]
        raise UserError(f"{path}: bad manifest ({'.'.join(map(str, err['loc'])) or 'top level'}: {err['msg']})") from None
    if man.format not in READERS:
        raise UserError(f"{path}: unknown format {man.format!r} (accepted: {', '.join(sorted(READERS))})")
    return man


def published_records(folder: Path | str) -> list[dict]:
    """Every result file of a published folder as a record; UserError on the first bad one."""
    folder = Path(folder)
    man = read_manifest(folder)
    listed = {p.name: p for p in folder.rglob("*.json") if p.name != MANIFEST}
    unlisted = sorted(set(listed) - set(man.files))
    if unlisted:
        raise UserError(f"{listed[unlisted[0]]} is not listed in {folder / MANIFEST} (no provenance for it)")
    missing = sorted(set(man.files) - set(listed))
    if missing:
        raise UserError(f"{folder}: {missing[0]} is listed in {MANIFEST} but missing ({len(missing)} missing)")
    read = READERS[man.format]
    out = []
    for name in sorted(man.files):
        data = listed[name].read_bytes()
        if git_blob_sha(data) != man.files[name].blob:
            raise UserError(f"{listed[name]} differs from {man.repo}@{man.commit[:10]}:{man.files[name].path} "
                            f"(git blob {man.files[name].blob[:10]}): damaged or edited copy")
        out.append(read(data, name, man))
    return out


def import_published(folder: Path | str, db: Path | str) -> tuple[int, int]:
    """Write the folder's records into ``db``; returns (added, already present). All files are read and
    checked before the first record is written."""
    from bench.results import run_ids, write_records

    records = published_records(folder)
    have = run_ids(db) if Path(db).is_dir() else set()
    new = [r for r in records if r["run_id"] not in have]
    write_records(db, new)
    return len(new), len(records) - len(new)


if __name__ == "__main__":  # python -m bench.published FOLDER
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.published FOLDER   (a folder holding source.json)")
    for rec in published_records(sys.argv[1]):
        print(rec["run_id"], rec["method"], rec["status"], rec["metric_after"], rec["peak_reserved_bytes"])
