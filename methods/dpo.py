"""dpo: Direct Preference Optimization (sigmoid loss on policy/reference log-ratio margins).

    tunebench train --stack sft:lora,dpo:lora --model tiny-llama --task smoke --max-steps 3

The reference is the stage's starting model: with a PEFT parameterization TRL disables the
adapter to get it (no second copy in memory); otherwise TRL keeps a frozen copy.
"""
from pydantic import Field

from methods._preference import chat_pairs, train_on
from methods._trl import trl_args
from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.registry import register


class DPOSettings(MethodConfig):
    beta: float = Field(default=0.1, gt=0)


CARD = ObjectiveCard(
    name="dpo", family="preference", label="DPO", data="preference", settings=DPOSettings,
    needs=("reference",), memory=ObjectiveMemory(sequences=2, lm_head="fused"),
    description="Direct Preference Optimization (TRL DPOTrainer, sigmoid loss) against the starting model",
)


def train_dpo(ctx: StageContext, records: list[dict], loss_type: str) -> StageResult:
    from trl import DPOConfig, DPOTrainer

    args = trl_args(DPOConfig, ctx, beta=ctx.config.beta, loss_type=[loss_type], precompute_ref_log_probs=False)
    return train_on(ctx, DPOTrainer, args, chat_pairs(records))


def train(ctx: StageContext) -> StageResult:
    return train_dpo(ctx, ctx.train, "sigmoid")


register(CARD, train=train)
