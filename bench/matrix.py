"""Benchmark matrices: YAML files in ``bench/matrices/`` expanded into a list of runs.

    tunebench bench run --matrix smoke --dry-run
    python -m bench.matrix smoke          # prints the expanded runs

A matrix is data, not code. Shape (unknown keys are errors)::

    name: smoke
    description: what it measures and how long it takes
    defaults:                 # every run starts from these
      model: tiny-llama
      task: smoke
      seeds: [0]
      hp: {max_steps: 3}      # `tunebench train --hp` keys; learning_rate: tuned uses `bench tune`
      timeout_s: 300
      memory_limit_gb: 16    # optional RLIMIT_AS per run (exceeding it records oom)
    runs:                     # each entry is a diff over the defaults
      - stack: sft:lora
      - {stack: sft:bitfit, model: tiny-llama-bias}
      - stack: sft:lora
        grid: {hp.max_length: [256, 1024], model: [a, b]}   # cartesian product of the lists
      - stack: "sft:*"        # one run per registered parameterization (a new method joins by itself)

Each expanded run gets a ``config_hash`` over everything that changes its result (stack,
model, task, seed, hp, cfg, method_cfg); ``bench run --resume`` skips hashes that already have
ok records, and ``--shard i/n`` keeps the runs whose hash falls in shard i (stable when the
matrix is edited, so shards on different machines never overlap).
"""
from __future__ import annotations

import itertools
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.metrics import config_hash
from common.errors import UserError, unknown
from common.stack import HyperParams, StackSpec, parse_stack, parse_stack_string
from common.yamlfile import first_error, load_validated

MATRIX_DIR = Path(__file__).parent / "matrices"
GRID_KEYS = ("stack", "model", "task", "seed")
GRID_PREFIXES = ("hp.", "cfg.", "method_cfg.")
TUNED = "tuned"


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    task: str | None = None
    seeds: list[int] = Field(default=[0], min_length=1)
    hp: dict = {}
    cfg: dict = {}
    method_cfg: dict = {}
    timeout_s: float = Field(default=1800, gt=0)
    memory_limit_gb: float | None = Field(default=None, gt=0)
    tags: list[str] = []
    # A model per required feature (method card ``requires``), e.g. {bias terms: tiny-llama-bias}:
    # runs that name no model of their own use it when their method needs that feature.
    models_for: dict[str, str] = {}


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stack: str | None = None
    model: str | None = None
    task: str | None = None
    seeds: list[int] | None = Field(default=None, min_length=1)
    hp: dict = {}
    cfg: dict = {}
    method_cfg: dict = {}
    timeout_s: float | None = Field(default=None, gt=0)
    memory_limit_gb: float | None = Field(default=None, gt=0)
    tags: list[str] = []
    grid: dict[str, list] = {}


class MatrixSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    defaults: Defaults = Defaults()
    runs: list[Entry] = Field(min_length=1)


@dataclass
class Run:
    """One expanded matrix run: exactly the arguments of one ``tunebench train`` call."""

    matrix: str
    index: int
    stack: str
    model: str
    task: str
    seed: int
    hp: dict
    cfg: dict
    method_cfg: dict
    timeout_s: float
    memory_limit_gb: float | None = None
    tags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config_hash: str = ""

    @property
    def spec(self) -> StackSpec:
        """The run as the parsed stack value (common/stack.py)."""
        return parse_stack(self.stack, self.model, self.task, seed=self.seed, hp=dict(self.hp))

    @property
    def hyperparams(self) -> HyperParams:
        """The run's hyper-parameters with the defaults filled in (the learning rate as given)."""
        return HyperParams(**{k: v for k, v in self.hp.items() if k != "learning_rate" or v != TUNED})

    @property
    def stages(self) -> list[str]:
        """Stage labels, ``OBJECTIVE:METHOD``."""
        return [st.label for st in parse_stack_string(self.stack)]

    @property
    def objective(self) -> str:
        return parse_stack_string(self.stack)[-1].objective

    @property
    def method(self) -> str:
        return parse_stack_string(self.stack)[-1].method

    @property
    def label(self) -> str:
        return f"{self.stack} {self.model} {self.task} s{self.seed}"

    def hash_payload(self) -> dict:
        return {"stack": self.stack, "model": self.model, "task": self.task, "seed": self.seed,
                "hp": self.hp, "cfg": self.cfg, "method_cfg": self.method_cfg}

    def train_args(self, model: str | None = None) -> list[str]:
        """``tunebench train`` arguments (an argument list: never a shell string); ``model``
        replaces the matrix's model name with a resolved folder (``shape:`` models)."""
        args = ["--stack", self.stack, "--model", model or self.model, "--task", self.task, "--seed", str(self.seed)]
        for flag, values in (("--hp", self.hp), ("--cfg", self.cfg), ("--method-cfg", self.method_cfg)):
            for k, v in sorted(values.items()):
                args += [flag, f"{k}={_yaml_scalar(v)}"]
        return args


