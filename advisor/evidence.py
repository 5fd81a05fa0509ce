"""Measured evidence for a stage: runs of the same objective and method on the task closest to the goal.

    python -c "from advisor.evidence import sources; print(sources(None))"

Sources, always consulted: the reference DBs shipped in ``reports/reference/*/db`` (this project's
own measurements), the published results in ``reports/published/*/db`` (labelled as published,
never pooled with ours) and the user's DB. Runs are grouped per hardware label and per DB — machines
are never pooled, nor are DBs (each is one matrix with its own step budget) — and a stage takes its
evidence from the closest tier that has any: the same device, then the same class (CPU or GPU), then
any other hardware; our measurements before published ones within a tier, then the DB with the most
runs. For each (objective, method) the evidence holds the quality delta
(metric after minus before; published files give only the after figure) with its interval over
runs, and a rank in [0, 1]: the share of the same task's runs (same tier, same hardware) with a
lower quality per cost (metric gain per log wall-second; for a loss such as eval_loss the gain is
its fall), which the ranking mixes with its prior.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from advisor.catalogs import Gpu
from advisor.recipes import GOAL_TASKS

REPORTS = Path(__file__).resolve().parent.parent / "reports"
TIERS = ("same device", "same class", "other hardware")


@dataclass
class Evidence:
    """What was measured for one (objective, method) on the closest task and hardware."""

    objective: str
    method: str
    origin: str          # "measured" or "published"
    hardware: str
    tier: str            # one of TIERS
    task: str
    rank: float          # quality per cost within the task's runs, 0 (worst) .. 1 (best)
    delta: object = None  # reports.stats.Stat of metric_after - metric_before (None for published)
    after: object = None  # reports.stats.Stat of metric_after
    metric: str = ""
    run_ids: list[str] = field(default_factory=list)
    source: str = ""     # the DB folder or the published source it came from

    def text(self) -> str:
        fig = self.delta if self.delta is not None else self.after
        what = f"{self.metric or 'metric'} change" if self.delta is not None else self.metric or "metric"
        val = "" if fig is None else f"{what} {fig.text(lambda v: f'{v:+.3f}' if self.delta is not None else f'{v:.3f}')}"
        label = "published" if self.origin == "published" else "measured"
        runs = "" if fig is not None and fig.n > 1 else " (1 run)"
        return f"{self.objective}:{self.method} {label} on {self.task}, {self.hardware} ({self.tier}): {val}{runs}"

    def to_dict(self) -> dict:
        stat = (lambda s: None if s is None else {"mean": round(s.mean, 4), "lo": round(s.lo, 4),
                                                  "hi": round(s.hi, 4), "n": s.n, "interval": s.kind})
        return {"stage": f"{self.objective}:{self.method}", "origin": self.origin, "hardware": self.hardware,
                "tier": self.tier, "task": self.task, "rank": round(self.rank, 3), "quality_change": stat(self.delta),
                "metric_after": stat(self.after), "metric": self.metric, "runs": self.run_ids, "source": self.source}


def sources(user_db: Path | None) -> list[Path]:
    """Every DB the advisor reads: shipped reference and published DBs, then the user's."""
    dirs = sorted(REPORTS.glob("reference/*/db")) + sorted(REPORTS.glob("published/*/db"))
    if user_db is not None and Path(user_db).is_dir():
        dirs.append(Path(user_db))
    return dirs


@lru_cache(maxsize=16)
def _read(path: str, stamp: float, shipped: bool):
    """One DB's ok runs with a quality figure (cached per folder while its mtime stays the same).
    Shipped DBs are read without writing an index into the package."""
    import polars as pl

    from bench.results import read_runs

    df = read_runs(Path(path), index=False if shipped else None)
    if df.is_empty():
        return df
    if "origin" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.String).alias("origin"))
    return df.filter((pl.col("status") == "ok") & pl.col("metric_after").is_not_null())


