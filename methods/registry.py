"""The method registry: every parameterization and objective registers its card and implementation.

    python -c "from methods.registry import cards; print(sorted(cards()))"

A parameterization says *which* weights train (full, lora, qlora, bitfit, ...); an objective
says *what signal* trains them (sft, dpo, grpo, ...). Each lives in ``methods/<name>.py``, which
declares its card (methods/card.py) and calls ``register(CARD, ...)`` with the functions that
implement it. Method modules import no torch at module level, so loading every card is cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel

from common.errors import UserError, unknown
from methods.card import FAMILIES, ObjectiveCard, ParamCard

__all__ = ["FAMILIES", "Objective", "Parameterization", "cards", "check_combination", "objective",
           "parameterization", "register"]


@dataclass(frozen=True)
class Parameterization:
    """A card plus its implementation.

    apply(model, cfg) -> model with only the method's weights trainable.
    save(model, dir) writes just what trained; load(base, dir, cfg) restores it on a fresh base.
    merge(model) -> a plain transformers model with the update folded in (only if card.mergeable).
    load_kwargs(cfg) -> extra ``from_pretrained`` kwargs (e.g. a BitsAndBytesConfig).
    step_hook(model, step) runs after every optimizer step (AdaLoRA's rank reallocation).
    run_defaults(hp: HyperParams) -> settings derived from the run (e.g. AdaLoRA's total_step = max_steps).
    """

    card: ParamCard
    apply: Callable[[Any, BaseModel], Any]
    save: Callable[[Any, str], None]
    load: Callable[[Any, str, BaseModel], Any]
    merge: Callable[[Any], Any] | None = None
    load_kwargs: Callable[[BaseModel], dict] | None = None
    step_hook: Callable[[Any, int], None] | None = None
    run_defaults: Callable[[Any], dict] | None = None

    def __post_init__(self):
        if self.card.mergeable != (self.merge is not None):
            raise ValueError(f"{self.card.name}: card.mergeable={self.card.mergeable} but merge is {self.merge}")

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def family(self) -> str:
        return self.card.family

    def make_config(self, values: dict | None = None) -> BaseModel:
        return self.card.make_config(values)


@dataclass(frozen=True)
class Objective:
    """A card plus ``train(ctx) -> StageResult`` (methods/context.py)."""

    card: ObjectiveCard
    train: Callable[[Any], Any]

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def head(self) -> str:
        return self.card.head

    @property
    def data(self) -> str:
        return self.card.data

    def make_config(self, values: dict | None = None) -> BaseModel:
        return self.card.make_config(values)


PARAMETERIZATIONS: dict[str, Parameterization] = {}
OBJECTIVES: dict[str, Objective] = {}


def register(card: ParamCard | ObjectiveCard, **impl) -> Parameterization | Objective:
    """Register a card with its implementation functions (see the two classes above)."""
    item = Parameterization(card=card, **impl) if isinstance(card, ParamCard) else Objective(card=card, **impl)
    table = PARAMETERIZATIONS if isinstance(item, Parameterization) else OBJECTIVES
    if card.name in table:
        raise ValueError(f"duplicate registration of {card.name}")
    table[card.name] = item
    return item


def _load() -> None:
    from methods import load_all

    load_all()


def cards() -> dict[str, ParamCard | ObjectiveCard]:
    """Every card by name (parameterization and objective names never collide)."""
    _load()
    return {**{n: p.card for n, p in PARAMETERIZATIONS.items()}, **{n: o.card for n, o in OBJECTIVES.items()}}


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
    if par.name in obj.card.incompatible:
        raise UserError(f"{obj.name} cannot train with {par.name}: {obj.card.incompatible[par.name]}")
