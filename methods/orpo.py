"""orpo: Odds-Ratio Preference Optimization — SFT loss plus an odds-ratio penalty, no reference.

    tunebench train --stack orpo:lora --model tiny-llama --task smoke --max-steps 3

Reference-free, so it saves the reference forward pass DPO needs (trl.experimental.orpo).
"""
from pydantic import Field

from methods._preference import chat_pairs, prompt_logits_refusal, train_on
from methods._trl import trl_args
from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.registry import register


class ORPOSettings(MethodConfig):
    beta: float = Field(default=0.1, gt=0, description="weight of the odds-ratio term (lambda in the paper)")


CARD = ObjectiveCard(
    name="orpo", family="preference", label="ORPO", data="preference", settings=ORPOSettings,
    memory=ObjectiveMemory(sequences=2, nll_share=0.5),
    incompatible={"prompt": prompt_logits_refusal("trl.experimental.orpo.ORPOTrainer")},
    description="Odds-Ratio Preference Optimization, reference-free (trl.experimental.orpo.ORPOTrainer)",
)


def train(ctx: StageContext) -> StageResult:
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    args = trl_args(ORPOConfig, ctx, beta=ctx.config.beta, max_completion_length=ctx.hp.max_length // 2)
    return train_on(ctx, ORPOTrainer, args, chat_pairs(ctx.train))


register(CARD, train=train)
