"""Framework profiles: what each training framework does by default, as estimator knobs, each cited.

    tunebench estimate --model llama-3.1-8b --method qlora --framework axolotl --gpu rtx-4090
    tunebench estimate frameworks

The profiles live in ``advisor/catalog/frameworks.yaml`` (one per framework; every knob a profile sets
carries a ``source``). ``apply(name, request, explicit)`` fills the request's knobs from the profile
(flags the user gave, ``explicit``, win); ``run(name, request, explicit)`` also applies, after the
estimate, what the estimator does not model but the framework does: DeepSpeed's bf16 layout (16-bit
weights and gradients, the fp32 master copy inside the sharded optimizer state) and ZeRO CPU offload of
the optimizer and the parameters (moved off the GPU and reported under ``offloaded``). ``find_fix``
tries single changes in a fixed order of cost when a run does not fit and says which one makes it fit
("fits with --grad-ckpt: 17.2 GiB", "needs 2 GPUs with ZeRO-3: 30.1 GiB per GPU").
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, TypeAdapter, ValidationError, \
    model_validator

from advisor import estimator
from advisor.catalogs import CATALOG, Gpu
from advisor.estimator import GIB, Estimate, Request
from common.errors import UserError, unknown
from common.yamlfile import first_error, read_yaml

FRAMEWORKS = CATALOG / "frameworks.yaml"
Knob = Literal["grad_ckpt", "precision", "amp", "master_weights", "adapter_fp32", "optimizer", "lm_head",
               "zero_stage", "master_in_optimizer", "offload_optimizer", "offload_params"]
# Each knob's type and accepted values (None: any value of the type).
ACCEPTED = {
    "grad_ckpt": (bool, None), "amp": (bool, None), "master_weights": (bool, None), "adapter_fp32": (bool, None),
    "master_in_optimizer": (bool, None), "offload_optimizer": (bool, None), "offload_params": (bool, None),
    "precision": (str, tuple(estimator.DTYPE_BYTES)), "optimizer": (str, tuple(estimator.OPTIMIZERS)),
    "lm_head": (str, ("full", "fused")), "zero_stage": (int, (0, 1, 2, 3)),
}
# Framework-level knobs: not Request fields; ``estimate`` applies them to the estimator's result.
POST = ("master_in_optimizer", "offload_optimizer", "offload_params")
FAMILIES = ("lora", "qlora", "full")
PROBE_SHARDS = 10**6  # shards that make every sharded state negligible (offload: the backward phase alone)


class Cited(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: StrictBool | StrictInt | StrictStr
    source: str = Field(min_length=20)


class Profile(BaseModel):
    """One framework: knobs for every method (``all``), per method family, and on a CPU."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=3)
    all: dict[Knob, Cited] = {}
    lora: dict[Knob, Cited] = {}
    qlora: dict[Knob, Cited] = {}
    full: dict[Knob, Cited] = {}
    cpu: dict[Knob, Cited] = {}
    notes: list[str] = []

    @model_validator(mode="after")
    def _accepted(self):
        for section in ("all", *FAMILIES, "cpu"):
            for knob, cited in getattr(self, section).items():
                kind, values = ACCEPTED[knob]
                v = cited.value
                if type(v) is not kind or (values is not None and v not in values):
                    raise ValueError(f"{section}.{knob}: {v!r} is not one of {values or kind.__name__}")
        return self

    def knobs(self, family: str, cpu: bool) -> dict[str, Cited]:
        """The profile's knobs for a method family, later sections overriding earlier ones."""
        return {**self.all, **getattr(self, family), **(self.cpu if cpu else {})}


@lru_cache(maxsize=None)
def profiles() -> dict[str, Profile]:
    data = read_yaml(FRAMEWORKS, "framework catalog")
    try:
        return TypeAdapter(dict[str, Profile]).validate_python(data)
    except ValidationError as e:
        raise UserError(f"framework catalog {FRAMEWORKS}: {first_error(e)}") from None


