"""dpo: Direct Preference Optimization (sigmoid loss on policy/reference log-ratio margins).

    tunebench train --stack sft:lora,dpo:lora --model tiny-llama --task smoke --max-steps 3

The reference is the stage's starting model: with a PEFT parameterization TRL disables the
adapter to get it (no second copy in memory); otherwise TRL keeps a frozen copy.
"""
from pydantic import BaseModel, Field

from methods._preference import chat_pairs, train_on
from methods._trl import StageContext, trl_args
from methods.registry import Objective, register


class DPOSettings(BaseModel):
    beta: float = Field(default=0.1, gt=0)


def train_dpo(ctx: StageContext, records: list[dict], loss_type: str) -> dict:
    from trl import DPOConfig, DPOTrainer

    args = trl_args(DPOConfig, ctx, beta=ctx.config.beta, loss_type=[loss_type], precompute_ref_log_probs=False)
    return train_on(ctx, DPOTrainer, args, chat_pairs(records))


def train(ctx: StageContext) -> dict:
    return train_dpo(ctx, ctx.train, "sigmoid")


register(Objective(
    name="dpo", family="preference", data="preference", config=DPOSettings, train=train, needs=("reference",),
    description="Direct Preference Optimization (TRL DPOTrainer, sigmoid loss) against the starting model",
))
