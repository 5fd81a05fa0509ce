"""The method registry: every parameterization and objective registers itself here.

A parameterization says *which* weights train (full, lora, qlora, bitfit, ...); an objective
says *what signal* trains them (sft, dpo, grpo, ...). Each lives in its own file in
``methods/`` and calls ``register(...)`` at import; ``methods/__init__.py`` imports them all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from methods.errors import UserError, unknown

FAMILIES = ("full", "selective", "additive", "reparameterized", "soft-prompt", "quantized")


@dataclass(frozen=True)
class Parameterization:
    """Which weights train, and how the base is stored.

    apply(model, cfg) -> model with only the method's weights trainable.
    save(model, dir) writes just what trained; load(base, dir, cfg) restores it on a fresh base.
    merge(model) -> a plain transformers model with the update folded in, or None if impossible.
    load_kwargs(cfg) -> extra ``from_pretrained`` kwargs (e.g. a BitsAndBytesConfig).
    step_hook(model, step) runs after every optimizer step (AdaLoRA's rank reallocation).
    run_defaults(hp) -> config values derived from the run (e.g. AdaLoRA's total_step = max_steps).
    """

    name: str
    family: str
    trains: str
    config: type[BaseModel]
    apply: Callable[[Any, BaseModel], Any]
    save: Callable[[Any, str], None]
    load: Callable[[Any, str, BaseModel], Any]
    merge: Callable[[Any], Any] | None = None
    load_kwargs: Callable[[BaseModel], dict] | None = None
    requires: tuple[str, ...] = ()
    zero_init: bool = False
    description: str = ""
    step_hook: Callable[[Any, int], None] | None = None
    run_defaults: Callable[[dict], dict] | None = None

    def make_config(self, values: dict | None = None) -> BaseModel:
        return validate_config(self.config, values, f"parameterization '{self.name}'")


@dataclass(frozen=True)
class Objective:
    """What signal trains the weights.

    data: the record format it consumes (text, prompt_completion, preference, ...).
    needs: extra models or tools (reference, reward model, teacher, judge, checker).
    train(ctx) runs the stage; see bench/train.py for the context it receives.
    incompatible: parameterization name -> reason it cannot be combined.
    head: "causal_lm" (policy) or "seq_cls" (a scalar-reward model, for rm).
    """

    name: str
    family: str
    data: str
    config: type[BaseModel]
    train: Callable[[Any], Any]
    needs: tuple[str, ...] = ()
    incompatible: dict[str, str] = field(default_factory=dict)
    head: str = "causal_lm"
    description: str = ""

    def make_config(self, values: dict | None = None) -> BaseModel:
        return validate_config(self.config, values, f"objective '{self.name}'")


PARAMETERIZATIONS: dict[str, Parameterization] = {}
OBJECTIVES: dict[str, Objective] = {}


def validate_config(cls: type[BaseModel], values: dict | None, what: str) -> BaseModel:
    try:
        return cls(**(values or {}))
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "config"
        raise UserError(f"{what}: bad value for '{loc}': {first['msg']}") from None


def register(item: Parameterization | Objective) -> Parameterization | Objective:
    table = PARAMETERIZATIONS if isinstance(item, Parameterization) else OBJECTIVES
    if item.name in table:
        raise ValueError(f"duplicate registration of {item.name}")
    if isinstance(item, Parameterization) and item.family not in FAMILIES:
        raise ValueError(f"{item.name}: family {item.family} not in {FAMILIES}")
    table[item.name] = item
    return item


def _load() -> None:
    from methods import load_all

    load_all()


def parameterization(name: str) -> Parameterization:
    _load()
    if name not in PARAMETERIZATIONS:
        raise unknown("parameterization", name, PARAMETERIZATIONS)
    return PARAMETERIZATIONS[name]


def objective(name: str) -> Objective:
    _load()
    if name not in OBJECTIVES:
        raise unknown("objective", name, OBJECTIVES)
    return OBJECTIVES[name]


def check_combination(objective_name: str, param_name: str) -> None:
    """Raise UserError if this objective cannot train with this parameterization."""
    obj, par = objective(objective_name), parameterization(param_name)
    if par.name in obj.incompatible:
        raise UserError(f"{obj.name} cannot train with {par.name}: {obj.incompatible[par.name]}")
