"""What the advisor may recommend: goals, data kinds, and each goal's recipes (objective sequences).

    python -c "from advisor.recipes import recipes_for; print(recipes_for('chat', {'feedback'}, 'instruct'))"

A recipe names the objectives in order, the data kinds it consumes, the starting point it suits
(a base model must learn the chat format first; an instruct model can go straight to preference
or feedback training), a prior quality and the published guidance behind it. Priors encode common
practice (InstructGPT/Zephyr/Tulu, DAPT, DeepSeekMath/R1, KTO, distillation papers); measured
evidence overrides them in the ranking. When none of a goal's recipes can run on the data on hand,
``recipes_for`` falls back to the recipe that each data kind on hand supports on its own, with a
lower prior and a note saying what the usual recipe needs — so there is always something to rank.
"""
from __future__ import annotations

from typing import NamedTuple

from common.errors import unknown

GOALS = {
    "chat": "chat assistant",
    "domain": "domain knowledge",
    "classify": "classification / extraction",
    "reasoning": "reasoning with checkable answers",
    "style": "style / generation",
    "multi-tenant": "many departments sharing one base",
    "distill": "a small, fast model taught by a bigger one",
    "constitution": "alignment to a written constitution",
}
DATA_KINDS = {
    "corpus": "raw domain text (continued pretraining)",
    "pairs": "prompt/response pairs",
    "preferences": "prompt with a chosen and a rejected answer",
    "feedback": "unpaired thumbs up/down on answers",
    "checker": "prompts with a program that checks the answer",
    "constitution": "written principles an AI judge applies",
    "teacher": "a bigger model (or its generations) to learn from",
    "prompts": "prompts only, no answers",
}
ALIASES = {"judge": "constitution"}
STARTS = ("base", "instruct")
FALLBACK_PRIOR = 0.6  # a recipe outside the goal's usual ones, forced by the data on hand


class Recipe(NamedTuple):
    """A goal's candidate sequence of objectives, the data it needs, its prior quality and why."""

    objectives: tuple[str, ...]
    needs: frozenset[str]
    prior: float
    guidance: str
    start: str | None = None  # "base" / "instruct" when the recipe suits only that starting point


def R(objectives: str, needs: str, prior: float, guidance: str, start: str | None = None) -> Recipe:
    return Recipe(tuple(objectives.split(",")), frozenset(needs.split(",")), prior, guidance, start)


RECIPES = {
    "chat": [
        R("sft,dpo", "pairs,preferences", 0.90, "SFT teaches the format, DPO aligns to preferences without a reward model (Zephyr/Tulu recipe)"),
        R("sft,simpo", "pairs,preferences", 0.88, "SFT then SimPO: preference alignment without a reference model"),
        R("sft,rm,ppo", "pairs,preferences", 0.86, "classic RLHF; strongest with a good reward model, but the most memory and tuning"),
        R("orpo", "preferences", 0.82, "ORPO does SFT and preference alignment in one stage, from a base model"),
        R("dpo", "preferences", 0.86, "an instruct model already follows the chat format: DPO on preferences aligns it directly", "instruct"),
        R("simpo", "preferences", 0.84, "SimPO on preferences straight from an instruct model, no reference model", "instruct"),
        R("sft,kto", "pairs,feedback", 0.84, "KTO learns from thumbs-up/down feedback without pairs"),
        R("kto", "feedback", 0.83, "thumbs-up/down on an instruct model's answers: KTO needs no paired preferences", "instruct"),
        R("sft,rlaif", "pairs,constitution", 0.84, "an AI judge with a written constitution labels preferences"),
        R("rlaif", "constitution", 0.82, "an instruct model judged against the constitution, then DPO on the judged pairs", "instruct"),
        R("distill", "teacher", 0.80, "SFT on a stronger chat model's answers (distillation)"),
        R("sft", "pairs", 0.75, "SFT on good prompt/response pairs is the baseline every chat model starts from"),
    ],
    "domain": [
        R("cpt,sft,dpo", "corpus,pairs,preferences", 0.92, "DAPT + SFT + DPO: knowledge, format and preferences"),
        R("cpt,sft", "corpus,pairs", 0.90, "continued pretraining on the domain corpus adds knowledge, SFT restores instruction following (DAPT)"),
        R("cpt", "corpus", 0.70, "continued pretraining alone adds knowledge but weakens chat behaviour"),
        R("sft", "pairs", 0.72, "SFT on domain Q&A teaches style more than new facts"),
        R("distill", "teacher", 0.70, "a domain-expert teacher's answers, distilled into the model"),
    ],
    "classify": [
        R("sft", "pairs", 0.88, "SFT on labelled examples; small adapters reach full-FT accuracy on classification"),
        R("multitask", "pairs", 0.82, "one adapter over several label sets / extraction schemas"),
        R("distill", "teacher", 0.80, "a big model labels your inputs, a small one learns the labels"),
    ],
    "reasoning": [
        R("sft,grpo", "pairs,checker", 0.92, "SFT on worked solutions, then GRPO with the checker as verifiable reward (DeepSeekMath/R1)"),
        R("grpo", "checker", 0.86, "GRPO straight from the checker: an instruct model already solves some problems, so rewards vary", "instruct"),
        R("grpo", "checker", 0.78, "GRPO from a base model works only when it already solves some problems (R1-Zero)", "base"),
        R("distill", "teacher", 0.85, "SFT on a strong reasoner's worked solutions (the R1-distill recipe)"),
        R("sft", "pairs", 0.72, "SFT on worked solutions"),
    ],
    "style": [
        R("cpt,sft", "corpus,pairs", 0.86, "a pass over the style corpus, then SFT for instructions"),
        R("sft", "pairs", 0.85, "SFT on examples in the target style; adapters capture style cheaply"),
        R("cpt", "corpus", 0.78, "next-token training on the style corpus imitates it directly"),
        R("dpo", "preferences", 0.80, "preferences between an on-style and an off-style answer steer an instruct model", "instruct"),
    ],
    "multi-tenant": [
        R("sft,dpo", "pairs,preferences", 0.90, "per-department SFT + DPO adapters on one shared base"),
        R("sft", "pairs", 0.88, "one small adapter per department on one shared base; adapters hot-swap at serving time"),
        R("multitask", "pairs", 0.78, "one shared multitask adapter when departments overlap"),
    ],
    "distill": [
        R("distill", "teacher", 0.90, "a small student trained on the teacher's answers keeps much of its quality at a fraction of the serving cost"),
        R("sft", "pairs", 0.70, "without a teacher: SFT of a small model on your pairs"),
    ],
    "constitution": [
        R("sft,rlaif", "pairs,constitution", 0.88, "SFT for the format, then RLAIF: an AI judge applies the constitution to sampled answers (Constitutional AI)", "base"),
        R("rlaif", "constitution", 0.86, "RLAIF from an instruct model: the judge applies the constitution to pairs of its answers", "instruct"),
        R("sft,dpo", "pairs,preferences", 0.80, "human preferences that follow the principles do the judge's job (DPO)"),
    ],
}

