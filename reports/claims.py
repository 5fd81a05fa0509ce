"""Folklore vs measured: each common claim about fine-tuning methods checked against one group.

    tunebench report --db DIR --out DIR

Every claim is a function ``(lines) -> list[Verdict]`` over the lines of one hardware × model
group (``reports.table``) of a real-weight model (the report draws no verdicts on the random-init
smoke models). It compares figures over seeds with their intervals (``reports.stats``): ``holds``
or ``doesn't hold`` only when the whole interval is on one side of the threshold, ``inconclusive``
when it straddles it or a figure has a single run (no interval), ``not measured`` when a figure is
missing. Ratios use the interval bounds (a/b lies in [a.lo/b.hi, a.hi/b.lo]). Trainable parameter
counts are exact and compared as numbers. Thresholds are in the docstrings; a value exactly on a
threshold counts as inside it (within float rounding). Parameterization claims compare SFT runs on
the same task (one verdict per task).
"""
from __future__ import annotations

from dataclasses import dataclass

from reports import fmt
from reports.stats import Stat, all_of, at_most, ratio, why_not_known
from reports.table import Line, distinct, lower_is_better

HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED = "holds", "doesn't hold", "inconclusive", "not measured"


@dataclass(frozen=True)
class Verdict:
    claim: str
    verdict: str
    evidence: str
    task: str | None = None


def _le(a: float, b: float) -> bool:
    return a <= b + 1e-9 * max(1.0, abs(b))


def _tri(value: bool | None) -> str:
    return HOLDS if value is True else FAILS if value is False else INCONCLUSIVE


def _show(stat: Stat, f) -> str:
    return stat.text(f)


def _known(*stats: Stat) -> bool:
    return all(s.has_interval for s in stats)


def _sft(lines: list[Line], method: str, task: str | None = None) -> list[Line]:
    return [ln for ln in distinct(lines) if ln.row.objective == "sft" and ln.method == method
            and (task is None or ln.task == task)]


def _sft_on(lines: list[Line], task: str) -> list[Line]:
    return [ln for ln in distinct(lines) if ln.row.objective == "sft" and ln.task == task]


def _worse_bounds(ref: Line, other: Line) -> tuple[float, float]:
    """Bounds of how much worse ``other``'s final metric is than ``ref``'s (negative: better)."""
    a, b = ref.stat("metric_after"), other.stat("metric_after")
    if lower_is_better(ref.metric_name):
        return b.lo - a.hi, b.hi - a.lo
    return a.lo - b.hi, a.hi - b.lo


def _none(claim: str, why: str) -> list[Verdict]:
    return [Verdict(claim, NOT_MEASURED, why)]


LORA_CLAIM = "LoRA trains ~0.1–1% of parameters with near full-FT quality"


def lora_share_and_quality(lines: list[Line]) -> list[Verdict]:
    """Holds when sft:lora's trainable share is within [0.1%, 1%] and its final task metric is
    at most 5% (relative to full FT's mean) worse than sft:full's on the same task and metric,
    over the whole interval of the difference. A share outside the range fails on its own (the
    share is exact); otherwise both runs are needed."""
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
        if not full or full[0].stat("metric_after") is None or lora.stat("metric_after") is None:
            out.append(Verdict(LORA_CLAIM, NOT_MEASURED, text + "; no full-FT quality on the same metric to compare", lora.task))
            continue
        full = full[0]
        fa, la = full.stat("metric_after"), lora.stat("metric_after")
        lo, hi = _worse_bounds(full, lora)
        near = at_most(lo, hi, 0.05 * abs(fa.mean), _known(fa, la))
        text += (f"; {lora.metric_name} after: LoRA {_show(la, fmt.metric)} vs full FT {_show(fa, fmt.metric)} "
                 f"(near: at most 5% worse; {'within' if near else 'beyond' if near is False else why_not_known(fa, la)})")
        out.append(Verdict(LORA_CLAIM, _tri(near), text, lora.task))
    return out


def _memory_ratio(claim: str, a: Line, b: Line, limit: float, head: str, other: str, word: str,
                  where: str) -> Verdict:
    """Peak memory of ``a`` at most ``limit`` × that of ``b`` over the whole interval of the ratio,
    both measured the same way (GPU reserved or host RSS)."""
    if a.memory_source != b.memory_source:
        return Verdict(claim, NOT_MEASURED, f"memory measured differently ({a.memory_source} vs {b.memory_source})", where)
    lo, hi = ratio(a.memory, b.memory)
    holds = at_most(lo, hi, limit, _known(a.memory, b.memory))
    span = f"{lo:.0%}" if lo == hi else f"{lo:.0%}–{hi:.0%}"
    return Verdict(claim, _tri(holds),
                   f"{head} {_show(a.memory, fmt.nbytes)} vs {other} {_show(b.memory, fmt.nbytes)} = {span} "
                   f"({word}: ≤ {limit:.0%})" + ("" if holds is not None else f"; {why_not_known(a.memory, b.memory)}"),
                   where)


