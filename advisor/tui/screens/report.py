"""The comparison report for the Results filter: written by ``reports.report.build_report``, shown here.

    tunebench tui      (Results: r)
    tunebench report --db DIR --out DIR --task T --model M --hardware H     # the same files

The report builder accepts hardware, task and model filters; other filter terms apply to the
table only (the screen says which were used). Building runs in a worker (plots take seconds).
"""
from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, MarkdownViewer, Static

from advisor.tui.runs import report_filters


class ReportScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, filter_text: str = "", filters: dict[str, str] | None = None):
        super().__init__()
        self.filters = report_filters(filter_text) if filters is None else dict(filters)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("building the report…", id="report-paths")
        yield MarkdownViewer("", show_table_of_contents=False, id="report")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "report " + (" ".join(f"{k}={v}" for k, v in self.filters.items()) or "(all runs)")
        slug = re.sub(r"[^A-Za-z0-9]+", "-", "-".join(self.filters.values())).strip("-") or "all"
        self.out = self.app.reports_dir / slug
        self.run_worker(self.build, thread=True)

    def build(self) -> None:
        from common.errors import UserError
        from reports.report import build_report

        try:
            paths = build_report(self.app.db_dir, self.out, self.filters.get("hardware"), self.filters.get("task"),
                                 self.filters.get("model"), ("md", "html"))
        except UserError as e:
            self.app.call_from_thread(self.show, None, str(e))
            return
        md = next(p for p in paths if p.name == "comparison.md")
        self.app.call_from_thread(self.show, md, None)

    def show(self, md, error) -> None:
        paths = self.query_one("#report-paths", Static)
        if error:
            paths.update(f"[red]{error}[/red]")
            return
        paths.update(f"Written: {md}  and  {md.with_suffix('.html')} (plots under {md.parent / 'plots'})")
        self.query_one(MarkdownViewer).document.update(md.read_text())
