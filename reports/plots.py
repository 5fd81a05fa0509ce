"""The report's figures as PNG (matplotlib, Agg backend), one set per hardware × model group.

    tunebench report --db DIR --out DIR

Memory vs quality (with the Pareto front) and trainable share (log scale) vs quality are drawn
per task, since quality metrics differ between tasks; tokens/s and forgetting per method are
one bar chart each. Points and bars are means over seeds, whiskers their interval (95% t-interval
for n ≥ 3, min–max for n = 2, none for a single run; ``reports.stats``). Only measured figures
are drawn; a figure without data is not written. The report draws none for random-init models.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from reports.table import Group, Line, distinct, lower_is_better  # noqa: E402


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def pareto_front(points: list[tuple[float, float]], lower_better: bool) -> list[int]:
    """Indices of the points no other point beats: no more memory (x) and no worse quality (y),
    strictly better in one. Returned in order of memory."""
    def better_eq(a, b):
        return a <= b if lower_better else a >= b

    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (xj <= x and better_eq(yj, y)) and (xj < x or yj != y)
            for j, (xj, yj) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def _name(ln: Line) -> str:
    return ln.stage if ln.task is None else f"{ln.stage} [{ln.task}]"


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
    return path


def _quality_plots(lines: list[Line], out: Path, group_title: str) -> list[tuple[str, Path]]:
    made = []
    for task in sorted({ln.task for ln in lines if ln.task}):
        on_task = [ln for ln in lines if ln.task == task and ln.get("metric_after") is not None]
        if not on_task:
            continue
        metric = Counter(ln.metric_name for ln in on_task).most_common(1)[0][0]
        on_task = [ln for ln in on_task if ln.metric_name == metric]
        low = lower_is_better(metric)
        mem = [ln for ln in on_task if ln.get("memory") is not None]
        if mem:
            source = Counter(ln.memory_source for ln in mem).most_common(1)[0][0]
            mem = [ln for ln in mem if ln.memory_source == source]
            pts = [(ln.get("memory") / 2**30, ln.get("metric_after")) for ln in mem]
            fig, ax = plt.subplots(figsize=(7, 4.5))
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], fmt="o", capsize=2, elinewidth=0.8,
                        xerr=_whiskers([ln.memory for ln in mem], 2**30),
                        yerr=_whiskers([ln.stat("metric_after") for ln in mem]))
            for ln, (x, y) in zip(mem, pts):
                ax.annotate(ln.stage, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            front = pareto_front(pts, low)
            ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "r--", label="Pareto front")
            ax.set_xlabel(f"peak memory, {source} (GiB)")
            ax.set_ylabel(f"{metric} after ({'lower' if low else 'higher'} is better)")
            ax.set_title(f"Memory vs quality: {task}\n{group_title}", fontsize=9)
            ax.legend(fontsize=8)
            made.append((f"Memory vs quality on {task} (Pareto front dashed)", _save(fig, out / f"memory_quality-{slug(task)}.png")))
        share = [ln for ln in on_task if (ln.get("trainable_share") or 0) > 0]
        if share:
            fig, ax = plt.subplots(figsize=(7, 4.5))
            xs, ys = [100 * ln.get("trainable_share") for ln in share], [ln.get("metric_after") for ln in share]
            ax.scatter(xs, ys)
            for ln, x, y in zip(share, xs, ys):
                ax.annotate(ln.stage, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xscale("log")
            ax.set_xlabel("trainable share of the model (%, log scale)")
            ax.set_ylabel(f"{metric} after ({'lower' if low else 'higher'} is better)")
            ax.set_title(f"Trainable share vs quality: {task}\n{group_title}", fontsize=9)
            made.append((f"Trainable share vs quality on {task}", _save(fig, out / f"share_quality-{slug(task)}.png")))
    return made


def _whiskers(stats, scale: float = 1.0) -> list[list[float]]:
    """Matplotlib's [below, above] error lengths of each mean (zero for a single run)."""
    return [[(s.mean - s.lo) / scale for s in stats], [(s.hi - s.mean) / scale for s in stats]]


def _bars(lines: list[Line], figure: str, xlabel: str, title: str, path: Path) -> Path | None:
    have = [ln for ln in lines if ln.get(figure) is not None]
    if not have:
        return None
    have.sort(key=lambda ln: ln.get(figure))
    fig, ax = plt.subplots(figsize=(7, max(2.8, 1.2 + 0.28 * len(have))))
    vals = [ln.get(figure) for ln in have]
    ax.barh([_name(ln) for ln in have], vals, xerr=_whiskers([ln.stat(figure) for ln in have]), capsize=2)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def write_plots(group: Group, out: Path) -> list[tuple[str, Path]]:
    """Write the group's PNGs under ``out``; returns (caption, path) for each written file."""
    lines = distinct(group.lines)
    title = f"{group.model} on {group.hardware}"
    made = _quality_plots(lines, out, title)
    for figure, xlabel, caption, name in (
        ("tokens_per_s", "tokens/s (mean; whiskers: 95% t-interval, or min–max for n = 2)", "Training throughput per method", "tokens_per_s.png"),
        ("forgetting", "general-text loss after − before (mean; higher = more forgetting)", "Forgetting per method", "forgetting.png"),
    ):
        path = _bars(lines, figure, xlabel, f"{caption}\n{title}", out / name)
        if path:
            made.append((caption, path))
    return made
