"""Step 4, Recommendations: ranked stacks with a memory bar, hours and cost; details of the highlighted one.

    tunebench tui

Changing GPU, count, budget or goal in the top row re-ranks in a worker thread without leaving
the screen; Enter (or ctrl+n) on a row goes to Launch with that stack.
"""
from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.widgets import DataTable

from advisor.tui.messages import InputsChanged, RankingDone, RecommendationHighlighted
from advisor.tui.screens.base import WizardScreen
from advisor.tui.widgets.details import RecommendationDetails
from advisor.tui.widgets.inputs_bar import InputsBar
from advisor.tui.widgets.rec_table import RecommendationTable


class RecommendationsScreen(WizardScreen):
    STEP = "Recommendations"

    def compose(self) -> ComposeResult:
        from textual.containers import VerticalScroll
        from textual.widgets import Footer, Header, Static

        yield Header()
        yield InputsBar(self.app.inputs, id="inputs-bar")
        yield RecommendationTable(id="recs")
        with VerticalScroll(id="details-box"):
            yield RecommendationDetails(id="details")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.recs: list[dict] = []
        self.index = 0
        self.last_rank_s: float | None = None
        self.rank()
        self.query_one(RecommendationTable).focus()

    def rank(self) -> None:
        profile = self.app.inputs.profile(self.app.db_dir)
        advise = self.app.advise_fn

        def work() -> None:
            t0 = time.perf_counter()
            try:
                recs = [r.to_dict() for r in advise(profile)]
                self.post_message(RankingDone(recs, time.perf_counter() - t0))
            except Exception as e:  # a bad model folder or catalog edit: shown, not a crash
                self.post_message(RankingDone([], time.perf_counter() - t0, f"{type(e).__name__}: {e}"))

        self.set_status("ranking…")
        self.run_worker(work, thread=True, exclusive=True, group="rank")

    def on_ranking_done(self, event: RankingDone) -> None:
        self.recs, self.index, self.last_rank_s = event.recommendations, 0, event.seconds
        i = self.app.inputs
        self.app.recommendations = self.recs
        self.query_one(RecommendationTable).show(self.recs, i.memory_gib)
        self.query_one(RecommendationDetails).show(self.recs, 0, i.memory_gib)
        if event.error:
            self.set_status(event.error, error=True)
        else:
            where = "CPU" if i.gpu_key == "cpu" else f"{i.num_gpus}× {i.gpu_key}"
            self.set_status(f"{len(self.recs)} stacks for {i.goal} on {where}. Enter: launch the highlighted stack.")

    def on_inputs_changed(self, event: InputsChanged) -> None:
        i = self.app.inputs
        if event.changes["gpu_key"] != i.gpu_key:
            i.set_gpu(event.changes["gpu_key"], self.app.detected.host_memory_gib)
        i.num_gpus = event.changes["num_gpus"]
        i.budget_hours, i.budget_usd = event.changes["budget_hours"], event.changes["budget_usd"]
        i.goal = event.changes["goal"]
        self.rank()

    def on_recommendation_highlighted(self, event: RecommendationHighlighted) -> None:
        if 0 <= event.index < len(self.recs):
            self.index = event.index
            self.query_one(RecommendationDetails).show(self.recs, event.index, self.app.inputs.memory_gib)

    def on_input_submitted(self, event) -> None:
        event.stop()  # Enter in the top row confirms the value: back to the table, not off to Launch
        self.query_one(RecommendationTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_next()

    def extra_errors(self) -> list[str]:
        if not self.query_one(InputsBar).valid:
            return ["fix the value under the top row"]
        if not self.recs:
            return ["no stack to launch: change the inputs above"]
        return []

    def go_next(self) -> None:
        from advisor.tui.screens.launch import LaunchScreen

        self.app.push_screen(LaunchScreen(self.recs[self.index]))
