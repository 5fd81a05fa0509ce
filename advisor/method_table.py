"""What the estimator needs to know about each parameterization and objective.

The names are the project's contract (DESIGN.md §1); the registry in ``methods/`` holds the
training code, this table holds the memory/compute mechanisms. ``check(method, objective)``
raises UserError with the closest names for anything unknown.
"""
from __future__ import annotations

from dataclasses import dataclass

from common.errors import unknown

# LoRA-style targets: which per-layer linear modules get an adapter.
TARGETS = {
    "all-linear": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "attn": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "qv": ("q_proj", "v_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj"),
}


@dataclass(frozen=True)
class Param:
    """kind: how it trains (drives which tensors autograd keeps).
    base: how the frozen base is stored (bf16 = the --precision dtype, nf4, int8).
    mergeable: folds into the base weights after training (no added inference latency).
    shares_base: many adapters can serve from one base (one base, many departments).
    """

    kind: str
    base: str = "dense"
    mergeable: bool = True
    shares_base: bool = True
    note: str = ""


PARAMS: dict[str, Param] = {
    "full": Param("full", shares_base=False, note="every weight trains"),
    "freeze": Param("freeze", shares_base=False, note="only the last quarter of the layers train"),
    "lora": Param("lowrank"),
    "rslora": Param("lowrank", note="LoRA with rank-stabilised scaling"),
    "pissa": Param("lowrank", note="LoRA initialised from the principal singular vectors"),
    "adalora": Param("lowrank", note="LoRA with an SVD-style rank budget"),
    "dora": Param("dora", note="LoRA plus a per-output magnitude vector"),
    "qlora": Param("lowrank", base="nf4", note="LoRA on a 4-bit NF4 base"),
    "lora8bit": Param("lowrank", base="int8", note="LoRA on an 8-bit LLM.int8 base"),
    "vera": Param("vera", note="shared frozen random projections, per-layer scaling vectors"),
    "loha": Param("weightdelta", note="Hadamard product of two low-rank pairs"),
    "lokr": Param("weightdelta", note="Kronecker product of small factors"),
    "oft": Param("weightdelta", note="orthogonal block rotation of the weights"),
    "boft": Param("weightdelta", note="butterfly-factorised orthogonal rotation"),
    "ia3": Param("ia3", note="learned scaling vectors on k, v and the FFN input"),
    "prefix": Param("prefix", mergeable=False, note="learned key/value prefixes in every layer"),
    "ptuning": Param("prefix", mergeable=False, note="P-Tuning v2: deep prompts in every layer"),
    "prompt": Param("prompt", mergeable=False, note="learned soft-prompt embeddings"),
    "ln_tuning": Param("ln", note="only the normalisation weights train"),
    "bitfit": Param("bias", note="only the bias terms train (needs a model with biases)"),
    "adapter_houlsby": Param("bottleneck", mergeable=False, note="two bottleneck adapters per layer"),
    "adapter_pfeiffer": Param("bottleneck", mergeable=False, note="one bottleneck adapter per layer"),
}


@dataclass(frozen=True)
class Obj:
    """pairs: sequences per example that train together (chosen + rejected = 2).
    reference: needs a frozen copy of the start policy (skipped when adapters can be disabled).
    """

    pairs: int = 1
    reference: bool = False
    head: str = "causal_lm"
    generates: bool = False
    teacher: bool = False
    value_and_reward: bool = False
    data: str = "pairs"
    note: str = ""


OBJECTIVES: dict[str, Obj] = {
    "cpt": Obj(data="corpus", note="next-token loss on a corpus"),
    "sft": Obj(note="prompt -> response, loss on the response"),
    "multitask": Obj(note="SFT on a weighted mixture of tasks"),
    "distill": Obj(teacher=True, note="student matches a resident teacher's logits"),
    "rm": Obj(pairs=2, head="seq_cls", data="preferences", note="scalar reward model on preference pairs"),
    "dpo": Obj(pairs=2, reference=True, data="preferences", note="chosen+rejected with a frozen reference"),
    "ipo": Obj(pairs=2, reference=True, data="preferences", note="DPO with the IPO loss"),
    "kto": Obj(pairs=1, reference=True, data="feedback", note="unpaired good/bad completions with a reference"),
    "orpo": Obj(pairs=2, data="preferences", note="odds-ratio preference loss, no reference"),
    "simpo": Obj(pairs=2, data="preferences", note="length-normalised preference loss, no reference"),
    "grpo": Obj(generates=True, data="checker", note="group generations scored by a checker; TRL default beta=0 keeps no reference"),
    "ppo": Obj(generates=True, reference=True, value_and_reward=True, data="preferences",
               note="policy + value + reward + reference models and rollouts"),
    "rlaif": Obj(pairs=2, reference=True, data="judge", note="AI-judge preferences (labelled before training), DPO-style update"),
}


def check(method: str, objective: str) -> tuple[Param, Obj]:
    if method not in PARAMS:
        raise unknown("method", method, PARAMS)
    if objective not in OBJECTIVES:
        raise unknown("objective", objective, OBJECTIVES)
    return PARAMS[method], OBJECTIVES[objective]
