"""orpo: Odds-Ratio Preference Optimization — SFT loss plus an odds-ratio penalty, no reference.

    tunebench train --stack orpo:lora --model tiny-llama --task smoke --max-steps 3

Reference-free, so it saves the reference forward pass DPO needs (trl.experimental.orpo).
"""
from pydantic import BaseModel, Field

from methods._preference import chat_pairs, train_on
from methods._trl import StageContext, trl_args
from methods.registry import Objective, register


class ORPOSettings(BaseModel):
    beta: float = Field(default=0.1, gt=0, description="weight of the odds-ratio term (lambda in the paper)")


def train(ctx: StageContext) -> dict:
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    args = trl_args(ORPOConfig, ctx, beta=ctx.config.beta, max_completion_length=int(ctx.hp["max_length"]) // 2)
    return train_on(ctx, ORPOTrainer, args, chat_pairs(ctx.train))


register(Objective(
    name="orpo", family="preference", data="preference", config=ORPOSettings, train=train,
    description="Odds-Ratio Preference Optimization, reference-free (trl.experimental.orpo.ORPOTrainer)",
))
