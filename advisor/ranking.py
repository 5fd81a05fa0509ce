"""Rank whole method stacks for a task profile: fit, budget, measured evidence, guidance.

    tunebench advise --gpu rtx-4090 --goal chat --data pairs,preferences --budget-hours 12

``advise(Profile(...)) -> list[Recommendation]``: candidate stacks come from the goal's
recipes (objective sequences) × parameterizations × models; each stage is estimated with the
fastest micro-batch/checkpointing setting that fits; stacks that do not fit or exceed the
budget are dropped; the rest are scored by measured quality in the results DB (the closest
task) where it exists and by the well-known guidance (the prior) where it does not.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from advisor.catalogs import Gpu, Shape, shape
from advisor.estimator import Estimate, Request, estimate, fits_gpu
from common.errors import unknown

GOALS = {
    "chat": "chat assistant",
    "domain": "domain knowledge",
    "classify": "classification / extraction",
    "reasoning": "reasoning with checkable answers",
    "style": "style / generation",
    "multi-tenant": "many departments sharing one base",
}
DATA_KINDS = ("corpus", "pairs", "preferences", "feedback", "checker", "judge")

class Recipe(NamedTuple):
    """A goal's candidate sequence of objectives, the data it needs, its prior quality and why."""

    objectives: tuple[str, ...]
    needs: set[str]
    prior: float
    guidance: str


class Stage(NamedTuple):
    """One fitted stage of a candidate stack: the setting that fits and its estimate."""

    objective: str
    method: str
    estimate: Estimate
    request: Request


class Rejected(NamedTuple):
    """A candidate ruled out (does not fit, over budget), kept to say what would change the choice."""

    quality: float
    objectives: tuple[str, ...]
    methods: tuple[str, ...]
    shape: Shape
    reason: str


# Recipes per goal: (objectives, data needed, prior quality, guidance). Priors encode the
# common practice (InstructGPT/Zephyr/Tulu recipes, DAPT, DeepSeekMath's GRPO, LoRA/QLoRA
# papers); measured evidence in the DB overrides them.
RECIPES = {
    "chat": [
        Recipe(("sft", "dpo"), {"pairs", "preferences"}, 0.90, "SFT teaches the format, DPO aligns to preferences without a reward model (Zephyr/Tulu recipe)"),
        Recipe(("sft", "simpo"), {"pairs", "preferences"}, 0.88, "SFT then SimPO: preference alignment without a reference model"),
        Recipe(("orpo",), {"preferences"}, 0.82, "ORPO does SFT and preference alignment in one stage"),
        Recipe(("sft", "kto"), {"pairs", "feedback"}, 0.84, "KTO learns from thumbs-up/down feedback without pairs"),
        Recipe(("sft", "rlaif"), {"pairs", "judge"}, 0.84, "an AI judge with a written constitution labels preferences"),
        Recipe(("sft", "rm", "ppo"), {"pairs", "preferences"}, 0.86, "classic RLHF; strongest with a good reward model, but the most memory and tuning"),
        Recipe(("sft",), {"pairs"}, 0.75, "SFT on good prompt/response pairs is the baseline every chat model starts from"),
    ],
    "domain": [
        Recipe(("cpt", "sft"), {"corpus", "pairs"}, 0.90, "continued pretraining on the domain corpus adds knowledge, SFT restores instruction following (DAPT)"),
        Recipe(("cpt", "sft", "dpo"), {"corpus", "pairs", "preferences"}, 0.92, "DAPT + SFT + DPO: knowledge, format and preferences"),
        Recipe(("cpt",), {"corpus"}, 0.70, "continued pretraining alone adds knowledge but weakens chat behaviour"),
        Recipe(("sft",), {"pairs"}, 0.72, "SFT on domain Q&A teaches style more than new facts"),
    ],
    "classify": [
        Recipe(("sft",), {"pairs"}, 0.88, "SFT on labelled examples; small adapters reach full-FT accuracy on classification"),
        Recipe(("multitask",), {"pairs"}, 0.82, "one adapter over several label sets / extraction schemas"),
    ],
    "reasoning": [
        Recipe(("sft", "grpo"), {"pairs", "checker"}, 0.92, "SFT on worked solutions, then GRPO with the checker as verifiable reward (DeepSeekMath/R1)"),
        Recipe(("grpo",), {"checker"}, 0.82, "GRPO straight from the checker works when the base already reasons a little"),
        Recipe(("sft",), {"pairs"}, 0.72, "SFT on worked solutions"),
    ],
    "style": [
        Recipe(("sft",), {"pairs"}, 0.85, "SFT on examples in the target style; adapters capture style cheaply"),
        Recipe(("cpt", "sft"), {"corpus", "pairs"}, 0.86, "a pass over the style corpus, then SFT for instructions"),
        Recipe(("cpt",), {"corpus"}, 0.78, "next-token training on the style corpus imitates it directly"),
    ],
    "multi-tenant": [
        Recipe(("sft",), {"pairs"}, 0.88, "one small adapter per department on one shared base; adapters hot-swap at serving time"),
        Recipe(("sft", "dpo"), {"pairs", "preferences"}, 0.90, "per-department SFT + DPO adapters on one shared base"),
        Recipe(("multitask",), {"pairs"}, 0.78, "one shared multitask adapter when departments overlap"),
    ],
}

