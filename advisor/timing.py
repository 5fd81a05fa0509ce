"""Training time of one stage: FLOPs per token from the shape, the parameterization and the
objective's card, divided by the device's peak and a calibrated utilization (MFU).

``estimator.estimate`` calls ``hours``; ``calibration`` fits MFU with ``train_flops_per_token``.
Neither function knows a method by name: what trains comes from the card's memory traits and the
trained-parameter count the estimator computed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from advisor.estimator import Request
    from methods.card import ObjectiveCard, ParamCard


def train_flops_per_token(req: Request, par: ParamCard, obj: ObjectiveCard, n_train: int) -> float:
    """Training FLOPs per training token: forward 2N, backward 2N for input grads + 2N for trained base weights."""
    s = req.shape
    active = s.params() - s.embedding_params() if not s.tied else s.params()
    if s.experts > 1:
        active = s.params() - s.linear_params() + s.linear_params() * (s.experts_per_token / s.experts)
    fwd = 2 * active + 2 * s.layers * req.seq_len * s.q_dim  # causal attention scores + weighted sum
    # Weight gradients cost another forward for the base weights that train (all of them for
    # full FT, the last layers + head for freeze); adapters' own weight gradients are negligible.
    weight_grad = fwd * min(1.0, n_train / active) if par.memory.trains_base_linears else 0.0
    total = fwd * (2 + (1 if req.grad_ckpt else 0)) + weight_grad
    if "reference" in obj.needs and not req.precompute_ref:
        total += fwd
    if "teacher" in obj.needs:
        total += 2 * (req.teacher or s).params()
    if "value_model" in obj.needs:
        total += 2 * fwd + fwd  # value fwd+bwd, reward fwd
    return total * obj.memory.sequences


def hours(req: Request, par: ParamCard, obj: ObjectiveCard, precision: str, c: dict, n_train: int,
          weights_bytes: float) -> float | None:
    """Wall-clock hours for ``req.tokens`` training tokens; None without a device to time on."""
    gpu = req.gpu
    if gpu is None:
        return None
    peak = (gpu.bf16_tflops if precision in ("bf16", "fp16") else gpu.fp32_tflops) * 1e12
    mfu = c["mfu"] * {"nf4": 0.6, "int8": 0.4}.get(par.memory.base, 1.0)
    flops = train_flops_per_token(req, par, obj, n_train) / obj.memory.sequences
    seconds = req.tokens * flops / (peak * mfu * req.num_gpus)
    if obj.memory.generates:
        # Decoding is memory-bound: each step reads the weights once for the whole batch.
        steps = req.tokens / max(1, req.seq_len) / max(1, req.micro_batch) * req.gen_len
        seconds += steps * weights_bytes / (gpu.bandwidth_gbs * 1e9 * 0.6) / req.num_gpus
    return seconds / 3600
