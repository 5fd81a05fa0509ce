"""grpo: Group Relative Policy Optimization with a verifiable reward (no critic, no reward model).

    tunebench train --stack grpo:lora --model tiny-llama --task smoke --max-steps 3

For each prompt the policy samples a group of completions; the task's checker scores each
(e.g. exact match of the final number) and advantages are rewards normalised within the
group (TRL GRPOTrainer). The first and last logged mean reward are reported.
"""
from pydantic import Field

from common.errors import UserError
from methods._trl import as_chat, dataset, run_trainer, trl_args
from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.registry import register


class GRPOSettings(MethodConfig):
    num_generations: int = Field(default=4, ge=2)
    max_completion_length: int = Field(default=16, ge=1)
    beta: float = Field(default=0.0, ge=0, description="KL coefficient to the reference (0 = none, TRL default)")
    temperature: float = Field(default=1.0, gt=0)


CARD = ObjectiveCard(
    name="grpo", family="rl", label="GRPO", data="prompt_with_checker", settings=GRPOSettings,
    needs=("checker",), memory=ObjectiveMemory(generates=True, step_time=4.0, lm_head="fused"),
    description="GRPO: group-sampled completions scored by the task's verifiable checker (TRL GRPOTrainer); "
                "with the default beta=0 (TRL's) there is no KL term, so no reference model is kept",
)


def completion_text(completion) -> str:
    return completion[-1]["content"] if isinstance(completion, list) else str(completion)


def make_reward(checker):
    def verifiable_reward(completions, answer, **_):
        return [checker(completion_text(c), a) for c, a in zip(completions, answer)]

    return verifiable_reward


def reward_curve(log_history: list[dict]) -> list[float]:
    return [h["reward"] for h in log_history if "reward" in h]


def train(ctx: StageContext) -> StageResult:
    from trl import GRPOConfig, GRPOTrainer

    checker = ctx.extra.get("checker")
    if checker is None:
        raise UserError("grpo needs a task with a checker (prompt_with_checker data), e.g. smoke or gsm-symbolic")
    cfg = ctx.config
    g = cfg.num_generations
    batch = max(g, (ctx.hp.batch_size // g) * g)  # whole groups per step
    args = trl_args(GRPOConfig, ctx, per_device_train_batch_size=batch, num_generations=g,
                    max_completion_length=cfg.max_completion_length, beta=cfg.beta, temperature=cfg.temperature)
    recs = [{"prompt": as_chat(r["prompt"]), "answer": r["answer"]} for r in ctx.train]
    trainer = GRPOTrainer(model=ctx.model, reward_funcs=[make_reward(checker)], args=args,
                          train_dataset=dataset(recs), processing_class=ctx.tokenizer, callbacks=ctx.callbacks)
    out = run_trainer(trainer, ctx)
    curve = reward_curve(out.log_history)
    out.extra = {"reward_first": curve[0] if curve else None, "reward_last": curve[-1] if curve else None,
                 "reward_curve": curve}
    return out


register(CARD, train=train)
