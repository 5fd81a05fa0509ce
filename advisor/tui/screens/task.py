"""Step 3, Task: goal, data on hand (and roughly how much), model, and the standard task for a try-out.

    tunebench tui
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Select, SelectionList, Static

from advisor.catalogs import models
from advisor.tui.plan import TRYOUT_MODELS, check_model, check_tryout_model, goal_options, parse_number
from advisor.tui.screens.base import WizardScreen
from advisor.tui.widgets.field import Field

DATA_HELP = {
    "corpus": "raw domain text (continued pretraining)",
    "pairs": "prompt -> response examples",
    "preferences": "chosen / rejected answer pairs",
    "feedback": "thumbs up / down on single answers",
    "checker": "a program that checks answers (verifiable reward)",
    "judge": "an AI judge with a written constitution",
}


def _model_check(text: str):
    err = check_model(text)
    return (text.strip(), err)


def _tryout_check(text: str):
    err = check_tryout_model(text)
    return (text.strip(), err)


def standard_tasks() -> list[str]:
    from bench.taskdata import list_tasks

    return [t.name for t in list_tasks()]


class TaskScreen(WizardScreen):
    STEP = "Task"

    def body(self) -> ComposeResult:
        i = self.app.inputs
        with Horizontal(classes="row"):
            yield Label("Goal", classes="field-label")
            yield Select([(label, key) for label, key in goal_options()], value=i.goal, allow_blank=False,
                         compact=True, id="goal")
        yield Static("Data on hand (space toggles):", classes="hint")
        yield SelectionList(*[(f"{k:<12} {DATA_HELP.get(k, '')}", k, k in i.data) for k in DATA_HELP],
                            compact=True, id="data")
        yield Field("Prompt/response pairs", lambda t: parse_number(t, "pairs", integer=True), str(i.pairs), id="pairs")
        yield Field("Preference pairs", lambda t: parse_number(t, "preference pairs", integer=True),
                    str(i.preferences), id="preferences")
        yield Field("Corpus tokens", lambda t: parse_number(t, "corpus tokens", integer=True), str(i.corpus_tokens),
                    id="corpus")
        yield Field("Model", _model_check, i.model, placeholder="empty: the advisor picks a size",
                    suggestions=sorted(models()), hint="a catalog name (e.g. llama-3.1-8b) or a local HF folder",
                    id="model")
        yield Static("Try-out on a standard task (what Launch runs on this machine):", classes="hint")
        tasks = standard_tasks()
        with Horizontal(classes="row"):
            yield Label("Try-out task", classes="field-label")
            yield Select([(t, t) for t in tasks], value=i.tryout_task if i.tryout_task in tasks else tasks[0],
                         allow_blank=False, compact=True, id="tryout-task")
        yield Field("Try-out model", _tryout_check, i.tryout_model, suggestions=list(TRYOUT_MODELS),
                    id="tryout-model")
        yield Field("Try-out steps", lambda t: parse_number(t, "steps", integer=True, minimum=1), str(i.tryout_steps),
                    id="tryout-steps")

    def extra_errors(self) -> list[str]:
        if not self.query_one("#data", SelectionList).selected:
            return ["pick at least one kind of data you have"]
        return []

    def save(self) -> None:
        i = self.app.inputs
        i.goal = self.query_one("#goal", Select).value
        i.data = tuple(self.query_one("#data", SelectionList).selected)
        i.pairs = self.query_one("#pairs", Field).value
        i.preferences = self.query_one("#preferences", Field).value
        i.corpus_tokens = self.query_one("#corpus", Field).value
        i.model = self.query_one("#model", Field).value or ""
        i.tryout_task = self.query_one("#tryout-task", Select).value
        i.tryout_model = self.query_one("#tryout-model", Field).value
        i.tryout_steps = self.query_one("#tryout-steps", Field).value

    def go_next(self) -> None:
        from advisor.tui.screens.recommendations import RecommendationsScreen

        self.app.push_screen(RecommendationsScreen())
