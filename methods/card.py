"""Method cards: the one typed statement of what each method is, read by every room.

    tunebench methods --json            # every card, in milliseconds (no torch import)

Each ``methods/<name>.py`` declares one ``ParamCard`` or ``ObjectiveCard`` at module level and
registers it with its implementation (``registry.register``). A card imports no torch: the
estimator, the ranking, the reports and ``tunebench methods`` read cards without loading the
training stack. The implementation functions import torch/peft/trl inside their bodies.

Memory traits are functions of a model ``Shape`` (common/shape.py) and the method's validated
settings (the card's ``settings`` model, whose field defaults are the method's defaults), so the
estimator asks the card instead of switching on method names, and tests/methods/test_cards.py
checks every formula against the real method's counted parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from common.errors import UserError
from common.records import FORMATS as RECORDS
from common.shape import Shape

FAMILIES = ("full", "selective", "additive", "reparameterized", "soft-prompt", "quantized")
OBJECTIVE_FAMILIES = ("pretraining", "supervised", "distillation", "reward-model", "preference", "rl")
# What an objective can need from outside its own trainer (bench/train.py supplies these by name)
# or build inside it (reference, value_model); ``provides`` names what a stage hands to later ones.
NEEDS = ("reference", "reward_model", "value_model", "judge", "teacher", "checker")
RECORD_FORMATS = tuple(RECORDS)  # common/records.py: one pydantic model per format
BASE_STORAGE = ("dense", "nf4", "int8")
LATENCY = ("none", "adapter", "extra-tokens")
# How an objective's trainer scores tokens (ObjectiveMemory.lm_head): "next_token" = the model's own
# next-token loss, over full logits (HF Trainer) or TRL's fused tiled head (TRL SFTTrainer), the
# caller's choice; "fused" = TRL's trainer always patches the fused head (DPO, KTO, GRPO call
# add_fused_lm_head in __init__); "full" = (tokens × vocab) logits and a selective log-softmax
# (trl.experimental's ORPO and CPO/SimPO); "upcast" = full logits upcast to fp32 and an fp32 log-softmax
# (tunebench's PPO update, methods/_ppo.py).
LM_HEADS = ("next_token", "fused", "full", "upcast")
# Default learning rate by family (what the methods' papers and PEFT examples use at this scale).
FAMILY_LR = {"full": 2e-5, "selective": 1e-4, "reparameterized": 2e-4, "quantized": 2e-4,
             "additive": 1e-3, "soft-prompt": 1e-2}


class MethodConfig(BaseModel):
    """Base of every method's settings: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def validate_settings(cls: type[BaseModel], values: dict | None, what: str) -> BaseModel:
    """``cls(**values)`` with a one-line UserError naming the bad field."""
    try:
        return cls(**(values or {}))
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "config"
        raise UserError(f"{what}: bad value for '{loc}': {first['msg']}") from None


def _zero(*_) -> float:
    return 0.0


@dataclass(frozen=True)
class ParamMemory:
    """How a parameterization shows up in training memory (all counts for one causal LM).

    trainable(shape, cfg): trainable parameters (a reward model's score head not included).
    in_base: the trainables are base weights (full, freeze, ln, bias): no separate adapter copy,
        they have the base dtype.
    base: how the frozen base is stored: dense (the run's dtype), nf4 or int8.
    kept_layers(shape, cfg): layers whose activations autograd keeps (None = all of them).
    per_token(shape, cfg, e, ab, xb): extra bytes per token per layer autograd keeps for the method's
        own tensors, beyond what a frozen layer keeps; ``e`` the compute dtype's bytes, ``ab`` the
        bytes of an adapter's kept input (4 when adapters run in fp32, else e), ``xb`` the residual
        stream's (4 with fp32 master weights or on a quantized base, else e).
    layer_fixed(shape, cfg, ab, xb): token-independent bytes kept per layer (weight-sized deltas, BOFT's
        rotations), ``ab`` the bytes of the dtype the adapter's matmul runs in (autocast keeps a
        compute-dtype copy of an fp32 delta), ``xb`` the residual stream's bytes, as in per_token.
    frozen_extra(shape, cfg): bytes of frozen buffers the method adds (VeRA's shared projections, BOFT's
        permutations); ZeRO-3 and FSDP shard parameters, not buffers, so every rank holds them whole.
    extra_tokens(cfg): tokens added to every sequence (prompt tuning's virtual tokens).
    extra_attended(cfg): key/value positions attended but not computed (prefix tuning).
    trains_base_linears: the base's linear weights train (weight-gradient FLOPs in the backward; the
        inputs they keep for it belong in per_token).
    trains_head(cfg): the LM head (the embedding matrix when tied) trains: its vocab×hidden gradient is
        built while the logits' gradients are alive.
    outputs_input_dtype: an adapted projection returns its input's dtype (peft's VeRA casts its result back
        to x.dtype), so on an fp32 residual stream (fp32 master weights) its outputs, and the MLP's
        activations after gate/up, are fp32 rather than autocast's dtype.
    unfreed_per_token(shape, e): bytes per token per layer the base's own layers keep outside autograd's
        saved tensors, so activation checkpointing does not free them (bnb's int8 matmul holds its input
        on ``ctx``).
    """

    trainable: Callable[[Shape, BaseModel], int]
    in_base: bool = False
    base: str = "dense"
    kept_layers: Callable[[Shape, BaseModel], int] | None = None
    per_token: Callable[[Shape, BaseModel, int, int], float] = _zero
    layer_fixed: Callable[[Shape, BaseModel, int, int], float] = _zero
    frozen_extra: Callable[[Shape, BaseModel], float] = _zero
    extra_tokens: Callable[[BaseModel], int] = lambda cfg: 0
    extra_attended: Callable[[BaseModel], int] = lambda cfg: 0
    trains_base_linears: bool = False
    trains_head: Callable[[BaseModel], bool] = lambda cfg: False
    outputs_input_dtype: bool = False
    unfreed_per_token: Callable[[Shape, int], float] = _zero


