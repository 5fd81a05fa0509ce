"""The child training entry: run one stage or a stack, record one result per stage, exit with a code.

    python -m bench.entry --stack sft:lora --model tiny-llama --task smoke --max-steps 3
    python -m bench.entry --stack "cpt:full,sft:lora" --model tiny-llama --task smoke --out /tmp/run --events /tmp/ev.jsonl
    python -m bench.entry --resume --out /tmp/run                 # after a kill: continue from the last checkpoint
    python -m bench.entry examples/stack.yaml --launcher accelerate --num-processes 2
    python -m bench.entry --stack sft:lora --model tiny-llama --data mine.jsonl --eval-fraction 0.1

This is what every child run executes (bench/child.py starts it, directly or forked from
bench/zygote.py); ``tunebench train`` is the same arguments (``add_train_arguments``) and the
same ``run``. Exit codes: 0 every stage ok, 1 a stage failed, 2 refused input (one line
``error: ...`` on stderr, nothing written), 3 the last stage ran out of memory.

``--launcher accelerate`` re-runs this entry under ``accelerate launch`` (DDP; on a CPU machine
over gloo, see docs/scale-out.md). Every rank trains; only rank 0 writes ``--out`` and the result
record; the other ranks work in a scratch folder and write their progress events to
``EVENTS.rank<N>``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.errors import UserError
from common.yamlfile import parse_kv

ENTRY = "bench.entry"
LAUNCHED = "TUNEBENCH_LAUNCHED"  # set in the ranks started by --launcher, so they do not launch again
EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_OOM = 0, 1, 2, 3


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The train flags, shared by ``python -m bench.entry`` and ``tunebench train``."""
    p.add_argument("file", nargs="?", help="stack YAML (alternative to --stack/--model/--task)")
    p.add_argument("--stack", help="e.g. sft:lora or cpt:full,sft:lora,dpo:lora")
    p.add_argument("--model", help="tiny-llama, tiny-llama-bias, smollm2-135m or an HF folder")
    p.add_argument("--task", help="a task name (tunebench data list)")
    p.add_argument("--data", metavar="PATH", help="train on your own data instead of a task: .jsonl, .json, .csv, "
                   ".tsv, .parquet or a datasets save_to_disk folder (check it first: tunebench data inspect PATH)")
    p.add_argument("--format", dest="data_format", metavar="FORMAT",
                   help="the --data format when the columns do not say it: messages, text, prompt_completion, "
                        "preference, unpaired_preference, prompt_with_checker, mixture (default: detected)")
    p.add_argument("--eval-fraction", type=float, metavar="F",
                   help="share of --data rows held out for the eval loss, by a hash of each prompt (default 0.1; "
                        "a datasets folder's test/validation split is used instead when it has one)")
    p.add_argument("--max-steps", type=int, help="steps per stage")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                   help="stage hyper-parameter for every stage: learning_rate, batch_size, max_length, grad_accum, "
                        "grad_ckpt, train_limit, eval_limit, eval_split (test | validation), metric_limit, teacher, reward_model, judge")
    p.add_argument("--cfg", action="append", default=[], metavar="KEY=VALUE",
                   help="objective setting, applied to every stage whose objective has it (e.g. beta=0.2)")
    p.add_argument("--method-cfg", action="append", default=[], metavar="KEY=VALUE",
                   help="parameterization setting, applied to every stage whose method has it (e.g. r=16)")
    p.add_argument("--out", type=Path, help="output folder (default: TUNEBENCH_HOME/runs/<time>)")
    p.add_argument("--force", action="store_true", help="allow writing into a non-empty --out")
    p.add_argument("--db", type=Path, help="results database folder (default: TUNEBENCH_HOME/db)")
    p.add_argument("--no-db", action="store_true", help="do not record results")
    p.add_argument("--events", help="append JSON-lines progress events to this file")
    p.add_argument("--save-steps", type=int, help="write a Trainer checkpoint every N steps into each stage's "
                                                  "output folder (keeps the last 2), so --resume can continue")
    p.add_argument("--resume", action="store_true", help="continue the run in --out: finished stages are kept, "
                                                         "the next resumes from its last checkpoint")
    p.add_argument("--launcher", choices=["accelerate"], help="run under `accelerate launch` (multi-GPU DDP, or "
                                                              "CPU ranks over gloo)")
    p.add_argument("--num-processes", type=int, help="processes for --launcher accelerate (default: the GPU count, "
                                                     "2 without GPUs)")
    p.add_argument("--matrix", help=argparse.SUPPRESS)
    p.add_argument("--run-id", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--report-to", choices=["none", "tensorboard", "mlflow"],
                   help="experiment tracking: tensorboard writes <stage output>/tensorboard (bench/tracking.py)")


