"""rm: reward model — a scalar head trained with the pairwise (Bradley-Terry) loss.

    tunebench train --stack rm:lora --model tiny-llama --task smoke --max-steps 3

The base is loaded as a sequence classifier (one logit); the new ``score`` head always
trains alongside the parameterization. Pairwise accuracy on the eval pairs is reported before
and after. The result feeds ``ppo`` as its reward (stack ``rm:lora,ppo:lora``).
"""
from pydantic import Field

from methods._preference import chat_pairs
from methods._reward import pairwise_accuracy
from methods._trl import dataset, run_trainer, trl_args
from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.registry import register


class RMSettings(MethodConfig):
    center_rewards_coefficient: float | None = Field(default=None, ge=0)


CARD = ObjectiveCard(
    name="rm", family="reward-model", label="Reward model", data="preference", settings=RMSettings,
    head="seq_cls", provides=("reward_model",), memory=ObjectiveMemory(sequences=2),
    description="reward model: scalar head, pairwise loss on preference pairs (TRL RewardTrainer)",
)


def train(ctx: StageContext) -> StageResult:
    from trl import RewardConfig, RewardTrainer

    pairs = ctx.eval or ctx.train
    acc_before = pairwise_accuracy(ctx.model, ctx.tokenizer, pairs)
    args = trl_args(RewardConfig, ctx, center_rewards_coefficient=ctx.config.center_rewards_coefficient)
    trainer = RewardTrainer(model=ctx.model, args=args, train_dataset=dataset(chat_pairs(ctx.train)),
                            processing_class=ctx.tokenizer, callbacks=ctx.callbacks)
    out = run_trainer(trainer, ctx)
    acc_after = pairwise_accuracy(ctx.model, ctx.tokenizer, pairs)
    out.extra = {"pairwise_accuracy_before": acc_before, "pairwise_accuracy_after": acc_after}
    out.metric = ("pairwise_accuracy", acc_before, acc_after)
    return out


register(CARD, train=train)
