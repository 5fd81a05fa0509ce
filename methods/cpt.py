"""cpt: continued / domain-adaptive pretraining — next-token loss on a raw corpus, packed.

    tunebench train --stack cpt:full --model tiny-llama --task smoke --max-steps 3

Documents are concatenated and cut into fixed-length blocks (TRL's "wrapped" packing), the
classic pretraining layout, so no compute is spent on padding.
"""
from methods._trl import dataset, run_trainer, sft_trainer_class, trl_args
from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.registry import register


class CPTSettings(MethodConfig):
    packing: bool = True


CARD = ObjectiveCard(
    name="cpt", family="pretraining", label="DAPT (continued pretraining)", data="text", settings=CPTSettings,
    memory=ObjectiveMemory(lm_head="next_token"),
    description="continued (domain-adaptive) pretraining: packed next-token loss on a corpus",
)


def train(ctx: StageContext) -> StageResult:
    from trl import SFTConfig

    args = trl_args(
        SFTConfig, ctx, dataset_text_field="text", packing=ctx.config.packing, packing_strategy="wrapped",
        completion_only_loss=False,
    )
    trainer = sft_trainer_class()(
        model=ctx.model, args=args, train_dataset=dataset([{"text": r["text"]} for r in ctx.train]),
        processing_class=ctx.tokenizer, callbacks=ctx.callbacks,
    )
    return run_trainer(trainer, ctx)


register(CARD, train=train)