def apply_settings(spec, values: dict, attr: str, lookup, flag: str) -> None:
    """Give each KEY=VALUE to every stage whose objective/method config has that field."""
    for key, value in values.items():
        hit = False
        for st in spec.stages:
            if key in lookup(st).card.settings.model_fields:
                getattr(st, attr)[key] = value
                hit = True
        if not hit:
            raise UserError(f"{flag} '{key}': no stage in {spec.label} has that setting")


def build_spec(args):
    """The StackSpec the arguments describe (a YAML file, --resume's saved stack, or --stack/--model/--task)."""
    from common.stack import load_stack_yaml, parse_stack
    from methods import objective, parameterization

    source = data_source(args)
    if args.file:
        if args.stack:
            raise UserError("give either a stack YAML file or --stack, not both")
        spec = load_stack_yaml(args.file)
    elif args.resume and not args.stack:
        spec = load_stack_yaml(resume_file(args.out))
    else:
        missing = [f for f, v in (("--stack", args.stack), ("--model", args.model),
                                  ("--task", args.task or source)) if not v]
        if missing:
            raise UserError(f"missing {', '.join(missing).replace('--task', '--task or --data')} "
                            "(or give a stack YAML file)")
        spec = parse_stack(args.stack, args.model, args.task, data=source)
    if args.model and args.file:
        spec.model = args.model
    if (args.task or source) and args.file:  # the command line's task or data replaces the file's
        spec.task, spec.data = args.task, source
    if args.seed is not None:
        if args.seed < 0:
            raise UserError(f"--seed must be >= 0, got {args.seed}")
        spec.seed = args.seed
    hp = parse_kv(args.hp, "--hp")
    if args.max_steps is not None:
        hp["max_steps"] = args.max_steps
    spec.hp = {**spec.hp, **hp}
    if args.report_to:
        spec.report_to = args.report_to
    apply_settings(spec, parse_kv(args.cfg, "--cfg"), "cfg", lambda st: objective(st.objective), "--cfg")
    apply_settings(spec, parse_kv(args.method_cfg, "--method-cfg"), "method_cfg",
                   lambda st: parameterization(st.method), "--method-cfg")
    return spec


def data_source(args):
    """--data/--format/--eval-fraction as the stack's DataSource (None without --data)."""
    from common.stack import DataSource

    data = getattr(args, "data", None)
    if not data:
        if getattr(args, "data_format", None) or getattr(args, "eval_fraction", None) is not None:
            raise UserError("--format and --eval-fraction go with --data")
        return None
    if args.task:
        raise UserError("give --task or --data, not both")
    fraction = 0.1 if args.eval_fraction is None else args.eval_fraction
    if not 0 <= fraction < 1:
        raise UserError(f"--eval-fraction must be in [0, 1), got {fraction}")
    # absolute, so the child process, stack.json and --resume read the same file
    return DataSource(path=str(Path(data).expanduser().absolute()), format=args.data_format, eval_fraction=fraction)


def check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out} is not empty; pass --force to write into it")
    parent = out if out.exists() else out.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise UserError(f"--out {out} is not writable")


def resume_file(out: Path) -> Path:
    """The stack an earlier run in ``out`` saved (check_scale_out has already required --out)."""
    path = out / "stack.json"
    if not path.is_file():
        raise UserError(f"--resume: {path} does not exist; --out must be the folder of an earlier run")
    return path


def check_resume(out: Path, spec) -> None:
    """--resume continues the very same stack; a changed one would mix two runs in one folder."""
    from common.stack import load_stack_yaml

    before = load_stack_yaml(resume_file(out))
    if before.model_dump() != spec.model_dump():
        raise UserError(f"--resume: the stack differs from the one in {out / 'stack.json'}; "
                        "resume with the same arguments (or none) or start a new --out")


def check_scale_out(args) -> None:
    if args.resume and args.out is None:
        raise UserError("--resume needs --out: the folder of the run to continue")
    if args.save_steps is not None and args.save_steps < 1:
        raise UserError(f"--save-steps must be >= 1, got {args.save_steps}")
    if args.num_processes is not None:
        if not args.launcher:
            raise UserError("--num-processes needs --launcher accelerate")
        if args.num_processes < 1:
            raise UserError(f"--num-processes must be >= 1, got {args.num_processes}")
    if args.launcher and (args.resume or args.save_steps):
        raise UserError("--save-steps/--resume run in one process; drop --launcher to use them")


def check_paths(db: Path | None, events: str | None) -> None:
    if db is not None and db.exists() and not db.is_dir():
        raise UserError(f"--db {db} is not a folder")
    if events and not Path(events).parent.is_dir():
        raise UserError(f"--events {events}: folder {Path(events).parent} does not exist")


