"""The comparison table: result records -> one line per (row, parameterization, task) per group.

    tunebench report --db DIR --out DIR

Rows come from ``reports/rows.yaml`` (the seeds' sections and order, mapped to objective and
parameterization), labelled from the method cards; every registered parameterization that no row
names gets a row in the section marked ``others``. Records are grouped by hardware × model and
never mixed across groups.
Only ``ok`` records give figures; a line without one carries the reason (not run, oom, the
error text). Figures are the mean over seeds with a 95% interval (``reports.stats``); nothing is
filled in. Where one stage ran on one task at several learning rates (its card's default and a
``bench tune`` value), each learning rate is its own line ("@ lr 0.003"): never pooled. Groups are
classed CPU or GPU (never pooled), and groups of the tiny random-init models (``bench.models.TINY``)
are smoke checks: they prove a method runs, they rank nothing.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import polars as pl
import yaml

from bench.metrics import measured_quietly
from common.errors import UserError
from common.stack import parse_stack_string
from reports.stats import Stat

ROWS_FILE = Path(__file__).with_name("rows.yaml")
# Figures summarised per line; "memory" is chosen per line from the columns below.
FIGURES = ("trainable_params", "trainable_share", "tokens_per_s", "wall_time_s",
           "metric_before", "metric_after", "forgetting")
MEMORY_SOURCES = (("peak_reserved_bytes", "GPU reserved"), ("peak_rss_bytes", "host RSS"))
# Speed figures come only from runs measured on a quiet machine: a run whose record says other
# processes took more than this share of the CPU while it ran (extra.background_cpu_share,
# bench/metrics.py) keeps its memory and quality, not its speed. Records without it count.
SPEED = ("tokens_per_s", "wall_time_s")
# Metric names for which a smaller value is better; every other metric is higher-is-better.
LOWER_BETTER = ("loss", "perplexity", "ppl", "bits_per_byte", "bpb", "error")


def lower_is_better(metric_name: str | None) -> bool:
    name = (metric_name or "").lower()
    return any(word in name for word in LOWER_BETTER)


@dataclass(frozen=True)
class Row:
    label: str
    section: str
    objective: str
    methods: tuple[str, ...] | None  # None = any measured parameterization
    after: tuple[str, ...] = ()


@dataclass
class Line:
    """One line of the table: a row's measurements for one parameterization on one task."""

    row: Row
    method: str | None
    task: str | None
    runs: int = 0
    ok: int = 0
    seeds: list = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)
    reason: str | None = None          # why there are no figures (no ok run)
    figures: dict[str, Stat | None] = field(default_factory=dict)
    memory: Stat | None = None
    memory_source: str | None = None
    metric_name: str | None = None
    busy: int = 0                      # ok runs whose speed was left out (measured beside other work)
    lr: float | None = None            # set when the same stage and task ran at several learning rates

    @property
    def at_lr(self) -> str:
        return "" if self.lr is None else f" @ lr {self.lr:.2g}"

    @property
    def label(self) -> str:
        if self.row.methods is not None and len(self.row.methods) == 1 and self.row.objective == "sft":
            return self.row.label + self.at_lr
        return f"{self.row.label} ({self.method or 'any'}){self.at_lr}"

    @property
    def stage(self) -> str:
        return f"{self.row.objective}:{self.method or '*'}{self.at_lr}"

    def stat(self, name: str) -> Stat | None:
        """A figure over seeds (``memory`` included), or None when not measured."""
        return self.memory if name == "memory" else self.figures.get(name)

    def get(self, name: str) -> float | None:
        """The mean of a figure (``memory`` included), or None when not measured."""
        stat = self.stat(name)
        return stat.mean if stat else None


