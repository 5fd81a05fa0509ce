"""multitask: SFT over a weighted mixture of tasks, each with its own prompt template.

    tunebench train --stack multitask:lora --model tiny-llama --task smoke --max-steps 3

Records carry a ``task`` tag; the training set is resampled (seeded) so each task appears in
proportion to its weight (default: equal), then trained as SFT on the responses.
"""
import random

from pydantic import Field

from common.errors import UserError
from methods.card import MethodConfig, ObjectiveCard, ObjectiveMemory
from methods.context import StageContext, StageResult
from methods.registry import register
from methods.sft import train_sft


class MultitaskSettings(MethodConfig):
    weights: dict[str, float] = Field(default_factory=dict, description="task -> weight; missing tasks get 1.0")
    size: int | None = Field(default=None, ge=1, description="mixture size; default: number of records")


CARD = ObjectiveCard(
    name="multitask", family="supervised", label="Multi-task", data="mixture", settings=MultitaskSettings,
    memory=ObjectiveMemory(lm_head="next_token"),
    description="SFT on a weighted mixture of tasks with per-task templates",
)


def mix(records: list[dict], weights: dict[str, float], size: int, seed: int) -> list[dict]:
    by_task: dict[str, list[dict]] = {}
    for r in records:
        by_task.setdefault(r["task"], []).append(r)
    unknown = set(weights) - set(by_task)
    if unknown:
        raise UserError(f"multitask weights name tasks not in the data: {sorted(unknown)} (have {sorted(by_task)})")
    w = {t: float(weights.get(t, 1.0)) for t in by_task}
    if any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
        raise UserError("multitask weights must be non-negative and not all zero")
    rng = random.Random(seed)
    tasks = sorted(by_task)
    picks = rng.choices(tasks, weights=[w[t] for t in tasks], k=size)
    return [rng.choice(by_task[t]) for t in picks]


def train(ctx: StageContext) -> StageResult:
    cfg = ctx.config
    mixed = mix(ctx.train, cfg.weights, cfg.size or len(ctx.train), ctx.hp.seed)
    out = train_sft(ctx, mixed)
    counts: dict[str, int] = {}
    for r in mixed:
        counts[r["task"]] = counts.get(r["task"], 0) + 1
    out.extra = {"mixture_counts": counts}
    return out


register(CARD, train=train)
