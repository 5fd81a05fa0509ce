"""The wizard's state without any screen: inputs, their validation, the advisor profile, the launch plan.

    python -m advisor.tui.plan        # prints the launch YAML and command for a sample recommendation

Screens read and write one ``Inputs`` object; ``check_*`` return an error line (or None) that a
screen shows inline next to the field; ``LaunchPlan`` renders the stack YAML and the exact
argument list of the child training run (``--launcher accelerate`` for more than one GPU).
``recommended_plan`` turns a ranked recommendation into that plan: its stack and model, the
user's data, and each stage's micro-batch / checkpointing from the estimate.
"""
from __future__ import annotations

import dataclasses
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from advisor.catalogs import Gpu, gpu, gpus, shape
from advisor.ranking import GOALS, Profile
from advisor.tui.fmt import usd
from advisor.tui.local_models import launchable
from common.errors import UserError
from common.stack import parse_stack_string

TRYOUT_MODELS = ("tiny-llama", "tiny-llama-bias", "smollm2-135m")
# The data kind (Task step list) a detected record format stands for, and the Profile count it sets.
KIND_OF_FORMAT = {"prompt_completion": ("pairs", "pairs"), "mixture": ("pairs", "pairs"),
                  "preference": ("preferences", "preferences"), "unpaired_preference": ("feedback", "feedback"),
                  "text": ("corpus", "corpus_tokens"), "prompt_with_checker": ("checker", "prompts")}


@dataclass
class Inputs:
    """Everything the user typed; defaults are a CPU machine asking for a chat model."""

    gpu_key: str = "cpu"
    num_gpus: int = 1
    memory_gib: float = 16.0
    usd_per_hour: float = 0.0
    budget_hours: float | None = 24.0
    budget_usd: float | None = None
    goal: str = "chat"
    start: str = "base"                   # the starting model: base or instruct (advisor/recipes.py STARTS)
    data: tuple[str, ...] = ("pairs",)
    pairs: int = 10_000
    preferences: int = 5_000
    corpus_tokens: int = 20_000_000
    feedback: int = 5_000
    prompts: int = 2_000
    epochs: int = 2
    model: str = ""                       # "" = the advisor tries a ladder of sizes
    data_path: str = ""                   # the user's own data ("" = none: sizes typed by hand)
    data_format: str | None = None        # None = detected from the columns
    data_info: object | None = None       # bench.userdata.DataInfo of data_path, once inspected
    tryout_task: str = "smoke"
    tryout_model: str = "tiny-llama"
    tryout_steps: int = 20

    def set_gpu(self, key: str, host_memory_gib: float | None = None) -> None:
        """Pick a catalog GPU (or cpu) and prefill its memory and price from the catalog."""
        g = gpu(key)
        self.gpu_key = g.key
        self.memory_gib = round(host_memory_gib, 1) if g.is_cpu and host_memory_gib else g.memory_gib
        self.usd_per_hour = g.usd_per_hour

    def gpu(self) -> Gpu:
        """The catalog GPU with the user's memory and price edits applied."""
        return dataclasses.replace(gpu(self.gpu_key), memory_gib=self.memory_gib, usd_per_hour=self.usd_per_hour)

    def seq_len(self) -> int:
        """The sequence length the estimate assumes: the data's p99 rounded up to 64, else the advisor's 1024."""
        info = self.data_info
        return info.suggested_max_length() if info is not None else Profile.seq_len

    def profile(self, db: Path | None, top: int = 5) -> Profile:
        return Profile(goal=self.goal, gpu=self.gpu(), num_gpus=self.num_gpus, budget_hours=self.budget_hours,
                       budget_usd=self.budget_usd, data=self.data, start=self.start, model=self.model or None,
                       pairs=self.pairs, preferences=self.preferences, corpus_tokens=self.corpus_tokens,
                       feedback=self.feedback, prompts=self.prompts,
                       epochs=self.epochs, seq_len=self.seq_len(),
                       db=db if db is not None and Path(db).exists() else None, top=top)


def data_counts(info) -> tuple[str | None, dict]:
    """(data kind, {Inputs field: value}) that a detected file stands for: its training rows or tokens."""
    kind, count = KIND_OF_FORMAT.get(info.format, (None, None))
    if kind is None:
        return None, {}
    tokens = getattr(info, "train_tokens", None)  # newer DataInfo; else rows x median length
    value = (tokens or info.train_rows * info.length_p50) if count == "corpus_tokens" else info.train_rows
    return kind, {count: int(value)}


def gpu_options() -> list[tuple[str, str]]:
    """(label, key) for a Select: CPU first, then the catalog GPUs by memory."""
    table = gpus()
    cpu = [(f"{table['cpu'].name}", "cpu")] if "cpu" in table else []
    rest = sorted((g for g in table.values() if not g.is_cpu), key=lambda g: (-g.memory_gib, g.key))
    return cpu + [(f"{g.key}  {g.memory_gib:g} GiB  {usd(g.usd_per_hour)}/h", g.key) for g in rest]


