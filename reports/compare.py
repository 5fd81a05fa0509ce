"""Which differences are real: per task, each method against the best on quality, memory and speed.

    tunebench report --db DIR --out DIR

For one task of a real-weight group, every measured line gets its final task metric, peak memory
and tokens/s (mean with interval, ``reports.stats``) and, for each, how it stands against the best
line on that figure: ``best``, ``worse``/``more``/``slower`` when the two intervals are apart, or
``not distinguishable`` when they overlap or either has a single run. Lines are sorted by quality.
"""
from __future__ import annotations

from collections import Counter

from reports import fmt
from reports.stats import Stat, distinguishable
from reports.table import Line, distinct, lower_is_better

COLUMNS = ("stage", "n", "quality after", "vs best quality", "peak memory", "vs lowest memory",
           "tokens/s", "vs fastest")
SAME = "not distinguishable"


def _versus(stat: Stat | None, best: Stat | None, is_best: bool, apart: str) -> str:
    if stat is None or best is None:
        return fmt.MISSING
    if is_best:
        return "best"
    return apart if distinguishable(stat, best) else SAME


def task_rows(lines: list[Line], task: str) -> tuple[str | None, list[list[str]]]:
    """(the metric compared, one row per line measured on ``task``) in quality order."""
    on = [ln for ln in distinct(lines) if ln.task == task]
    names = Counter(ln.metric_name for ln in on if ln.stat("metric_after") is not None)
    metric = names.most_common(1)[0][0] if names else None
    low = lower_is_better(metric)
    scored = [ln for ln in on if ln.metric_name == metric and ln.stat("metric_after") is not None]
    rest = [ln for ln in on if ln not in scored]
    scored.sort(key=lambda ln: ln.get("metric_after") * (1 if low else -1))
    q_best = scored[0] if scored else None
    sources = Counter(ln.memory_source for ln in on if ln.memory is not None)
    source = sources.most_common(1)[0][0] if sources else None
    mems = [ln for ln in on if ln.memory is not None and ln.memory_source == source]
    m_best = min(mems, key=lambda ln: ln.get("memory")) if mems else None
    fast = [ln for ln in on if ln.stat("tokens_per_s") is not None]
    s_best = max(fast, key=lambda ln: ln.get("tokens_per_s")) if fast else None
    rows = []
    for ln in scored + rest:
        q, m, s = ln.stat("metric_after") if ln in scored else None, ln.memory, ln.stat("tokens_per_s")
        if m is not None and ln.memory_source != source:
            m = None
        rows.append([
            ln.stage, str(ln.ok),
            q.text(fmt.metric) if q else fmt.MISSING,
            _versus(q, q_best.stat("metric_after") if q_best else None, ln is q_best, "worse"),
            m.text(fmt.nbytes) if m else fmt.MISSING,
            _versus(m, m_best.memory if m_best else None, ln is m_best, "more"),
            s.text(fmt.rate) if s else fmt.MISSING,
            _versus(s, s_best.stat("tokens_per_s") if s_best else None, ln is s_best, "slower"),
        ])
    return metric, rows


def tasks(lines: list[Line]) -> list[str]:
    return sorted({ln.task for ln in distinct(lines) if ln.task})