# Quality of a parameterization relative to full fine-tuning (LoRA, QLoRA, DoRA, IA3 papers);
# DoRA sits just under LoRA because its gain is small and it trains ~25% slower.
METHOD_PRIOR = {"full": 1.0, "lora": 0.96, "dora": 0.955, "rslora": 0.96, "qlora": 0.95, "ia3": 0.85, "prompt": 0.75}
CANDIDATE_METHODS = ("full", "lora", "dora", "qlora", "ia3")
MODEL_LADDER = ("qwen2.5-14b", "llama-3.1-8b", "qwen2.5-7b", "llama-3.2-3b", "qwen2.5-1.5b", "smollm2-360m", "smollm2-135m")
# Task names in the DB closest to each goal (substring match).
GOAL_TASKS = {
    "chat": ("chat", "assistant", "dialog", "sft", "smoke"),
    "domain": ("docstring", "domain", "dapt", "stdlib"),
    "classify": ("topic", "classif", "extract", "wiki"),
    "reasoning": ("gsm", "math", "champ", "reason"),
    "style": ("shakespeare", "style"),
    "multi-tenant": ("topic", "classif", "chat", "smoke"),
}


@dataclass
class Profile:
    goal: str
    gpu: Gpu
    num_gpus: int = 1
    budget_hours: float | None = None
    budget_usd: float | None = None
    data: tuple[str, ...] = ("pairs",)
    model: str | None = None
    no_latency: bool = False
    seq_len: int = 1024
    corpus_tokens: int = 20_000_000
    pairs: int = 10_000
    preferences: int = 5_000
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
    evidence: list[str] = field(default_factory=list)
    stages: list[dict] = field(default_factory=list)
    change: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["peak_gib"] = round(self.peak_gib, 2)
        d["hours"] = None if self.hours is None else round(self.hours, 3)
        d["cost_usd"] = None if self.cost_usd is None else round(self.cost_usd, 2)
        d["score"] = round(self.score, 4)
        return d


def _stage_tokens(p: Profile, objective: str) -> int:
    """Training tokens of one stage from the data on hand (sequences half-full on average)."""
    from methods import OBJECTIVES  # the objective's card: its record format, whether it generates

    card = OBJECTIVES[objective].card
    half = p.seq_len // 2
    if card.data == "text":
        return p.corpus_tokens
    if card.memory.generates:
        return p.prompts * 8 * (half + 256)
    if card.data in ("prompt_completion", "mixture"):
        return p.pairs * half * p.epochs
    return p.preferences * 2 * half * p.epochs  # chosen + rejected


def _fit_stage(p: Profile, s: Shape, method: str, objective: str) -> tuple[Estimate, Request] | None:
    """The fastest setting that fits: bigger micro-batch first, checkpointing only if needed."""
    from methods import PARAMETERIZATIONS

    # Several GPUs shard trained base weights (ZeRO-3) when the base itself trains.
    zero = 3 if p.num_gpus > 1 and PARAMETERIZATIONS[method].card.memory.in_base else 0
    for mb, ckpt in ((4, False), (4, True), (1, False), (1, True)):
        req = Request(shape=s, method=method, objective=objective, seq_len=p.seq_len, micro_batch=mb,
                      grad_ckpt=ckpt, gpu=p.gpu, num_gpus=p.num_gpus, zero_stage=zero,
                      tokens=_stage_tokens(p, objective), precision="bf16" if p.gpu.bf16 else "fp16")
        est = estimate(req)
        if fits_gpu(est, p.gpu):
            return est, req
    return None