@dataclass
class Group:
    hardware: str
    model: str
    frame: pl.DataFrame
    lines: list[Line]

    @property
    def model_params(self) -> int | None:
        vals = self.frame["model_params"].drop_nulls()
        return int(vals.median()) if len(vals) else None

    @property
    def smoke(self) -> bool:
        """Random-init weights: figures show the pipeline runs, not how good a method is."""
        from bench.models import TINY

        return self.model in TINY

    @property
    def hardware_class(self) -> str:
        """"CPU" or "GPU" (from the hardware label and what was measured), else "unknown hardware"."""
        if self.hardware.startswith("cpu"):
            return "CPU"
        gpu = self.frame.filter(pl.col("cuda").is_not_null() | pl.col("peak_reserved_bytes").is_not_null())
        if gpu.height or "nvidia" in self.hardware.lower() or "gpu" in self.hardware.lower():
            return "GPU"
        return "unknown hardware"

    @property
    def devices(self) -> str:
        names = self.frame.select("device_name", "device_count").unique().drop_nulls("device_name")
        return ", ".join(f"{c or 1}× {n}" for n, c in names.iter_rows()) or "unknown"


def _labels() -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(parameterization labels, objective labels, parameterization names) from the cards (no torch)."""
    from methods.card import ParamCard
    from methods.registry import cards

    every = cards()
    pars = {n: c.label for n, c in every.items() if isinstance(c, ParamCard)}
    objs = {n: c.label for n, c in every.items() if not isinstance(c, ParamCard)}
    return pars, objs, sorted(pars)


@lru_cache(maxsize=4)
def load_rows(path: Path = ROWS_FILE) -> tuple[Row, ...]:
    data = yaml.safe_load(path.read_text())
    par_labels, obj_labels, registered = _labels()

    def label(r: dict, methods) -> str:
        if r.get("label"):
            return r["label"]
        if methods is not None and len(methods) == 1:
            return par_labels.get(methods[0], methods[0])
        return obj_labels.get(r["objective"], r["objective"])

    named = {m for section in data["sections"] for r in section.get("rows", ())
             if r["methods"] != "any" for m in r["methods"]}
    rows = []
    for section in data["sections"]:
        specs = list(section.get("rows", ()))
        if section.get("others"):
            rest = [m for m in registered if m not in named]
            first = [m for m in section.get("order", ()) if m in rest]
            specs += [{"objective": section["others"], "methods": [m]} for m in first + sorted(set(rest) - set(first))]
        for r in specs:
            methods = None if r["methods"] == "any" else tuple(r["methods"])
            rows.append(Row(label=label(r, methods), section=section["title"], objective=r["objective"],
                            methods=methods, after=tuple(r.get("after", ()))))
    return tuple(rows)


def _position_ok(stack: str | None, index: int | None, after: tuple[str, ...]) -> bool:
    """A stage counts for its row when every earlier stage of its stack is allowed by ``after``."""
    if not stack or not index:
        return True
    try:
        earlier = [stage.objective for stage in parse_stack_string(stack)[:index]]
    except UserError:  # a stack this version cannot read: its position cannot be judged
        return False
    return all(obj in after for obj in earlier)


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0][:160] if lines else ""


def make_line(row: Row, method: str | None, task: str | None, runs: pl.DataFrame) -> Line:
    line = Line(row=row, method=method, task=task, runs=runs.height)
    line.seeds = sorted({s for s in runs["seed"].to_list() if s is not None})
    ok = runs.filter(pl.col("status") == "ok")
    line.ok = ok.height
    line.failures = Counter(s for s in runs["status"].to_list() if s != "ok")
    if runs.height == 0:
        line.reason = "not run"
    elif ok.height == 0:
        last = runs.sort("created_at").row(-1, named=True)
        detail = _first_line(last["error"])
        line.reason = last["status"] if last["status"] == "oom" or not detail else f"{last['status']}: {detail}"
    quiet = ok.filter(pl.Series([measured_quietly(e) for e in ok["extra"].to_list()], dtype=pl.Boolean))
    line.busy = ok.height - quiet.height
    line.figures = {name: Stat.of((quiet if name in SPEED else ok)[name].to_list())
                    for name in FIGURES if name not in ("metric_before", "metric_after")}
    names = Counter(n for n in ok["metric_name"].to_list() if n)
    if names:
        line.metric_name = names.most_common(1)[0][0]
        same = ok.filter(pl.col("metric_name") == line.metric_name)
        line.figures["metric_before"] = Stat.of(same["metric_before"].to_list())
        line.figures["metric_after"] = Stat.of(same["metric_after"].to_list())
    else:
        line.figures["metric_before"] = line.figures["metric_after"] = None
    for column, source in MEMORY_SOURCES:
        stat = Stat.of(ok[column].to_list())
        if stat:
            line.memory, line.memory_source = stat, source
            break
    return line


def build_lines(frame: pl.DataFrame, rows: tuple[Row, ...] | None = None) -> list[Line]:
    """Every row's lines for the records of one hardware × model group."""
    lines = []
    for row in rows or load_rows():
        cand = frame.filter(pl.col("objective") == row.objective)
        keep = [_position_ok(st, i, row.after) for st, i in zip(cand["stack"].to_list(), cand["stage_index"].to_list())]
        cand = cand.filter(pl.Series(keep, dtype=pl.Boolean)) if cand.height else cand
        measured = sorted({m for m in cand["method"].to_list() if m})
        methods = row.methods if row.methods is not None else (measured or [None])
        for method in methods:
            sub = cand.filter(pl.col("method") == method) if method else cand.clear()
            tasks = sorted({t for t in sub["task"].to_list() if t}) or [None]
            for task in tasks:
                runs = sub.filter(pl.col("task") == task) if task else sub
                lines.extend(_per_lr(row, method, task, runs))
    return lines