def goal_options() -> list[tuple[str, str]]:
    return [(f"{k}: {v}", k) for k, v in GOALS.items()]


def parse_number(text: str, name: str, *, integer: bool = False, allow_empty: bool = False,
                 minimum: float = 0.0, strict_min: bool = False) -> tuple[float | int | None, str | None]:
    """(value, None) or (None, error line naming the field and what is accepted)."""
    text = text.strip().replace("_", "").replace(",", "")
    if not text:
        return (None, None) if allow_empty else (None, f"{name} is required")
    try:
        value = int(float(text)) if integer and float(text).is_integer() else float(text)
    except ValueError:
        return None, f"{name} '{text}' is not a number"
    if integer and not isinstance(value, int):
        return None, f"{name} must be a whole number, got {text}"
    if value < minimum or (strict_min and value == minimum):
        op = ">" if strict_min else ">="
        return None, f"{name} must be {op} {minimum:g}, got {text}"
    return value, None


def check_model(text: str) -> str | None:
    """None if ``text`` is empty, a catalog model or a folder with an HF config.json."""
    if not text.strip():
        return None
    try:
        shape(text.strip())
    except UserError as e:
        p = Path(text.strip()).expanduser()
        if "/" in text or text.startswith((".", "~")):
            return f"model folder {p} not found or has no config.json" if not p.exists() else str(e)
        return str(e).split(" (accepted:")[0]
    return None


def check_tryout_model(text: str) -> str | None:
    """Models ``tunebench train`` can load here: the built-in names or an HF folder."""
    return launchable(text)[1]


def check_data_path(text: str) -> tuple[str, str | None]:
    """The data field's quick check (the full one, every row, runs in a worker): empty or an existing path."""
    t = text.strip()
    if t and not Path(t).expanduser().exists():
        return t, f"data {Path(t).expanduser()} does not exist"
    return t, None


def precision_for(g: Gpu, stage: dict | None = None) -> str:
    """The precision the estimate assumed: the stage's own if the advisor gives one, else by device."""
    if stage and stage.get("precision"):
        return stage["precision"]
    return "fp32" if g.is_cpu else ("bf16" if g.bf16 else "fp16")


@dataclass
class LaunchPlan:
    """One ``tunebench train`` run of a recommended stack (or a try-out of it on a standard task)."""

    stack: str
    model: str
    task: str | None
    max_steps: int
    out: Path
    db: Path
    events: Path
    run_id: str
    num_gpus: int = 1
    batch_size: int = 4
    learning_rate: float | None = None
    extra_hp: dict = field(default_factory=dict)
    data: str | None = None                 # the user's data (instead of a task)
    data_format: str | None = None
    max_length: int | None = None
    stage_hp: list[dict] = field(default_factory=list)   # per stage: batch_size, grad_ckpt (the estimate's)
    notes: list[str] = field(default_factory=list)       # comment lines at the top of the YAML

    def spec(self) -> dict:
        hp = {"max_steps": self.max_steps, **({} if self.stage_hp else {"batch_size": self.batch_size}),
              **self.extra_hp}
        if self.max_length is not None:
            hp["max_length"] = self.max_length
        if self.learning_rate is not None:
            hp["learning_rate"] = self.learning_rate
        stages = []
        for i, st in enumerate(parse_stack_string(self.stack)):
            stage = {"objective": st.objective, "method": st.method}
            if i < len(self.stage_hp) and self.stage_hp[i]:
                stage["hp"] = dict(self.stage_hp[i])
            stages.append(stage)
        source = ({"data": {"path": self.data, **({"format": self.data_format} if self.data_format else {})}}
                  if self.data else {"task": self.task})
        return {"model": self.model, **source, "seed": 0, "hp": hp, "stages": stages}

    def yaml_text(self) -> str:
        head = [f"# {self.display_command()}", *(f"# {n}" for n in self.notes),
                "# hp: max_steps, batch_size (micro-batch), grad_ckpt, max_length, learning_rate (default by method",
                "#     family), grad_accum, eval_limit; a stage may carry its own hp/cfg/method_cfg (bench/stack.py)"]
        return "\n".join(head) + "\n" + yaml.safe_dump(self.spec(), sort_keys=False)

    @property
    def yaml_path(self) -> Path:
        return self.out / "stack.yaml"

    def train_args(self) -> list[str]:
        """The train arguments; more than one GPU runs under ``--launcher accelerate`` (DDP)."""
        args = [str(self.yaml_path), "--out", str(self.out), "--force", "--db", str(self.db),
                "--events", str(self.events), "--run-id", self.run_id, "--quiet"]
        if self.num_gpus > 1:
            args += ["--launcher", "accelerate", "--num-processes", str(self.num_gpus)]
        return args

    def argv(self) -> list[str]:
        """The exact argument list the wizard runs (bench's child entry; never a shell string)."""
        from bench.child import entry_argv

        return entry_argv(self.train_args())

    def display_command(self) -> str:
        """The same command as a user would type it."""
        return shlex.join(["tunebench", "train", *self.train_args()])