def _evidence(p: Profile) -> dict[tuple[str, str], tuple[float, list[str]]]:
    """(objective, method) -> (normalised quality-per-cost in [0, 1], run ids) on the closest task."""
    if p.db is None or not Path(p.db).exists():
        return {}
    import polars as pl

    from bench.results import read_runs

    df = read_runs(p.db)
    if df.is_empty():
        return {}
    keys = GOAL_TASKS[p.goal]
    # Only ok runs with a measured metric on a task matching the goal's keys, filtered in polars (a
    # large DB has many rows, few of them evidence); the keys are matched once per distinct task.
    close = [t for t in df["task"].unique().drop_nulls().to_list() if t and any(k in t.lower() for k in keys)]
    df = df.filter((pl.col("status") == "ok") & pl.col("metric_after").is_not_null()
                   & pl.col("task").is_in(pl.Series(close, dtype=pl.String).implode()))
    if df.is_empty():
        return {}
    # Quality per cost: metric gain per GPU-hour (wall time as the cost proxy), ranked within the task:
    # a run's rank is the share of the task's runs with a lower value (ties share the lowest rank).
    value = ((pl.col("metric_after") - pl.col("metric_before").fill_null(0.0))
             / pl.max_horizontal(pl.col("wall_time_s").fill_null(1.0), pl.lit(1.0)).log1p())
    n = pl.len().over("task")
    df = (df.with_row_index("_row").with_columns(value.alias("_value"))
          .with_columns(pl.when(n > 1)
                        .then((pl.col("_value").rank("min").over("task") - 1) / pl.max_horizontal(n - 1, pl.lit(1)))
                        .otherwise(0.5).alias("_rank"),
                        pl.col("_row").min().over("task").alias("_task_order"))
          .sort("_task_order", "_row"))  # tasks in order of first appearance, runs in DB order
    out: dict[tuple[str, str], list] = {}
    for obj, method, rank, rid in zip(df["objective"].to_list(), df["method"].to_list(),
                                      df["_rank"].to_list(), df["run_id"].to_list()):
        e = out.setdefault((obj, method), [[], []])
        e[0].append(rank)
        e[1].append(rid)
    return {k: (sum(v[0]) / len(v[0]), v[1]) for k, v in out.items()}


def _candidates(p: Profile):
    """(recipe, methods per stage) for every recipe the data on hand allows."""
    from methods import PARAMETERIZATIONS  # the cards: shares_base, mergeable

    card = {m: PARAMETERIZATIONS[m].card for m in (*CANDIDATE_METHODS, "full", "lora")}
    have = set(p.data)
    for recipe in RECIPES[p.goal]:
        if not recipe.needs <= have:
            continue
        objectives = recipe.objectives
        options = [tuple([m] * len(objectives)) for m in CANDIDATE_METHODS]
        if objectives[0] == "cpt" and len(objectives) > 1:
            options.append(("full",) + ("lora",) * (len(objectives) - 1))
        for methods in options:
            if p.goal == "multi-tenant" and not card[methods[-1]].shares_base:
                continue  # the last stage must be an adapter that can share the base
            if p.no_latency and not all(card[m].mergeable for m in methods):
                continue
            yield recipe, methods


def _model_prior(s: Shape) -> float:
    return 1 + 0.06 * math.log2(max(s.params() / 1e9, 0.05))


