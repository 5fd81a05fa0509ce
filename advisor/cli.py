"""The ``tunebench`` command line. Each subcommand lives in ``advisor/commands/<name>.py``.

    tunebench --help
    tunebench methods --json

A command module defines ``register(subparsers)`` that adds its parser and sets ``func``.
User errors (``common.errors.UserError``) print one line and exit 2; no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from common.errors import UserError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line and exits 2."""

    def error(self, message: str):
        sys.stderr.write(f"error: {self.prog}: {message} (see --help)\n")
        sys.exit(2)


def build_parser() -> Parser:
    import advisor.commands as commands

    parser = Parser(
        prog="tunebench",
        description="Measure LLM fine-tuning methods and advise which to use.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  tunebench methods\n  tunebench train --stack sft:lora --model tiny-llama --task smoke\n"
        "  tunebench estimate --model llama-3.1-8b --method qlora --gpu rtx-4090",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"advisor.commands.{mod.name}").register(sub)
    return parser


def add_command(sub, name: str, help: str, examples: str) -> Parser:
    """Add a subcommand whose --help ends with examples."""
    return sub.add_parser(
        name, help=help, description=help, epilog=f"examples:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for commands that re-launch themselves
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
