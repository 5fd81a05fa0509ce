"""kto: Kahneman-Tversky Optimization — learns from unpaired thumbs-up / thumbs-down examples.

    tunebench train --stack kto:lora --model tiny-llama --task smoke --max-steps 3

Needs a batch of at least 2 (the KL baseline is estimated from mismatched pairs in a batch).
"""
from pydantic import Field

from common.errors import UserError
from methods._preference import train_on
from methods._trl import as_chat, as_reply, trl_args
from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.registry import register


class KTOSettings(MethodConfig):
    beta: float = Field(default=0.1, gt=0)
    desirable_weight: float = Field(default=1.0, gt=0)
    undesirable_weight: float = Field(default=1.0, gt=0)


CARD = ObjectiveCard(
    name="kto", family="preference", label="KTO", data="unpaired_preference", settings=KTOSettings,
    needs=("reference",), memory=ObjectiveMemory(lm_head="fused"),
    description="Kahneman-Tversky Optimization on unpaired good/bad labels (TRL KTOTrainer)",
)


def train(ctx: StageContext) -> StageResult:
    from trl import KTOConfig, KTOTrainer

    if ctx.hp.batch_size < 2:
        raise UserError("kto needs batch_size >= 2 (its KL baseline uses mismatched pairs within a batch)")
    cfg = ctx.config
    recs = [{"prompt": as_chat(r["prompt"]), "completion": as_reply(r["completion"]), "label": bool(r["label"])}
            for r in ctx.train]
    args = trl_args(KTOConfig, ctx, beta=cfg.beta, desirable_weight=cfg.desirable_weight,
                    undesirable_weight=cfg.undesirable_weight)
    return train_on(ctx, KTOTrainer, args, recs)


register(CARD, train=train)
