"""Step 5, Launch: the exact command and the generated stack YAML (editable), then start the run.

    tunebench tui

The fields regenerate the YAML; the YAML itself may be edited too, and what the text area holds
when you press ctrl+n is what runs (checked first the way ``tunebench train`` will check it).
"""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Select, Static, TextArea

from advisor.tui.messages import FieldChecked
from advisor.tui.plan import TRYOUT_MODELS, LaunchPlan, check_tryout_model, parse_number, parse_stack_yaml
from advisor.tui.screens.base import WizardScreen
from advisor.tui.screens.task import standard_tasks
from advisor.tui.widgets.field import Field


def _lr(text: str):
    return parse_number(text, "learning rate", allow_empty=True, minimum=0, strict_min=True)


def _out(text: str):
    p = Path(text.strip()).expanduser()
    if not text.strip():
        return None, "output folder is required"
    if p.exists() and not p.is_dir():
        return None, f"{p} exists and is not a folder"
    if p.is_dir() and any(p.iterdir()):
        return None, f"{p} is not empty; pick a new folder"
    return p, None


class LaunchScreen(WizardScreen):
    STEP = "Launch"

    def __init__(self, rec: dict):
        super().__init__()
        self.rec = rec

    def body(self) -> ComposeResult:
        i, app = self.app.inputs, self.app
        self.run_id = app.run_name()
        yield Static(f"[b]{self.rec['stack']}[/b] recommended on {self.rec['model']}. The try-out runs the same "
                     f"stack on a standard task; set the model to {self.rec['model']} (or a folder) for the real run.",
                     classes="hint")
        yield Field("Model", lambda t: (t.strip(), check_tryout_model(t)), i.tryout_model,
                    suggestions=list(TRYOUT_MODELS), id="model")
        tasks = standard_tasks()
        with Horizontal(classes="row"):
            yield Label("Task", classes="field-label")
            yield Select([(t, t) for t in tasks], value=i.tryout_task if i.tryout_task in tasks else tasks[0],
                         allow_blank=False, compact=True, id="task")
        yield Field("Max steps per stage", lambda t: parse_number(t, "steps", integer=True, minimum=1),
                    str(i.tryout_steps), id="steps")
        yield Field("Batch size", lambda t: parse_number(t, "batch size", integer=True, minimum=1), "4", id="batch")
        yield Field("Learning rate", _lr, "", placeholder="empty: default by method family", id="lr")
        yield Field("Output folder", _out, str(app.runs_dir / self.run_id), id="out")
        yield Static("", id="command")
        yield TextArea("", id="yaml", soft_wrap=False, tab_behavior="indent")
        yield Static("", id="yaml-error")

    def on_mount(self) -> None:
        super().on_mount()
        self.regenerate()

    def plan(self) -> LaunchPlan:
        f = {x.id: x for x in self.query(Field)}
        out = f["out"].value
        return LaunchPlan(stack=self.rec["stack"], model=f["model"].value, task=self.query_one("#task", Select).value,
                          max_steps=f["steps"].value, out=out, db=self.app.db_dir, events=out / "events.jsonl",
                          run_id=self.run_id, num_gpus=self.app.inputs.num_gpus, batch_size=f["batch"].value,
                          learning_rate=f["lr"].value)

    def regenerate(self) -> None:
        if any(not f.valid for f in self.query(Field)):
            return
        plan = self.plan()
        self.query_one("#command", Static).update(f"[b]Command[/b] {plan.display_command()}")
        self.query_one("#yaml", TextArea).text = plan.yaml_text()

    def on_field_checked(self, event: FieldChecked) -> None:
        super().on_field_checked(event)
        self.regenerate()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.regenerate()

    def extra_errors(self) -> list[str]:
        data, err = parse_stack_yaml(self.query_one("#yaml", TextArea).text)
        self.query_one("#yaml-error", Static).update(f"YAML: {err}" if err else "")
        return [f"YAML: {err}"] if err else []

    def go_next(self) -> None:
        from advisor.tui.process import TrainProcess
        from advisor.tui.screens.progress import ProgressScreen

        text = self.query_one("#yaml", TextArea).text
        data, _ = parse_stack_yaml(text)
        plan = self.plan()
        # What runs is the YAML as edited: the record-keeping plan follows it.
        plan.model, plan.task = data["model"], data["task"]
        plan.stack = ",".join(f"{s['objective']}:{s['method']}" for s in data["stages"])
        try:
            proc = TrainProcess(plan, text, env=self.app.child_env)
        except OSError as e:
            self.set_status(f"could not start the run: {e}", error=True)
            return
        self.app.active = proc
        self.app.push_screen(ProgressScreen(proc, title=f"{plan.stack} on {plan.model} / {plan.task}"))
