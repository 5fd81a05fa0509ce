"""``tunebench report``: comparison tables (md + HTML), folklore verdicts and plots from a results DB.

    tunebench report --db reports/reference/cpu-2c-smollm2-135m/db --out /tmp/r

The work is in ``reports/report.py``; this file only parses arguments and prints what it wrote.
"""
from pathlib import Path

from advisor.cli import add_command

EXAMPLES = """  tunebench report --db ~/.cache/tunebench/db --out /tmp/report
  tunebench report --db results/ --out /tmp/r --hardware "NVIDIA H100 80GB HBM3" --format html
  tunebench report --db results/ --out /tmp/r --task wiki-topics --model smollm2-135m --format md"""


def register(sub):
    p = add_command(sub, "report", "write comparison tables, folklore-vs-measured verdicts and plots from a results DB", EXAMPLES)
    p.add_argument("--db", required=True, type=Path, help="results directory (one parquet file per run)")
    p.add_argument("--out", required=True, type=Path, help="directory to write comparison.md/.html and plots/ into")
    p.add_argument("--hardware", help="only records with this hardware label")
    p.add_argument("--task", help="only records on this task")
    p.add_argument("--model", help="only records of this model")
    p.add_argument("--format", default="md,html", help="comma-separated: md, html (default: md,html)")
    p.set_defaults(func=run)


def run(args):
    from reports.report import build_report, parse_formats

    formats = parse_formats(args.format)
    for path in build_report(args.db, args.out, args.hardware, args.task, args.model, formats):
        print(path)
    return 0