def _yaml_scalar(v) -> str:
    """Render a value so ``train``'s ``yaml.safe_load`` reads back the same value and type."""
    if isinstance(v, str):
        return v
    return json.dumps(v)


def matrix_names() -> list[str]:
    return sorted(p.stem for p in MATRIX_DIR.glob("*.yaml"))


def matrix_path(name_or_file: str) -> Path:
    p = Path(name_or_file).expanduser()
    if p.suffix in (".yaml", ".yml") or ("/" in name_or_file and os.path.lexists(p)):
        if not os.path.lexists(p):
            raise UserError(f"matrix file {p} does not exist")
        return p  # load's read_yaml refuses a folder, FIFO, device, binary or oversized file
    path = MATRIX_DIR / f"{name_or_file}.yaml"
    if not path.is_file():
        raise unknown("matrix", name_or_file, matrix_names())
    return path


def load(name_or_file: str) -> MatrixSpec:
    return load_validated(matrix_path(name_or_file), MatrixSpec, "matrix", "name, defaults and runs")


def _set(target: dict, key: str, value) -> None:
    for prefix in GRID_PREFIXES:
        if key.startswith(prefix):
            target[prefix[:-1]][key[len(prefix):]] = value
            return
    if key == "seed":
        target["seeds"] = [value]
    elif key in GRID_KEYS:
        target[key] = value
    else:
        raise UserError(f"grid key '{key}' is not one of {', '.join(GRID_KEYS)} or hp.X, cfg.X, method_cfg.X")


def expand(spec: MatrixSpec, tuned: dict | None = None) -> list[Run]:
    """Defaults + each entry (+ its grid) + seeds -> runs, validated like ``tunebench train``."""
    d = spec.defaults
    runs: list[Run] = []
    for n, entry in enumerate(spec.runs):
        grid = _stack_grid(entry)
        keys = list(grid)
        for key in keys:
            if not grid[key]:
                raise UserError(f"matrix {spec.name}: runs[{n}].grid.{key} is an empty list")
        for combo in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
            base = {"stack": entry.stack, "model": entry.model or d.model, "task": entry.task or d.task,
                    "seeds": entry.seeds or d.seeds, "hp": {**d.hp, **entry.hp}, "cfg": {**d.cfg, **entry.cfg},
                    "method_cfg": {**d.method_cfg, **entry.method_cfg}}
            for key, value in zip(keys, combo):
                _set(base, key, value)
            if not entry.model and "model" not in keys and base["stack"]:
                base["model"] = _model_for(base["stack"], d) or base["model"]
            for field_ in ("stack", "model", "task"):
                if not base[field_]:
                    raise UserError(f"matrix {spec.name}: runs[{n}] has no {field_} (set it there or in defaults)")
            for seed in base["seeds"]:
                run = Run(matrix=spec.name, index=len(runs), stack=base["stack"], model=base["model"],
                          task=base["task"], seed=int(seed), hp=dict(base["hp"]), cfg=dict(base["cfg"]),
                          method_cfg=dict(base["method_cfg"]), timeout_s=entry.timeout_s or d.timeout_s,
                          memory_limit_gb=entry.memory_limit_gb or d.memory_limit_gb,
                          tags=[*d.tags, *entry.tags])
                _resolve_tuned(run, tuned)
                _validate(run, f"matrix {spec.name}: runs[{n}]")
                run.config_hash = config_hash(run.hash_payload())
                runs.append(run)
    seen: dict[str, int] = {}
    for r in runs:
        if r.config_hash in seen:
            raise UserError(f"matrix {spec.name}: runs {seen[r.config_hash]} and {r.index} are identical ({r.label})")
        seen[r.config_hash] = r.index
    return runs


