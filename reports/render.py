"""Markdown and HTML for the comparison report: the cells of each line, the document, the page.

    tunebench report --db DIR --out DIR --format md,html

A cell shows the mean over ok runs ± the 95% t-interval half-width (n ≥ 3), the min–max range
(n = 2) or the single value (n = 1), as ``reports.stats`` says. A missing figure is "—" with why:
the run's status when no run succeeded (not run, oom, error, timeout), "not recorded" when runs
succeeded but did not record it. Nothing is estimated or filled in.

The document (``document``) is a list of blocks that ``markdown`` and ``html_page`` both render:
our measurements per hardware class (CPU, GPU; one subsection per hardware × model, never
pooled), then the smoke check (random-init models: tables only, no comparisons, no verdicts),
then the published results, each labelled with its source.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from bench.metrics import BUSY
from reports import fmt
from reports import compare, published
from reports.claims import Verdict
from reports.stats import Stat
from reports.table import Group, Line, data_needed, distinct

COLUMNS = ("method", "stage", "task", "trainable params (% of model)", "peak memory", "tokens/s",
           "wall time", "quality before → after", "forgetting", "data needed", "runs / seeds", "hardware")
CLAIM_COLUMNS = ("claim", "task", "verdict", "measured")


def _missing(line: Line) -> str:
    if line.reason:
        return f"{fmt.MISSING} ({line.reason.split(':', 1)[0]})"
    return f"{fmt.MISSING} (not recorded)"


def _stat(stat: Stat | None, f, line: Line, half=None) -> str:
    return _missing(line) if stat is None else stat.text(f, half)


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
            quality, _stat(fig.get("forgetting"), fmt.signed, line, fmt.metric), data_needed(line.row.objective, line.method),
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


LEGEND = ("Cells: mean over ok runs ± half-width of the 95% t-interval where n ≥ 3, mean (min–max, n) "
          "where n = 2, the single value where n = 1 (no interval); peak memory is GPU reserved memory "
          "where recorded, otherwise the host's peak RSS.")


def group_facts(group: Group) -> str:
    busy = sum(ln.busy for ln in distinct(group.lines, ran=True))
    left_out = (f" Speed (tokens/s, wall time) leaves out {busy} run{'s' * (busy != 1)} measured beside other work "
                f"(other processes took over {BUSY:.0%} of the CPU; their memory and quality count)." if busy else "")
    return (f"{group.frame.height} records · model parameters {fmt.count(group.model_params)} · "
            f"devices: {group.devices}. " + LEGEND + left_out)


SMOKE_NOTE = ("Random-initialised models: these runs prove each method trains, measures and records end "
              "to end. Their quality, memory and speed say nothing about the methods, so this section "
              "draws no comparisons and no folklore verdicts.")
DIFF_NOTE = ("Each method against the best on the task: \"worse\", \"more\" or \"slower\" only where the two "
             "intervals are apart; \"not distinguishable\" where they overlap or a line has a single run.")
CLASS_ORDER = ("CPU", "GPU", "unknown hardware")

Parts = list[tuple[Group, list[Verdict] | None, list[tuple[str, Path]]]]


def document(parts: Parts, sources: list, header: str) -> list[tuple]:
    """The report as blocks: ("h", level, text), ("p", text), ("table", header, rows, verdict_col),
    ("plots", [(caption, path)])."""
    doc: list[tuple] = [("h", 1, "tunebench: fine-tuning methods compared on measured numbers"), ("p", header)]
    real = [p for p in parts if not p[0].smoke]
    for cls in CLASS_ORDER:
        these = [p for p in real if p[0].hardware_class == cls]
        if these:
            doc.append(("h", 2, f"{cls}: our measurements"))
            for group, verdicts, plots in these:
                doc += _group_blocks(group, verdicts, plots)
    smoke = [p for p in parts if p[0].smoke]
    if smoke:
        doc += [("h", 2, "Smoke check: random-init models (pipeline only, no verdicts)"), ("p", SMOKE_NOTE)]
        for group, _verdicts, _plots in smoke:
            doc += [("h", 3, f"{group_title(group)} ({group.hardware_class})"), ("p", group_facts(group))]
            doc.append(("table", COLUMNS, [cells(ln, group.hardware) for ln in distinct(group.lines, ran=True)], None))
    if sources:
        doc += [("h", 2, "Published results (others' measurements, not pooled with ours)"),
                ("p", "Imported with tunebench db import; each table is one source, hardware and model, with "
                      "the figures as the source states them.")]
        for src in sources:
            doc += [("h", 3, f"Published: {src.title}"), ("p", src.facts),
                    ("table", published.COLUMNS, published.rows(src), None)]
    return doc


def _group_blocks(group: Group, verdicts: list[Verdict], plots) -> list[tuple]:
    doc = [("h", 3, group_title(group)), ("p", group_facts(group))]
    for title, lines in sections(group):
        doc += [("h", 4, title), ("table", COLUMNS, [cells(ln, group.hardware) for ln in lines], None)]
    tasks = compare.tasks(group.lines)
    if tasks:
        doc += [("h", 4, "Differences per task (95% intervals)"), ("p", DIFF_NOTE)]
        for task in tasks:
            metric, rows = compare.task_rows(group.lines, task)
            doc += [("p", f"{task} (quality: {metric or 'not measured'})"), ("table", compare.COLUMNS, rows, None)]
    doc += [("h", 4, "Folklore vs measured"), ("table", CLAIM_COLUMNS, [_verdict_row(v) for v in verdicts], 2),
            ("h", 4, "Plots"), ("plots", plots)]
    return doc


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _md_table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _verdict_row(v: Verdict) -> list[str]:
    return [v.claim, v.task or fmt.MISSING, v.verdict, v.evidence]


def markdown(doc: list[tuple], out: Path) -> str:
    parts = []
    for block in doc:
        kind = block[0]
        if kind == "h":
            parts += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            parts += [block[1], ""]
        elif kind == "table":
            parts += [_md_table(block[1], block[2]) if block[2] else "No records.", ""]
        elif kind == "plots":
            parts += [f"![{caption}]({path.relative_to(out).as_posix()})" for caption, path in block[1]] \
                or ["No measured figures to plot."]
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
.v-holds{background:#e3f6e3}.v-doesnt{background:#fbe3e3}.v-inconclusive{background:#fff6d6}.v-not{color:#777}
figure{display:inline-block;margin:0.5em}figcaption{font-size:0.85em}"""


def html_page(doc: list[tuple]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>tunebench comparison</title>",
             f"<style>{STYLE}</style></head><body>"]
    for block in doc:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "table":
            parts.append(_html_table(block[1], block[2], block[3]) if block[2] else "<p>No records.</p>")
        elif kind == "plots":
            for caption, path in block[1]:
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                             f"<figcaption>{html.escape(caption)}</figcaption></figure>")
            if not block[1]:
                parts.append("<p>No measured figures to plot.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
