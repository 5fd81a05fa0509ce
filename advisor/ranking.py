"""Rank whole method stacks for a task profile: fit, budget, measured evidence, guidance — and always answer.

    tunebench advise --gpu rtx-4090 --goal chat --data pairs,preferences --budget-hours 12

``answer(Profile(...)) -> Answer`` (``advise`` returns just its recommendations): candidate stacks
come from the goal's recipes for the data on hand and the starting point (advisor/recipes.py) ×
parameterizations × models; each stage is estimated with the fastest micro-batch/checkpointing
setting that fits. A stack that fits but exceeds the budget is not dropped: it is cut to what the
budget buys (fewer epochs, then a fraction of the data) and says what it gives up. A model that does
not fit gives way to smaller ones (saying so), and if nothing fits at the requested sequence length,
shorter sequences are tried. Scores mix the recipe's prior with measured evidence (advisor/evidence.py:
the shipped reference DBs, published results and the user's DB, per hardware, never pooled).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from advisor.catalogs import Gpu, Shape, shape
from advisor.estimator import Estimate, Request, estimate, fits_gpu
from advisor.evidence import Evidence, gather
from advisor.recipes import (CANDIDATE_METHODS, DATA_KINDS, GOALS, METHOD_PRIOR, STARTS, Recipe,  # noqa: F401
                             normalize_data, recipes_for, stronger_recipe)
from common.errors import UserError

MODEL_LADDER = ("qwen2.5-14b", "llama-3.1-8b", "qwen2.5-7b", "llama-3.2-3b", "qwen2.5-1.5b", "smollm2-360m", "smollm2-135m")
SETTINGS = ((4, False), (4, True), (1, False), (1, True))  # (micro-batch, checkpointing), fastest first
MIN_SEQ = 256
DATA_NOUN = {"text": ("corpus tokens", "corpus_tokens"), "preference": ("preference pairs", "preferences"),
             "unpaired_preference": ("feedback labels", "feedback"), "prompt_with_checker": ("prompts", "prompts")}


class Stage(NamedTuple):
    """One fitted stage of a candidate stack: the setting that fits and its estimate."""

    objective: str
    method: str
    estimate: Estimate
    request: Request


@dataclass
class Profile:
    goal: str
    gpu: Gpu
    num_gpus: int = 1
    budget_hours: float | None = None
    budget_usd: float | None = None
    data: tuple[str, ...] = ("pairs",)
    start: str = "base"             # the starting model: "base" or "instruct"
    model: str | None = None
    teacher: str | None = None      # distillation teacher (catalog name); None: the student's own shape
    no_latency: bool = False
    seq_len: int = 1024
    corpus_tokens: int = 20_000_000
    pairs: int = 10_000
    preferences: int = 5_000
    feedback: int = 5_000
    prompts: int = 2_000
    epochs: int = 2
    db: Path | None = None
    top: int = 5


@dataclass
class Recommendation:
    stack: str
    model: str
    peak_gib: float
    hours: float | None
    cost_usd: float | None
    fits: bool
    score: float
    why: str
    evidence: list[str] = field(default_factory=list)       # run ids behind the score
    stages: list[dict] = field(default_factory=list)
    change: str = ""
    gives_up: str = ""          # what the plan trades away to fit the GPU or the budget ("" = nothing)
    budget_cut: str = ""        # the part of gives_up the budget forced ("" = the whole plan fits the budget)
    data_fraction: float = 1.0  # share of one pass over the data (1.0 with ``epochs`` whole passes)
    epochs: int = 1
    seq_len: int = 0
    evidence_detail: list[dict] = field(default_factory=list)
    factors: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["peak_gib"] = round(self.peak_gib, 2)
        d["hours"] = None if self.hours is None else round(self.hours, 3)
        d["cost_usd"] = None if self.cost_usd is None else round(self.cost_usd, 2)
        d["score"] = round(self.score, 4)
        d["data_fraction"] = round(self.data_fraction, 4)
        return d


@dataclass
class Answer:
    """The ranked plans, what the budget buys, and notes on anything the advisor changed."""

    recommendations: list[Recommendation]
    budget: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"recommendations": [r.to_dict() for r in self.recommendations], "budget": self.budget,
                "notes": self.notes}


@dataclass
class _Plan:
    """A candidate before ranking: a fitted stack on one model at one sequence length."""

    recipe: Recipe
    note: str
    methods: tuple[str, ...]
    shape: Shape
    seq_len: int
    stages: list[Stage]
    hours: float
    cost: float


def _counts(p: Profile) -> dict[str, int]:
    return {"corpus_tokens": p.corpus_tokens, "pairs": p.pairs, "preferences": p.preferences,
            "feedback": p.feedback, "prompts": p.prompts}


def _stage_data(p: Profile, objective: str) -> tuple[str, str, int]:
    """(noun, Profile field, count) of the data one stage trains on."""
    from methods import OBJECTIVES  # the objective's card: its record format, whether it generates

    card = OBJECTIVES[objective].card
    noun, key = DATA_NOUN.get(card.data, ("pairs", "pairs"))
    have = set(normalize_data(p.data))
    if card.data == "preference" and "preferences" not in have:
        noun, key = "prompts", "prompts"  # RLAIF judges its own sampled pairs
    if card.data == "prompt_completion" and "pairs" not in have:
        noun, key = "prompts", "prompts"  # distillation: the teacher answers the prompts
    return noun, key, _counts(p)[key]


def _stage_tokens(p: Profile, objective: str, seq_len: int, share: float = 1.0) -> int:
    """Training tokens of one stage over ``share`` of the planned epochs (sequences half-full on average)."""
    from methods import OBJECTIVES

    card = OBJECTIVES[objective].card
    _, key, n = _stage_data(p, objective)
    half = seq_len // 2
    if card.data == "text":
        return max(1, int(n * share))
    if card.memory.generates:
        return max(1, int(p.prompts * 8 * (half + 256) * share))
    per = 2 if card.data == "preference" else 1  # chosen + rejected
    return max(1, int(n * per * half * p.epochs * share))


def _request(p: Profile, s: Shape, method: str, objective: str, seq_len: int, mb: int, ckpt: bool,
             share: float = 1.0) -> Request:
    from methods import PARAMETERIZATIONS

    # Several GPUs shard trained base weights (ZeRO-3) when the base itself trains.
    zero = 3 if p.num_gpus > 1 and PARAMETERIZATIONS[method].card.memory.in_base else 0
    teacher = shape(p.teacher) if p.teacher else None
    return Request(shape=s, method=method, objective=objective, seq_len=seq_len, micro_batch=mb, grad_ckpt=ckpt,
                   gpu=p.gpu, num_gpus=p.num_gpus, zero_stage=zero, teacher=teacher,
                   tokens=_stage_tokens(p, objective, seq_len, share),
                   precision="bf16" if p.gpu.bf16 else ("fp32" if p.gpu.is_cpu else "fp16"))


def _fit_stage(p: Profile, s: Shape, method: str, objective: str, seq_len: int) -> Stage | None:
    """The fastest setting that fits: bigger micro-batch first, checkpointing only if needed."""
    for mb, ckpt in SETTINGS:
        req = _request(p, s, method, objective, seq_len, mb, ckpt)
        est = estimate(req)
        if fits_gpu(est, p.gpu):
            return Stage(objective, method, est, req)
    return None


def _candidates(p: Profile):
    """(recipe, note, methods per stage) for every recipe the data on hand and the start allow."""
    from methods import PARAMETERIZATIONS  # the cards: shares_base, mergeable

    card = {m: PARAMETERIZATIONS[m].card for m in CANDIDATE_METHODS}
    for recipe, note in recipes_for(p.goal, p.data, p.start):
        objectives = recipe.objectives
        options = [tuple([m] * len(objectives)) for m in CANDIDATE_METHODS]
        if objectives[0] == "cpt" and len(objectives) > 1:
            options.append(("full",) + ("lora",) * (len(objectives) - 1))
        for methods in options:
            if p.goal == "multi-tenant" and not card[methods[-1]].shares_base:
                continue  # the last stage must be an adapter that can share the base
            if p.no_latency and not all(card[m].mergeable for m in methods):
                continue
            yield recipe, note, methods


def _model_prior(p: Profile, s: Shape) -> float:
    size = math.log2(max(s.params() / 1e9, 0.05))
    # A distilled student is wanted small and fast; everywhere else a bigger base is better.
    return 1 - 0.03 * size if p.goal == "distill" else 1 + 0.06 * size


def _plans(p: Profile, shapes: list[Shape], seq_len: int, too_big: dict[str, float]) -> list[_Plan]:
    out = []
    for recipe, note, methods in _candidates(p):
        for s in shapes:
            stages = []
            for obj, m in zip(recipe.objectives, methods):
                st = _fit_stage(p, s, m, obj, seq_len)
                if st is None:
                    need = estimate(_request(p, s, m, obj, seq_len, 1, True)).peak_gib
                    too_big[s.name] = min(too_big.get(s.name, math.inf), need)
                    break
                stages.append(st)
            if len(stages) == len(recipe.objectives):
                hours = sum(st.estimate.hours or 0 for st in stages)
                cost = sum(st.estimate.cost_usd or 0 for st in stages)
                out.append(_Plan(recipe, note, methods, s, seq_len, stages, hours, cost))
    return out


def _budget_share(p: Profile, hours: float, cost: float) -> float:
    """The share of the plan the budget pays for (1.0 = all of it)."""
    share = 1.0
    if p.budget_hours is not None and hours > 0:
        share = min(share, p.budget_hours / hours)
    if p.budget_usd is not None and cost > 0:
        share = min(share, p.budget_usd / cost)
    return share


def _pct(x: float) -> str:
    return f"{x:.0%}" if x >= 0.1 else f"{100 * x:.2g}%"


def _cut_text(p: Profile, plan: _Plan, share: float) -> tuple[str, int, float, float]:
    """(what the cut gives up, epochs, share of one pass over the data, share of the plan trained)
    for a budget share < 1: whole epochs dropped first, then a fraction of one pass."""
    epochs = p.epochs if any(_stage_data(p, o)[1] != "corpus_tokens" for o in plan.recipe.objectives) else 1
    if epochs > 1 and share * epochs >= 1:
        kept = int(share * epochs)
        return (f"{kept} epoch{'s' if kept > 1 else ''} instead of {epochs} (the budget buys {_pct(share)} of the plan)",
                kept, 1.0, kept / epochs)
    one_pass = share * epochs
    parts = []
    for obj in dict.fromkeys(plan.recipe.objectives):
        noun, _, n = _stage_data(p, obj)
        parts.append(f"{max(1, int(n * one_pass)):,} of your {n:,} {noun}")
    return (f"one pass over {'; '.join(parts)} ({_pct(one_pass)} of one epoch; the budget buys {_pct(share)} of the plan)",
            1, one_pass, share)


def _score(p: Profile, plan: _Plan, evidence: dict[tuple[str, str], Evidence], share: float) -> tuple[float, dict]:
    q_recipe = plan.recipe.prior
    q_method = sum(METHOD_PRIOR[m] for m in plan.methods) / len(plan.methods)
    q_model = _model_prior(p, plan.shape)
    prior = q_recipe * q_method * q_model
    ev = [evidence[(st.objective, st.method)] for st in plan.stages if (st.objective, st.method) in evidence]
    runs = sum(len(e.run_ids) for e in ev)
    weight = min(0.6, 0.2 * runs) if ev else 0.0
    measured = sum(e.rank for e in ev) / len(ev) if ev else None
    # Evidence moves the prior up or down around the middle of its task's runs (rank 0.5 = neutral),
    # so a stack with no measurements is neither helped nor hurt by its absence.
    score = prior if not ev else prior * (1 + weight * (measured - 0.5))
    data = min(1.0, share) ** 0.1  # less data, less quality: a tenth of it costs ~21%, a hundredth ~37%
    seq = (plan.seq_len / p.seq_len) ** 0.05 if plan.seq_len < p.seq_len else 1.0
    hours = plan.hours * min(1.0, share)
    time_penalty = 0.01 * math.log1p(hours)  # between equals, the cheaper stack wins
    final = score * data * seq - time_penalty
    return final, {"recipe_prior": round(q_recipe, 3), "method_prior": round(q_method, 3),
                   "model_prior": round(q_model, 3), "prior": round(prior, 4),
                   "evidence_rank": None if measured is None else round(measured, 3),
                   "evidence_weight": round(weight, 2), "data_factor": round(data, 4), "seq_factor": round(seq, 4),
                   "time_penalty": round(time_penalty, 4), "score": round(final, 4)}


def _recommend(p: Profile, plan: _Plan, evidence: dict, gives: list[str]) -> Recommendation:
    share = _budget_share(p, plan.hours, plan.cost)
    epochs, one_pass = p.epochs, 1.0
    gives, cut = list(gives), ""
    stages = plan.stages
    if share < 1:
        cut, epochs, one_pass, share = _cut_text(p, plan, share)
        gives.append(cut)
        stages = [st._replace(request=dataclasses.replace(st.request, tokens=max(1, int(st.request.tokens * share))))
                  for st in stages]
        stages = [st._replace(estimate=estimate(st.request)) for st in stages]
    if plan.seq_len < p.seq_len:
        gives.append(f"sequences cut to {plan.seq_len:,} tokens (nothing fits at {p.seq_len:,})")
    if plan.note:
        gives.append(plan.note)
    hours = sum(st.estimate.hours or 0 for st in stages)
    cost = sum(st.estimate.cost_usd or 0 for st in stages)
    score, factors = _score(p, plan, evidence, share)
    ev = [evidence[(st.objective, st.method)] for st in stages if (st.objective, st.method) in evidence]
    return Recommendation(
        stack=",".join(f"{st.objective}:{st.method}" for st in stages), model=plan.shape.name,
        peak_gib=max(st.estimate.peak_gib for st in stages), hours=hours,
        cost_usd=cost if p.gpu.usd_per_hour or not p.gpu.is_cpu else 0.0, fits=True, score=score,
        why=_why(p, plan.recipe.guidance, stages, ev), evidence=[r for e in ev for r in e.run_ids],
        stages=[{"stage": f"{st.objective}:{st.method}", "peak_gib": round(st.estimate.peak_gib, 2),
                 "micro_batch": st.request.micro_batch, "grad_ckpt": st.request.grad_ckpt,
                 "precision": st.request.precision, "seq_len": st.request.seq_len, "tokens": st.request.tokens,
                 "hours": round(st.estimate.hours or 0, 3)} for st in stages],
        gives_up="; ".join(gives), budget_cut=cut, data_fraction=one_pass, epochs=epochs, seq_len=plan.seq_len,
        evidence_detail=[e.to_dict() for e in ev], factors=factors)


def answer(p: Profile) -> Answer:
    """Ranked plans that fit the GPU, cut to the budget where needed, best first; never empty
    without a reason."""
    normalize_data(p.data)
    recipes_for(p.goal, p.data, p.start)  # validates goal and start
    if not p.data:
        raise UserError("--data needs at least one data kind (" + ", ".join(DATA_KINDS) + ")")
    notes: list[str] = []
    wanted = [shape(p.model)] if p.model else [shape(n) for n in MODEL_LADDER]
    too_big: dict[str, float] = {}
    seq = p.seq_len
    plans = _plans(p, wanted, seq, too_big)
    gives: list[str] = []
    if not plans and p.model:
        smaller = [shape(n) for n in MODEL_LADDER if shape(n).params() < wanted[0].params()]
        plans = _plans(p, smaller, seq, {})
        need = (f"needs {too_big[wanted[0].name]:.0f} GiB per GPU even with micro-batch 1 and checkpointing "
                f"({p.gpu.memory_gib:g} GiB available)")
        gives.append(f"a smaller model than your {wanted[0].name}, which {need}")
        notes.append(f"{wanted[0].name} does not fit: it {need}; {_more_gpus(p, wanted[0])}")
    while not plans and seq // 2 >= MIN_SEQ:
        seq //= 2
        plans = _plans(p, wanted if not p.model else [shape(n) for n in MODEL_LADDER], seq, {})
    if not plans:
        notes.append(f"nothing fits {p.gpu.memory_gib:g} GiB even at {seq} tokens with the smallest model")
        return Answer([], _budget_line(p, None), notes)
    evidence = gather(p.goal, p.gpu, p.db)
    recs = [_recommend(p, plan, evidence, gives) for plan in plans]
    best: dict[str, Recommendation] = {}
    for r in sorted(recs, key=lambda r: -r.score):
        best.setdefault(r.stack, r)  # the best model for each stack
    ranked = sorted(best.values(), key=lambda r: -r.score)[: p.top]
    ranked[0].change = _change(p, ranked[0], recs)
    return Answer(ranked, _budget_line(p, ranked[0]), notes)


def advise(p: Profile) -> list[Recommendation]:
    """The ranked plans of ``answer`` (best first)."""
    return answer(p).recommendations


def _more_gpus(p: Profile, s: Shape) -> str:
    """How many GPUs of this kind the model would need (ZeRO-3 for a trained base, else any adapter)."""
    for n in (2, 4, 8, 16, 32, 64):
        q = dataclasses.replace(p, num_gpus=n, budget_hours=None, budget_usd=None)
        for m in ("qlora", "lora", "full"):
            if _fit_stage(q, s, m, "sft", p.seq_len) is not None:
                return f"it fits {n} of these GPUs (sft:{m})"
    return "it does not fit even 64 of these GPUs"


def _budget_line(p: Profile, top: Recommendation | None) -> str:
    """What the budget buys, in plain numbers."""
    if p.budget_hours is None and p.budget_usd is None:
        return ""
    price = p.gpu.usd_per_hour * p.num_gpus
    limits = []
    if p.budget_usd is not None:
        limits.append(p.budget_usd / price if price else math.inf)
    if p.budget_hours is not None:
        limits.append(p.budget_hours)
    hours = min(limits)
    money = f"${p.budget_usd:g}" if p.budget_usd is not None else f"{p.budget_hours:g} h"
    where = f"{p.num_gpus}× {p.gpu.key}" if p.num_gpus > 1 else p.gpu.key
    head = f"{money} on {where} buys {'unlimited time' if hours == math.inf else f'about {hours:.1f} h'}"
    if top is None:
        return head
    what = top.budget_cut or "the whole plan"
    return (f"{head}: {what} at {top.seq_len:,} tokens with {top.stack} on {top.model} "
            f"({top.hours:.1f} h{'' if top.cost_usd is None else f', ${top.cost_usd:.2f}'})")


def _why(p: Profile, guidance: str, stages: list[Stage], ev: list[Evidence]) -> str:
    peak = max(st.estimate.peak_gib for st in stages)
    knobs = "; ".join(f"{st.objective}:{st.method} mb {st.request.micro_batch}{' +ckpt' if st.request.grad_ckpt else ''}"
                      for st in stages)
    if ev:
        text = "; ".join(e.text() for e in ev)
        missing = [f"{st.objective}:{st.method}" for st in stages if all(
            (e.objective, e.method) != (st.objective, st.method) for e in ev)]
        if missing:
            text += f"; nothing measured for {', '.join(missing)}: published guidance"
    else:
        text = "no measured or published runs on a close task: ranked by published guidance"
    return f"{guidance}. Peak {peak:.1f} of {p.gpu.memory_gib:g} GiB ({knobs}). Evidence: {text}."


def _change(p: Profile, top: Recommendation, recs: list[Recommendation]) -> str:
    """What would alter the choice: more budget, more GPU, or data that enables a stronger recipe."""
    have = normalize_data(p.data)
    better = stronger_recipe(p.goal, have, p.start, top.factors.get("recipe_prior", 0.0))
    if better is not None:
        missing = ", ".join(sorted(better.needs - have))
        return f"adding {missing} data would enable {','.join(better.objectives)}: {better.guidance}"
    if top.budget_cut:
        return f"a bigger budget would lift the cut ({top.budget_cut})"
    if top.gives_up:
        return f"a bigger GPU would lift: {top.gives_up}"
    return "nothing better fits: a bigger GPU only adds speed"
