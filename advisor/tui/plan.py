"""The wizard's state without any screen: inputs, their validation, the advisor profile, the launch plan.

    python -m advisor.tui.plan        # prints the stack YAML and the command for a CPU try-out

Screens read and write one ``Inputs`` object; ``check_*`` return an error line (or None) that a
screen shows inline next to the field; ``LaunchPlan`` renders the stack YAML and the exact
argument list of the child training run (``--launcher accelerate`` for more than one GPU).
"""
from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from advisor.catalogs import Gpu, gpu, gpus, shape
from advisor.ranking import DATA_KINDS, GOALS, Profile
from common.errors import UserError
from common.stack import parse_stack_string

TRYOUT_MODELS = ("tiny-llama", "tiny-llama-bias", "smollm2-135m")


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
    data: tuple[str, ...] = ("pairs",)
    pairs: int = 10_000
    preferences: int = 5_000
    corpus_tokens: int = 20_000_000
    model: str = ""                       # "" = the advisor tries a ladder of sizes
    tryout_task: str = "smoke"
    tryout_model: str = "tiny-llama"
    tryout_steps: int = 20

    def set_gpu(self, key: str, host_memory_gib: float | None = None) -> None:
        """Pick a catalog GPU (or cpu) and prefill its memory and price from the catalog."""
        g = gpu(key)
        self.gpu_key = g.key
        self.memory_gib = host_memory_gib if g.is_cpu and host_memory_gib else g.memory_gib
        self.usd_per_hour = g.usd_per_hour

    def gpu(self) -> Gpu:
        """The catalog GPU with the user's memory and price edits applied."""
        return dataclasses.replace(gpu(self.gpu_key), memory_gib=self.memory_gib, usd_per_hour=self.usd_per_hour)

    def profile(self, db: Path | None, top: int = 5) -> Profile:
        return Profile(goal=self.goal, gpu=self.gpu(), num_gpus=self.num_gpus, budget_hours=self.budget_hours,
                       budget_usd=self.budget_usd, data=self.data, model=self.model or None, pairs=self.pairs,
                       preferences=self.preferences, corpus_tokens=self.corpus_tokens,
                       db=db if db is not None and Path(db).exists() else None, top=top)


def gpu_options() -> list[tuple[str, str]]:
    """(label, key) for a Select: CPU first, then the catalog GPUs by memory."""
    table = gpus()
    cpu = [(f"{table['cpu'].name}", "cpu")] if "cpu" in table else []
    rest = sorted((g for g in table.values() if not g.is_cpu), key=lambda g: (-g.memory_gib, g.key))
    return cpu + [(f"{g.key}  {g.memory_gib:g} GiB  ${g.usd_per_hour:.2f}/h", g.key) for g in rest]


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
    t = text.strip()
    if not t:
        return "model is required"
    if t in TRYOUT_MODELS:
        return None
    p = Path(t).expanduser()
    if (p / "config.json").is_file():
        return None
    return f"model '{t}' is not one of {', '.join(TRYOUT_MODELS)} nor a folder with config.json"


@dataclass
class LaunchPlan:
    """One ``tunebench train`` run of a recommended stack."""

    stack: str
    model: str
    task: str
    max_steps: int
    out: Path
    db: Path
    events: Path
    run_id: str
    num_gpus: int = 1
    batch_size: int = 4
    learning_rate: float | None = None
    extra_hp: dict = field(default_factory=dict)

    def spec(self) -> dict:
        hp = {"max_steps": self.max_steps, "batch_size": self.batch_size, **self.extra_hp}
        if self.learning_rate is not None:
            hp["learning_rate"] = self.learning_rate
        stages = [{"objective": st.objective, "method": st.method} for st in parse_stack_string(self.stack)]
        return {"model": self.model, "task": self.task, "seed": 0, "hp": hp, "stages": stages}

    def yaml_text(self) -> str:
        head = (f"# {self.display_command()}\n"
                "# hp: max_steps, batch_size, learning_rate (default by method family), max_length, grad_accum,\n"
                "#     eval_limit, metric_limit; a stage may carry its own hp/cfg/method_cfg (bench/stack.py)\n")
        return head + yaml.safe_dump(self.spec(), sort_keys=False)

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


def parse_stack_yaml(text: str) -> tuple[dict | None, str | None]:
    """Check the edited YAML the way ``tunebench train`` will: (spec, None) or (None, error line)."""
    from pydantic import ValidationError

    from bench.stack import HyperParams, StackSpec

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return None, f"not valid YAML: {str(e).splitlines()[0]}"
    if not isinstance(data, dict):
        return None, "the stack YAML must be a mapping with model, task and stages"
    try:
        spec = StackSpec(**data)
        for st in spec.stages:
            HyperParams(**{**spec.hp, **st.hp})
    except ValidationError as e:
        err = e.errors()[0]
        return None, f"'{'.'.join(str(x) for x in err['loc'])}': {err['msg']}"
    bad = check_tryout_model(spec.model)
    if bad:
        return None, bad
    return data, None


if __name__ == "__main__":
    from bench.home import home

    plan = LaunchPlan(stack="sft:lora", model="tiny-llama", task="smoke", max_steps=3, out=home() / "runs" / "tui-demo",
                      db=home() / "db", events=home() / "runs" / "tui-demo" / "events.jsonl", run_id="tui-demo")
    print(plan.yaml_text())
    print(plan.argv())
