"""rlaif: reinforcement learning from AI feedback with a constitution-guided judge.

    tunebench train --stack sft:lora,rlaif:lora --model tiny-llama --task smoke --max-steps 3

The policy samples two answers per prompt; the judge (methods/_judge.py; by default the stage's
starting model judging itself, as in Constitutional AI, or ``--hp judge=DIR``) scores each
against the principles in a constitution file (``--cfg constitution=FILE``; default
methods/constitutions/default.yaml). Then either ``mode=dpo``: the AI-labelled pairs train
the policy with DPO, or ``mode=online``: the judge score is the reward of GRPO's online loop.
Where the task carries gold preference pairs, the judge's agreement with them is reported.
"""
from typing import Literal

from pydantic import Field, field_validator

from methods._judge import ConstitutionJudge, load_constitution
from methods._trl import as_chat, dataset, run_trainer, trl_args
from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.distill import teacher_answers
from methods.dpo import train_dpo
from methods.grpo import completion_text, reward_curve
from methods.registry import register


class RLAIFSettings(MethodConfig):
    mode: Literal["dpo", "online"] = "dpo"
    constitution: str | None = Field(default=None, description="YAML file with a 'principles' list")
    beta: float = Field(default=0.1, gt=0)
    max_new_tokens: int = Field(default=16, ge=1)
    num_generations: int = Field(default=4, ge=2, description="online mode: group size")

    @field_validator("constitution")
    @classmethod
    def _readable(cls, path: str | None) -> str | None:
        # A missing or malformed constitution is bad input: report it before anything trains.
        if path is not None:
            load_constitution(path)
        return path


CARD = ObjectiveCard(
    name="rlaif", family="preference", label="RLAIF", data="preference", settings=RLAIFSettings,
    # judge: --hp judge=DIR, else the stage's starting model judges itself; reference: the default
    # mode=dpo trains DPO against the starting model (mode=online is GRPO with beta=0, no reference).
    needs=("judge", "reference"), memory=ObjectiveMemory(sequences=2, step_time=5.0, lm_head="fused"),
    description="RLAIF: a constitution-guided AI judge (--hp judge=DIR, else the starting model) labels two "
                "answers sampled before training, then DPO on them (or mode=online: GRPO with the judge as reward)",
)


def sample_pair(model, tokenizer, prompts: list[str], max_new_tokens: int, seed: int) -> tuple[list[str], list[str]]:
    """Two sampled answers per prompt (the first greedy, the second sampled) so they differ."""
    import torch

    greedy = teacher_answers(model, tokenizer, prompts, max_new_tokens)
    torch.manual_seed(seed)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    sampled: list[str] = []
    try:
        for i in range(0, len(prompts), 8):
            texts = [tokenizer.apply_chat_template(as_chat(p), tokenize=False, add_generation_prompt=True)
                     for p in prompts[i:i + 8]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=1.0, top_k=0,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            sampled += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return greedy, [s.strip() for s in sampled]


def judge_agreement(judge: ConstitutionJudge, pairs: list[dict]) -> float | None:
    gold = [p for p in pairs if "chosen" in p and "rejected" in p]
    if not gold:
        return None
    good = judge.score_many([p["prompt"] for p in gold], [p["chosen"] for p in gold])
    bad = judge.score_many([p["prompt"] for p in gold], [p["rejected"] for p in gold])
    return sum(g > b for g, b in zip(good, bad)) / len(gold)


def train_online(ctx: StageContext, judge: ConstitutionJudge, prompts: list[str]) -> StageResult:
    """GRPO's online loop with the judge's score as the reward (beta=0: no reference)."""
    from trl import GRPOConfig, GRPOTrainer

    def judge_reward(prompts, completions, **_):
        texts = [p[-1]["content"] if isinstance(p, list) else str(p) for p in prompts]
        return judge.score_many(texts, [completion_text(c) for c in completions])

    cfg = ctx.config
    g = cfg.num_generations
    batch = max(g, (ctx.hp.batch_size // g) * g)
    args = trl_args(GRPOConfig, ctx, per_device_train_batch_size=batch, num_generations=g,
                    max_completion_length=cfg.max_new_tokens, beta=0.0)
    trainer = GRPOTrainer(model=ctx.model, reward_funcs=[judge_reward], args=args,
                          train_dataset=dataset([{"prompt": as_chat(p)} for p in prompts]),
                          processing_class=ctx.tokenizer, callbacks=ctx.callbacks)
    out = run_trainer(trainer, ctx)
    curve = reward_curve(out.log_history)
    out.extra = {"mode": "online", "reward_first": curve[0] if curve else None,
                 "reward_last": curve[-1] if curve else None}
    return out


def train_labelled(ctx: StageContext, judge: ConstitutionJudge, prompts: list[str]) -> StageResult:
    """Sample two answers per prompt, let the judge pick the better one, then DPO on those pairs."""
    a, b = sample_pair(ctx.model, ctx.tokenizer, prompts, ctx.config.max_new_tokens, ctx.hp.seed)
    sa, sb = judge.score_many(prompts, a), judge.score_many(prompts, b)
    pairs = [{"prompt": p, "chosen": x if s >= t else y, "rejected": y if s >= t else x}
             for p, x, y, s, t in zip(prompts, a, b, sa, sb) if x != y]
    if not pairs:
        raise RuntimeError("rlaif: the policy gave identical answers to every prompt; nothing for the judge to rank "
                           "(raise max_new_tokens or train an sft stage first)")
    out = train_dpo(ctx, pairs, "sigmoid")
    out.extra = {**out.extra, "mode": "dpo", "ai_labelled_pairs": len(pairs)}
    return out


def train(ctx: StageContext) -> StageResult:
    judge_model = ctx.extra.get("judge") or ctx.model
    judge = ConstitutionJudge(judge_model, ctx.tokenizer, load_constitution(ctx.config.constitution))
    agreement = judge_agreement(judge, ctx.eval or ctx.train)
    prompts = [r["prompt"] for r in ctx.train]
    out = (train_online if ctx.config.mode == "online" else train_labelled)(ctx, judge, prompts)
    out.extra["judge_agreement_with_gold"] = agreement
    return out


register(CARD, train=train)
