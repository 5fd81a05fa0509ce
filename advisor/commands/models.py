"""``tunebench models [--json]``: the model-shape catalog the estimator knows.

(``tunebench model prepare`` builds local model folders; that is advisor/commands/model.py.)
"""
import json

from advisor.cli import add_command


def register(sub):
    p = add_command(sub, "models", "list the model catalog (shapes for the estimator)",
                    "  tunebench models\n  tunebench models --json")
    p.add_argument("--json", action="store_true", help="print JSON: [{name, hidden, layers, ..., params}]")
    p.set_defaults(func=run)


def run(args):
    from advisor.catalogs import models

    rows = [m.to_dict() for m in models().values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':16} {'params':>8} {'hidden':>6} {'layers':>6} {'heads':>5} {'kv':>3} {'vocab':>7}")
    for r in rows:
        print(f"{r['name']:16} {r['params'] / 1e9:7.2f}B {r['hidden']:>6} {r['layers']:>6} {r['heads']:>5} {r['kv_heads']:>3} {r['vocab']:>7}")
    return 0
