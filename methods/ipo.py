"""ipo: Identity Preference Optimization — DPO's data and reference with a squared loss.

    tunebench train --stack ipo:lora --model tiny-llama --task smoke --max-steps 3

IPO regresses the log-ratio margin to 1/(2·beta) instead of pushing it to infinity, which
resists overfitting on deterministic preferences (TRL DPOTrainer, loss_type "ipo").
"""
from pydantic import Field

from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.dpo import train_dpo
from methods.registry import register


class IPOSettings(MethodConfig):
    beta: float = Field(default=0.1, gt=0)


CARD = ObjectiveCard(
    name="ipo", family="preference", label="IPO", data="preference", settings=IPOSettings,
    needs=("reference",), memory=ObjectiveMemory(sequences=2, lm_head="fused"),
    description="Identity Preference Optimization (TRL DPOTrainer, loss_type ipo)",
)


def train(ctx: StageContext) -> StageResult:
    return train_dpo(ctx, ctx.train, "ipo")


register(CARD, train=train)