@dataclass(frozen=True)
class ParamCard:
    """Which weights train and how the base is stored.

    label: the name the seed tables use ("LoRA", "Prefix tuning").
    requires: model features it needs (e.g. "bias terms"), checked at apply and by the estimator.
    mergeable: the update folds into the base weights (a plain model afterwards, no added latency).
    latency: inference cost once deployed: none (merged), adapter (extra modules), extra-tokens.
    shares_base: many trained results can serve from one frozen base (one base, many departments).
    zero_init: the model is unchanged at step 0.
    peft: applied through peft (methods/_peft.py ``peft_method``): a PeftModel whose adapters stay fp32
        on a bf16 base (autocast_adapter_dtype) and which TRL disables to get the reference model,
        instead of deep-copying it.
    """

    name: str
    family: str
    label: str
    trains: str
    description: str
    settings: type[MethodConfig]
    memory: ParamMemory
    mergeable: bool = True
    latency: str = "none"
    shares_base: bool = True
    zero_init: bool = True
    requires: tuple[str, ...] = ()
    peft: bool = False

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family {self.family} not in {FAMILIES}")
        if self.latency not in LATENCY or self.memory.base not in BASE_STORAGE:
            raise ValueError(f"{self.name}: latency/base storage not in {LATENCY}/{BASE_STORAGE}")

    @property
    def default_lr(self) -> float:
        return FAMILY_LR[self.family]

    def make_config(self, values: dict | None = None) -> BaseModel:
        return validate_settings(self.settings, values, f"parameterization '{self.name}'")

    def defaults(self) -> dict:
        return self.settings().model_dump()

    def trainable_params(self, shape: Shape, values: dict | None = None) -> int:
        return int(self.memory.trainable(shape, self.make_config(values)))


@dataclass(frozen=True)
class ObjectiveMemory:
    """How an objective shows up in memory and time beyond one forward/backward of the policy.

    sequences: sequences per example that train together (chosen + rejected = 2).
    generates: samples completions during training (a KV cache, decode time).
    step_time: a step's wall time relative to an SFT step on the same tokens (rollouts, judging,
        teacher answers), for time estimates before the results database has a measured run.
    lm_head: how the trainer turns hidden states into the loss (see LM_HEADS).
    nll_share: share of the scored sequences that also take a next-token NLL over their full logits
        (ORPO: the chosen half of each pair).
    teacher_logits(cfg): the teacher scores the training tokens during the step (its logits are alive
        with the student's), rather than only generating before training.
    """

    sequences: int = 1
    generates: bool = False
    step_time: float = 1.0
    lm_head: Literal["next_token", "fused", "full", "upcast"] = "full"
    nll_share: float = 0.0
    teacher_logits: Callable[[BaseModel], bool] = lambda cfg: False


@dataclass(frozen=True)
class ObjectiveCard:
    """What signal trains the weights.

    data: the record format it consumes (bench/taskdata.py; common/records.py).
    needs: models or tools it uses besides the policy (see NEEDS); bench supplies reward_model,
        teacher, judge and checker, the trainer builds reference and value_model itself.
    provides: what the stage's result is for later stages (rm provides "reward_model").
    head: causal_lm (a policy) or seq_cls (a scalar reward model).
    incompatible: parameterization name -> why it cannot be combined.
    """

    name: str
    family: str
    label: str
    data: str
    description: str
    settings: type[BaseModel]
    memory: ObjectiveMemory = field(default_factory=ObjectiveMemory)
    needs: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    head: Literal["causal_lm", "seq_cls"] = "causal_lm"
    incompatible: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        bad = [n for n in (*self.needs, *self.provides) if n not in NEEDS]
        if bad or self.data not in RECORD_FORMATS or self.family not in OBJECTIVE_FAMILIES:
            raise ValueError(f"{self.name}: unknown need/provide {bad}, data {self.data} or family {self.family}")
        if self.memory.lm_head not in LM_HEADS:
            raise ValueError(f"{self.name}: lm_head {self.memory.lm_head} not in {LM_HEADS}")

    def make_config(self, values: dict | None = None) -> BaseModel:
        return validate_settings(self.settings, values, f"objective '{self.name}'")

    def defaults(self) -> dict:
        return self.settings().model_dump()
