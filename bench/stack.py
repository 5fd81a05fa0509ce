"""Stacks checked against the method registry: every name, combination and setting before training.

    tunebench train --stack "cpt:full,sft:lora,dpo:lora" --model tiny-llama --task smoke --max-steps 3
    tunebench train examples/stack.yaml

The stack value itself (StackSpec, StageSpec, HyperParams, parsing) lives in common/stack.py.
"""
from __future__ import annotations

from pydantic import ValidationError

from common.errors import UserError
from common.stack import HyperParams, StackSpec, StageSpec
from common.yamlfile import first_error
from methods import check_combination, objective, parameterization


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


def validate(spec: StackSpec) -> None:
    """Every name, combination and config checked before anything trains or is written."""
    n = len(spec.stages)
    for i, st in enumerate(spec.stages):
        obj, par = objective(st.objective), parameterization(st.method)
        check_combination(obj.name, par.name)
        obj.make_config(st.cfg)
        par.make_config(st.method_cfg)
        stage_hp(spec, st)
        if i < n - 1 and obj.head == "causal_lm" and par.merge is None:
            raise UserError(f"stage {st.label} cannot be followed by another stage: {par.name} cannot be merged "
                            "into the base; make it the last stage")
    if any(s.objective == "ppo" for s in spec.stages):
        for i, st in enumerate(spec.stages):
            if st.objective == "ppo" and not stage_hp(spec, st).reward_model and \
                    not any(s.objective == "rm" for s in spec.stages[:i]):
                raise UserError("ppo needs a reward model: put an rm stage before it (e.g. rm:lora,ppo:lora) "
                                "or pass --hp reward_model=DIR")
