"""Selected runs side by side: one column per run, one row per measured field.

    tunebench tui      (Results: space to select, c to compare)
"""
from __future__ import annotations

import polars as pl
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from advisor.tui.runs import comparison


class CompareScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, frame: pl.DataFrame, run_ids: list[str]):
        super().__init__()
        self.frame, self.run_ids = frame, run_ids

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(cursor_type="row", zebra_stripes=True, id="compare")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"compare {len(self.run_ids)} runs"
        table = self.query_one(DataTable)
        rows = comparison(self.frame, self.run_ids)
        table.add_column("field")
        for i in range(len(rows[0][1]) if rows else 0):
            table.add_column(f"run {i + 1}")
        for name, values in rows:
            table.add_row(name, *values)
        table.focus()
