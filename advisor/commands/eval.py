"""``tunebench eval``: score a model (optionally with a PEFT adapter) on a standard task via lm-eval.

    tunebench eval --model smollm2-135m --task wiki-topics
    tunebench eval --model ./out/merged --adapter ./out/adapter --task gsm-symbolic --limit 50 --json

``--json`` prints {task, metric, value, n, skipped, higher_is_better, metrics, seconds, model,
adapter}; n counts scored items, skipped those longer than the model's context.
"""
from __future__ import annotations

import json

from advisor.cli import add_command
from common.errors import UserError


def register(sub):
    p = add_command(
        sub, "eval", "score a model on a standard task's test split (lm-eval, offline)",
        "  tunebench eval --model smollm2-135m --task wiki-topics\n"
        "  tunebench eval --model tiny-llama --task smoke --json\n"
        "  tunebench eval --model DIR --adapter ADAPTER_DIR --task gsm-symbolic --limit 50",
    )
    p.add_argument("--model", required=True, help="a model name (tiny-llama, smollm2-135m) or an HF model folder")
    p.add_argument("--adapter", default=None, help="a PEFT adapter folder to apply on the model")
    p.add_argument("--task", required=True, help="a task name (see tunebench data list)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N test items")
    p.add_argument("--batch-size", type=int, default=8, help="lm-eval batch size (default 8)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args):
    from bench.evaluate import evaluate
    from bench.taskdata import get_task

    from bench.models import check_model

    get_task(args.task)  # an unknown task fails before a model is loaded
    check_model(args.model)  # so does a bad --model (a device, a FIFO in its folder)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    res = evaluate(args.model, args.task, adapter_dir=args.adapter, limit=args.limit, batch_size=args.batch_size)
    res |= {"model": args.model, "adapter": args.adapter}
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        arrow = "higher is better" if res["higher_is_better"] else "lower is better"
        skipped = f" ({res['skipped']} longer than the model's context skipped)" if res["skipped"] else ""
        print(f"{res['task']}: {res['metric']} = {res['value']:.4f} ({arrow}) on {res['n']} items{skipped} "
              f"in {res['seconds']} s")
        others = {k: round(v, 4) for k, v in res["metrics"].items() if k != res["metric"]}
        if others:
            print("  also: " + ", ".join(f"{k} {v}" for k, v in others.items()))
    return 0
