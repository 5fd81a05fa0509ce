"""simpo: Simple Preference Optimization — length-normalised reward margin with a target gap.

    tunebench train --stack simpo:lora --model tiny-llama --task smoke --max-steps 3

Reference-free; trained with TRL's CPO trainer with loss_type "simpo" and cpo_alpha 0 (pure
SimPO, no behaviour-cloning term), as TRL documents it.
"""
from pydantic import Field

from methods._preference import chat_pairs, prompt_logits_refusal, train_on
from methods._trl import trl_args
from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.registry import register


class SimPOSettings(MethodConfig):
    beta: float = Field(default=2.0, gt=0)
    gamma_beta_ratio: float = Field(default=0.5, ge=0, description="target margin gamma as a fraction of beta")


CARD = ObjectiveCard(
    name="simpo", family="preference", label="SimPO", data="preference", settings=SimPOSettings,
    memory=ObjectiveMemory(sequences=2),
    incompatible={"prompt": prompt_logits_refusal("trl.experimental.cpo.CPOTrainer")},
    description="SimPO, reference-free length-normalised margin (trl.experimental.cpo, loss_type simpo)",
)


def train(ctx: StageContext) -> StageResult:
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    cfg = ctx.config
    args = trl_args(CPOConfig, ctx, loss_type="simpo", cpo_alpha=0.0, beta=cfg.beta,
                    simpo_gamma=cfg.gamma_beta_ratio * cfg.beta, max_completion_length=ctx.hp.max_length // 2)
    return train_on(ctx, CPOTrainer, args, chat_pairs(ctx.train))


register(CARD, train=train)
