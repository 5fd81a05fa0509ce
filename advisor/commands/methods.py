"""``tunebench methods [--json]``: list parameterizations and objectives from the registry."""
import json

from advisor.cli import add_command


def register(sub):
    p = add_command(sub, "methods", "list parameterizations and objectives", "  tunebench methods\n  tunebench methods --json")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def describe() -> dict:
    from methods import OBJECTIVES, PARAMETERIZATIONS

    pars = [
        {"name": p.name, "family": p.family, "trains": p.trains, "requires": list(p.requires),
         "zero_init": p.zero_init, "mergeable": p.merge is not None,
         "config": p.config().model_dump(), "description": p.description}
        for p in PARAMETERIZATIONS.values()
    ]
    objs = [
        {"name": o.name, "family": o.family, "data": o.data, "needs": list(o.needs),
         "incompatible": o.incompatible, "config": o.config().model_dump(), "description": o.description}
        for o in OBJECTIVES.values()
    ]
    return {"parameterizations": sorted(pars, key=lambda r: r["name"]), "objectives": sorted(objs, key=lambda r: r["name"])}


def run(args):
    info = describe()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"parameterizations ({len(info['parameterizations'])})")
    for col in ("name", "family", "trains", "requires"):
        t.add_column(col)
    for r in info["parameterizations"]:
        t.add_row(r["name"], r["family"], r["trains"], ", ".join(r["requires"]) or "-")
    o = Table(title=f"objectives ({len(info['objectives'])})")
    for col in ("name", "family", "data", "needs"):
        o.add_column(col)
    for r in info["objectives"]:
        o.add_row(r["name"], r["family"], r["data"], ", ".join(r["needs"]) or "-")
    console = Console()
    console.print(t)
    console.print(o)
    return 0
