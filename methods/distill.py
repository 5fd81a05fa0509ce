"""distill: knowledge distillation from a teacher model into the student being trained.

    tunebench train --stack distill:lora --model tiny-llama --task smoke --max-steps 3 --hp teacher=DIR

Two modes (``--cfg mode=...``):
- ``generations`` (sequence-level KD): the teacher answers every training prompt (greedy), and
  the student is trained by SFT on those answers instead of the reference responses.
- ``logits`` (on-policy logit matching, GKD-style): TRL's DistillationTrainer samples student
  completions and minimises a generalised Jensen-Shannon divergence to the teacher's token
  distribution (``beta`` interpolates forward/reverse KL).
The teacher must share the student's tokenizer. Without ``teacher=``, bench/train.py builds
one by training the base model on the task first (recorded in the result).
"""
from typing import Literal

from pydantic import Field

from common.errors import UserError
from methods._trl import as_chat, dataset, run_trainer, trl_args
from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.registry import register
from methods.sft import train_sft


class DistillSettings(MethodConfig):
    mode: Literal["generations", "logits"] = "generations"
    max_new_tokens: int = Field(default=32, ge=1)
    beta: float = Field(default=0.5, ge=0, le=1, description="logits mode: 0 = forward KL, 1 = reverse KL")
    temperature: float = Field(default=1.0, gt=0)


CARD = ObjectiveCard(
    name="distill", family="distillation", label="Distillation", data="prompt_completion", settings=DistillSettings,
    needs=("teacher",),
    # The default mode (generations) samples the teacher's answers once, before training: the steps
    # are SFT steps with the teacher resident. Only mode=logits samples during training.
    memory=ObjectiveMemory(generates=False, step_time=1.5, lm_head="next_token",
                           teacher_logits=lambda cfg: cfg.mode == "logits"),
    description="knowledge distillation: SFT on the teacher's greedy answers (default; the teacher generates "
                "once before training), or mode=logits: on-policy logit matching (TRL DistillationTrainer)",
)


def teacher_answers(teacher, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy answers of ``teacher`` to each prompt (chat-formatted, left-padded batches)."""
    import torch

    teacher.eval()
    device = next(teacher.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # decoder-only batching pads on the left
    answers: list[str] = []
    try:
        for i in range(0, len(prompts), batch_size):
            texts = [tokenizer.apply_chat_template(as_chat(p), tokenize=False, add_generation_prompt=True)
                     for p in prompts[i:i + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                gen = teacher.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            answers += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return [a.strip() for a in answers]


def train(ctx: StageContext) -> StageResult:
    teacher = ctx.extra.get("teacher")
    if teacher is None:
        raise UserError("distill needs a teacher model (--hp teacher=NAME|DIR)")
    if teacher.config.vocab_size != ctx.model.config.vocab_size:
        raise UserError("distill: teacher and student must share a tokenizer (vocab sizes differ)")
    cfg = ctx.config
    if cfg.mode == "generations":
        answers = teacher_answers(teacher, ctx.tokenizer, [r["prompt"] for r in ctx.train], cfg.max_new_tokens)
        records = [{"prompt": r["prompt"], "completion": a} for r, a in zip(ctx.train, answers)]
        out = train_sft(ctx, records)
        same = sum(a == r["completion"] for a, r in zip(answers, ctx.train)) / max(1, len(answers))
        out.extra = {"mode": "generations", "teacher_matches_reference": same}
        return out
    from trl import DistillationConfig, DistillationTrainer

    args = trl_args(DistillationConfig, ctx, beta=cfg.beta, temperature=cfg.temperature,
                    max_completion_length=cfg.max_new_tokens, remove_unused_columns=False)
    trainer = DistillationTrainer(model=ctx.model, teacher_model=teacher, args=args,
                                  train_dataset=dataset([{"prompt": as_chat(r["prompt"])} for r in ctx.train]),
                                  processing_class=ctx.tokenizer, callbacks=ctx.callbacks)
    out = run_trainer(trainer, ctx)
    out.extra = {"mode": "logits"}
    return out


register(CARD, train=train)