QLORA_CLAIM = "QLoRA uses far less memory than LoRA"


def qlora_memory(lines: list[Line]) -> list[Verdict]:
    """Holds when sft:qlora's peak memory is at most 60% of sft:lora's on the same task
    (a saving of 40% or more) over the whole interval of the ratio, both measured the same way
    (GPU reserved or host RSS)."""
    out = []
    for q in _sft(lines, "qlora"):
        lora = _sft(lines, "lora", q.task)
        if not lora or q.memory is None or lora[0].memory is None:
            out.append(Verdict(QLORA_CLAIM, NOT_MEASURED, "needs peak memory of sft:qlora and sft:lora on one task", q.task))
            continue
        out.append(_memory_ratio(QLORA_CLAIM, q, lora[0], 0.6, f"peak {q.memory_source}: QLoRA", "LoRA",
                                 "far less", q.task))
    return out or _none(QLORA_CLAIM, "no measured sft:qlora run")


PROMPT_CLAIM = "Prompt tuning is the cheapest and the weakest method"


def prompt_cheapest_weakest(lines: list[Line]) -> list[Verdict]:
    """Among the SFT parameterizations measured on the same task, holds when sft:prompt trains
    the fewest parameters (exact; ties count), its peak memory is within 5% of every other's
    (ratio interval ≤ 1.05: cheapest), and its final task metric is no better than any other's on
    the same metric (its interval nowhere better: weakest; ties count). Needs at least one other
    parameterization with the same figures; a single run per line is inconclusive."""
    out = []
    for p in _sft(lines, "prompt"):
        others = [ln for ln in _sft_on(lines, p.task) if ln.method != "prompt"]
        need = ("trainable_params", "memory", "metric_after")
        others = [o for o in others if all(o.stat(k) is not None for k in need)
                  and o.metric_name == p.metric_name and o.memory_source == p.memory_source]
        if any(p.stat(k) is None for k in need) or not others:
            out.append(Verdict(PROMPT_CLAIM, NOT_MEASURED,
                               "needs trainable params, peak memory and metric of sft:prompt and another method on one task", p.task))
            continue
        fewest = min(o.get("trainable_params") for o in others)
        low = min(others, key=lambda o: o.get("memory"))
        worst = (max if lower_is_better(p.metric_name) else min)(others, key=lambda o: o.get("metric_after"))
        fewest_ok = p.get("trainable_params") <= fewest
        mem_ok = all_of(at_most(*ratio(p.memory, o.memory), 1.05, _known(p.memory, o.memory)) for o in others)
        # weakest: every other is at least as good over the whole interval (worse_by(o, p) >= 0)
        weak_ok = all_of(_ge0(_worse_bounds(o, p), _known(p.stat("metric_after"), o.stat("metric_after"))) for o in others)
        cheapest = all_of([fewest_ok, mem_ok])
        word = {True: "yes", False: "no", None: "inconclusive"}
        text = (f"prompt trains {fmt.count(p.get('trainable_params'))} (fewest of others: {fmt.count(fewest)}), "
                f"peak {_show(p.memory, fmt.nbytes)} (lowest of others: {low.method} {_show(low.memory, fmt.nbytes)}; "
                f"within 5% counts as lowest); {p.metric_name} after {_show(p.stat('metric_after'), fmt.metric)} "
                f"(worst of others: {worst.method} {_show(worst.stat('metric_after'), fmt.metric)}); "
                f"cheapest: {word[cheapest]}, weakest: {word[weak_ok]}")
        out.append(Verdict(PROMPT_CLAIM, _tri(all_of([cheapest, weak_ok])), text, p.task))
    return out or _none(PROMPT_CLAIM, "no measured sft:prompt run")


def _ge0(bounds: tuple[float, float], known: bool) -> bool | None:
    """Is the quantity with these bounds ≥ 0 (ties count)? None when it straddles 0 or is unknown."""
    neg = at_most(-bounds[1], -bounds[0], 0.0, known)
    return neg


ADAPTER_CLAIM = "Adapters train more parameters than LoRA"
ADAPTERS = ("adapter_houlsby", "adapter_pfeiffer")


