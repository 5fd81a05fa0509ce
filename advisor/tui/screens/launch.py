"""Step 5, Launch: the recommendation itself on the user's data (or a try-out on a standard task first).

    tunebench tui

Run = "the recommendation" (default): its stack, its model (the user's folder, or the catalog
model only if this machine has it -- otherwise the Model field says which model is missing and
how to get it), the user's data, and each stage's micro-batch / checkpointing from the estimate.
Run = "a try-out" trains the same stack on a standard task and a small local model. The fields
regenerate the YAML; the YAML may be edited too, and what the text area holds at ctrl+n is what
runs (checked first the way ``tunebench train`` checks it, the user's data row by row). The
launch's own estimate (this YAML on the planned GPU) is saved with the run for the Results screen.
"""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Select, Static, TextArea

from advisor.tui.fmt import gib, hours, usd
from advisor.tui.local_models import launchable
from advisor.tui.messages import FieldChecked
from advisor.tui.plan import TRYOUT_MODELS, LaunchPlan, parse_number, parse_stack_yaml, recommended_plan
from advisor.tui.screens.base import WizardScreen
from advisor.tui.screens.task import standard_tasks
from advisor.tui.widgets.field import Field

REC, TRYOUT = "rec", "tryout"


def _lr(text: str):
    return parse_number(text, "learning rate", allow_empty=True, minimum=0, strict_min=True)


def _int_or_empty(name: str, minimum: int):
    return lambda t: parse_number(t, name, integer=True, allow_empty=True, minimum=minimum)


def _out(text: str):
    p = Path(text.strip()).expanduser()
    if not text.strip():
        return None, "output folder is required"
    if p.exists() and not p.is_dir():
        return None, f"{p} exists and is not a folder"
    if p.is_dir() and any(p.iterdir()):
        return None, f"{p} is not empty; pick a new folder"
    return p, None


def _model(text: str):
    return launchable(text)


def estimate_line(stages: list[dict], where: str) -> str:
    """``Estimate on CPU: sft:lora peak 1.2 GiB, 35 s training; cost $0.00`` (per stage, then the total cost)."""
    parts, cost = [], 0.0
    for st in stages:
        if st.get("error"):
            parts.append(f"{st['stage']}: no estimate ({st['error']})")
            continue
        parts.append(f"{st['stage']} peak {gib(st['peak_gib'])}, {hours(st['hours'])} training")
        cost += st.get("cost_usd") or 0.0
    return f"[b]Estimate on {where}:[/b] " + "; ".join(parts) + f"; cost {usd(cost)}"


