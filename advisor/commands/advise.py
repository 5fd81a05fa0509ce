"""``tunebench advise``: ranked method stacks for a GPU, a budget and a goal, with evidence — always an answer.

    tunebench advise --gpu rtx-4090 --goal chat --data pairs,preferences --budget-hours 12 --json

When nothing fits as asked, the plans that do are returned, each saying what it gives up (fewer
epochs, a fraction of the data, shorter sequences, a smaller model), and the budget line says what
the budget buys. JSON shape (stable):
{"recommendations": [{"stack": "sft:qlora,dpo:qlora", "model": str, "peak_gib": float,
  "hours": float|null, "cost_usd": float|null, "fits": true, "score": float, "why": str,
  "evidence": [run ids], "evidence_detail": [{stage, origin: measured|published, hardware,
  tier: same device|same class|other hardware, task, rank, quality_change: {mean, lo, hi, n,
  interval}|null, metric_after: {...}|null, metric, runs, source}],
  "stages": [{stage, peak_gib, micro_batch, grad_ckpt, precision, seq_len, tokens, hours}],
  "gives_up": str, "budget_cut": str, "data_fraction": float, "epochs": int, "seq_len": int,
  "factors": {recipe_prior, method_prior, model_prior, prior, evidence_rank, evidence_weight,
  data_factor, seq_factor, time_penalty, score}, "change": str}],
 "budget": str, "notes": [str]}
(only the first recommendation carries a non-empty "change": what would alter the choice).
"""
import json
from pathlib import Path

from advisor.cli import add_command

EXAMPLES = (
    "  tunebench advise --gpu rtx-4090 --goal chat --data pairs,preferences --budget-hours 12\n"
    "  tunebench advise --gpu rtx-4090 --goal chat --data feedback --start instruct\n"
    "  tunebench advise --gpu a10g --goal chat --data pairs --model llama-3.1-8b --budget-usd 5\n"
    "  tunebench advise --gpu cpu --goal classify --data pairs --budget-hours 2 --explain\n"
    "  tunebench advise --gpu rtx-4090 --goal distill --data teacher --teacher llama-3.1-8b\n"
    "  tunebench advise --gpu l4 --goal multi-tenant --data pairs --no-latency --json"
)


def register(sub):
    from advisor.recipes import DATA_KINDS, GOALS

    p = add_command(sub, "advise", "recommend fine-tuning stacks that fit a GPU and budget", EXAMPLES)
    p.add_argument("--gpu", required=True, help="catalog GPU or cpu (see `tunebench gpus`)")
    p.add_argument("--num-gpus", type=int, default=1)
    p.add_argument("--budget-hours", type=float, help="wall-clock hours available")
    p.add_argument("--budget-usd", type=float, help="dollars available")
    p.add_argument("--goal", required=True, help=" | ".join(GOALS))
    p.add_argument("--data", default="pairs", help=f"data on hand, comma-separated: {', '.join(DATA_KINDS)}")
    p.add_argument("--start", choices=("base", "instruct"), default="base",
                   help="the starting model: a base model needs SFT first; an instruct model can go straight "
                        "to DPO/ORPO/KTO (default base)")
    p.add_argument("--model", help="fix the base model (catalog name or folder); default: try a ladder of sizes")
    p.add_argument("--teacher", help="distillation teacher (catalog name); default: the student's own size")
    p.add_argument("--no-latency", action="store_true", help="only methods that merge into the base (no added inference latency)")
    p.add_argument("--seq-len", type=int, default=1024, help="training sequence length (default 1024)")
    p.add_argument("--epochs", type=int, default=2, help="passes over the pairs/preferences/feedback (default 2)")
    p.add_argument("--corpus-tokens", type=float, default=2e7, help="size of the corpus (cpt), tokens")
    p.add_argument("--pairs", type=int, default=10_000, help="labelled prompt/response pairs")
    p.add_argument("--preferences", type=int, default=5_000, help="preference pairs")
    p.add_argument("--feedback", type=int, default=5_000, help="thumbs-up/down labels")
    p.add_argument("--prompts", type=int, default=2_000, help="prompts (GRPO, RLAIF, distillation)")
    p.add_argument("--db", help="your results DB for evidence (default: TUNEBENCH_HOME/db if present); the shipped "
                                "reference and published DBs are always read")
    p.add_argument("--top", type=int, default=5, help="how many stacks to show")
    p.add_argument("--explain", action="store_true", help="print the ranking factors of each stack")
    p.add_argument("--json", action="store_true", help="print the stable JSON shape (see the module docstring)")
    p.set_defaults(func=run)


def check_numbers(args) -> None:
    from common.errors import UserError

    for flag, value in (("--budget-hours", args.budget_hours), ("--budget-usd", args.budget_usd)):
        if value is not None and not value > 0:
            raise UserError(f"{flag} must be > 0, got {value:g}")
    for flag, value in (("--top", args.top), ("--num-gpus", args.num_gpus), ("--seq-len", args.seq_len),
                        ("--epochs", args.epochs)):
        if value < 1:
            raise UserError(f"{flag} must be >= 1, got {value}")
    for flag, value in (("--corpus-tokens", args.corpus_tokens), ("--pairs", args.pairs),
                        ("--preferences", args.preferences), ("--feedback", args.feedback), ("--prompts", args.prompts)):
        if value < 0:
            raise UserError(f"{flag} must be >= 0, got {value:g}")


def profile_from(args):
    from advisor.catalogs import gpu, shape
    from advisor.ranking import Profile
    from bench.home import default_db

    check_numbers(args)
    if args.teacher:
        shape(args.teacher)  # an unknown teacher is one line, before any ranking
    db = Path(args.db).expanduser() if args.db else default_db()
    return Profile(
        goal=args.goal, gpu=gpu(args.gpu), num_gpus=args.num_gpus, budget_hours=args.budget_hours,
        budget_usd=args.budget_usd, data=tuple(d.strip() for d in args.data.split(",") if d.strip()),
        start=args.start, model=args.model, teacher=args.teacher, no_latency=args.no_latency, seq_len=args.seq_len,
        epochs=args.epochs, corpus_tokens=int(args.corpus_tokens), pairs=args.pairs, preferences=args.preferences,
        feedback=args.feedback, prompts=args.prompts, db=db if db.exists() else None, top=args.top,
    )


def run(args):
    from advisor.ranking import answer

    ans = answer(profile_from(args))
    if args.json:
        print(json.dumps(ans.to_dict(), indent=2))
        return 0
    for note in ans.notes:
        print(f"note: {note}")
    if not ans.recommendations:
        print("no plan fits: " + "; ".join(ans.notes))
        return 0
    for i, r in enumerate(ans.recommendations, 1):
        cost = "" if r.cost_usd is None else f", ${r.cost_usd:.2f}"
        print(f"{i}. {r.stack}  on {r.model}  peak {r.peak_gib:.1f} GiB, {r.hours:.1f} h{cost}")
        print(f"   {r.why}")
        if r.gives_up:
            print(f"   gives up: {r.gives_up}")
        if args.explain:
            print("   factors: " + ", ".join(f"{k} {v}" for k, v in r.factors.items() if v is not None))
    if ans.budget:
        print(f"budget: {ans.budget}")
    print(f"what would change the choice: {ans.recommendations[0].change}")
    return 0