def full_steps(train_rows: int, epochs: float, micro_batch: int, num_gpus: int) -> int:
    """Optimizer steps for ``epochs`` passes (a fraction: part of one) over ``train_rows`` at this micro-batch."""
    return max(1, math.ceil(epochs * train_rows / (micro_batch * num_gpus)))


def planned_passes(rec: dict, inputs: Inputs) -> tuple[float, str]:
    """Passes over the data the recommendation planned (its budget cut included) and how to say it."""
    epochs = rec.get("epochs") or inputs.epochs
    fraction = rec.get("data_fraction", 1.0) or 1.0
    if fraction < 1:
        return fraction, f"{fraction:.0%} of one pass (the budget cut)"
    return float(epochs), f"{epochs} epoch{'s' if epochs != 1 else ''}"


def recommended_plan(rec: dict, inputs: Inputs, *, out: Path, db: Path, run_id: str, task: str,
                     max_steps: int | None = None) -> LaunchPlan:
    """The recommendation as it would run: its stack, its model (the user's folder when they named one),
    the user's data (else ``task``), the estimate's micro-batch / checkpointing per stage.
    ``plan.model`` may be a model this machine lacks: ``launchable`` says so before anything starts."""
    g = inputs.gpu()
    stages = list(rec.get("stages") or [])
    stage_hp = [{"batch_size": int(st.get("micro_batch") or 1), "grad_ckpt": bool(st.get("grad_ckpt"))}
                for st in stages]
    info = inputs.data_info if inputs.data_path else None
    mb = stage_hp[0]["batch_size"] if stage_hp else 4
    passes, said = planned_passes(rec, inputs)
    planned = full_steps(info.train_rows, passes, mb, inputs.num_gpus) if info is not None else None
    if max_steps is None:
        max_steps = planned if planned is not None else inputs.tryout_steps
    # the sequence length the estimate used (the advisor may have shortened it to fit)
    seq = rec.get("seq_len") or inputs.seq_len()
    model = inputs.model or rec["model"]  # a user's folder comes back from the advisor as its folder's name
    precision = ", ".join(f"{st.get('stage', '?')} {precision_for(g, st)}" for st in stages) or precision_for(g)
    notes = [f"recommended: {rec['stack']} on {rec['model']} for {inputs.num_gpus}x {g.key}; precision {precision} "
             "(the trainer picks bf16 on a GPU that has it, fp32 on CPU)"]
    if info is not None:
        notes.append(f"data: {info.format}, {info.train_rows} train / {info.eval_rows} held-out rows; max_length "
                     + (f"= p99 {info.length_p99} {info.length_unit} rounded up to 64" if seq == inputs.seq_len()
                        else f"{seq} (the advisor's, to fit)"))
        if max_steps == planned:
            notes.append(f"max_steps = {said} x {info.train_rows} rows / micro-batch {mb}"
                         + (f" / {inputs.num_gpus} GPUs" if inputs.num_gpus > 1 else ""))
    if rec.get("gives_up"):
        notes.append(f"gives up: {rec['gives_up']}")
    return LaunchPlan(stack=rec["stack"], model=model, task=None if info is not None else task, max_steps=max_steps,
                      out=out, db=db, events=out / "events.jsonl", run_id=run_id, num_gpus=inputs.num_gpus,
                      data=str(Path(inputs.data_path).expanduser().resolve()) if info is not None else None,
                      data_format=inputs.data_format, max_length=seq if info is not None else None,
                      stage_hp=stage_hp, notes=notes)


def parse_stack_yaml(text: str) -> tuple[dict | None, str | None]:
    """Check the edited YAML the way ``tunebench train`` will: (spec, None) or (None, error line)."""
    from pydantic import ValidationError

    from bench.stack import HyperParams, StackSpec

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return None, f"not valid YAML: {str(e).splitlines()[0]}"
    if not isinstance(data, dict):
        return None, "the stack YAML must be a mapping with model, task (or data) and stages"
    try:
        spec = StackSpec(**data)
        for st in spec.stages:
            HyperParams(**{**spec.hp, **st.hp})
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        return None, f"'{where}': {err['msg']}" if where else err["msg"].removeprefix("Value error, ")
    bad = launchable(spec.model)[1]
    if bad:
        return None, bad
    try:
        from bench.stack import validate
        from bench.userdata import check_stack_data

        validate(spec)          # names, combinations, needs: what train checks before it loads a model
        check_stack_data(spec)  # every row of the user's data against each stage's objective
    except UserError as e:
        return None, str(e)
    return data, None


if __name__ == "__main__":
    from bench.home import home

    rec = {"stack": "sft:lora", "model": "smollm2-135m",
           "stages": [{"stage": "sft:lora", "peak_gib": 3.2, "micro_batch": 4, "grad_ckpt": False, "hours": 0.5}]}
    plan = recommended_plan(rec, Inputs(), out=home() / "runs" / "tui-demo", db=home() / "db", run_id="tui-demo",
                            task="smoke", max_steps=3)
    print(plan.yaml_text())
    print(plan.argv())
