"""Stacks checked against the method registry: every name, combination and setting before training.

    tunebench train --stack "cpt:full,sft:lora,dpo:lora" --model tiny-llama --task smoke --max-steps 3
    tunebench train examples/stack.yaml

The stack value itself (StackSpec, StageSpec, HyperParams, parsing) lives in common/stack.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from common.errors import UserError
from common.stack import HyperParams, StackSpec, StageSpec
from common.yamlfile import first_error
from methods import OBJECTIVES, check_combination, objective, parameterization


@dataclass(frozen=True)
class Supply:
    """How bench supplies one thing an objective card ``needs`` (methods/card.py NEEDS).

    hp: the HyperParams field that names it (a model name or folder), if any.
    from_stage: an earlier stage whose card ``provides`` it can supply it.
    required: nothing stands in when neither is there: ``validate`` refuses the stack.
    """

    hp: str | None = None
    from_stage: bool = False
    required: bool = False


# The trainer builds the other needs (reference, value_model) itself. What stands in when an
# optional one is missing: teacher -> one trained first (bench/train.py); judge -> the stage's
# starting model; checker -> always the task's own.
SUPPLIES = {
    "teacher": Supply(hp="teacher"),
    "reward_model": Supply(hp="reward_model", from_stage=True, required=True),
    "judge": Supply(hp="judge"),
    "checker": Supply(),
}


def stage_hp(spec: StackSpec, stage: StageSpec) -> HyperParams:
    """Defaults < stack hp < stage hp; the learning rate defaults to the method card's."""
    values = {"seed": spec.seed, **spec.hp, **stage.hp}
    try:
        hp = HyperParams(**values)
    except ValidationError as e:
        raise UserError(f"stage {stage.label}: bad hyper-parameter {first_error(e)}") from None
    if hp.learning_rate is None:
        hp.learning_rate = parameterization(stage.method).card.default_lr
    return hp


def providers(need: str) -> list[str]:
    """Objectives whose stages provide ``need`` to later stages (e.g. rm -> reward_model)."""
    return sorted(n for n, o in OBJECTIVES.items() if need in o.card.provides)


def check_needs(spec: StackSpec, i: int) -> None:
    """Stage i's required needs come from its hp or from an earlier stage that provides them."""
    st = spec.stages[i]
    card = objective(st.objective).card
    earlier = {p for s in spec.stages[:i] for p in objective(s.objective).card.provides}
    hp = stage_hp(spec, st)
    for need in card.needs:
        sup = SUPPLIES.get(need)
        if sup is None or not sup.required or (sup.hp and getattr(hp, sup.hp)) or need in earlier:
            continue
        words, by = need.replace("_", " "), providers(need)
        example = f"{by[0]}:{st.method},{st.label}" if by else st.label
        raise UserError(f"{st.objective} needs a {words}: put a stage that provides one before it "
                        f"({', '.join(by) or 'none registered'}, e.g. {example}) or pass --hp {sup.hp}=DIR")


def validate(spec: StackSpec) -> None:
    """Every name, combination and config checked before anything trains or is written."""
    from bench.taskdata import get_task

    for task in dict.fromkeys(t for t in [spec.task, *(st.task for st in spec.stages)] if t):
        get_task(task)  # an unknown name or a broken task file, before the training stack is imported
    n = len(spec.stages)
    for i, st in enumerate(spec.stages):
        obj, par = objective(st.objective), parameterization(st.method)
        check_combination(obj.name, par.name)
        obj.make_config(st.cfg)
        par.make_config(st.method_cfg)
        stage_hp(spec, st)
        # A later stage starts from this one's merge (a policy) or reads what it provides (a reward model).
        if i < n - 1 and par.merge is None:
            raise UserError(f"stage {st.label} cannot be followed by another stage: {par.name} cannot be merged "
                            "into the base; make it the last stage")
        check_needs(spec, i)
