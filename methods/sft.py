"""sft: supervised fine-tuning / instruction tuning — loss on the response tokens only.

    tunebench train --stack sft:lora --model tiny-llama --task smoke --max-steps 3

Records are chat-formatted (user prompt, assistant completion) and trained with TRL's
SFTTrainer with ``completion_only_loss`` so the prompt tokens carry no loss (its loss-only
variant, methods/_trl.py ``sft_trainer_class``).
"""
from methods._trl import as_chat, as_reply, dataset, run_trainer, sft_trainer_class, trl_args
from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.registry import register


class SFTSettings(MethodConfig):
    completion_only_loss: bool = True


CARD = ObjectiveCard(
    name="sft", family="supervised", label="SFT", data="prompt_completion", settings=SFTSettings,
    memory=ObjectiveMemory(lm_head="next_token"),
    description="prompt -> response pairs; next-token loss on the response only (TRL SFTTrainer)",
)


def chat_records(records: list[dict]) -> list[dict]:
    return [{"prompt": as_chat(r["prompt"]), "completion": as_reply(r["completion"])} for r in records]


def train_sft(ctx: StageContext, records: list[dict]) -> StageResult:
    from trl import SFTConfig

    args = trl_args(SFTConfig, ctx, completion_only_loss=getattr(ctx.config, "completion_only_loss", True), packing=False)
    trainer = sft_trainer_class()(
        model=ctx.model, args=args, train_dataset=dataset(chat_records(records)),
        processing_class=ctx.tokenizer, callbacks=ctx.callbacks,
    )
    return run_trainer(trainer, ctx)


def train(ctx: StageContext) -> StageResult:
    return train_sft(ctx, ctx.train)


register(CARD, train=train)