def accelerate_argv(n: int, argv: list[str]) -> list[str]:
    """``accelerate launch`` of this entry with ``argv`` on ``n`` processes (an argument list, never a shell)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(n), "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no"]
    if n > 1:  # DDP: NCCL across GPUs; without GPUs, CPU ranks over gloo (the Trainer runs with use_cpu)
        cmd.append("--multi_gpu")
    # `--cpu` alone would silently start ONE process (FACTS.md); --multi_gpu with use_cpu starts n.
    return cmd + ["-m", ENTRY, *argv]


def launch(args, out: Path) -> int:
    """Run this same entry, with the same arguments, under ``accelerate launch``."""
    import torch

    gpus = torch.cuda.device_count()
    n = args.num_processes or (gpus if gpus > 1 else 2)
    env = {**os.environ, LAUNCHED: "1"}
    if not gpus:
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return subprocess.run(accelerate_argv(n, [*args.argv, "--out", str(out)]), env=env).returncode


def log_rank(events: str | None) -> None:
    """One ``ddp`` event per rank (its rank, world size and backend), proof that DDP really ran."""
    import json

    import torch.distributed as dist

    if events and dist.is_available() and dist.is_initialized():
        with open(events, "a") as fh:
            fh.write(json.dumps({"event": "ddp", "rank": dist.get_rank(), "world_size": dist.get_world_size(),
                                 "backend": dist.get_backend()}) + "\n")


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def print_summary(records: list[dict], out: Path, db: Path | None) -> None:
    """One line per stage on stdout; a failed stage's first error line on stderr."""
    for r in records:
        tps = f"{r['tokens_per_s']:.0f} tok/s" if r.get("tokens_per_s") else "-"
        loss = f"{r['train_loss']:.4f}" if r.get("train_loss") is not None else "-"
        print(f"{r['stage']:22} {r['status']:9} loss {loss:>8}  {tps:>12}  trainable {r.get('trainable_params') or '-'}"
              f"  run {r['run_id']}")
        if r["status"] != "ok":
            print(f"  {(r.get('error') or '').splitlines()[0] if r.get('error') else ''}", file=sys.stderr)
    print(f"outputs: {out}" + (f"   results: {db}" if db else ""))


def exit_code(records: list[dict]) -> int:
    if records and records[-1]["status"] == "oom":
        return EXIT_OOM
    return EXIT_OK if records and all(r["status"] == "ok" for r in records) else EXIT_FAILED


def run(args) -> int:
    """Check everything, then train (or re-launch under accelerate); raises UserError for bad input."""
    from bench.home import default_db, home
    from bench.models import check_model
    from bench.stack import validate
    from bench.userdata import check_stack_data

    if not hasattr(args, "argv"):
        args.argv = []
    check_scale_out(args)
    spec = build_spec(args)
    validate(spec)
    check_stack_data(spec)  # every row of the user's own data, before a model loads
    check_model(spec.model)  # a FIFO or device in a --model folder would hang loading it
    # bench.train's default_out, without importing the training stack (~10 s) before input is checked
    out = args.out or home() / "runs" / time.strftime("%Y%m%d-%H%M%S")
    db = None if args.no_db else (args.db or default_db())
    check_paths(db, args.events)
    launched = os.environ.get(LAUNCHED) == "1"
    if args.resume:
        check_resume(out, spec)
    elif not launched:
        check_out(out, args.force)
    if args.launcher and not launched:
        return launch(args, out)
    from bench.train import StackRun

    scratch = None
    if rank() > 0:  # only rank 0 writes outputs and records; the others train in a scratch folder
        scratch = out = Path(tempfile.mkdtemp(prefix=f"tunebench-rank{rank()}-"))
        db, args.quiet = None, True
        args.events = f"{args.events}.rank{rank()}" if args.events else None
    try:
        records = StackRun(spec, out, db, events=args.events, matrix=args.matrix, run_id=args.run_id,
                           quiet=args.quiet, save_steps=args.save_steps, resume=args.resume).run()
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if launched:
        log_rank(args.events)
    if rank() == 0:
        print_summary(records, out, db)
    return exit_code(records)


class EntryParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line and exits 2."""

    def error(self, message: str):
        sys.stderr.write(f"error: {self.prog}: {message} (see --help)\n")
        sys.exit(EXIT_REFUSED)


def build_parser() -> EntryParser:
    p = EntryParser(prog=f"python -m {ENTRY}", description="Train a stage or a stack (OBJECTIVE:METHOD[,...]) "
                    "and record one result per stage.", epilog=__doc__.split("\n\n")[1],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # what --launcher re-runs under accelerate
    try:
        return int(run(args) or 0)
    except UserError as e:
        sys.stderr.write(f"error: {e}\n")
        return EXIT_REFUSED
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
