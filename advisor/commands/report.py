"""``tunebench report``: comparison tables (md + HTML), folklore verdicts and plots from a results DB.

    tunebench report --db reports/reference/cpu-amd-epyc-2c-smollm2-135m/db --out /tmp/r
    tunebench report --db reports/reference/cpu-amd-epyc-2c-smollm2-135m/db --db reports/published/peft-method-comparison/db --out /tmp/r

The work is in ``reports/report.py``; this file only parses arguments and prints what it wrote.
"""
from pathlib import Path

from advisor.cli import add_command

EXAMPLES = """  tunebench report --db ~/.cache/tunebench/db --out /tmp/report
  tunebench report --db ~/.cache/tunebench/db --db reports/published/peft-method-comparison/db --out /tmp/r   # ours + published
  tunebench report --db results/ --out /tmp/r --hardware "NVIDIA H100 80GB HBM3" --format html
  tunebench report --db results/ --out /tmp/r --task wiki-topics --model smollm2-135m --format md"""


def register(sub):
    p = add_command(sub, "report", "write comparison tables (mean ± 95% interval), folklore-vs-measured verdicts, "
                                   "plots and published results from results DBs", EXAMPLES)
    p.add_argument("--db", required=True, type=Path, action="append",
                   help="results directory (one parquet file per run); repeat to add another, e.g. published results")
    p.add_argument("--out", required=True, type=Path, help="directory to write comparison.md/.html and plots/ into")
    p.add_argument("--hardware", help="only records with this hardware label")
    p.add_argument("--task", help="only records on this task")
    p.add_argument("--model", help="only records of this model")
    p.add_argument("--format", default="md,html", help="comma-separated: md, html (default: md,html)")
    p.add_argument("--force", action="store_true", help="replace a report already in --out")
    p.set_defaults(func=run)


def check_out(out: Path, force: bool) -> None:
    """An earlier report in --out is a result too: replace it only when asked."""
    from common.errors import UserError

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    old = [p.name for p in (out / "comparison.md", out / "comparison.html", out / "plots") if p.exists()]
    if old and not force:
        raise UserError(f"--out {out} already holds a report ({', '.join(old)}); pass --force to replace it")


def run(args):
    from reports.report import build_report, parse_formats

    formats = parse_formats(args.format)
    check_out(Path(args.out), args.force)
    for path in build_report(args.db, args.out, args.hardware, args.task, args.model, formats):
        print(path)
    return 0
