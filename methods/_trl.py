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


def cache_flops(trainer) -> None:
    """The HF loop adds ``floating_point_ops(inputs)`` to ``total_flos`` after every micro-batch, and
    the default walks every named module and parameter (``num_parameters(exclude_embeddings=True)``)
    each time; the count does not change while training, so it is taken once."""
    from transformers import Trainer

    if type(trainer).floating_point_ops is not Trainer.floating_point_ops:
        return  # a trainer with its own count keeps it
    cache = {}

    def floating_point_ops(inputs):
        main = getattr(trainer.model, "main_input_name", "input_ids")
        if main not in inputs or not hasattr(trainer.model, "num_parameters"):
            return 0
        if "n" not in cache:
            cache["n"] = trainer.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs[main].numel() * cache["n"]

    trainer.floating_point_ops = floating_point_ops


def lean_loop(trainer):
    """Three per-step costs of the HF loop that are pure bookkeeping on one process, each measured
    at ~0.15-0.3 ms a step on tiny-llama LoRA (against a ~4.4 ms step); returns an undo function.

    - ``training_step`` calls ``model.train()`` every step, which sets the flag on every module
      through ``Module.__setattr__``; when every module is already training it is skipped.
    - ``model.zero_grad()`` after every step walks the module tree for all parameters, frozen ones
      included; over a parameter list taken once it clears the same gradients.
    - ``_clip_grad_norm`` goes through accelerate, which lists ``model.parameters()`` (a walk of
      the module tree) per step; without a grad scaler, sharding or mixed device meshes it is
      torch's ``clip_grad_norm_`` over the parameters that have a gradient — the same norm and
      the same clipping as accelerate's path, over a parameter list taken once.
    """
    from accelerate.utils import DistributedType

    model = trainer.model
    modules = list(model.modules())
    plain_train = type(model).train

    def train(mode: bool = True):
        if mode and all(m.training for m in modules):
            return model
        return plain_train(model, mode)

    model.train = train
    all_params, plain_zero_grad = list(model.parameters()), type(model).zero_grad

    def zero_grad(set_to_none: bool = True):
        if not set_to_none:
            return plain_zero_grad(model, set_to_none)
        for p in all_params:
            p.grad = None

    model.zero_grad = zero_grad
    acc = trainer.accelerator
    if (acc.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)
            and getattr(acc, "scaler", None) is None and hasattr(trainer, "_clip_grad_norm")):
        import torch

        orig_clip, params = trainer._clip_grad_norm, all_params

        def clip_grad_norm(m):
            if m is not model and getattr(m, "module", None) is not model:
                return orig_clip(m)  # not the model whose parameters were listed
            if trainer._has_mixed_mesh_grads(m):
                return orig_clip(m)
            return torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], trainer.args.max_grad_norm)

        trainer._clip_grad_norm = clip_grad_norm

    def undo():
        model.__dict__.pop("train", None)
        model.__dict__.pop("zero_grad", None)
        trainer.__dict__.pop("_clip_grad_norm", None)

    return undo


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
    cache_flops(trainer)
    undo = lean_loop(trainer)
    try:
        out = trainer.train(resume_from_checkpoint=last_checkpoint(trainer.args.output_dir) if ctx.resume else None)
    finally:
        undo()
    state = trainer.state
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    return StageResult(
        train_loss=float(out.training_loss) if out.training_loss is not None else None,
        final_loss=losses[-1] if losses else None,
        steps=int(state.global_step),
        tokens_seen=int(getattr(state, "num_input_tokens_seen", 0) or 0),
        log_history=state.log_history,
    )


_LEAN_SFT = None


def sft_trainer_class():
    """TRL's SFTTrainer computing only what the benchmark records on every step: the loss.

    TRL 1.16 patches the model with a fused LM head that also computes the per-token entropy and
    top-1 hit over the whole vocabulary on every call, for its ``entropy`` / ``mean_token_accuracy``
    logs, and counts ``num_tokens`` with a ``.item()`` per step; none of them is recorded here.
    The loss stays TRL's plain one: the summed negative log-probabilities of the completion tokens
    over ``num_items_in_batch`` (or over the batch's label tokens).

    - Where TRL's Triton kernels run (CUDA/XPU), the head is re-patched with
      ``outputs=("log_probs",)`` (the new wrapper scores the fused call itself and hands non-fused
      calls to the previous one, so generation is unchanged): tiled logits, valid positions only.
    - Elsewhere (CPU) TRL folds the tiles with plain torch ops and recomputes the projection in
      the backward; measured on SmolLM2-135M that is ~1.5x the step time of the model's own
      cross-entropy over the full logits (tiny-llama: +25%). There the loss comes from the
      model's own forward with ``labels`` and ``num_items_in_batch``: the same sum over the same
      tokens, divided by the same count, and the full (batch, seq, vocab) logits are materialized.

    Paths that need TRL's own handling (a ``compute_loss_func``, label smoothing, MoE aux loss,
    Ulysses sequence parallelism) keep TRL's SFTTrainer unchanged; ``loss_type="dft"`` needs the
    per-token log-probabilities, so it always takes the fused head.
    """
    global _LEAN_SFT
    if _LEAN_SFT is not None:
        return _LEAN_SFT
    import torch
    from accelerate.utils import is_peft_model
    from trl import SFTTrainer
    from trl.trainer.utils import add_fused_lm_head

    def triton_head(model) -> bool:
        device = model.get_output_embeddings().weight.device
        try:
            from trl.kernels.chunked_logprob import _use_triton
        except ImportError:
            return device.type in ("cuda", "xpu")
        return _use_triton(device)

    class LeanSFTTrainer(SFTTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pc = getattr(self.accelerator, "parallelism_config", None)
            ulysses = (pc is not None and getattr(pc, "sp_backend", None) == "deepspeed"
                       and getattr(pc, "sp_enabled", False))
            self._lean = (self.compute_loss_func is None and self.label_smoother is None
                          and not self.aux_loss_enabled and not ulysses)
            base = self.model.get_base_model() if is_peft_model(self.model) else self.model
            self._own_loss = self._lean and self.args.loss_type == "nll" and not triton_head(base)
            if self._lean and not self._own_loss:
                add_fused_lm_head(base, outputs=("log_probs",))

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not self._lean:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            inputs["use_cache"] = False
            if self._own_loss:
                kw = {}
                if num_items_in_batch is not None:
                    kw["num_items_in_batch"] = torch.as_tensor(num_items_in_batch).clamp(min=1)
                outputs = model(**inputs, **kw)
                loss = outputs.loss
            else:
                outputs = model(**inputs, fused_lm_head=True)
                per_token_loss = -outputs.log_probs  # zero on ignored positions
                if self.args.loss_type == "dft":
                    per_token_loss = per_token_loss * outputs.log_probs.exp().detach()
                num_tokens = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
                loss = per_token_loss.sum() / torch.as_tensor(num_tokens).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            if return_outputs and not self._own_loss:  # logits for compute_metrics: an extra forward, as in TRL
                with torch.no_grad():
                    outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
            return (loss, outputs) if return_outputs else loss

    _LEAN_SFT = LeanSFTTrainer
    return _LEAN_SFT
