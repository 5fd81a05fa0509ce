"""Step 7, Results: every run in the polars DB as a sortable, filterable table; compare and report.

    tunebench tui      (ctrl+r from any step)

Keys: ``/`` filter (``task=smoke status=ok lora wall_time_s>10``), ``s`` sort by the next column
(``S`` reverses; clicking a header sorts by it), space select, ``c`` compare the selected runs side by side, ``r`` write
and open the comparison report for the filter, Enter replays a run's progress when its folder has
events, F5 reloads. Per run (the highlighted row): ``t`` chat with it (base vs tuned, screens/chat.py),
``e`` export it (HF folder or GGUF q8_0, screens/export.py), ``o`` open its report (the comparison
report of its task, model and hardware), ``y`` copy its reproduce command (``tunebench train
<run>/stack.json``) to the clipboard and show it in the status line. Runs the wizard launched show
the launch's estimate next to what was measured
(``est GiB`` vs ``peak GiB``, ``est train`` vs ``train``: advisor/tui/estimates.py).
"""
from __future__ import annotations

import polars as pl
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from advisor.tui.estimates import with_estimates
from advisor.tui.messages import FilterChanged
from advisor.tui.runs import COLUMNS, cell, filter_runs, sort_runs, with_derived
from advisor.tui.screens.base import WizardScreen


