"""What a finished run left behind, found from its result record: the stage's base and its trained update.

    python -c "from bench.trained import find_run, artifacts; print(artifacts(find_run('RUN_ID')))"

A stage run writes ``<output_dir>/adapter`` (what trained, plus the tokenizer) and starts from the
stack's model (stage 0) or the previous stage's merged folder (bench/train.py ``StackRun.outputs``
says which). ``artifacts(record)`` finds both again; ``load_base`` / ``load_tuned`` rebuild the two
models in fp32 that ``tunebench chat`` compares and ``tunebench export`` merges. A quantized stage
(qlora, lora8bit) is restored onto the full-precision base, the usual merge path (bench/train.py ``_merge``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import UserError


@dataclass(frozen=True)
class Artifacts:
    """One stage run's record plus the folders it trained from and into."""

    record: dict
    base_dir: Path      # the folder the stage started from
    adapter_dir: Path   # what trained (an adapter, or a whole model for full/freeze-style methods)
    par: Any            # methods.registry.Parameterization
    obj: Any            # methods.registry.Objective
    pcfg: Any           # the parameterization's settings as trained

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def mergeable(self) -> bool:
        return self.par.card.mergeable

    @property
    def chat(self) -> bool:
        """Prompts go through the chat template (an instruction-style objective), else plain text."""
        return self.obj.data != "text"


def find_run(run_id: str, db: Path | str | None = None) -> dict:
    """The result record with ``run_id``; UserError for a missing database or an unknown id."""
    import polars as pl

    from bench.home import default_db
    from bench.results import read_runs, warn_damaged

    db = Path(db) if db else default_db()
    if not db.is_dir():
        raise UserError(f"no results database at {db} (pass --db DIR)")
    frame = read_runs(db, on_damaged=warn_damaged).filter(pl.col("run_id") == run_id)
    if frame.is_empty():
        raise UserError(f"unknown run id {run_id!r} in {db} (see tunebench db show --db {db})")
    return frame.row(0, named=True)


def stage_start(record: dict) -> Path:
    """The folder this stage started from, by replaying the stack's outputs up to it."""
    from bench.models import model_path
    from bench.train import StackRun
    from common.stack import StackSpec

    out = Path(record["output_dir"]).parent
    spec_file = out / "stack.json"
    if not spec_file.is_file():
        raise UserError(f"run {record['run_id']}: {spec_file} is missing, so its base is unknown")
    spec = StackSpec.model_validate_json(spec_file.read_text())
    run = StackRun(spec, out, db=None, quiet=True)
    current = model_path(spec.model)
    for i, st in enumerate(spec.stages[: record["stage_index"] or 0]):
        next_dir, _ = run.outputs(i, st)
        current = next_dir or current
    return current


def artifacts(record: dict) -> Artifacts:
    """Check the run finished and saved its stage; refuse with one line otherwise."""
    from methods import objective, parameterization

    rid = record["run_id"]
    if record.get("origin") == "published":
        raise UserError(f"run {rid} is a published figure, not a run of this machine; nothing was saved")
    if record["status"] != "ok":
        raise UserError(f"run {rid} did not finish (status {record['status']}); nothing to load")
    if not record.get("output_dir"):
        raise UserError(f"run {rid} has no saved output (its record names no output_dir)")
    adapter = Path(record["output_dir"]) / "adapter"
    if not adapter.is_dir() or not any(adapter.iterdir()):
        raise UserError(f"run {rid} has no saved output at {adapter} (moved or deleted?)")
    obj, par = objective(record["objective"]), parameterization(record["method"])
    if obj.head != "causal_lm":
        raise UserError(f"run {rid} trained a {obj.name} scoring model, not a generator; "
                        "nothing to chat with or export")
    hp = json.loads(record["hyperparams"] or "{}")
    base = stage_start(record)
    if not (base / "config.json").exists():
        raise UserError(f"run {rid} started from {base}, which is gone; the trained update needs it")
    return Artifacts(record=record, base_dir=base, adapter_dir=adapter, par=par, obj=obj,
                     pcfg=par.make_config(hp.get("method_cfg") or {}))


def load_tokenizer(a: Artifacts):
    from bench.train import load_tokenizer as load

    return load(a.adapter_dir if (a.adapter_dir / "tokenizer_config.json").exists() else a.base_dir)


def load_base(a: Artifacts):
    """The stage's starting model in fp32, in eval mode."""
    from bench.train import load_model

    return load_model(a.base_dir, "causal_lm", {}).eval()


def load_tuned(a: Artifacts):
    """The stage's starting model with its trained update restored (not merged), in eval mode."""
    return a.par.load(load_base(a), str(a.adapter_dir), a.pcfg).eval()


def merged(a: Artifacts):
    """A plain transformers model with the update folded in (mergeable methods only)."""
    if not a.mergeable:
        raise UserError(f"{a.par.name} cannot merge into the base")
    return a.par.merge(load_tuned(a)).eval()
