"""One figure over a line's seeds: the mean with a 95% interval, and comparisons that respect it.

    tunebench report --db DIR --out DIR

``Stat.of(values)``: n ≥ 3 gives the mean ± the 95% Student-t interval (mean ± t(0.975, n−1)·s/√n);
n = 2 gives the mean with the min–max range (too few values for a t-interval); n = 1 gives the
value with no interval at all. Two lines are *distinguishable* on a figure only when both have an
interval and the intervals do not overlap; anything else is "not distinguishable". A threshold
check (``at_most``) is True/False only when the whole interval is on one side, else None
(inconclusive). Trainable parameter counts are exact (same model and config, same count), so
claims compare those as plain numbers.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import lru_cache

T95, RANGE, SINGLE = "95% t-interval", "min–max", "single run"


@lru_cache(maxsize=64)
def t975(df: int) -> float:
    """The two-sided 95% Student-t critical value for ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


@dataclass(frozen=True)
class Stat:
    """A figure over the ok runs of a line: mean and interval [lo, hi] of ``kind`` (see module doc)."""

    mean: float
    lo: float
    hi: float
    n: int
    kind: str

    @classmethod
    def of(cls, values) -> Stat | None:
        vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if not vals:
            return None
        n, mean = len(vals), statistics.fmean(vals)
        if n == 1:
            return cls(mean, mean, mean, 1, SINGLE)
        if n == 2:
            return cls(mean, min(vals), max(vals), 2, RANGE)
        half = t975(n - 1) * statistics.stdev(vals) / math.sqrt(n)
        return cls(mean, mean - half, mean + half, n, T95)

    @property
    def has_interval(self) -> bool:
        return self.n >= 2

    def text(self, f, half=None) -> str:
        """The cell: ``mean ± half-width (n=…)``, ``mean (lo–hi, n=2)`` or the single value."""
        if self.lo == self.hi:  # one run, or equal values (exact figures such as parameter counts)
            return f(self.mean)
        if self.kind == T95:
            return f"{f(self.mean)} ± {(half or f)(self.hi - self.mean)} (n={self.n})"
        return f"{f(self.mean)} ({f(self.lo)}–{f(self.hi)}, n={self.n})"


def overlap(a: Stat, b: Stat) -> bool:
    return a.lo <= b.hi and b.lo <= a.hi


def distinguishable(a: Stat | None, b: Stat | None) -> bool:
    """True only when both have an interval (n ≥ 2) and the intervals do not overlap."""
    return a is not None and b is not None and a.has_interval and b.has_interval and not overlap(a, b)


def at_most(lo: float, hi: float, limit: float, known: bool = True) -> bool | None:
    """Is the quantity ≤ ``limit``? True when all of [lo, hi] is, False when none of it is, None when
    the interval straddles the limit or is unknown (``known=False``: a single run)."""
    tol = 1e-9 * max(1.0, abs(limit))
    if not known:
        return None
    if hi <= limit + tol:
        return True
    if lo > limit + tol:
        return False
    return None


def ratio(a: Stat, b: Stat) -> tuple[float, float]:
    """Bounds of a/b over the two intervals (positive figures: memory, time)."""
    return a.lo / b.hi, a.hi / b.lo


def all_of(values) -> bool | None:
    """Three-valued AND: False if any is False, True if all are True, else None (inconclusive)."""
    values = list(values)
    if any(v is False for v in values):
        return False
    return True if all(v is True for v in values) else None


def why_not_known(*stats: Stat) -> str:
    """Why a comparison is inconclusive: which figures have a single run, or that intervals straddle."""
    single = [s for s in stats if not s.has_interval]
    return "n=1: no interval" if single else "intervals straddle the threshold"
