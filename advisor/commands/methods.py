"""``tunebench methods [--json] [--model NAME]``: list parameterizations and objectives.

    tunebench methods
    tunebench methods --json
    tunebench methods --model smollm2-135m        # + trainable parameters and share per method

Everything comes from the method cards (methods/card.py): listing them imports no torch
(``describe()``); only ``--model`` loads the model and applies each method.

JSON shape::

    {"parameterizations": [{"name", "label", "family", "trains", "requires": [str], "zero_init": bool,
                            "mergeable": bool, "latency": "none"|"adapter"|"extra-tokens",
                            "shares_base": bool, "base": "dense"|"nf4"|"int8", "default_lr": float,
                            "config": {setting: default}, "defaults": {setting: default},
                            "description"[, "trainable_params", "total_params", "trainable_share",
                            "error"]}],
     "objectives": [{"name", "label", "family", "data", "needs": [str], "provides": [str],
                     "sequences": int, "generates": bool, "head": "causal_lm"|"seq_cls",
                     "incompatible": {parameterization: why}, "config": {setting: default},
                     "defaults": {setting: default}, "description"}],
     ["model": NAME]}

``config`` and ``defaults`` are the same (``config`` is the older key). With ``--model`` each
parameterization is applied to a fresh copy of the model (quantized ones loaded with their
bitsandbytes config); ``total_params`` is the base model's count, and a method that cannot apply
(bitfit on a model without biases) gets ``error`` instead of counts.
"""
import json
import sys

from advisor.cli import add_command

EXAMPLES = "  tunebench methods\n  tunebench methods --json\n  tunebench methods --model smollm2-135m --json"


def register(sub):
    p = add_command(sub, "methods", "list parameterizations and objectives", EXAMPLES)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--model", metavar="NAME", help="also measure trainable parameters of each method on this model "
                   "(a prepared name such as tiny-llama or smollm2-135m, or an HF folder)")
    p.set_defaults(func=run)


def describe() -> dict:
    """Every card as plain data (the JSON shape above, without the ``--model`` counts); no torch."""
    from methods.card import ObjectiveCard, ParamCard
    from methods.registry import cards

    every = cards()
    pars = [
        {"name": c.name, "label": c.label, "family": c.family, "trains": c.trains, "requires": list(c.requires),
         "zero_init": c.zero_init, "mergeable": c.mergeable, "latency": c.latency, "shares_base": c.shares_base,
         "base": c.memory.base, "default_lr": c.default_lr, "config": c.defaults(), "defaults": c.defaults(),
         "description": c.description}
        for c in every.values() if isinstance(c, ParamCard)
    ]
    objs = [
        {"name": c.name, "label": c.label, "family": c.family, "data": c.data, "needs": list(c.needs),
         "provides": list(c.provides), "sequences": c.memory.sequences, "generates": c.memory.generates,
         "head": c.head, "incompatible": dict(c.incompatible), "config": c.defaults(), "defaults": c.defaults(),
         "description": c.description}
        for c in every.values() if isinstance(c, ObjectiveCard)
    ]
    return {"parameterizations": sorted(pars, key=lambda r: r["name"]), "objectives": sorted(objs, key=lambda r: r["name"])}


def measure(model_name: str, names: list[str]) -> dict[str, dict]:
    """Apply each parameterization to a fresh copy of the model and count what trains."""
    import time

    from bench.models import model_path

    path = model_path(model_name)  # a bad --model is refused before torch is imported

    import torch
    from transformers import AutoModelForCausalLM

    from methods import parameterization
    from methods._common import trainable_counts
    from common.errors import UserError

    base_total = trainable_counts(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32))[1]
    out = {}
    for name in names:
        par = parameterization(name)
        cfg = par.make_config()
        kw = par.load_kwargs(cfg) if par.load_kwargs else {}
        t0 = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kw)
        try:
            trainable = trainable_counts(par.apply(model, cfg))[0]
        except UserError as e:  # e.g. bitfit on a model without bias terms: a fact about the model
            out[name] = {"error": str(e)}
            continue
        finally:
            del model
        out[name] = {"trainable_params": trainable, "total_params": base_total,
                     "trainable_share": trainable / base_total}
        print(f"  {name}: {trainable:,} trainable ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
    return out


def run(args):
    info = describe()
    if args.model:
        counts = measure(args.model, [r["name"] for r in info["parameterizations"]])
        for r in info["parameterizations"]:
            r.update(counts[r["name"]])
        info["model"] = args.model
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    title = f"parameterizations ({len(info['parameterizations'])})" + (f" on {args.model}" if args.model else "")
    t = Table(title=title)
    cols = ["name", "family", "trains", "requires"] + (["trainable", "share"] if args.model else [])
    for col in cols:
        t.add_column(col, justify="right" if col in ("trainable", "share") else "left", no_wrap=col != "trains")
    notes = []
    for r in info["parameterizations"]:
        row = [r["name"], r["family"], r["trains"], ", ".join(r["requires"]) or "-"]
        if args.model:
            ok = "trainable_params" in r
            row += [f"{r['trainable_params']:,}", f"{100 * r['trainable_share']:.3f}%"] if ok else ["n/a", "n/a"]
            notes += [] if ok else [f"{r['name']}: {r['error']}"]
        t.add_row(*row)
    o = Table(title=f"objectives ({len(info['objectives'])})")
    for col in ("name", "family", "data", "needs"):
        o.add_column(col)
    for r in info["objectives"]:
        o.add_row(r["name"], r["family"], r["data"], ", ".join(r["needs"]) or "-")
    console = Console()
    console.print(t)
    for note in notes:
        console.print(f"  n/a {note}", highlight=False)
    console.print(o)
    return 0
