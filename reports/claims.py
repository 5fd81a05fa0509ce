"""Folklore vs measured: each common claim about fine-tuning methods checked against one group.

    tunebench report --db DIR --out DIR

Every claim is a function ``(lines) -> list[Verdict]`` over the lines of one hardware × model
group (``reports.table``). It compares medians over seeds, says ``holds``, ``doesn't hold`` or
``not measured``, and gives the numbers behind the verdict. Thresholds are in the docstrings;
a value exactly on a threshold counts as inside it (compared within float rounding).
Parameterization claims compare SFT runs on the same task (one verdict per task).
"""
from __future__ import annotations

from dataclasses import dataclass

from reports import fmt
from reports.table import Line, distinct, lower_is_better

HOLDS, FAILS, NOT_MEASURED = "holds", "doesn't hold", "not measured"


@dataclass(frozen=True)
class Verdict:
    claim: str
    verdict: str
    evidence: str
    task: str | None = None


def _le(a: float, b: float) -> bool:
    return a <= b + 1e-9 * max(1.0, abs(b))


def _sft(lines: list[Line], method: str, task: str | None = None) -> list[Line]:
    return [ln for ln in distinct(lines) if ln.row.objective == "sft" and ln.method == method
            and (task is None or ln.task == task)]


def _sft_on(lines: list[Line], task: str) -> list[Line]:
    return [ln for ln in distinct(lines) if ln.row.objective == "sft" and ln.task == task]


def _worse_by(ref: Line, other: Line) -> float:
    """How much worse ``other``'s final metric is than ``ref``'s (negative: better)."""
    a, b = ref.get("metric_after"), other.get("metric_after")
    return (b - a) if lower_is_better(ref.metric_name) else (a - b)


def _none(claim: str, why: str) -> list[Verdict]:
    return [Verdict(claim, NOT_MEASURED, why)]


LORA_CLAIM = "LoRA trains ~0.1–1% of parameters with near full-FT quality"


def lora_share_and_quality(lines: list[Line]) -> list[Verdict]:
    """Holds when sft:lora's trainable share is within [0.1%, 1%] and its final task metric is
    at most 5% (relative to full FT's value) worse than sft:full's on the same task and metric.
    A share outside the range fails on its own; otherwise both runs are needed."""
    loras = _sft(lines, "lora")
    if not loras:
        return _none(LORA_CLAIM, "no measured sft:lora run")
    out = []
    for lora in loras:
        share = lora.get("trainable_share")
        if share is None:
            out.append(Verdict(LORA_CLAIM, NOT_MEASURED, "sft:lora has no trainable share", lora.task))
            continue
        share_ok = _le(0.001, share) and _le(share, 0.01)
        text = f"LoRA trains {fmt.share(share)} ({fmt.count(lora.get('trainable_params'))})"
        if not share_ok:
            out.append(Verdict(LORA_CLAIM, FAILS, text + ", outside 0.1–1%", lora.task))
            continue
        full = [f for f in _sft(lines, "full", lora.task) if f.metric_name == lora.metric_name]
        if not full or full[0].get("metric_after") is None or lora.get("metric_after") is None:
            out.append(Verdict(LORA_CLAIM, NOT_MEASURED, text + "; no full-FT quality on the same metric to compare", lora.task))
            continue
        full = full[0]
        worse = _worse_by(full, lora)
        near = _le(worse, 0.05 * abs(full.get("metric_after")))
        text += (f"; {lora.metric_name} after: LoRA {fmt.metric(lora.get('metric_after'))} vs full FT "
                 f"{fmt.metric(full.get('metric_after'))} ({'within' if near else 'beyond'} 5%)")
        out.append(Verdict(LORA_CLAIM, HOLDS if near else FAILS, text, lora.task))
    return out


QLORA_CLAIM = "QLoRA uses far less memory than LoRA"


def qlora_memory(lines: list[Line]) -> list[Verdict]:
    """Holds when sft:qlora's peak memory is at most 60% of sft:lora's on the same task
    (a saving of 40% or more), both measured the same way (GPU reserved or host RSS)."""
    out = []
    for q in _sft(lines, "qlora"):
        lora = _sft(lines, "lora", q.task)
        if not lora or q.memory is None or lora[0].memory is None:
            out.append(Verdict(QLORA_CLAIM, NOT_MEASURED, "needs peak memory of sft:qlora and sft:lora on one task", q.task))
            continue
        lora = lora[0]
        if q.memory_source != lora.memory_source:
            out.append(Verdict(QLORA_CLAIM, NOT_MEASURED, f"memory measured differently ({q.memory_source} vs {lora.memory_source})", q.task))
            continue
        ratio = q.get("memory") / lora.get("memory")
        out.append(Verdict(QLORA_CLAIM, HOLDS if _le(ratio, 0.6) else FAILS,
                           f"peak {q.memory_source}: QLoRA {fmt.nbytes(q.get('memory'))} vs LoRA "
                           f"{fmt.nbytes(lora.get('memory'))} = {ratio:.0%} (far less: ≤ 60%)", q.task))
    return out or _none(QLORA_CLAIM, "no measured sft:qlora run")