def profile(name: str) -> Profile:
    table = profiles()
    if name not in table:
        raise unknown("framework", name, table)
    return table[name]


def family(req: Request) -> str:
    """lora (adapters on a 16-bit base), qlora (an NF4 base) or full (trainables inside the base), from the card."""
    mem = estimator.cards_for(req.method, req.objective)[0].memory
    return "full" if mem.in_base else "qlora" if mem.base == "nf4" else "lora"


@dataclass(frozen=True)
class Assumed:
    """The request a framework's defaults make of the user's, and where each knob came from."""

    framework: str
    request: Request
    master_in_optimizer: bool = False  # DeepSpeed/FSDP: 16-bit weights and grads, fp32 master in the optimizer state
    offload_optimizer: bool = False
    offload_params: bool = False
    from_profile: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        r = self.request
        return {"framework": self.framework, "grad_ckpt": r.grad_ckpt, "precision": r.precision, "amp": r.amp,
                "master_weights": r.master_weights, "optimizer": r.optimizer, "lm_head": r.lm_head,
                "zero_stage": r.zero_stage, "num_gpus": r.num_gpus, "master_in_optimizer": self.master_in_optimizer,
                "offload_optimizer": self.offload_optimizer,
                "offload_params": self.offload_params, "from_profile": list(self.from_profile)}

    def line(self) -> str:
        r = self.request
        compute = f"{r.precision} autocast" if r.amp and r.precision != "fp32" else r.precision
        offload = [w for w, on in (("optimizer", self.offload_optimizer), ("params", self.offload_params)) if on]
        return " · ".join([
            self.framework, f"grad ckpt {'on' if r.grad_ckpt else 'off'}", compute,
            "fp32 master weights" if r.master_weights else
            "fp32 master in the optimizer state" if self.master_in_optimizer else "no fp32 master copy", r.optimizer,
            f"{r.lm_head} LM head", f"ZeRO-{r.zero_stage} × {r.num_gpus} GPU" if r.zero_stage else f"{r.num_gpus} GPU",
            f"CPU offload: {'+'.join(offload)}" if offload else "no offload"])


def resolve(name: str, req: Request, explicit: frozenset[str] | set[str] = frozenset()) -> Assumed:
    """The profile's knobs on the request, except those the user set (``explicit``: Request field names)."""
    prof = profile(name)
    if "master_weights" in explicit:  # the user chose where the fp32 copy lives
        explicit = {*explicit, "master_in_optimizer"}
    knobs = prof.knobs(family(req), req.gpu is not None and req.gpu.is_cpu)
    chosen = {k: c.value for k, c in knobs.items() if k not in explicit}
    fields = {k: v for k, v in chosen.items() if k not in POST}
    return Assumed(framework=name, request=replace(req, **fields),
                   **{k: bool(chosen.get(k, False)) for k in POST},
                   from_profile=tuple(sorted(chosen)), notes=tuple(prof.notes))


def apply(name: str, req: Request, explicit: frozenset[str] | set[str] = frozenset()) -> Request:
    """The request with the framework's defaults for every knob the user did not set."""
    return resolve(name, req, explicit).request


@dataclass
class Result:
    assumed: Assumed
    estimate: Estimate
    offloaded: dict[str, float] = field(default_factory=dict)  # bytes moved to host memory


def master_in_optimizer(est: Estimate, req: Request) -> Estimate:
    """DeepSpeed's bf16 layout (FSDP's, approximately): the estimate of a pure 16-bit run (master_weights off)
    plus the fp32 master copy and fp32 moments inside the optimizer state, sharded from ZeRO-1 on."""
    state = estimator.OPTIMIZERS[req.optimizer]
    shards = req.num_gpus if req.zero_stage >= 1 else 1
    states = est.trainable_params * (4 + (8 if state is None else state)) / shards
    return _rebuilt(est, req, {**est.breakdown, "optimizer_states": states}, est.notes + [
        "16-bit weights and gradients on the GPU; the fp32 master copy and fp32 optimizer moments in "
        "the optimizer state (4 + 8 B per trained parameter for AdamW), sharded by ZeRO"])


