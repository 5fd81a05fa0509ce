"""Training time of one stage: FLOPs per token from the shape, the parameterization and the
objective's card, divided by the device's peak and a utilization (MFU), times the method's and the
objective's own slowdown where this hardware class has been measured.

``advisor/timing.json`` holds, per hardware class (cpu, gpu), the MFU and the slowdown factors of
each parameterization and objective (LoRA and SFT = 1), fitted by ``tunebench estimate
calibrate-time --db DIR`` on this project's own measured runs only (``fitted_on`` says which). A
method with extra per-token work the FLOP count misses (DoRA's weight norm, BOFT's butterfly
products, quantized bases' dequantization) is slower than its FLOPs say; the factor is that
measured difference. Classes without measurements fall back to the FLOP model and the calibrated
GPU MFU (``calibration.json``).

``estimator.estimate`` calls ``hours``; ``calibration`` fits MFU with ``train_flops_per_token``.
Neither function knows a method by name: what trains comes from the card's memory traits and the
trained-parameter count the estimator computed.
"""
from __future__ import annotations

import json
import statistics
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from advisor.estimator import Request
    from methods.card import ObjectiveCard, ParamCard


def train_flops_per_token(req: Request, par: ParamCard, obj: ObjectiveCard, n_train: int) -> float:
    """Training FLOPs per training token: forward 2N, backward 2N for input grads + 2N for trained base weights."""
    s = req.shape
    active = s.params() - s.embedding_params() if not s.tied else s.params()
    if s.experts > 1:
        # a token runs through experts_per_token of the experts, and through all of the attention
        active = s.params() - s.expert_params() + s.expert_params() * (s.experts_per_token / s.experts)
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


def _seconds(req: Request, par: ParamCard, obj: ObjectiveCard, precision: str, n_train: int,
             weights_bytes: float) -> tuple[float, float]:
    """(seconds of compute at 100% of peak, seconds of memory-bound decoding) for ``req.tokens``."""
    gpu = req.gpu
    peak = (gpu.bf16_tflops if precision in ("bf16", "fp16") else gpu.fp32_tflops) * 1e12
    flops = train_flops_per_token(req, par, obj, n_train) / obj.memory.sequences
    compute = req.tokens * flops / (peak * req.num_gpus)
    decode = 0.0
    if obj.memory.generates:
        # Decoding is memory-bound: each step reads the weights once for the whole batch.
        steps = req.tokens / max(1, req.seq_len) / max(1, req.micro_batch) * req.gen_len
        decode = steps * weights_bytes / (gpu.bandwidth_gbs * 1e9 * 0.6) / req.num_gpus
    return compute, decode


def hours(req: Request, par: ParamCard, obj: ObjectiveCard, precision: str, c: dict, n_train: int,
          weights_bytes: float) -> float | None:
    """Wall-clock hours for ``req.tokens`` training tokens; None without a device to time on."""
    if req.gpu is None:
        return None
    compute, decode = _seconds(req, par, obj, precision, n_train, weights_bytes)
    mfu, slowdown = speed(par.name, obj.name, req.gpu.is_cpu)
    if mfu is None:  # this hardware class was never measured: the FLOP model, dequantizing bases slower
        return (compute / (c["mfu"] * {"nf4": 0.6, "int8": 0.4}.get(par.memory.base, 1.0)) + decode) / 3600
    # Fitted on whole measured steps, so the factors scale the whole step (decoding included).
    return (compute + decode) * slowdown / mfu / 3600


def predicted_tokens_per_s(req: Request, par: ParamCard, obj: ObjectiveCard, precision: str, n_train: int,
                           weights_bytes: float) -> float:
    """Tokens per second at 100% MFU and no slowdown: what fitted factors divide."""
    compute, decode = _seconds(req, par, obj, precision, n_train, weights_bytes)
    return req.tokens / (compute + decode)


# -- per-hardware-class speed factors, fitted on measured runs ---------------------------------
TIMING = Path(__file__).parent / "timing.json"
FIT_ROUNDS = 30


@lru_cache(maxsize=None)
def _fitted() -> dict:
    return json.loads(TIMING.read_text()).get("classes", {}) if TIMING.exists() else {}


def speed(method: str, objective: str, cpu: bool) -> tuple[float | None, float]:
    """(fitted MFU or None, slowdown factor) of a method and objective on CPU or GPU. Methods and
    objectives never measured on that class get factor 1 (the FLOP model alone)."""
    fit = _fitted().get("cpu" if cpu else "gpu")
    if not fit:
        return None, 1.0
    return fit["mfu"], fit["method"].get(method, 1.0) * fit["objective"].get(objective, 1.0)


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def fit_speed(rows: list[tuple[str, str, float]]) -> dict:
    """Fit ``measured/predicted-at-MFU-1 = mfu / (f_method * f_objective)`` by alternating medians
    (robust to one noisy run); LoRA and SFT are the anchors (factor 1). rows: (method, objective, ratio)."""
    fm = {m: 1.0 for m, _, _ in rows}
    fo = {o: 1.0 for _, o, _ in rows}
    mfu = 1.0
    for _ in range(FIT_ROUNDS):
        mfu = _median([y * fm[m] * fo[o] for m, o, y in rows])
        for m in fm:
            fm[m] = _median([mfu / (y * fo[o]) for mm, o, y in rows if mm == m])
        for o in fo:
            fo[o] = _median([mfu / (y * fm[m]) for m, oo, y in rows if oo == o])
        a, b = fm.get("lora", 1.0), fo.get("sft", 1.0)
        fm = {k: v / a for k, v in fm.items()}
        fo = {k: v / b for k, v in fo.items()}
    mfu = _median([y * fm[m] * fo[o] for m, o, y in rows])
    return {"mfu": mfu, "method": fm, "objective": fo}


def speed_errors(rows: list[tuple[str, str, float]]) -> dict:
    """Median and p90 |error| of predicted vs measured tokens/s: in sample, and leaving each run out
    (its method's or objective's factor then comes from the other runs, or is 1 if there are none)."""
    def err(fit, m, o, y):
        pred = fit["mfu"] / (fit["method"].get(m, 1.0) * fit["objective"].get(o, 1.0))
        return abs(pred / y - 1)

    full = fit_speed(rows)
    inside = sorted(err(full, *r) for r in rows)
    loo = sorted(err(fit_speed(rows[:i] + rows[i + 1:]), *r) for i, r in enumerate(rows)) if len(rows) > 1 else []
    pick = (lambda xs, q: round(xs[min(len(xs) - 1, int(q * len(xs)))], 4) if xs else None)
    return {"in_sample": {"median": pick(inside, 0.5), "p90": pick(inside, 0.9)},
            "leave_one_out": {"median": pick(loo, 0.5), "p90": pick(loo, 0.9)}}