PROMPT_CLAIM = "Prompt tuning is the cheapest and the weakest method"


def prompt_cheapest_weakest(lines: list[Line]) -> list[Verdict]:
    """Among the SFT parameterizations measured on the same task, holds when sft:prompt trains
    the fewest parameters, its peak memory is within 5% of the lowest (cheapest), and its final
    task metric is the worst of those on the same metric (weakest; ties count). Needs at least
    one other parameterization with the same figures."""
    out = []
    for p in _sft(lines, "prompt"):
        others = [ln for ln in _sft_on(lines, p.task) if ln.method != "prompt"]
        need = ("trainable_params", "memory", "metric_after")
        others = [o for o in others if all(o.get(k) is not None for k in need)
                  and o.metric_name == p.metric_name and o.memory_source == p.memory_source]
        if any(p.get(k) is None for k in need) or not others:
            out.append(Verdict(PROMPT_CLAIM, NOT_MEASURED,
                               "needs trainable params, peak memory and metric of sft:prompt and another method on one task", p.task))
            continue
        fewest = min(o.get("trainable_params") for o in others)
        low_mem = min(o.get("memory") for o in others)
        worst = max(others, key=lambda o: _worse_by(p, o))
        cheapest = p.get("trainable_params") <= fewest and _le(p.get("memory"), 1.05 * min(low_mem, p.get("memory")))
        weakest = _le(0.0, _worse_by(worst, p))
        text = (f"prompt trains {fmt.count(p.get('trainable_params'))} (fewest of others: {fmt.count(fewest)}), "
                f"peak {fmt.nbytes(p.get('memory'))} (lowest of others: {fmt.nbytes(low_mem)}; within 5% counts as lowest); "
                f"{p.metric_name} after {fmt.metric(p.get('metric_after'))} (worst of others: "
                f"{worst.method} {fmt.metric(worst.get('metric_after'))}); "
                f"cheapest: {'yes' if cheapest else 'no'}, weakest: {'yes' if weakest else 'no'}")
        out.append(Verdict(PROMPT_CLAIM, HOLDS if cheapest and weakest else FAILS, text, p.task))
    return out or _none(PROMPT_CLAIM, "no measured sft:prompt run")


ADAPTER_CLAIM = "Adapters train more parameters than LoRA"
ADAPTERS = ("adapter_houlsby", "adapter_pfeiffer")


def adapters_more_params(lines: list[Line]) -> list[Verdict]:
    """Holds when every measured bottleneck adapter (Houlsby, Pfeiffer) trains strictly more
    parameters than sft:lora on the same task; equal counts do not hold."""
    out = []
    for lora in _sft(lines, "lora"):
        ads = [a for m in ADAPTERS for a in _sft(lines, m, lora.task) if a.get("trainable_params") is not None]
        if lora.get("trainable_params") is None or not ads:
            continue
        more = all(a.get("trainable_params") > lora.get("trainable_params") for a in ads)
        text = ", ".join(f"{a.method} {fmt.count(a.get('trainable_params'))}" for a in ads)
        out.append(Verdict(ADAPTER_CLAIM, HOLDS if more else FAILS,
                           f"{text} vs LoRA {fmt.count(lora.get('trainable_params'))}", lora.task))
    return out or _none(ADAPTER_CLAIM, "needs trainable params of sft:lora and an adapter on one task")


FORGET_CLAIM = "Full fine-tuning forgets the most"


def full_forgets_most(lines: list[Line]) -> list[Verdict]:
    """Holds when sft:full's forgetting (general-text loss after minus before) is at least as
    large as every other SFT parameterization's on the same task; needs one other."""
    out = []
    for full in _sft(lines, "full"):
        others = [o for o in _sft_on(lines, full.task) if o.method != "full" and o.get("forgetting") is not None]
        if full.get("forgetting") is None or not others:
            continue
        top = max(others, key=lambda o: o.get("forgetting"))
        most = _le(top.get("forgetting"), full.get("forgetting"))
        out.append(Verdict(FORGET_CLAIM, HOLDS if most else FAILS,
                           f"full FT {fmt.signed(full.get('forgetting'))} vs most of the others: "
                           f"{top.method} {fmt.signed(top.get('forgetting'))}", full.task))
    return out or _none(FORGET_CLAIM, "needs forgetting of sft:full and another method on one task")


