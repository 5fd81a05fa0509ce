"""Numbers for people, used by every wizard screen: GiB to one decimal, durations, dollars, counts.

    python -m advisor.tui.fmt        # prints a few examples

``gib(10.24) -> "10.2 GiB"``, ``hours(4.6) -> "4.6 h"``, ``hours(0.58) -> "35 min"``,
``seconds(41) -> "41 s"``, ``usd(4.6) -> "$4.60"``; None is always ``"-"``.
"""
from __future__ import annotations

from reports.fmt import count  # 1.2M, 45k: the reports' own counts

MISSING = "-"
GIB = 2**30

__all__ = ["MISSING", "count", "gib", "gib_bytes", "hours", "memory", "number", "seconds", "usd"]


def gib(x: float | None, unit: bool = True) -> str:
    """Memory in GiB with one decimal (``0.04`` shows as ``<0.1``: a bar never reads "0.0")."""
    if x is None:
        return MISSING
    text = "<0.1" if 0 < x < 0.05 else f"{x:.1f}"
    return f"{text} GiB" if unit else text


def gib_bytes(n: float | None, unit: bool = True) -> str:
    return MISSING if n is None else gib(n / GIB, unit)


def memory(used_gib: float, capacity_gib: float) -> str:
    """``10.2/23.5 GiB``: a peak against a device's memory."""
    return f"{gib(used_gib, False)}/{gib(capacity_gib, False)} GiB"


def seconds(s: float | None) -> str:
    """``41 s``, ``35 min``, ``4.6 h``, ``3.2 days``: the unit a person would say."""
    if s is None:
        return MISSING
    if s < 90:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 72 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def hours(h: float | None) -> str:
    return MISSING if h is None else seconds(h * 3600)


def usd(x: float | None) -> str:
    """``$4.60``; thousands grouped (``$1,250.00``)."""
    return MISSING if x is None else f"${x:,.2f}"


def number(x: float | None) -> str:
    """A value a person typed or a catalog gave, without float noise: ``23.5402 -> 23.5``, ``24.0 -> 24``."""
    if x is None:
        return ""
    return f"{round(x, 1):g}"


if __name__ == "__main__":
    print(gib(10.24), memory(10.2, 23.5402), hours(4.6), hours(0.58), seconds(41), usd(4.6), count(45_000))
