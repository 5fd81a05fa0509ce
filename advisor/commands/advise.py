"""``tunebench advise``: ranked method stacks for a GPU, a budget and a goal, with evidence.

    tunebench advise --gpu rtx-4090 --goal chat --data pairs,preferences --budget-hours 12 --json

JSON shape: {"recommendations": [{"stack": "sft:qlora,dpo:qlora", "model": str, "peak_gib": float,
"hours": float|null, "cost_usd": float|null, "fits": true, "score": float, "why": str,
"evidence": [run ids], "stages": [{stage, peak_gib, micro_batch, grad_ckpt, hours}], "change": str}]}
(only the first recommendation carries "change": what would alter the choice).
"""
import json
from pathlib import Path

from advisor.cli import add_command

EXAMPLES = (
    "  tunebench advise --gpu rtx-4090 --goal chat --data pairs,preferences --budget-hours 12\n"
    "  tunebench advise --gpu a100-80gb --goal domain --data corpus,pairs --model llama-3.1-8b\n"
    "  tunebench advise --gpu l4 --goal multi-tenant --data pairs --no-latency --json"
)


def register(sub):
    p = add_command(sub, "advise", "recommend fine-tuning stacks that fit a GPU and budget", EXAMPLES)
    p.add_argument("--gpu", required=True, help="catalog GPU (see `tunebench gpus`)")
    p.add_argument("--num-gpus", type=int, default=1)
    p.add_argument("--budget-hours", type=float, help="wall-clock hours available")
    p.add_argument("--budget-usd", type=float, help="dollars available")
    p.add_argument("--goal", required=True, help="chat | domain | classify | reasoning | style | multi-tenant")
    p.add_argument("--data", default="pairs", help="data on hand, comma-separated: corpus, pairs, preferences, feedback, checker, judge")
    p.add_argument("--model", help="fix the base model (catalog name or folder); default: try a ladder of sizes")
    p.add_argument("--no-latency", action="store_true", help="only methods that merge into the base (no added inference latency)")
    p.add_argument("--seq-len", type=int, default=1024, help="training sequence length (default 1024)")
    p.add_argument("--corpus-tokens", type=float, default=2e7, help="size of the corpus (cpt), tokens")
    p.add_argument("--pairs", type=int, default=10_000, help="labelled prompt/response pairs")
    p.add_argument("--preferences", type=int, default=5_000, help="preference pairs")
    p.add_argument("--db", help="results DB for evidence (default: TUNEBENCH_HOME/db if present)")
    p.add_argument("--top", type=int, default=5, help="how many stacks to show")
    p.add_argument("--json", action="store_true", help="print the stable JSON shape")
    p.set_defaults(func=run)


def check_numbers(args) -> None:
    from common.errors import UserError

    for flag, value in (("--budget-hours", args.budget_hours), ("--budget-usd", args.budget_usd)):
        if value is not None and not value > 0:
            raise UserError(f"{flag} must be > 0, got {value:g}")
    for flag, value in (("--top", args.top), ("--num-gpus", args.num_gpus), ("--seq-len", args.seq_len)):
        if value < 1:
            raise UserError(f"{flag} must be >= 1, got {value}")
    for flag, value in (("--corpus-tokens", args.corpus_tokens), ("--pairs", args.pairs),
                        ("--preferences", args.preferences)):
        if value < 0:
            raise UserError(f"{flag} must be >= 0, got {value:g}")


def run(args):
    from advisor.catalogs import gpu
    from advisor.ranking import Profile, advise
    from bench.home import default_db

    check_numbers(args)
    db = Path(args.db).expanduser() if args.db else default_db()
    profile = Profile(
        goal=args.goal, gpu=gpu(args.gpu), num_gpus=args.num_gpus, budget_hours=args.budget_hours,
        budget_usd=args.budget_usd, data=tuple(d.strip() for d in args.data.split(",") if d.strip()),
        model=args.model, no_latency=args.no_latency, seq_len=args.seq_len,
        corpus_tokens=int(args.corpus_tokens), pairs=args.pairs, preferences=args.preferences,
        db=db if db.exists() else None, top=args.top,
    )
    recs = advise(profile)
    if args.json:
        print(json.dumps({"recommendations": [r.to_dict() for r in recs]}, indent=2))
        return 0
    if not recs:
        print("no stack fits this GPU and budget; try --num-gpus, a bigger --gpu, a larger budget or a smaller --model")
        return 0
    for i, r in enumerate(recs, 1):
        cost = "" if r.cost_usd is None else f", ${r.cost_usd:.2f}"
        print(f"{i}. {r.stack}  on {r.model}  peak {r.peak_gib:.1f} GiB, {r.hours:.1f} h{cost}")
        print(f"   {r.why}")
        if r.evidence:
            print(f"   runs: {', '.join(r.evidence[:8])}")
    if recs[0].change:
        print(f"what would change the choice: {recs[0].change}")
    return 0
