"""The details pane of one recommendation: why, per-stage estimates, runner-ups, evidence run ids.

    tunebench tui      # Recommendations screen, below the table
"""
from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from advisor.tui.fmt import gib, hours, usd
from advisor.tui.widgets.memory_bar import memory_bar


def details_renderable(recs: list[dict], index: int, capacity_gib: float):
    if not recs:
        return Text("No stack fits this GPU and budget. Raise the budget, add GPUs, pick a bigger GPU or a "
                    "smaller model (the inputs above re-rank at once).", style="yellow")
    r = recs[index]
    parts = [Text.assemble((f"{r['stack']}", "bold"), f" on {r['model']}  ", memory_bar(r["peak_gib"], capacity_gib, 16),
                           " GiB peak  ", f"{hours(r['hours'])}  {usd(r['cost_usd'])}"),
             Text(r["why"])]
    for st in r.get("stages") or []:
        parts.append(Text(f"  {st['stage']:<16} peak {gib(st.get('peak_gib'))}  micro-batch {st.get('micro_batch')}"
                          f"{'  grad-ckpt' if st.get('grad_ckpt') else ''}  {hours(st.get('hours'))}", style="cyan"))
    others = [f"{i + 1}. {o['stack']} ({o['model']}, {hours(o['hours'])})" for i, o in enumerate(recs) if i != index]
    if others:
        parts.append(Text("Runner-ups: " + "; ".join(others[:4]), style="dim"))
    ev = r.get("evidence") or []
    parts.append(Text("Evidence runs: " + (", ".join(ev[:6]) + (f" (+{len(ev) - 6})" if len(ev) > 6 else "")
                                           if ev else "none measured on a close task yet (ranked by guidance)")))
    if r.get("gives_up"):
        parts.append(Text(f"Gives up: {r['gives_up']}", style="yellow"))
    if r.get("change"):
        parts.append(Text(f"What would change it: {r['change']}", style="italic"))
    return Group(*parts)


class RecommendationDetails(Static):
    def show(self, recs: list[dict], index: int, capacity_gib: float) -> None:
        self.update(details_renderable(recs, index, capacity_gib))