# The single objective each data kind supports on its own (start-dependent where it matters).
BY_KIND = {
    "corpus": {None: R("cpt", "corpus", 0.7, "continued pretraining on the corpus")},
    "pairs": {None: R("sft", "pairs", 0.75, "SFT on the pairs")},
    "preferences": {"base": R("orpo", "preferences", 0.8, "ORPO: SFT and preference alignment in one stage"),
                    "instruct": R("dpo", "preferences", 0.8, "DPO on the preferences")},
    "feedback": {None: R("kto", "feedback", 0.75, "KTO on the thumbs-up/down labels")},
    "checker": {None: R("grpo", "checker", 0.75, "GRPO with the checker as reward")},
    "constitution": {None: R("rlaif", "constitution", 0.75, "RLAIF: an AI judge applies the constitution")},
    "teacher": {None: R("distill", "teacher", 0.75, "distillation of the teacher's answers")},
    "prompts": {None: R("rlaif", "prompts", 0.65,
                        "with prompts alone the preference signal must come from a judge: RLAIF with tunebench's "
                        "default constitution (methods/constitutions/default.yaml)")},
}

# Quality of a parameterization relative to full fine-tuning (LoRA, QLoRA, DoRA, IA3 papers);
# DoRA sits just under LoRA because its gain is small and it trains ~25% slower.
METHOD_PRIOR = {"full": 1.0, "lora": 0.96, "dora": 0.955, "rslora": 0.96, "qlora": 0.95, "ia3": 0.85, "prompt": 0.75}
CANDIDATE_METHODS = ("full", "lora", "dora", "qlora", "ia3")
# Task names in the DB closest to each goal (substring match).
GOAL_TASKS = {
    "chat": ("chat", "assistant", "dialog", "instruct", "sft", "smoke"),
    "domain": ("docstring", "domain", "dapt", "stdlib", "pydocs"),
    "classify": ("topic", "classif", "extract", "wiki"),
    "reasoning": ("gsm", "math", "champ", "reason"),
    "style": ("shakespeare", "style"),
    "multi-tenant": ("topic", "classif", "chat", "smoke"),
    "distill": ("instruct", "chat", "smoke"),
    "constitution": ("instruct", "chat", "smoke"),
}


def normalize_data(kinds) -> frozenset[str]:
    """The data kinds on hand, aliases resolved; an unknown kind is a user error."""
    out = set()
    for d in kinds:
        d = ALIASES.get(d, d)
        if d not in DATA_KINDS:
            raise unknown("data kind", d, DATA_KINDS)
        out.add(d)
    return frozenset(out)


def _has(recipe: Recipe, have: frozenset[str]) -> bool:
    # Every kind but a bare corpus carries prompts, so "prompts" is on hand with any of them.
    prompts = have | ({"prompts"} if have - {"corpus"} else set())
    return recipe.needs <= prompts


def recipes_for(goal: str, data, start: str = "base") -> list[tuple[Recipe, str]]:
    """(recipe, note) the data allows for the goal; the note is empty for the goal's own recipes and
    says what the usual recipe needs when only data-driven fallbacks remain. Never empty for a
    non-empty ``data``."""
    if goal not in GOALS:
        raise unknown("goal", goal, GOALS)
    if start not in STARTS:
        raise unknown("starting point", start, STARTS)
    have = normalize_data(data)
    own = [r for r in RECIPES[goal] if _has(r, have) and r.start in (None, start)]
    if own:
        return [(r, "") for r in own]
    usual = max((r for r in RECIPES[goal] if r.start in (None, start)), key=lambda r: r.prior)
    missing = ", ".join(sorted(usual.needs - have))
    note = (f"the usual {GOALS[goal]} recipe ({','.join(usual.objectives)}) needs {missing}; "
            f"with {', '.join(sorted(have))} on hand this is the closest")
    out = []
    for kind in sorted(have):
        by_start = BY_KIND[kind]
        r = by_start.get(start) or by_start[None]
        out.append((r._replace(prior=r.prior * FALLBACK_PRIOR / 0.75), note))
    return out


def stronger_recipe(goal: str, have: frozenset[str], start: str, than: float) -> Recipe | None:
    """The best-prior recipe of the goal that more data would enable, if it beats ``than``."""
    better = [r for r in RECIPES[goal] if r.start in (None, start) and not _has(r, have) and r.prior > than]
    return max(better, key=lambda r: r.prior) if better else None
