"""The ranked stacks as a table: stack, model, peak memory bar, hours, cost.

    tunebench tui      # Recommendations screen

Posts ``RecommendationHighlighted(index)`` when the cursor moves, so the screen can fill the
details pane without this table knowing it exists.
"""
from __future__ import annotations

from textual.widgets import DataTable

from advisor.tui.fmt import hours, usd
from advisor.tui.messages import RecommendationHighlighted
from advisor.tui.widgets.memory_bar import memory_bar


class RecommendationTable(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("#", "stack", "model", "peak memory (GiB)", "time", "cost")

    def show(self, recs: list[dict], capacity_gib: float) -> None:
        self.clear()
        for i, r in enumerate(recs, 1):
            self.add_row(str(i), r["stack"], r["model"], memory_bar(r["peak_gib"], capacity_gib), hours(r["hours"]),
                         usd(r["cost_usd"]),
                         key=str(i - 1))
        if recs:
            self.move_cursor(row=0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key is not None and event.row_key.value is not None:
            self.post_message(RecommendationHighlighted(int(event.row_key.value)))