def _tier(hardware: str | None, device: str | None, gpu: Gpu) -> str:
    """How close a run's machine is to the profile's: the hardware label says CPU ("cpu-...") or
    names the GPU; the device name breaks ties between GPUs."""
    cpu = (hardware or "").lower().startswith("cpu")
    if gpu.is_cpu:
        return TIERS[0 if cpu else 2]
    label = f"{hardware or ''} {device or ''}".lower()
    if cpu or not label.strip():
        return TIERS[2]
    words = [w for w in gpu.name.lower().replace("nvidia", "").split() if not w.endswith("gb")][:2]
    return TIERS[0] if words and all(w in label for w in words) else TIERS[1]


def lookup(frames: list[tuple[str, object]], goal: str, gpu: Gpu) -> dict[tuple[str, str], Evidence]:
    """(objective, method) -> the closest evidence, from ``frames`` [(source, polars frame)]."""
    import polars as pl

    from reports.stats import Stat
    from reports.table import learning_rate, lower_is_better

    keys = GOAL_TASKS[goal]
    rows: list[dict] = []
    for src, df in frames:
        if df.is_empty():
            continue
        close = [t for t in df["task"].unique().drop_nulls().to_list() if any(k in t.lower() for k in keys)]
        if not close:
            continue
        sub = df.filter(pl.col("task").is_in(pl.Series(close, dtype=pl.String).implode()))
        for r in sub.select("run_id", "objective", "method", "task", "hardware", "device_name", "origin", "metric_name",
                            "metric_before", "metric_after", "wall_time_s", "hyperparams").iter_rows(named=True):
            r["source"], r["tier"] = src, _tier(r["hardware"], r["device_name"], gpu)
            r["lr"] = learning_rate(r["hyperparams"])
            r["origin"] = r["origin"] or "measured"
            gain = r["metric_after"] - (r["metric_before"] or 0.0)
            if lower_is_better(r["metric_name"]):  # a loss that fell is the gain (eval_loss: the quality DB's)
                gain = -gain
            r["value"] = gain / math.log1p(max(r["wall_time_s"] or 1.0, 1.0))
            rows.append(r)
    # Rank within (task, hardware, source): the share of that group's runs with a lower value. A source
    # is one DB, i.e. one matrix with one step budget: runs of different budgets are not comparable.
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["hardware"], r["source"]), []).append(r)
    for g in groups.values():
        vals = sorted(r["value"] for r in g)
        for r in g:
            r["rank"] = 0.5 if len(g) == 1 else vals.index(r["value"]) / (len(g) - 1)
    best: dict[tuple[str, str], Evidence] = {}
    order = {t: i for i, t in enumerate(TIERS)}
    by_key: dict[tuple, list[dict]] = {}
    for r in rows:
        by_key.setdefault((r["objective"], r["method"], r["tier"], r["origin"], r["hardware"], r["task"], r["source"],
                           r["lr"]), []).append(r)
    for (obj, method, tier, origin, hw, task, _, _), runs in by_key.items():
        published = origin == "published"
        ev = Evidence(obj, method, origin, hw or "unknown hardware", tier, task,
                      rank=sum(r["rank"] for r in runs) / len(runs),
                      delta=None if published else Stat.of([r["metric_after"] - (r["metric_before"] or 0.0) for r in runs]),
                      after=Stat.of([r["metric_after"] for r in runs]), metric=runs[0]["metric_name"] or "",
                      run_ids=[r["run_id"] for r in runs], source=runs[0]["source"])
        old = best.get((obj, method))
        # Closest tier first, then ours before published, then more runs, then (one method run at several
        # learning rates, never pooled) the learning rate with the better quality per cost.
        if old is None or ((order[tier], published, -len(runs), -ev.rank)
                           < (order[old.tier], old.origin == "published", -len(old.run_ids), -old.rank)):
            best[(obj, method)] = ev
    return best


def gather(goal: str, gpu: Gpu, user_db: Path | None) -> dict[tuple[str, str], Evidence]:
    """Evidence from every source (see ``sources``) for the goal on this hardware."""
    frames = []
    for d in sources(user_db):
        try:
            stamp = d.stat().st_mtime
        except OSError:
            continue
        frames.append((str(d), _read(str(d), stamp, REPORTS in d.resolve().parents)))
    return lookup(frames, goal, gpu)
