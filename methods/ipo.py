"""ipo: Identity Preference Optimization — DPO's data and reference with a squared loss.

    tunebench train --stack ipo:lora --model tiny-llama --task smoke --max-steps 3

IPO regresses the log-ratio margin to 1/(2·beta) instead of pushing it to infinity, which
resists overfitting on deterministic preferences (TRL DPOTrainer, loss_type "ipo").
"""
from pydantic import BaseModel, Field

from methods._trl import StageContext
from methods.dpo import train_dpo
from methods.registry import Objective, register


class IPOSettings(BaseModel):
    beta: float = Field(default=0.1, gt=0)


def train(ctx: StageContext) -> dict:
    return train_dpo(ctx, ctx.train, "ipo")


register(Objective(
    name="ipo", family="preference", data="preference", config=IPOSettings, train=train, needs=("reference",),
    description="Identity Preference Optimization (TRL DPOTrainer, loss_type ipo)",
))