def _stack_grid(entry) -> dict:
    """The entry's grid with ``OBJECTIVE:*`` stacks expanded to every registered parameterization."""
    grid = dict(entry.grid)
    if entry.stack and "*" in entry.stack and "stack" not in grid:
        grid["stack"] = [entry.stack]
    if "stack" in grid:
        grid["stack"] = [s for stack in grid["stack"] for s in _wildcards(str(stack))]
    return grid


def _wildcards(stack: str) -> list[str]:
    if "*" not in stack:
        return [stack]
    from methods import PARAMETERIZATIONS

    return [stack.replace(":*", f":{name}") for name in sorted(PARAMETERIZATIONS)]


def _model_for(stack: str, d: Defaults) -> str | None:
    """The defaults' model for a feature the stack's last method requires (its card says which)."""
    from methods import parameterization

    method = parse_stack_string(stack)[-1].method
    return next((d.models_for[r] for r in parameterization(method).card.requires if r in d.models_for), None)


def _resolve_tuned(run: Run, tuned: dict | None) -> None:
    """``learning_rate: tuned`` -> the value ``bench tune`` stored, or the method default."""
    if run.hp.get("learning_rate") != TUNED:
        return
    if len(run.stages) != 1:
        raise UserError(f"learning_rate: tuned needs a single-stage run, got stack {run.stack}")
    from bench.tune import lookup

    value = lookup(run.model, run.objective, run.method, run.task, store=tuned)
    if value is None:
        del run.hp["learning_rate"]
        run.notes.append("lr not tuned yet: method default")
    else:
        run.hp["learning_rate"] = value
        run.notes.append(f"lr tuned {value:.3g}")


def _validate(run: Run, where: str) -> None:
    from bench.stack import validate

    try:
        validate(run.spec)
    except UserError as e:
        raise UserError(f"{where} ({run.stack}): {e}") from None
    except ValidationError as e:
        raise UserError(f"{where} ({run.stack}): {first_error(e)}") from None


def frame(runs: list[Run]) -> pl.DataFrame:
    """The runs as a frame (what ``--filter`` queries)."""
    return pl.DataFrame(
        [{"index": r.index, "stack": r.stack, "objective": r.objective, "method": r.method, "model": r.model,
          "task": r.task, "seed": r.seed, "stages": len(r.stages), "tags": ",".join(r.tags),
          "max_steps": r.hyperparams.max_steps, "batch_size": r.hyperparams.batch_size,
          "max_length": r.hyperparams.max_length, "grad_ckpt": r.hyperparams.grad_ckpt,
          "config_hash": r.config_hash} for r in runs],
        schema={"index": pl.Int64, "stack": pl.String, "objective": pl.String, "method": pl.String,
                "model": pl.String, "task": pl.String, "seed": pl.Int64, "stages": pl.Int64, "tags": pl.String,
                "max_steps": pl.Int64, "batch_size": pl.Int64, "max_length": pl.Int64, "grad_ckpt": pl.Boolean,
                "config_hash": pl.String},
    )


def apply_filter(runs: list[Run], expr: str | None) -> list[Run]:
    """Keep runs matching a SQL WHERE clause over ``frame(runs)``, e.g.
    ``method IN ('lora', 'dora') AND seed = 0`` or ``stack LIKE 'sft:%'``."""
    if not expr or not runs:
        return runs
    try:
        keep = pl.SQLContext(runs=frame(runs)).execute(f"SELECT index FROM runs WHERE {expr}", eager=True)
    except Exception as e:
        cols = ", ".join(frame(runs[:1]).columns)
        raise UserError(f"bad --filter '{expr}': {str(e).splitlines()[0]} (columns: {cols})") from None
    wanted = set(keep["index"].to_list())
    return [r for r in runs if r.index in wanted]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    i, sep, n = text.partition("/")
    try:
        i, n = int(i), int(n)
    except ValueError:
        i = n = -1
    if not sep or n < 1 or not 0 <= i < n:
        raise UserError(f"--shard '{text}' must be I/N with 0 <= I < N, e.g. 0/4 (as a job array index)")
    return i, n


def apply_shard(runs: list[Run], shard: tuple[int, int] | None) -> list[Run]:
    if shard is None:
        return runs
    i, n = shard
    return [r for r in runs if int(r.config_hash[:15], 16) % n == i]


if __name__ == "__main__":  # python -m bench.matrix NAME
    for r in expand(load(sys.argv[1] if len(sys.argv) > 1 else "smoke")):
        print(f"{r.index:4} {r.config_hash[:12]} {r.label} {' '.join(r.notes)}")
