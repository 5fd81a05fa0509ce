"""``tunebench model prepare NAME``: build a local HF model folder under TUNEBENCH_HOME."""
from advisor.cli import add_command


def register(sub):
    p = add_command(
        sub, "model", "prepare local models (tiny-llama, tiny-llama-bias, smollm2-135m)",
        "  tunebench model prepare tiny-llama\n  tunebench model prepare smollm2-135m\n  tunebench model list",
    )
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pp = s.add_parser("prepare", help="build NAME once as an HF folder (idempotent)")
    pp.add_argument("name", help="tiny-llama, tiny-llama-bias or smollm2-135m")
    pp.add_argument("--force", action="store_true", help="rebuild even if it exists")
    pp.set_defaults(func=prepare)
    pl = s.add_parser("list", help="list known models and whether they are prepared")
    pl.set_defaults(func=list_models)


def prepare(args):
    from bench.models import prepare as build

    print(build(args.name, force=args.force))
    return 0


def list_models(args):
    from bench.home import models_dir
    from bench.models import KNOWN

    for name in KNOWN:
        done = (models_dir() / name / "config.json").exists()
        print(f"{name:18} {'prepared' if done else 'not prepared'}")
    return 0