def _rebuilt(est: Estimate, req: Request, breakdown: dict[str, float], notes: list[str]) -> Estimate:
    """``est`` with a changed breakdown: peak and reserved bytes move by the difference, fits is re-judged."""
    delta = sum(breakdown.values()) - sum(est.breakdown.values())
    peak = est.peak_bytes + delta
    return replace(est, breakdown=breakdown, peak_bytes=peak, reserved_bytes=est.reserved_bytes + delta, notes=notes,
                   fits=None if req.gpu is None else peak <= req.gpu.memory_gib * GIB)


def offload(est: Estimate, req: Request, optimizer: bool, params: bool) -> tuple[Estimate, dict[str, float]]:
    """Move what ZeRO-Offload keeps in host memory out of the GPU breakdown (the estimate's own phases stay)."""
    breakdown, moved, notes = dict(est.breakdown), {}, list(est.notes)
    if optimizer and req.zero_stage == 0:
        notes.append("optimizer offload is ZeRO-Offload and needs ZeRO stage 1 or more: not applied")
    elif optimizer:
        moved["optimizer_states"] = breakdown.get("optimizer_states", 0.0)
        breakdown["optimizer_states"] = 0.0
        if breakdown.get("gradients") and not breakdown.get("activations") and not breakdown.get("logits"):
            # The step runs on the CPU, so the GPU's peak is the backward. The estimator reported its step
            # phase (every gradient, no activations or logits); a ZeRO-3 probe sharded a million ways leaves
            # only the backward's activations and logits.
            probe = estimator.estimate(replace(req, zero_stage=3, num_gpus=PROBE_SHARDS, tokens=None)).breakdown
            moved["gradients"] = breakdown["gradients"]
            breakdown.update(gradients=0.0, activations=probe["activations"], logits=probe["logits"])
        notes.append("ZeRO-Offload: optimizer states (with the fp32 master copy), gradients and the step in host "
                     "memory; gradient buckets on the way to the CPU are not counted")
    if params and req.zero_stage < 3:
        notes.append("parameter offload needs ZeRO-3: not applied")
    elif params and estimator.cards_for(req.method, req.objective)[0].memory.base != "dense":
        notes.append("parameter offload of a quantized base is not modelled: not applied")
    elif params:
        # the rank's shard goes to host memory; the layer being gathered (zero3_gathered_layer) stays
        moved["weights"] = breakdown["weights"]
        breakdown["weights"] = 0.0
        notes.append("ZeRO-3 parameter offload: weights in host memory except the layer being gathered")
    return _rebuilt(est, req, breakdown, notes), moved


def run(name: str, req: Request, explicit: frozenset[str] | set[str] = frozenset()) -> Result:
    """Estimate the request as the framework would run it."""
    return estimate(resolve(name, req, explicit))


def estimate(a: Assumed) -> Result:
    """The estimator's estimate of ``a.request`` with the framework-level knobs applied after it."""
    est, r = estimator.estimate(a.request), a.request
    if a.master_in_optimizer and r.precision != "fp32" and not r.master_weights and not (r.gpu and r.gpu.is_cpu):
        est = master_in_optimizer(est, r)  # an fp32 run has no separate master copy
    est, moved = offload(est, a.request, a.offload_optimizer, a.offload_params)
    return Result(assumed=a, estimate=est, offloaded=moved)


def _set(a: Assumed, **kw) -> Assumed:
    post = {k: kw.pop(k) for k in POST if k in kw}
    return replace(a, request=replace(a.request, **kw), **post)


