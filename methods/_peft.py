"""The generic PEFT wrapper: turns "build a peft config from our settings" into a Parameterization.

Every PEFT-backed method file (lora, ia3, prefix, vera, ...) calls ``peft_method`` with a
function that maps its pydantic settings to a peft config. The wrapper picks the task type
from the model (a ``...ForSequenceClassification`` reward model gets ``SEQ_CLS``, which makes
peft train and save its ``score`` head), saves just the adapter, restores it on a fresh base,
and merges with ``merge_and_unload`` where the method allows it.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, Field

from common.errors import UserError
from common.files import read_json_object
from common.shape import Shape
from methods.card import MethodConfig, ParamCard
from methods.registry import Parameterization, register

# Every linear projection of a Llama-style block (also Qwen2/3, Mistral, Gemma); not the head.
LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TargetSettings(MethodConfig):
    target_modules: list[str] = Field(default_factory=lambda: list(LINEAR))


class LoraSettings(TargetSettings):
    r: int = Field(8, ge=1)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


def targets(shape: Shape, cfg: TargetSettings) -> list[tuple[int, int]]:
    """(in, out) of every targeted linear in one layer.

    An MoE's experts are no Linear modules in transformers 5 (one fused 3-D parameter per projection,
    e.g. MixtralExperts.gate_up_proj), so peft's target_modules adapt only the attention there: the
    expert MLP names are accepted and match nothing (the trainable counts the tracer reads off peft)."""
    mods = shape.linears()
    return [mods[m] for m in targeted(shape, cfg)]


def targeted(shape: Shape, cfg: TargetSettings) -> list[str]:
    """The names ``targets`` sizes, in the settings' order (UserError for a module the model lacks)."""
    mods = shape.linears()
    unknown_mods = [m for m in cfg.target_modules if m not in mods and not (m == "gate_proj" and shape.mlp == "plain")]
    if unknown_mods:
        raise UserError(f"unknown target module '{unknown_mods[0]}' (accepted: {', '.join(sorted(mods))})")
    mlp = ("gate_proj", "up_proj", "down_proj")
    return [m for m in cfg.target_modules if m in mods and not (shape.experts > 1 and m in mlp)]


def lora_trainable(shape: Shape, cfg: LoraSettings) -> int:
    """r·(in+out) per targeted projection, every layer."""
    return shape.layers * sum(cfg.r * (i + o) for i, o in targets(shape, cfg))


def lora_per_token(shape: Shape, cfg: LoraSettings, e: int, ab: int, xb: int) -> float:
    """Each adapter keeps its own (upcast) copy of its input and its rank-r hidden."""
    return sum(ab * i + ab * cfg.r for i, _ in targets(shape, cfg))


def input_per_token(shape: Shape, cfg: TargetSettings, e: int, ab: int, xb: int) -> float:
    """Each adapted projection keeps its (upcast) input for the adapter's gradient (OFT, BOFT, HRA)."""
    return sum(ab * i for i, _ in targets(shape, cfg))


def weight_delta_bytes(shape: Shape, cfg: TargetSettings, ab: int, xb: int) -> float:
    """A weight-sized delta per projection, built in fp32 from the adapter's factors each forward; the
    matmul keeps it in the dtype it runs in (under autocast a bf16 copy, the fp32 original is freed).
    A ``layer_fixed``: the input's dtype (``xb``) does not enter."""
    return sum(ab * i * o for i, o in targets(shape, cfg))


def lora_config(cfg: LoraSettings, **extra):
    """A peft LoraConfig from the shared LoRA settings; ``extra`` picks the variant (DoRA, rsLoRA, PiSSA)."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules), **extra
    )


@contextlib.contextmanager
def fixed_seed(seed: int | None):
    """Run the block under ``seed`` (CPU RNG) and restore the caller's RNG state afterwards."""
    import torch

    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def task_type(model):
    from peft import TaskType

    from methods._common import is_seq_cls

    return TaskType.SEQ_CLS if is_seq_cls(model) else TaskType.CAUSAL_LM


def peft_method(
    card: ParamCard, build: Callable[[BaseModel], object], *, load_kwargs=None, init_seed: int | None = None,
    step_hook=None, run_defaults=None,
) -> Parameterization:
    """Register a PEFT-backed parameterization from its card. ``build(cfg)`` returns the peft config.

    The base is quantized when the card's memory says so (``load_kwargs`` builds the bnb config).

    ``init_seed``: for methods whose init derives from the base with randomness (PiSSA's fast
    SVD), apply and load run under this fixed seed, so loading re-derives the same residual
    base; the caller's RNG stream is left untouched.
    """

    name, quantized = card.name, card.memory.base != "dense"
    if not card.peft:
        raise ValueError(f"{name}: a peft-backed card must say peft=True (the estimator reads it)")

    def apply(model, cfg):
        from peft import get_peft_model

        from methods._quant import is_quantized, prepare_kbit

        if quantized:
            if not is_quantized(model):
                raise UserError(
                    f"{name} needs the base loaded with its quantization (load_kwargs); got a full-precision model"
                )
            model = prepare_kbit(model)
        pcfg = build(cfg)
        pcfg.task_type = task_type(model)
        with fixed_seed(init_seed):
            model = get_peft_model(model, pcfg)
        if pcfg.peft_type == "PREFIX_TUNING":  # prefix, ptuning: checkpointing would drop the prefix cache
            from methods._prefix_cache import keep_prefix_under_checkpointing

            keep_prefix_under_checkpointing(model)
        return model

    def save(model, out_dir):
        model.save_pretrained(out_dir)

    def load(base, in_dir, cfg):
        from peft import PeftConfig, PeftModel

        from methods._quant import is_quantized, prepare_kbit

        if not Path(in_dir, "adapter_config.json").exists():
            raise UserError(f"{in_dir} is not a saved {name} adapter (no adapter_config.json)")
        read_json_object(Path(in_dir, "adapter_config.json"), "adapter config")  # refuses binary/odd files
        expected = build(cfg).peft_type
        saved = PeftConfig.from_pretrained(in_dir)
        if saved.peft_type != expected:
            raise UserError(f"{in_dir} holds a {saved.peft_type} adapter, not {name} ({expected})")
        if quantized and is_quantized(base):
            base = prepare_kbit(base)
        # peft refuses trainable prompt-learning adapters on load: the saved prompt table is final.
        with fixed_seed(init_seed):
            return PeftModel.from_pretrained(base, in_dir, is_trainable=not saved.is_prompt_learning)

    def merge(model):
        from methods._quant import is_quantized, merge_dequantized

        if is_quantized(model.get_base_model()):
            return merge_dequantized(model)
        return model.merge_and_unload()

    return register(card, apply=apply, save=save, load=load, merge=merge if card.mergeable else None,
                    load_kwargs=load_kwargs, step_hook=step_hook, run_defaults=run_defaults)
