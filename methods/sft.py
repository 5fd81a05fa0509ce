"""sft: supervised fine-tuning / instruction tuning — loss on the response tokens only.

    tunebench train --stack sft:lora --model tiny-llama --task smoke --max-steps 3

Records are chat-formatted (user prompt, assistant completion) and trained with TRL's
SFTTrainer with ``completion_only_loss`` so the prompt tokens carry no loss.
"""
from pydantic import BaseModel

from methods._trl import StageContext, as_chat, as_reply, dataset, run_trainer, trl_args
from methods.registry import Objective, register


class SFTSettings(BaseModel):
    completion_only_loss: bool = True


def chat_records(records: list[dict]) -> list[dict]:
    return [{"prompt": as_chat(r["prompt"]), "completion": as_reply(r["completion"])} for r in records]


def train_sft(ctx: StageContext, records: list[dict]) -> dict:
    from trl import SFTConfig, SFTTrainer

    args = trl_args(SFTConfig, ctx, completion_only_loss=getattr(ctx.config, "completion_only_loss", True), packing=False)
    trainer = SFTTrainer(
        model=ctx.model, args=args, train_dataset=dataset(chat_records(records)),
        processing_class=ctx.tokenizer, callbacks=ctx.callbacks,
    )
    return run_trainer(trainer, ctx)


def train(ctx: StageContext) -> dict:
    return train_sft(ctx, ctx.train)


register(Objective(
    name="sft", family="supervised", data="prompt_completion", config=SFTSettings, train=train,
    description="prompt -> response pairs; next-token loss on the response only (TRL SFTTrainer)",
))
