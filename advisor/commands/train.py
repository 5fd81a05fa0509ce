"""``tunebench train``: run one stage or a stack and record one result per stage.

    tunebench train --stack sft:lora --model tiny-llama --task smoke --max-steps 3
    tunebench train --resume --out /tmp/run                  # after a kill: continue from the last checkpoint
    tunebench train --stack sft:lora --model smollm2-135m --data mine.jsonl   # your own data (bench/userdata.py)

A thin adapter: the flags, the checks, the launcher and the training are bench's child entry
(``python -m bench.entry``, bench/entry.py); this module only registers the command.
"""
from __future__ import annotations

from advisor.cli import add_command

EXAMPLES = """  tunebench train --stack sft:lora --model tiny-llama --task smoke --max-steps 3
  tunebench train --stack "cpt:full,sft:lora,dpo:lora" --model tiny-llama --task smoke --max-steps 3 --out /tmp/run
  tunebench train --stack sft:qlora --model smollm2-135m --task gsm-symbolic --hp learning_rate=2e-4 --cfg completion_only_loss=true
  tunebench train stack.yaml --db ~/tb-db
  tunebench data inspect mine.jsonl && tunebench train --stack sft:lora --model smollm2-135m --data mine.jsonl
  tunebench train --stack dpo:lora --model tiny-llama --data prefs.csv --eval-fraction 0.2
  tunebench train --stack sft:lora --model tiny-llama --data chats.parquet --format messages
  tunebench train --stack sft:lora --model smollm2-135m --task smoke --save-steps 20 --out /tmp/r   # then, if killed:
  tunebench train --resume --out /tmp/r
  tunebench train --stack sft:lora --model tiny-llama --task smoke --launcher accelerate --num-processes 2"""


def register(sub):
    from bench.entry import add_train_arguments

    p = add_command(sub, "train", "train a stage or a stack (OBJECTIVE:METHOD[,...]) and record the results", EXAMPLES)
    add_train_arguments(p)
    p.set_defaults(func=run)


def run(args):
    from bench.entry import run as train

    # --launcher re-runs bench's entry with the arguments after the command name
    args.argv = args.argv[args.argv.index("train") + 1:] if "train" in args.argv else args.argv
    return train(args)