class LaunchScreen(WizardScreen):
    STEP = "Launch"

    def __init__(self, rec: dict):
        super().__init__()
        self.rec = rec

    def body(self) -> ComposeResult:
        i, app, rec = self.app.inputs, self.app, self.rec
        self.run_id = app.run_name()
        data = Path(i.data_path).name if i.data_path and i.data_info is not None else None
        on = f"your data ({data})" if data else "a standard task (no data file given in the Task step)"
        yield Static(f"[b]{rec['stack']}[/b] on {rec['model']}, {on}: peak {gib(rec.get('peak_gib'))}, "
                     f"{hours(rec.get('hours'))}, {usd(rec.get('cost_usd'))} for the full data.", classes="hint")
        with Horizontal(classes="row"):
            yield Label("Run", classes="field-label")
            yield Select([(f"the recommendation ({rec['stack']} on {rec['model']})", REC),
                          ("a try-out on a standard task first", TRYOUT)],
                         value=REC, allow_blank=False, compact=True, id="mode")
        yield Field("Model", _model, self.default_model(REC), suggestions=list(TRYOUT_MODELS), id="model")
        tasks = standard_tasks()
        with Horizontal(classes="row", id="task-row"):
            yield Label("Task", classes="field-label")
            yield Select([(t, t) for t in tasks], value=i.tryout_task if i.tryout_task in tasks else tasks[0],
                         allow_blank=False, compact=True, id="task")
        yield Field("Max steps per stage", lambda t: parse_number(t, "steps", integer=True, minimum=1),
                    str(self.rec_plan().max_steps), id="steps")
        yield Field("Micro-batch", _int_or_empty("micro-batch", 1), "",
                    placeholder="empty: the estimate's, per stage", id="batch")
        yield Field("Max length", _int_or_empty("max length", 8), self.default_max_length(REC),
                    placeholder="empty: 256 (bench default)", id="maxlen")
        yield Field("Learning rate", _lr, "", placeholder="empty: default by method family", id="lr")
        yield Field("Output folder", _out, str(app.runs_dir / self.run_id), id="out")
        yield Static("", id="estimate")
        yield Static("", id="command")
        yield TextArea("", id="yaml", soft_wrap=False, tab_behavior="indent")
        yield Static("", id="yaml-error")

    def on_mount(self) -> None:
        super().on_mount()
        self.show_mode()
        self.regenerate()

    # ---- defaults per mode ---------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self.query_one("#mode", Select).value

    def has_data(self) -> bool:
        i = self.app.inputs
        return bool(i.data_path) and i.data_info is not None

    def default_model(self, mode: str) -> str:
        i = self.app.inputs
        return (i.model or self.rec["model"]) if mode == REC else i.tryout_model

    def default_max_length(self, mode: str) -> str:
        return str(self.rec_plan().max_length) if mode == REC and self.has_data() else ""

    def rec_plan(self, **kw) -> LaunchPlan:
        out = kw.pop("out", self.app.runs_dir / self.run_id)
        return recommended_plan(self.rec, self.app.inputs, out=out, db=self.app.db_dir, run_id=self.run_id,
                                task=kw.pop("task", self.app.inputs.tryout_task), **kw)

    def show_mode(self) -> None:
        self.query_one("#task-row").display = self.mode == TRYOUT or not self.has_data()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "mode":
            i = self.app.inputs
            self.show_mode()
            self.query_one("#model-input", Input).value = self.default_model(self.mode)
            steps = self.rec_plan().max_steps if self.mode == REC else i.tryout_steps
            self.query_one("#steps-input", Input).value = str(steps)
            self.query_one("#batch-input", Input).value = "" if self.mode == REC else "4"
            self.query_one("#maxlen-input", Input).value = self.default_max_length(self.mode)
        self.regenerate()

    # ---- the plan --------------------------------------------------------------------------------

    def plan(self) -> LaunchPlan:
        f = {x.id: x for x in self.query(Field)}
        out, task = f["out"].value, self.query_one("#task", Select).value
        model = f["model"].value or f["model"].text.strip()  # a missing model still shows in the YAML
        if self.mode == REC:
            plan = self.rec_plan(out=out, task=task, max_steps=f["steps"].value)  # no data file: on ``task``
            if f["batch"].value:
                plan.stage_hp = [{**hp, "batch_size": f["batch"].value} for hp in plan.stage_hp]
        else:
            plan = LaunchPlan(stack=self.rec["stack"], model=model, task=task, max_steps=f["steps"].value, out=out,
                              db=self.app.db_dir, events=out / "events.jsonl", run_id=self.run_id,
                              num_gpus=self.app.inputs.num_gpus, batch_size=f["batch"].value or 4,
                              notes=[f"try-out of {self.rec['stack']} on the standard task {task}; the recommendation "
                                     "itself is Run = the recommendation"])
        plan.model, plan.max_length = model, f["maxlen"].value or None
        plan.learning_rate = f["lr"].value
        return plan

    def regenerate(self) -> None:
        if any(not f.valid for f in self.query(Field) if f.id != "model"):
            return
        plan = self.plan()
        self.query_one("#command", Static).update(f"[b]Command[/b] {plan.display_command()}")
        self.query_one("#yaml", TextArea).text = plan.yaml_text()
        self.query_one("#estimate", Static).update(self.estimate_text(plan.spec()))

    def launch_estimate(self, spec: dict) -> dict:
        from advisor.tui.estimates import launch_estimate

        return launch_estimate(spec, self.app.inputs, self.rec if self.mode == REC else None, self.run_id)

    def estimate_text(self, spec: dict) -> str:
        from common.errors import UserError

        i = self.app.inputs
        device = "CPU" if i.gpu_key == "cpu" else f"{i.num_gpus}x {i.gpu_key}"
        try:
            return estimate_line(self.launch_estimate(spec)["stages"], device)
        except (UserError, ValueError) as e:
            return f"[b]Estimate:[/b] not available ({str(e).splitlines()[0]})"

    def on_field_checked(self, event: FieldChecked) -> None:
        super().on_field_checked(event)
        self.regenerate()  # a field changed (Next's re-check of unchanged fields posts nothing)

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
        # What runs is the YAML as edited: the record-keeping plan and the estimate follow it.
        source = data.get("data")
        plan.model, plan.task = data["model"], data.get("task")
        plan.data = (source.get("path") if isinstance(source, dict) else source) or None
        plan.stack = ",".join(f"{s['objective']}:{s['method']}" for s in data["stages"])
        try:
            estimate = self.launch_estimate(data)
        except ValueError:
            estimate = None
        try:
            proc = TrainProcess(plan, text, env=self.app.child_env, estimate=estimate)
        except OSError as e:
            self.set_status(f"could not start the run: {e}", error=True)
            return
        self.app.active = proc
        where = Path(plan.data).name if plan.data else plan.task
        i = self.app.inputs
        device = "CPU" if i.gpu_key == "cpu" else f"{i.num_gpus}x {i.gpu_key}"
        self.app.push_screen(ProgressScreen(proc, title=f"{plan.stack} on {Path(plan.model).name} / {where}",
                                            estimate=estimate_line(estimate["stages"], device) if estimate else ""))