class FilterInput(Input):
    """Posts FilterChanged so the screen re-filters (the input knows nothing of the table)."""

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(FilterChanged(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.screen.query_one(DataTable).focus()


class ResultsScreen(WizardScreen):
    STEP = "Results"
    BINDINGS = [Binding("slash", "filter", "Filter"), Binding("s", "sort", "Sort col"), Binding("S", "reverse", "Reverse"),
                Binding("space", "toggle", "Select"), Binding("c", "compare", "Compare"),
                Binding("r", "report", "Report"), Binding("t", "chat", "Chat"), Binding("e", "export", "Export"),
                Binding("o", "run_report", "Run report"), Binding("y", "copy_command", "Copy cmd"),
                Binding("f5", "reload", "Reload"),
                Binding("escape", "back", "Back")]

    def __init__(self, highlight: list[str] | None = None):
        super().__init__()
        self.highlight = list(highlight or [])
        self.selected: list[str] = []
        self.sort_col, self.sort_desc = "created_at", True
        self.filter_text = ""
        self.damaged: list[str] = []
        self.last_command = ""  # the reproduce command y copied last

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterInput(placeholder="/ filter: task=smoke status=ok lora wall_time_s>10", compact=True, id="filter")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="runs")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one(DataTable)
        table.add_column("✓", key="sel")
        for col, head in COLUMNS:
            table.add_column(head, key=col)
        self.action_reload()
        table.focus()

    def action_reload(self) -> None:
        from bench.results import read_runs

        self.damaged = []
        # Damaged files are listed in the status line: stderr would scribble over the screen.
        frame = read_runs(self.app.db_dir, on_damaged=lambda p, m: self.damaged.append(p.name))
        self.frame = with_estimates(with_derived(frame))
        self.refill()

    def shown(self) -> pl.DataFrame:
        df, self.filter_error = filter_runs(self.frame, self.filter_text)
        return sort_runs(df, self.sort_col, self.sort_desc)

    def refill(self) -> None:
        table = self.query_one(DataTable)
        keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None
        table.clear()
        df = self.shown()
        for r in df.iter_rows(named=True):
            rid = r["run_id"]
            mark = Text("✓", style="bold green") if rid in self.selected else Text(" ")
            cells = [cell(r[c], c) for c, _ in COLUMNS]
            if rid in self.highlight:
                cells = [Text(c, style="bold yellow") for c in cells]
            table.add_row(mark, *cells, key=rid)
        target = self.highlight[-1] if self.highlight and keep is None else keep
        if target is not None and df.height and target in df["run_id"].to_list():
            table.move_cursor(row=table.get_row_index(target))
        self.update_status()

    def update_status(self) -> None:
        n, total = self.query_one(DataTable).row_count, self.frame.height
        parts = [f"{n}/{total} runs from {self.app.db_dir}", f"sort {self.sort_col} {'↓' if self.sort_desc else '↑'}"]
        if self.selected:
            parts.append(f"{len(self.selected)} selected")
        if self.damaged:
            parts.append(f"skipped damaged: {', '.join(self.damaged[:3])}")
        if self.filter_error:
            self.set_status(f"filter: {self.filter_error}", error=True)
        else:
            self.set_status(" · ".join(parts))

    def on_filter_changed(self, event: FilterChanged) -> None:
        self.filter_text = event.text
        self.refill()

    def action_filter(self) -> None:
        self.query_one(FilterInput).focus()

    def action_sort(self) -> None:
        """Next column, descending (the row cursor has no column; header clicks pick one directly)."""
        cols = [c for c, _ in COLUMNS]
        self.sort_col, self.sort_desc = cols[(cols.index(self.sort_col) + 1) % len(cols)], True
        self.refill()

    def action_reverse(self) -> None:
        self.sort_desc = not self.sort_desc
        self.refill()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in dict(COLUMNS):
            self.sort_desc = not self.sort_desc if key == self.sort_col else True
            self.sort_col = key
            self.refill()

    def current_run(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def action_toggle(self) -> None:
        rid = self.current_run()
        if rid is None:
            return
        if rid in self.selected:
            self.selected.remove(rid)
        else:
            self.selected.append(rid)
        table = self.query_one(DataTable)
        table.update_cell(rid, "sel", Text("✓", style="bold green") if rid in self.selected else Text(" "))
        self.update_status()

    def action_compare(self) -> None:
        from advisor.tui.screens.compare import CompareScreen

        ids = self.selected or ([self.current_run()] if self.current_run() else [])
        if len(ids) < 2:
            self.set_status("select two or more runs with space, then c", error=True)
            return
        self.app.push_screen(CompareScreen(self.frame, ids))

    def action_report(self) -> None:
        from advisor.tui.screens.report import ReportScreen

        self.app.push_screen(ReportScreen(self.filter_text))

    def current_row(self) -> dict | None:
        rid = self.current_run()
        if rid is None:
            self.set_status("no run highlighted", error=True)
            return None
        return self.frame.filter(pl.col("run_id") == rid).row(0, named=True)

    def action_chat(self) -> None:
        from advisor.tui.screens.chat import open_chat

        row = self.current_row()
        if row is not None:
            open_chat(self, row)

    def action_export(self) -> None:
        from advisor.tui.screens.export import ExportScreen

        row = self.current_row()
        if row is None:
            return
        if row["status"] != "ok" or not row.get("output_dir"):
            self.set_status(f"run {row['run_id']} has no finished model to export (status {row['status']})",
                            error=True)
            return
        self.app.push_screen(ExportScreen(row))

    def action_run_report(self) -> None:
        from advisor.tui.run_actions import report_filters
        from advisor.tui.screens.report import ReportScreen

        row = self.current_row()
        if row is not None:
            self.app.push_screen(ReportScreen(filters=report_filters(row)))

    def action_copy_command(self) -> None:
        from advisor.tui.run_actions import reproduce_command
        from common.errors import UserError

        row = self.current_row()
        if row is None:
            return
        try:
            command = reproduce_command(row, self.app.db_dir)
        except UserError as e:
            self.set_status(str(e), error=True)
            return
        self.app.copy_to_clipboard(command)
        self.last_command = command
        self.set_status(f"copied: {command}")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from advisor.tui.process import FinishedRun, run_folder
        from advisor.tui.screens.progress import ProgressScreen

        rid = event.row_key.value
        row = self.frame.filter(pl.col("run_id") == rid).row(0, named=True)
        folder = run_folder(row["output_dir"])
        if folder is None:
            self.set_status(f"{rid}: no progress events kept for this run (launched outside the wizard?)")
            return
        self.app.push_screen(ProgressScreen(FinishedRun(folder), title=f"{row['stack']} on {row['model']} / "
                                                                         f"{row['task']} ({rid})", live=False))

    def action_next(self) -> None:
        self.action_compare()