def advise(p: Profile) -> list[Recommendation]:
    """Ranked stacks that fit the GPU and the budget, best first."""
    if p.goal not in GOALS:
        raise unknown("goal", p.goal, GOALS)
    for d in p.data:
        if d not in DATA_KINDS:
            raise unknown("data kind", d, DATA_KINDS)
    names = [p.model] if p.model else list(MODEL_LADDER)
    shapes = [shape(n) for n in names]
    evidence = _evidence(p)
    kept: list[Recommendation] = []
    rejected: list[Rejected] = []
    for recipe, methods in _candidates(p):
        objectives, prior = recipe.objectives, recipe.prior
        for s in shapes:
            stages: list[Stage] = []
            for obj, m in zip(objectives, methods):
                got = _fit_stage(p, s, m, obj)
                if got is None:
                    big = estimate(Request(shape=s, method=m, objective=obj, seq_len=p.seq_len, micro_batch=1,
                                           grad_ckpt=True, gpu=p.gpu, num_gpus=p.num_gpus))
                    rejected.append(Rejected(prior * METHOD_PRIOR[m] * _model_prior(s), objectives, methods, s,
                                             f"needs {big.peak_gib:.0f} GiB per GPU"))
                    break
                stages.append(Stage(obj, m, *got))
            if len(stages) < len(objectives):
                continue
            hours = sum(st.estimate.hours or 0 for st in stages)
            cost = sum(st.estimate.cost_usd or 0 for st in stages)
            stack = ",".join(f"{o}:{m}" for o, m in zip(objectives, methods))
            q = prior * sum(METHOD_PRIOR[m] for m in methods) / len(methods) * _model_prior(s)
            if (p.budget_hours is not None and hours > p.budget_hours) or (p.budget_usd is not None and cost > p.budget_usd):
                rejected.append(Rejected(q, objectives, methods, s, f"needs {hours:.1f} h / ${cost:.0f}"))
                continue
            ev = [evidence[(o, m)] for o, m in zip(objectives, methods) if (o, m) in evidence]
            runs = [rid for _, ids in ev for rid in ids]
            score = q
            if ev:
                w = min(0.6, 0.2 * len(runs))
                score = (1 - w) * q + w * sum(x for x, _ in ev) / len(ev)
            score -= 0.01 * math.log1p(hours)  # between equals, the cheaper stack wins
            kept.append(Recommendation(
                stack=stack, model=s.name, peak_gib=max(st.estimate.peak_gib for st in stages), hours=hours,
                cost_usd=cost if p.gpu.usd_per_hour or not p.gpu.is_cpu else 0.0, fits=True, score=score,
                why=_why(p, recipe.guidance, stages, runs), evidence=runs,
                stages=[{"stage": f"{st.objective}:{st.method}", "peak_gib": round(st.estimate.peak_gib, 2),
                         "micro_batch": st.request.micro_batch, "grad_ckpt": st.request.grad_ckpt,
                         "hours": round(st.estimate.hours or 0, 3)} for st in stages]))
    best: dict[str, Recommendation] = {}
    for r in sorted(kept, key=lambda r: -r.score):
        best.setdefault(r.stack, r)  # the best model for each stack
    ranked = sorted(best.values(), key=lambda r: -r.score)[: p.top]
    if ranked:
        ranked[0].change = _change(p, ranked[0], rejected)
    return ranked


def _why(p: Profile, guidance: str, stages: list[Stage], runs: list[str]) -> str:
    peak = max(st.estimate.peak_gib for st in stages)
    knobs = "; ".join(f"{st.objective}:{st.method} mb {st.request.micro_batch}{' +ckpt' if st.request.grad_ckpt else ''}"
                      for st in stages)
    ev = f"{len(runs)} measured run(s) on the closest task" if runs else "no measured runs on a close task: ranked by published guidance"
    return f"{guidance}. Peak {peak:.1f} of {p.gpu.memory_gib:g} GiB ({knobs}). Evidence: {ev}."


def _change(p: Profile, top: Recommendation, rejected: list[Rejected]) -> str:
    """The best-prior option that was ruled out, and what it would take."""
    better = [r for r in rejected if r.quality > top.score]
    if not better:
        missing = [r.needs for r in RECIPES[p.goal] if not r.needs <= set(p.data) and r.prior > top.score]
        if missing:
            return f"adding {', '.join(sorted(missing[0] - set(p.data)))} data would enable a higher-prior recipe"
        return "nothing cheaper or better fits: a bigger GPU only adds speed"
    best = max(better, key=lambda r: r.quality)
    stack = ",".join(f"{o}:{m}" for o, m in zip(best.objectives, best.methods))
    return f"{stack} on {best.shape.name} would rank higher but {best.reason}"

