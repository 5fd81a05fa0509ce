"""ppo: RLHF with Proximal Policy Optimization — policy + value head, reward model, KL to reference.

    tunebench train --stack rm:lora,ppo:lora --model tiny-llama --task smoke --max-steps 3

TRL 1.16 has no PPO trainer, so this is a compact implementation of the classic RLHF loop
(Ziegler et al. 2019 / InstructGPT), in methods/_ppo.py: each step samples completions for a
batch of prompts, scores them with the reward model (from a preceding stage that provides one,
e.g. ``rm``, or ``--hp reward_model=DIR``), adds a per-token KL penalty to the reference (the
stage's starting model), computes advantages with GAE from a value head on the policy's last
hidden state, and runs a few epochs of clipped policy and value updates.
"""
from __future__ import annotations

from pydantic import Field

from common.errors import UserError
from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.registry import register


class PPOSettings(MethodConfig):
    rollout_batch: int = Field(default=8, ge=1, description="prompts sampled per PPO step")
    ppo_epochs: int = Field(default=2, ge=1)
    mini_batch: int = Field(default=4, ge=1)
    max_new_tokens: int = Field(default=16, ge=1)
    temperature: float = Field(default=1.0, gt=0)
    kl_coef: float = Field(default=0.05, ge=0)
    clip_range: float = Field(default=0.2, gt=0)
    clip_range_value: float = Field(default=0.2, gt=0)
    vf_coef: float = Field(default=0.1, ge=0)
    gamma: float = Field(default=1.0, gt=0, le=1)
    lam: float = Field(default=0.95, ge=0, le=1)


CARD = ObjectiveCard(
    name="ppo", family="rl", label="PPO (RLHF)", data="preference", settings=PPOSettings,
    needs=("reference", "reward_model", "value_model"),
    memory=ObjectiveMemory(generates=True, step_time=4.0, lm_head="upcast"),
    description="RLHF: PPO with value head, GAE, clipped objective and KL to the reference (own implementation; "
                "trains on the prompts of preference records)",
)


def train(ctx: StageContext) -> StageResult:
    rm = ctx.extra.get("reward_model")
    if rm is None:
        raise UserError("ppo needs a reward model: put an rm stage before it (e.g. --stack rm:lora,ppo:lora) "
                        "or pass --hp reward_model=DIR")
    from methods._ppo import train_ppo

    return train_ppo(ctx, rm)


register(CARD, train=train)