def learning_rate(hyperparams: str | None) -> float | None:
    """The learning rate a record trained with (its hyperparams JSON, bench/train.py), or None."""
    try:
        lr = json.loads(hyperparams)["hp"]["learning_rate"] if hyperparams else None
    except (ValueError, KeyError, TypeError):
        return None
    return float(lr) if isinstance(lr, (int, float)) else None


def _per_lr(row: Row, method: str | None, task: str | None, runs: pl.DataFrame) -> list[Line]:
    """One line, or one per learning rate where the stage ran at several on this task (e.g. its card's
    default and a tuned one): seeds of different learning rates are different methods, never pooled."""
    lrs = [learning_rate(h) for h in runs["hyperparams"].to_list()] if runs.height else []
    if len(set(lrs)) < 2:
        return [make_line(row, method, task, runs)]
    out = []
    for lr in sorted(set(lrs), key=lambda v: (v is None, v or 0.0)):
        line = make_line(row, method, task, runs.filter(pl.Series([x == lr for x in lrs], dtype=pl.Boolean)))
        line.lr = lr
        out.append(line)
    return out


def distinct(lines: list[Line], ran: bool = False) -> list[Line]:
    """Lines with figures (``ran``: with at least one run, ok or not), one per (objective,
    parameterization, task): rows that repeat a stage (SFT (lora) and LoRA, Quantized FT (qlora)
    and QLoRA) collapse to the first."""
    seen, out = set(), []
    for ln in lines:
        key = (ln.row.objective, ln.method, ln.task, ln.lr)
        if (ln.runs if ran else ln.ok) and key not in seen:
            seen.add(key)
            out.append(ln)
    return out


def groups(frame: pl.DataFrame, rows: tuple[Row, ...] | None = None) -> list[Group]:
    """One group per hardware × model, in name order; records are never pooled across groups."""
    frame = frame.with_columns(pl.col("hardware").fill_null("unknown hardware"),
                               pl.col("model").fill_null("unknown model"))
    out = []
    for (hw, model), sub in sorted(frame.group_by(["hardware", "model"]), key=lambda kv: kv[0]):
        out.append(Group(hardware=hw, model=model, frame=sub, lines=build_lines(sub, rows)))
    return out


def data_needed(objective: str, method: str | None) -> str:
    """What a line needs, from the method cards: record format, extra models, model features."""
    from methods import OBJECTIVES, PARAMETERIZATIONS

    obj = OBJECTIVES.get(objective)
    if obj is None:
        return f"— ({objective} not in the registry)"
    parts = [obj.card.data]
    if obj.card.needs:
        parts.append("needs " + ", ".join(n.replace("_", " ") for n in obj.card.needs))
    par = PARAMETERIZATIONS.get(method) if method else None
    if par is not None and par.card.requires:
        parts.append("requires " + ", ".join(par.card.requires))
    return "; ".join(parts)
