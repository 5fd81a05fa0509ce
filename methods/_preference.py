"""Shared pieces of the preference objectives (dpo, ipo, orpo, simpo, rm, rlaif)."""
from methods._trl import as_chat, as_reply, dataset, run_trainer
from methods.context import StageContext, StageResult


def prompt_logits_refusal(trainer: str) -> str:
    """Why a trainer that aligns logits with labels position by position cannot train prompt tuning (peft
    prepends the virtual tokens' logits: a shape error at the first step; TRL's DPO and KTO cut them off)."""
    return (f"{trainer} matches logits to labels position by position, and prompt tuning prepends its virtual "
            "tokens' logits (a shape error at the first step); use DPO or KTO, or prefix/ptuning")


def chat_pairs(records: list[dict]) -> list[dict]:
    """{prompt, chosen, rejected} strings -> TRL's conversational preference format."""
    return [
        {"prompt": as_chat(r["prompt"]), "chosen": as_reply(r["chosen"]), "rejected": as_reply(r["rejected"])}
        for r in records
    ]


def reward_stats(log_history: list[dict]) -> dict:
    """Last logged reward accuracy/margin, as TRL names them (keys differ between trainers)."""
    out = {}
    for h in log_history:
        for k, v in h.items():
            if "accuracies" in k or "margins" in k or k.startswith("rewards/") or k == "accuracy":
                out[k] = v
    return out


def train_on(ctx: StageContext, trainer_cls, args, records: list[dict]) -> StageResult:
    """Train a TRL preference trainer on already-formatted records; the result carries its reward stats."""
    trainer = trainer_cls(model=ctx.model, args=args, train_dataset=dataset(records),
                          processing_class=ctx.tokenizer, callbacks=ctx.callbacks)
    out = run_trainer(trainer, ctx)
    out.extra = reward_stats(out.log_history)
    return out
