"""Shared plumbing for objectives built on TRL/transformers trainers.

TRL configs default to bf16 and gradient checkpointing; this CPU needs fp32 and (usually) no
checkpointing (docs/platform-facts.md), so every objective builds its config through ``trl_args``.
"""
from __future__ import annotations

from pathlib import Path

from methods.context import StageContext, StageResult


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def trl_args(cls, ctx: StageContext, **overrides):
    """A TRL/transformers config with this project's defaults for the current device."""
    import torch

    hp = ctx.hp
    gpu = on_gpu()
    kwargs = dict(
        output_dir=str(ctx.out_dir / "trainer"),
        max_steps=hp.max_steps,
        per_device_train_batch_size=hp.batch_size,
        gradient_accumulation_steps=hp.grad_accum,
        learning_rate=hp.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="steps" if ctx.save_steps else "no",
        save_steps=ctx.save_steps or 500,
        save_total_limit=2,
        eval_strategy="no",
        report_to=[],
        seed=hp.seed,
        data_seed=hp.seed,
        use_cpu=not gpu,
        bf16=gpu and torch.cuda.is_bf16_supported(),
        fp16=False,
        gradient_checkpointing=hp.grad_ckpt,
        disable_tqdm=True,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        ddp_find_unused_parameters=False,  # under `accelerate launch` (DDP); ignored in one process
    )
    fields = cls.__dataclass_fields__
    if "max_length" in fields:
        kwargs["max_length"] = hp.max_length
    kwargs.update(overrides)
    return cls(**{k: v for k, v in kwargs.items() if k in fields})


def as_chat(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def as_reply(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def dataset(records: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(records)


def non_padding_tokens(inputs: dict) -> int:
    """Tokens a step really processed: the sum of its attention/prompt/completion masks."""
    import torch

    masks = [v for k, v in inputs.items() if k.endswith("attention_mask") or k in ("prompt_mask", "completion_mask")]
    if "chosen_attention_mask" in inputs:
        # ORPO/CPO: chosen_* and rejected_* already hold prompt + reply; prompt_* is a copy of the prompt
        masks = [inputs[k] for k in ("chosen_attention_mask", "rejected_attention_mask") if k in inputs]
    if masks:
        return int(sum(int(m.sum()) for m in masks if isinstance(m, torch.Tensor)))
    ids = [v for k, v in inputs.items() if k.endswith("input_ids") and isinstance(v, torch.Tensor)]
    return int(sum(i.numel() for i in ids))


def count_tokens(trainer) -> None:
    """Make ``state.num_input_tokens_seen`` count for trainers whose batches have no plain
    ``input_ids`` (ORPO, CPO/SimPO, GRPO): the HF loop only counts the main input name."""
    orig = trainer._prepare_inputs
    main = getattr(trainer.model, "main_input_name", "input_ids")

    def prepare_inputs(inputs):
        # The HF loop counts the raw batch after training_step when it holds the main input
        # (transformers 5 Trainer._track_num_input_tokens); count here only the batches it skips.
        ours = not (isinstance(inputs, dict) and main in inputs)  # GRPO's raw batch is a list of prompts
        prepared = orig(inputs)
        if ours and isinstance(prepared, dict):
            trainer.state.num_input_tokens_seen += non_padding_tokens(prepared)
        return prepared

    # Every trainer's training_step passes its batch through _prepare_inputs (GRPO generates there).
    trainer._prepare_inputs = prepare_inputs


def last_checkpoint(folder: str | Path) -> str | None:
    """The newest complete ``checkpoint-N`` (the Trainer writes trainer_state.json last)."""
    done = [p for p in Path(folder).glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def run_trainer(trainer, ctx: StageContext) -> StageResult:
    """Train, then return the figures every objective reports."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # Progress is ours (bench/progress.py); the trainer's own printer would dump dicts to stdout.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    count_tokens(trainer)
    out = trainer.train(resume_from_checkpoint=last_checkpoint(trainer.args.output_dir) if ctx.resume else None)
    state = trainer.state
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    return StageResult(
        train_loss=float(out.training_loss) if out.training_loss is not None else None,
        final_loss=losses[-1] if losses else None,
        steps=int(state.global_step),
        tokens_seen=int(getattr(state, "num_input_tokens_seen", 0) or 0),
        log_history=state.log_history,
    )