def _matched(lines: list[Line], objectives: tuple[str, ...], figure: str) -> list[tuple[dict[str, Line], bool]]:
    """Lines of the given objectives with the same parameterization, each with ``figure``:
    one set per task they share, or, where they share none, one set across tasks (flagged)."""
    have = [ln for ln in distinct(lines) if ln.get(figure) is not None]
    by = {o: [ln for ln in have if ln.row.objective == o] for o in objectives}
    out = []
    for method in sorted({ln.method for ln in by[objectives[0]]}):
        per = {o: [ln for ln in by[o] if ln.method == method] for o in objectives}
        if not all(per.values()):
            continue
        common = set.intersection(*({ln.task for ln in v} for v in per.values()))
        if common:
            for task in sorted(common):
                out.append(({o: next(ln for ln in v if ln.task == task) for o, v in per.items()}, True))
        else:
            out.append(({o: v[0] for o, v in per.items()}, False))
    return out


def _where(sets: dict[str, Line], same_task: bool) -> str:
    if same_task:
        return next(iter(sets.values())).task
    return ", ".join(f"{o}: {ln.task}" for o, ln in sets.items()) + " (different tasks)"


DPO_CLAIM = "DPO is cheaper than RLHF (reward model + PPO)"


def dpo_cheaper_than_rlhf(lines: list[Line]) -> list[Verdict]:
    """With the same parameterization, holds when DPO's wall time is strictly below the reward
    model's plus PPO's, and DPO's peak memory is not above the larger of the two."""
    out = []
    for sets, same in _matched(lines, ("dpo", "rm", "ppo"), "wall_time_s"):
        d, r, p = sets["dpo"], sets["rm"], sets["ppo"]
        rl_wall = r.get("wall_time_s") + p.get("wall_time_s")
        mems = [d.get("memory"), r.get("memory"), p.get("memory")]
        if None in mems or len({d.memory_source, r.memory_source, p.memory_source}) > 1:
            out.append(Verdict(DPO_CLAIM, NOT_MEASURED, f"{d.method}: peak memory missing or measured differently", _where(sets, same)))
            continue
        rl_mem = max(mems[1:])
        cheaper = d.get("wall_time_s") < rl_wall and _le(mems[0], rl_mem)
        out.append(Verdict(DPO_CLAIM, HOLDS if cheaper else FAILS,
                           f"{d.method}: DPO {fmt.seconds(d.get('wall_time_s'))}, peak {fmt.nbytes(mems[0])} vs "
                           f"RM + PPO {fmt.seconds(r.get('wall_time_s'))} + {fmt.seconds(p.get('wall_time_s'))} = "
                           f"{fmt.seconds(rl_wall)}, peak {fmt.nbytes(rl_mem)}", _where(sets, same)))
    return out or _none(DPO_CLAIM, "needs dpo, rm and ppo runs with one parameterization")


GRPO_CLAIM = "GRPO saves memory over PPO by dropping the critic"


def grpo_saves_memory(lines: list[Line]) -> list[Verdict]:
    """With the same parameterization, holds when GRPO's peak memory is at most 95% of PPO's
    (a saving of 5% or more), both measured the same way."""
    out = []
    for sets, same in _matched(lines, ("grpo", "ppo"), "memory"):
        g, p = sets["grpo"], sets["ppo"]
        if g.memory_source != p.memory_source:
            out.append(Verdict(GRPO_CLAIM, NOT_MEASURED, f"memory measured differently ({g.memory_source} vs {p.memory_source})", _where(sets, same)))
            continue
        ratio = g.get("memory") / p.get("memory")
        out.append(Verdict(GRPO_CLAIM, HOLDS if _le(ratio, 0.95) else FAILS,
                           f"{g.method}: peak {g.memory_source} GRPO {fmt.nbytes(g.get('memory'))} vs PPO "
                           f"{fmt.nbytes(p.get('memory'))} = {ratio:.0%} (saves: ≤ 95%)", _where(sets, same)))
    return out or _none(GRPO_CLAIM, "needs peak memory of grpo and ppo runs with one parameterization")


CLAIMS = (lora_share_and_quality, qlora_memory, prompt_cheapest_weakest, adapters_more_params,
          full_forgets_most, dpo_cheaper_than_rlhf, grpo_saves_memory)


def evaluate(lines: list[Line]) -> list[Verdict]:
    return [v for claim in CLAIMS for v in claim(lines)]
