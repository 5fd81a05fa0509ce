"""Number formatting shared by the tables and the folklore verdicts (``tunebench report``)."""
from __future__ import annotations

MISSING = "—"


def count(n: float | None) -> str:
    if n is None:
        return MISSING
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.0f}"


def share(x: float | None) -> str:
    """A fraction (0.0137) as a percentage with enough digits for tiny shares."""
    if x is None:
        return MISSING
    pct = 100 * x
    return f"{pct:.3g}%" if pct < 10 else f"{pct:.1f}%"


def nbytes(n: float | None) -> str:
    if n is None:
        return MISSING
    for div, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f} B"


def seconds(s: float | None) -> str:
    if s is None:
        return MISSING
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def rate(x: float | None) -> str:
    return MISSING if x is None else f"{x:.3g}" if x < 100 else f"{x:.0f}"


def metric(x: float | None) -> str:
    return MISSING if x is None else f"{x:.4g}"


def signed(x: float | None) -> str:
    return MISSING if x is None else f"{x:+.4g}"