def changes(a: Assumed, gpu: Gpu) -> list[tuple[str, Assumed]]:
    """The single changes that apply to ``a``, in a fixed order of cost: (label, changed)."""
    r, out = a.request, []
    if not r.grad_ckpt:
        out.append(("--grad-ckpt", _set(a, grad_ckpt=True)))
    if r.optimizer == "adamw":
        out.append(("--optimizer adamw8bit", _set(a, optimizer="adamw8bit")))
    if r.micro_batch > 1:
        out.append((f"--micro-batch 1 and {r.micro_batch} gradient-accumulation steps", _set(a, micro_batch=1)))
    if r.method == "lora":
        out.append(("--method qlora", _set(a, method="qlora")))
    if gpu.is_cpu:
        return out
    for n in (2, 4, 8):
        if n > r.num_gpus:
            out.append((f"{n} GPUs with ZeRO-3", _set(a, num_gpus=n, zero_stage=3)))
    if not a.offload_optimizer:
        out.append(("ZeRO-Offload of the optimizer states to CPU",
                    _set(a, zero_stage=max(r.zero_stage, 1), offload_optimizer=True)))
    if not a.offload_params:
        out.append(("ZeRO-3 with optimizer and parameters offloaded to CPU",
                    _set(a, zero_stage=3, offload_optimizer=True, offload_params=True)))
    return out


def _try(a: Assumed) -> Estimate | None:
    try:
        return estimate(a).estimate
    except UserError:  # a change the method or objective does not allow
        return None


@dataclass(frozen=True)
class Fix:
    labels: tuple[str, ...]  # the changes, cheapest first
    assumed: Assumed         # the request with them
    estimate: Estimate
    fits: bool

    def line(self, gpu: Gpu) -> str:
        per = " per GPU" if self.assumed.request.num_gpus > 1 else ""
        changes_ = " + ".join(self.labels)
        if not self.fits:
            return f"does not fit even with {changes_}: {self.estimate.peak_gib:.1f} GiB{per} ({gpu.memory_gib:g} GiB)"
        if len(self.labels) == 1 and changes_.endswith("GPUs with ZeRO-3"):
            return f"needs {changes_}: {self.estimate.peak_gib:.1f} GiB{per}"
        return f"fits with {changes_}: {self.estimate.peak_gib:.1f} GiB{per}"


def find_fix(req: Request, gpu: Gpu, like: Assumed | None = None) -> Fix | None:
    """None when the request fits the GPU (estimator.fits_gpu); else the cheapest single change that makes it
    fit, else the changes stacked in the same order until it fits (fits=False: all of them and still not).
    ``like``: the framework-level knobs (master layout, CPU offload) the request runs with."""
    req = replace(req, gpu=gpu)
    base = replace(like, request=req) if like else Assumed(framework="", request=req)
    est = _try(base)
    if est is None or estimator.fits_gpu(est, gpu):
        return None
    for label, changed in changes(base, gpu):
        est = _try(changed)
        if est is not None and estimator.fits_gpu(est, gpu):
            return Fix((label,), changed, est, True)
    cur, labels, est = base, [], None
    while True:  # every change removes itself from the next changes(), so this ends
        step = next(((label, c, e) for label, c in changes(cur, gpu) if (e := _try(c)) is not None), None)
        if step is None:
            break
        label, cur, est = step
        more_gpus = label.endswith("GPUs with ZeRO-3")  # more GPUs replace fewer, they do not add up
        labels = [x for x in labels if not (more_gpus and x.endswith("GPUs with ZeRO-3"))] + [label]
        if estimator.fits_gpu(est, gpu):
            return Fix(tuple(labels), cur, est, True)
    return None if est is None else Fix(tuple(labels), cur, est, False)


def table() -> list[dict]:
    """Every profile's knobs per section, with sources (for `tunebench estimate frameworks`)."""
    rows = []
    for name, p in profiles().items():
        for section in ("all", *FAMILIES, "cpu"):
            for knob, c in getattr(p, section).items():
                rows.append({"framework": name, "applies_to": section, "knob": knob, "value": c.value,
                             "source": c.source})
    return rows