def adapters_more_params(lines: list[Line]) -> list[Verdict]:
    """Holds when every measured bottleneck adapter (Houlsby, Pfeiffer) trains strictly more
    parameters than sft:lora on the same task; equal counts do not hold. Counts are exact."""
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
    large as every other SFT parameterization's on the same task over the whole intervals
    (ties count); doesn't hold when some other forgets more over the whole intervals; needs one other."""
    out = []
    for full in _sft(lines, "full"):
        f = full.stat("forgetting")
        others = [o for o in _sft_on(lines, full.task) if o.method != "full" and o.stat("forgetting") is not None]
        if f is None or not others:
            continue
        top = max(others, key=lambda o: o.get("forgetting"))
        most = all_of(_ge0((f.lo - o.stat("forgetting").hi, f.hi - o.stat("forgetting").lo),
                           _known(f, o.stat("forgetting"))) for o in others)
        out.append(Verdict(FORGET_CLAIM, _tri(most),
                           f"full FT {_show(f, fmt.signed)} vs most of the others: "
                           f"{top.method} {_show(top.stat('forgetting'), fmt.signed)}"
                           + ("" if most is not None else f"; {why_not_known(f, *(o.stat('forgetting') for o in others))}"),
                           full.task))
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
    model's plus PPO's, and DPO's peak memory is not above the larger of the two, each over the
    whole intervals (the sum's interval adds the bounds; the larger's takes the larger bounds)."""
    out = []
    for sets, same in _matched(lines, ("dpo", "rm", "ppo"), "wall_time_s"):
        d, r, p = sets["dpo"], sets["rm"], sets["ppo"]
        mems = [d.memory, r.memory, p.memory]
        if None in mems or len({d.memory_source, r.memory_source, p.memory_source}) > 1:
            out.append(Verdict(DPO_CLAIM, NOT_MEASURED, f"{d.method}: peak memory missing or measured differently", _where(sets, same)))
            continue
        dw, rw, pw = d.stat("wall_time_s"), r.stat("wall_time_s"), p.stat("wall_time_s")
        wall_lo, wall_hi = rw.lo + pw.lo, rw.hi + pw.hi
        known = _known(dw, rw, pw)
        faster = None if not known else True if dw.hi < wall_lo else False if dw.lo >= wall_hi else None
        mem_lo, mem_hi = max(r.memory.lo, p.memory.lo), max(r.memory.hi, p.memory.hi)
        mem_known = _known(*mems)
        lighter = None if not mem_known else True if _le(d.memory.hi, mem_lo) else False if d.memory.lo > mem_hi else None
        cheaper = all_of([faster, lighter])
        rl_mem = max(r.get("memory"), p.get("memory"))
        out.append(Verdict(DPO_CLAIM, _tri(cheaper),
                           f"{d.method}: DPO {_show(dw, fmt.seconds)}, peak {_show(d.memory, fmt.nbytes)} vs "
                           f"RM + PPO {_show(rw, fmt.seconds)} + {_show(pw, fmt.seconds)} = "
                           f"{fmt.seconds(rw.mean + pw.mean)}, peak {fmt.nbytes(rl_mem)}"
                           + ("" if cheaper is not None else f"; {why_not_known(dw, rw, pw, *mems)}"), _where(sets, same)))
    return out or _none(DPO_CLAIM, "needs dpo, rm and ppo runs with one parameterization")


GRPO_CLAIM = "GRPO saves memory over PPO by dropping the critic"


def grpo_saves_memory(lines: list[Line]) -> list[Verdict]:
    """With the same parameterization, holds when GRPO's peak memory is at most 95% of PPO's
    (a saving of 5% or more) over the whole interval of the ratio, both measured the same way."""
    out = []
    for sets, same in _matched(lines, ("grpo", "ppo"), "memory"):
        g, p = sets["grpo"], sets["ppo"]
        out.append(_memory_ratio(GRPO_CLAIM, g, p, 0.95, f"{g.method}: peak {g.memory_source} GRPO", "PPO",
                                 "saves", _where(sets, same)))
    return out or _none(GRPO_CLAIM, "needs peak memory of grpo and ppo runs with one parameterization")


CLAIMS = (lora_share_and_quality, qlora_memory, prompt_cheapest_weakest, adapters_more_params,
          full_forgets_most, dpo_cheaper_than_rlhf, grpo_saves_memory)


def evaluate(lines: list[Line]) -> list[Verdict]:
    return [v for claim in CLAIMS for v in claim(lines)]
