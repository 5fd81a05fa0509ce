"""Step 3, Task: goal and starting point, the user's data (read and measured here), data on hand, model.

    tunebench tui

A data path is read in a worker (``bench.userdata.inspect_data``: every row validated, format
detected, example lengths in the model's tokens when the model is on this machine, else chars/4);
what it found is shown under the field, ticks its kind of data, fills its row count, and its
p99 length becomes the sequence length the estimate uses. Next waits for the read and refuses a
file that does not validate. Without a path, typed sizes drive the estimate as before.
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Select, SelectionList, Static

from advisor.catalogs import models
from advisor.recipes import DATA_KINDS, STARTS
from advisor.tui.fmt import count
from advisor.tui.messages import DataInspected, FieldChecked
from advisor.tui.plan import check_data_path, check_model, data_counts, goal_options, parse_number
from advisor.tui.screens.base import WizardScreen
from advisor.tui.widgets.field import Field

COUNT_FIELDS = {"pairs": "pairs", "preferences": "preferences", "corpus_tokens": "corpus"}


def _model_check(text: str):
    err = check_model(text)
    return (text.strip(), err)


def standard_tasks() -> list[str]:
    from bench.taskdata import list_tasks

    return [t.name for t in list_tasks()]


def format_options() -> list[tuple[str, str]]:
    from bench.userdata import INPUT_FORMATS

    return [("detect from the columns", "detect"), *((f, f) for f in INPUT_FORMATS)]


def detected_text(info) -> str:
    """``jsonl, prompt_completion: 50 rows (45 train, 5 held out); length p50 38 / p90 52 / p99 60 tokens``."""
    split = "held-out split given" if info.splits_given else "held out by hash"
    extra = f"; ignored columns {', '.join(info.ignored_columns)}" if info.ignored_columns else ""
    return (f"[b]Detected:[/b] {info.kind}, {info.input_format}"
            f"{'' if info.input_format == info.format else f' (trains as {info.format})'}: {count(info.rows)} rows "
            f"({count(info.train_rows)} train, {count(info.eval_rows)} {split}); length p50 {info.length_p50} / "
            f"p90 {info.length_p90} / p99 {info.length_p99} {info.length_unit}; trains "
            f"{', '.join(info.objectives) or 'no objective'}{extra}")


class TaskScreen(WizardScreen):
    STEP = "Task"

    def body(self) -> ComposeResult:
        i = self.app.inputs
        self.inspected_key: tuple | None = None
        self.data_error: str | None = None
        with Horizontal(classes="row"):
            yield Label("Goal", classes="field-label")
            yield Select([(label, key) for label, key in goal_options()], value=i.goal, allow_blank=False,
                         compact=True, id="goal")
        with Horizontal(classes="row"):
            yield Label("Start from", classes="field-label")
            yield Select([(f"a {s} model", s) for s in STARTS], value=i.start, allow_blank=False, compact=True,
                         id="start")
        yield Field("Your data", check_data_path, i.data_path, placeholder="empty: give rough sizes below",
                    hint=".jsonl .json .csv .tsv .parquet or a datasets folder; launched as the training data",
                    id="datapath")
        with Horizontal(classes="row"):
            yield Label("Data format", classes="field-label")
            yield Select(format_options(), value=i.data_format or "detect", allow_blank=False, compact=True,
                         id="format")
        yield Static("", id="data-detected")
        yield Field("Model", _model_check, i.model, placeholder="empty: the advisor picks a size",
                    suggestions=sorted(models()), hint="a catalog name (e.g. llama-3.1-8b) or a local HF folder",
                    id="model")
        yield Static("Data on hand (space toggles):", classes="hint")
        yield SelectionList(*[(f"{k:<12} {help}", k, k in i.data) for k, help in DATA_KINDS.items()],
                            compact=True, id="data")
        yield Field("Prompt/response pairs", lambda t: parse_number(t, "pairs", integer=True), str(i.pairs), id="pairs")
        yield Field("Preference pairs", lambda t: parse_number(t, "preference pairs", integer=True),
                    str(i.preferences), id="preferences")
        yield Field("Corpus tokens", lambda t: parse_number(t, "corpus tokens", integer=True), str(i.corpus_tokens),
                    id="corpus")

    def on_mount(self) -> None:
        super().on_mount()
        self.inspect()

    # ---- the user's data -----------------------------------------------------------------------

    def data_key(self) -> tuple:
        fmt = self.query_one("#format", Select).value
        return (self.query_one("#datapath", Field).text.strip(), None if fmt in ("detect", Select.BLANK) else fmt,
                self.query_one("#model", Field).text.strip())

    def inspect(self) -> None:
        """Read the data in a worker when the path, format or model changed (the model gives the tokenizer)."""
        key = self.data_key()
        path, fmt, model = key
        if key == self.inspected_key:
            return
        self.inspected_key, self.data_error = key, None
        shown = self.query_one("#data-detected", Static)
        if not path or not self.query_one("#datapath", Field).valid:
            self.app.inputs.data_info = None
            shown.update("")
            return
        shown.update(f"reading {path}…")

        def work() -> None:
            from advisor.tui.local_models import tokenizer_for
            from bench.userdata import inspect_data
            from common.errors import UserError

            try:
                tok = tokenizer_for(model) if check_model(model) is None else None
                self.post_message(DataInspected(key, inspect_data(path, fmt, tokenizer=tok), None))
            except UserError as e:
                self.post_message(DataInspected(key, None, str(e)))
            except Exception as e:  # a tokenizer that will not load: the lengths fall back to chars/4
                try:
                    self.post_message(DataInspected(key, inspect_data(path, fmt), None))
                except UserError as e2:
                    self.post_message(DataInspected(key, None, str(e2)))
                else:
                    self.app.call_from_thread(self.set_status, f"tokenizer of {model}: {type(e).__name__}: {e}")

        self.run_worker(work, thread=True, exclusive=True, group="inspect")

    def on_data_inspected(self, event: DataInspected) -> None:
        if event.key != self.inspected_key:
            return  # an older read: the fields changed since
        shown = self.query_one("#data-detected", Static)
        self.data_error = event.error
        self.app.inputs.data_info = event.info
        shown.set_class(event.error is not None, "-error")
        if event.error:
            shown.update(f"[b]Data:[/b] {event.error}")
            return
        shown.update(detected_text(event.info))
        kind, counts = data_counts(event.info)
        if kind:
            self.query_one("#data", SelectionList).select(kind)
        for name, value in counts.items():
            if name in COUNT_FIELDS:
                self.query_one(f"#{COUNT_FIELDS[name]}-input", Input).value = str(value)
            else:
                setattr(self.app.inputs, name, value)

    def on_field_checked(self, event: FieldChecked) -> None:
        super().on_field_checked(event)
        if event.field_id in ("datapath", "model"):
            self.inspect()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "format":
            self.inspect()

    def extra_errors(self) -> list[str]:
        errors = []
        if self.data_key() != self.inspected_key:
            self.inspect()
        if self.data_key()[0] and self.app.inputs.data_info is None:
            errors.append(f"data: {self.data_error}" if self.data_error else "still reading the data; try again")
        if not self.query_one("#data", SelectionList).selected:
            errors.append("pick at least one kind of data you have")
        return errors

    def save(self) -> None:
        i = self.app.inputs
        i.goal = self.query_one("#goal", Select).value
        i.start = self.query_one("#start", Select).value
        i.data_path, i.data_format, _ = self.data_key()
        i.data = tuple(self.query_one("#data", SelectionList).selected)
        i.pairs = self.query_one("#pairs", Field).value
        i.preferences = self.query_one("#preferences", Field).value
        i.corpus_tokens = self.query_one("#corpus", Field).value
        i.model = self.query_one("#model", Field).value or ""

    def go_next(self) -> None:
        from advisor.tui.screens.recommendations import RecommendationsScreen

        self.app.push_screen(RecommendationsScreen())
