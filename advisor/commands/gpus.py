"""``tunebench gpus [--json]``: the GPU catalog (memory, peak TFLOPS, bandwidth, typical $/hour)."""
import json
from dataclasses import asdict

from advisor.cli import add_command


def register(sub):
    p = add_command(sub, "gpus", "list the GPU catalog", "  tunebench gpus\n  tunebench gpus --json")
    p.add_argument("--json", action="store_true", help="print JSON: [{key, name, memory_gib, ...}]")
    p.set_defaults(func=run)


def run(args):
    from advisor.catalogs import gpus

    rows = [asdict(g) for g in gpus().values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'key':11} {'name':32} {'GiB':>5} {'bf16 TF':>8} {'GB/s':>6} {'$/h':>6}")
    for r in rows:
        print(f"{r['key']:11} {r['name']:32} {r['memory_gib']:>5g} {r['bf16_tflops']:>8g} {r['bandwidth_gbs']:>6g} {r['usd_per_hour']:>6.2f}")
    return 0
