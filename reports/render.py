"""Markdown and HTML for the comparison report: the cells of each line, the tables, the page.

    tunebench report --db DIR --out DIR --format md,html

A cell shows the median over ok runs, with the min–max spread when seeds differ. A missing
figure is "—" with why: the run's status when no run succeeded (not run, oom, error, timeout),
"not recorded" when runs succeeded but did not record it. Nothing is estimated or filled in.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from reports import fmt
from reports.claims import Verdict
from reports.table import Group, Line, Stat, data_needed

COLUMNS = ("method", "stage", "task", "trainable params (% of model)", "peak memory", "tokens/s",
           "wall time", "quality before → after", "forgetting", "data needed", "runs / seeds", "hardware")
CLAIM_COLUMNS = ("claim", "task", "verdict", "measured")


def _missing(line: Line) -> str:
    if line.reason:
        return f"{fmt.MISSING} ({line.reason.split(':', 1)[0]})"
    return f"{fmt.MISSING} (not recorded)"


def _stat(stat: Stat | None, f, line: Line) -> str:
    if stat is None:
        return _missing(line)
    text = f(stat.median)
    if stat.n > 1 and stat.lo != stat.hi:
        text += f" ({f(stat.lo)}–{f(stat.hi)})"
    return text


def cells(line: Line, hardware: str) -> list[str]:
    """The table cells of one line, in ``COLUMNS`` order."""
    fig = line.figures
    if fig.get("trainable_params") is None:
        trainable = _missing(line)
    else:
        trainable = f"{_stat(fig['trainable_params'], fmt.count, line)} ({_stat(fig.get('trainable_share'), fmt.share, line)})"
    memory = _stat(line.memory, fmt.nbytes, line)
    if line.memory is not None:
        memory += f" {line.memory_source}"
    if line.metric_name is None:
        quality = _missing(line)
    else:
        quality = (f"{line.metric_name}: {_stat(fig.get('metric_before'), fmt.metric, line)} → "
                   f"{_stat(fig.get('metric_after'), fmt.metric, line)}")
    runs = f"{line.ok} of {line.runs} ok"
    if line.seeds:
        runs += " · seeds " + ", ".join(str(s) for s in line.seeds)
    if line.failures:
        runs += " · " + ", ".join(f"{n} {status}" for status, n in sorted(line.failures.items()))
    if line.reason and line.reason != "not run":
        runs += f" · {line.reason}"
    return [line.label, line.stage, line.task or fmt.MISSING, trainable, memory,
            _stat(fig.get("tokens_per_s"), fmt.rate, line), _stat(fig.get("wall_time_s"), fmt.seconds, line),
            quality, _stat(fig.get("forgetting"), fmt.signed, line), data_needed(line.row.objective, line.method),
            runs, hardware]


def sections(group: Group) -> list[tuple[str, list[Line]]]:
    out: list[tuple[str, list[Line]]] = []
    for line in group.lines:
        if not out or out[-1][0] != line.row.section:
            out.append((line.row.section, []))
        out[-1][1].append(line)
    return out


def group_title(group: Group) -> str:
    return f"{group.model} on {group.hardware}"


def group_facts(group: Group) -> str:
    return (f"{group.frame.height} records · model parameters {fmt.count(group.model_params)} · "
            f"devices: {group.devices}. Figures are medians over ok runs (min–max across seeds); "
            "peak memory is GPU reserved memory where recorded, otherwise the host's peak RSS.")


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _md_table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _verdict_row(v: Verdict) -> list[str]:
    return [v.claim, v.task or fmt.MISSING, v.verdict, v.evidence]


def markdown(groups: list[tuple[Group, list[Verdict], list[tuple[str, Path]]]], out: Path, header: str) -> str:
    parts = ["# tunebench: fine-tuning methods compared on measured numbers", "", header, ""]
    for group, verdicts, plots in groups:
        parts += [f"## {group_title(group)}", "", group_facts(group), ""]
        for title, lines in sections(group):
            parts += [f"### {title}", "", _md_table(COLUMNS, [cells(ln, group.hardware) for ln in lines]), ""]
        parts += ["### Folklore vs measured", "", _md_table(CLAIM_COLUMNS, [_verdict_row(v) for v in verdicts]), ""]
        parts += ["### Plots", ""]
        parts += [f"![{caption}]({path.relative_to(out).as_posix()})" for caption, path in plots] or ["No measured figures to plot."]
        parts.append("")
    return "\n".join(parts)


def _html_table(header, rows, verdict_col: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        tds = []
        for i, c in enumerate(row):
            cls = f' class="v-{c.split()[0].replace(chr(39), "")}"' if i == verdict_col else ""
            tds.append(f"<td{cls}>{html.escape(str(c))}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;max-width:110em}
table{border-collapse:collapse;font-size:0.85em;margin-bottom:1.2em}
th,td{border:1px solid #ccc;padding:0.25em 0.45em;vertical-align:top}th{background:#f2f2f2}
.v-holds{background:#e3f6e3}.v-doesnt{background:#fbe3e3}.v-not{color:#777}
figure{display:inline-block;margin:0.5em}figcaption{font-size:0.85em}"""


def html_page(groups: list[tuple[Group, list[Verdict], list[tuple[str, Path]]]], header: str) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>tunebench comparison</title>",
             f"<style>{STYLE}</style></head><body>",
             "<h1>tunebench: fine-tuning methods compared on measured numbers</h1>",
             f"<p>{html.escape(header)}</p>"]
    for group, verdicts, plots in groups:
        parts += [f"<h2>{html.escape(group_title(group))}</h2>", f"<p>{html.escape(group_facts(group))}</p>"]
        for title, lines in sections(group):
            parts += [f"<h3>{html.escape(title)}</h3>", _html_table(COLUMNS, [cells(ln, group.hardware) for ln in lines])]
        parts += ["<h3>Folklore vs measured</h3>",
                  _html_table(CLAIM_COLUMNS, [_verdict_row(v) for v in verdicts], verdict_col=2), "<h3>Plots</h3>"]
        for caption, path in plots:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        if not plots:
            parts.append("<p>No measured figures to plot.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
