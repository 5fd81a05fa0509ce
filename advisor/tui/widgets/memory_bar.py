"""Estimated peak memory drawn as a bar against the GPU's memory (red when it does not fit).

    tunebench tui      # the Recommendations table and details pane
"""
from __future__ import annotations

from rich.text import Text

from advisor.tui.fmt import gib


def memory_bar(peak_gib: float, capacity_gib: float, width: int = 10) -> Text:
    """``█████░░░░░ 10.2/16.0`` (GiB): filled share = peak / capacity, capped at the bar's width."""
    share = peak_gib / capacity_gib if capacity_gib > 0 else 1.0
    filled = min(width, max(1 if peak_gib > 0 else 0, round(share * width)))
    style = "green" if share <= 0.8 else "yellow" if share <= 1.0 else "red"
    bar = Text("█" * filled, style=style)
    bar.append("░" * (width - filled), style="grey50")
    bar.append(f" {gib(peak_gib, False)}/{gib(capacity_gib, False)}")
    return bar
