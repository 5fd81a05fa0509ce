"""The "published" section: results others measured (``tunebench db import``), shown as stated.

    tunebench db import reports/published/peft/method_comparison/MetaMathQA --db /tmp/pub
    tunebench report --db reports/reference/cpu-amd-epyc-2c-smollm2-135m/db --db /tmp/pub --out /tmp/r

Records with ``origin = "published"`` are grouped by source (repository, commit, result folder),
hardware and model, and never pooled with this project's measurements or with each other. Each
record is one row (the sources publish one run per experiment, so there is no interval); the
title names the source, its licence and what each figure means comes from the record's ``source``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl

from reports import fmt
from reports.table import lower_is_better

COLUMNS = ("method", "experiment", "trainable params (% of model)", "quality", "peak memory (reserved)",
           "avg memory (reserved)", "train time", "tokens/s", "forgetting", "status", "file")


@dataclass
class Source:
    repo: str
    commit: str
    folder: str
    license: str
    url: str | None
    hardware: str
    model: str
    frame: pl.DataFrame

    @property
    def title(self) -> str:
        return f"{self.repo} @ {self.commit[:10]}: {self.folder} — {self.model} on {self.hardware}"

    @property
    def facts(self) -> str:
        metric = self.metric_note()
        return (f"{self.frame.height} records imported from {self.repo} at commit {self.commit} "
                f"({self.folder}; licence {self.license}){f', {self.url}' if self.url else ''}. Published figures, one "
                f"run per experiment as stated by the source (no interval). Quality is {self.metric_name}: {metric}. "
                "Not pooled with our runs.")

    @property
    def metric_name(self) -> str:
        names = sorted({n for n in self.frame["metric_name"].to_list() if n})
        return " / ".join(names) or "not stated"

    def metric_note(self) -> str:
        for text in self.frame["source"].to_list():
            note = (json.loads(text).get("metric") or {})
            if isinstance(note, dict) and note.get("metric_after"):
                return note["metric_after"]
            if isinstance(note, str):
                return note
        return "as named in the quality column"


def sources(frame: pl.DataFrame) -> list[Source]:
    """One Source per repository × commit × result folder × hardware × model, in name order."""
    if frame.height == 0:
        return []
    meta = [json.loads(s or "{}") for s in frame["source"].to_list()]
    keyed = frame.with_columns(
        pl.Series("_repo", [m.get("repo", "?") for m in meta]), pl.Series("_commit", [m.get("commit", "?") for m in meta]),
        pl.Series("_folder", [m.get("path", "?").rsplit("/", 1)[0] for m in meta]),
        pl.Series("_license", [m.get("license", "licence not stated") for m in meta]),
        pl.Series("_url", [m.get("url") for m in meta], dtype=pl.String),
        pl.col("hardware").fill_null("hardware not stated"), pl.col("model").fill_null("model not stated"))
    out = []
    keys = ["_repo", "_commit", "_folder", "hardware", "model"]
    for (repo, commit, folder, hw, model), sub in sorted(keyed.group_by(keys), key=lambda kv: kv[0]):
        out.append(Source(repo, commit, folder, sub["_license"][0], sub["_url"][0], hw, model,
                          sub.drop("_repo", "_commit", "_folder", "_license", "_url")))
    return out


def _label(method: str | None) -> str:
    from methods import PARAMETERIZATIONS

    par = PARAMETERIZATIONS.get(method or "")
    return par.card.label if par else (method or fmt.MISSING)


def rows(src: Source) -> list[list[str]]:
    """One row per record, best quality first (records without a quality figure last)."""
    def key(r: dict):
        q = r["metric_after"]
        return (q is None, 0 if q is None else (q if lower_is_better(r["metric_name"]) else -q), r["run_id"])

    out = []
    for r in sorted(src.frame.iter_rows(named=True), key=key):
        extra = json.loads(r["extra"] or "{}")
        path = json.loads(r["source"] or "{}").get("path", "")
        share = f" ({fmt.share(r['trainable_share'])})" if r["trainable_share"] is not None else ""
        quality = fmt.metric(r["metric_after"])
        out.append([_label(r["method"]), extra.get("experiment") or fmt.MISSING,
                    (fmt.count(r["trainable_params"]) + share) if r["trainable_params"] is not None else fmt.MISSING,
                    quality, fmt.nbytes(r["peak_reserved_bytes"]), fmt.nbytes(extra.get("avg_reserved_bytes")),
                    fmt.seconds(extra.get("train_time_s")), fmt.rate(r["tokens_per_s"]), fmt.signed(r["forgetting"]),
                    r["status"] if r["status"] == "ok" else f"{r['status']}: {(r['error'] or '')[:80]}",
                    path.rsplit("/", 1)[-1]])
    return out
