"""Bad input catalog: every command and YAML file answers a mistake with exit 2, one line, no traceback.

    .venv/bin/python -m pytest tests/test_bad_input.py -q

One table, one case per mistake a user makes: unknown names (with the closest one suggested),
impossible combinations, negative or absurd numbers, malformed stack strings and YAML, wrong
types, paths that do not exist or cannot be written, and odd files where a file or model
folder is read (binary, not UTF-8, oversized, a folder, a FIFO, /dev/zero). Each case runs
in-process through ``advisor.cli.main`` (these commands fail before loading a model); the few
marked ``sub`` run the real entry point in a subprocess, and those marked ``odd`` do too, under
a short timeout that only guards against a hang (a FIFO opened for reading blocks, /dev/zero
never ends). Every case checks: exit 2, exactly one non-empty stderr line, no "Traceback", and
the case's folder (its --db/--out targets) unchanged.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.cli import main

ROOT = Path(__file__).resolve().parents[1]
T = "{tmp}"


def train(*extra, model="tiny-llama", task="smoke", out=f"{T}/out", db=f"{T}/db") -> list[str]:
    """A ``tunebench train`` argv into the case's own --db/--out folders."""
    return ["train", *extra, "--model", model, "--task", task, "--db", db, "--out", out]


TRAIN = train()
LORA = train("--stack", "sft:lora")
NOT_WRITABLE = "/proc/self/tunebench-out"  # /proc/self is not writable, even for root

# Files every case can point at (created fresh in the case's folder).
FILES = {
    "plain.txt": "not a folder\n",
    "nonempty/keep.txt": "a result someone wants to keep\n",
    "broken.yaml": "model: tiny-llama\nstages: [ {objective: sft, method: lora\n",
    "list.yaml": "- sft:lora\n- dpo:lora\n",
    "unknown_key.yaml": "model: tiny-llama\ntask: smoke\ncolour: red\nstages: [{objective: sft, method: lora}]\n",
    "wrong_type.yaml": "model: tiny-llama\ntask: smoke\nstages: sft:lora\n",
    "bad_method.yaml": "model: tiny-llama\ntask: smoke\nstages: [{objective: sft, method: lorra}]\n",
    "bad_hp.yaml": "model: tiny-llama\ntask: smoke\nhp: {max_steps: -3}\nstages: [{objective: sft, method: lora}]\n",
    "python_tag.yaml": "model: !!python/object/apply:os.system ['echo pwned']\ntask: smoke\n"
                       "stages: [{objective: sft, method: lora}]\n",
    "matrix_broken.yaml": "name: x\nruns: [\n",
    "matrix_key.yaml": "name: x\ndefaults: {model: tiny-llama, task: smoke}\nruns: [{stack: 'sft:lora', colour: red}]\n",
    "matrix_method.yaml": "name: x\ndefaults: {model: tiny-llama, task: smoke}\nruns: [{stack: 'sft:lorra'}]\n",
    "constitution_empty.yaml": "principles: []\n",
    "constitution_broken.yaml": "principles: [\n",
    "tasks/smoke.yaml": "name: smoke\nkind: [\n",
    "db/.keep": "",
    # odd files (bytes are written as they are; FIFO, FOLDER and BIG are made by make_files)
    "binary.yaml": b"\x7fELF\x02\x01\x01\x00\x00\x00model: tiny-llama\n\xff\xfe\x00\x01",
    "latin1.yaml": "model: tiny-llama\ntask: smoke\n# caf\u00e9\nstages: [{objective: sft, method: lora}]\n"
                   .encode("latin-1"),
    "fifo.yaml": "FIFO",
    "folder.yaml": "FOLDER",
    "big.yaml": "BIG",
    "fifomodel/config.json": "FIFO",
    "pipemodel/config.json": '{"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, '
                             '"num_attention_heads": 4}\n',
    "pipemodel/model.safetensors": "FIFO",
    "jsonmodel/config.json": '{"model_type": "llama", "hidden_size": 64,\n',
    "tasks-binary/smoke.yaml": b"\x00\x01\x02name: smoke\n",
    "binadapter/adapter_config.json": b"\xb2\x00\x17peft_type",
    # the user's own data (the full table of bad data files: tests/bench/test_userdata.py)
    "data/empty.jsonl": "",
    "data/kto.jsonl": '{"prompt": "q", "completion": "a", "label": "yes"}\n',
    "data/pref.jsonl": '{"prompt": "q", "chosen": "a", "rejected": "b"}\n',
    "data/fifo.jsonl": "FIFO",
}
BIG = 11 * 1024 * 1024  # sparse: over the 10 MiB limit for YAML/JSON configs without writing 11 MiB
ODD_TIMEOUT = 20  # seconds; each odd-file case answers in well under one, this only catches a hang

# (id, argv, words the error line must contain)
CASES = [
    # train: names
    ("train-unknown-method", [*TRAIN, "--stack", "sft:lorra"], ["lorra", "did you mean lora"]),
    ("train-unknown-objective", [*TRAIN, "--stack", "stf:lora"], ["stf", "sft"]),
    ("train-unknown-task", train("--stack", "sft:lora", task="smok"), ["smok", "smoke"]),
    ("train-unknown-model", train("--stack", "sft:lora", model="tiny-lama"), ["tiny-lama", "tiny-llama"]),
    # train: combinations
    ("train-unmergeable-then-stage", [*TRAIN, "--stack", "sft:prefix,dpo:lora"], ["prefix", "last stage"]),
    ("train-ppo-without-reward", [*TRAIN, "--stack", "ppo:lora"], ["reward model"]),
    ("train-stack-and-file", train(f"{T}/bad_method.yaml", "--stack", "sft:lora"), ["not both"]),
    ("train-missing-args", ["train", "--stack", "sft:lora", "--db", f"{T}/db"], ["--model", "--task"]),
    ("train-cfg-no-stage", [*LORA, "--cfg", "beta=0.1"], ["beta", "no stage"]),
    # train: malformed stack strings
    ("train-stack-dash", [*TRAIN, "--stack", "sft-lora"], ["sft-lora", "OBJECTIVE:METHOD"]),
    ("train-stack-empty-stage", [*TRAIN, "--stack", "sft:lora,,dpo:lora"], ["malformed stack"]),
    ("train-stack-empty", [*TRAIN, "--stack", " "], ["malformed stack"]),
    ("train-stack-three-parts", [*TRAIN, "--stack", "sft:lora:r16"], ["sft:lora:r16"]),
    # train: numbers and types
    ("train-negative-steps", [*LORA, "--max-steps", "-1"], ["max_steps"]),
    ("train-zero-steps", [*LORA, "--max-steps", "0"], ["max_steps"]),
    ("train-absurd-steps", [*LORA, "--max-steps", "1000000000000"], ["max_steps"]),
    ("train-steps-not-int", [*LORA, "--max-steps", "three"], ["--max-steps", "three"]),
    ("train-negative-seed", [*LORA, "--seed", "-1"], ["--seed"]),
    ("train-zero-batch", [*LORA, "--hp", "batch_size=0"], ["batch_size"]),
    ("train-lr-not-number", [*LORA, "--hp", "learning_rate=fast"], ["learning_rate"]),
    ("train-absurd-lr", [*LORA, "--hp", "learning_rate=50"], ["learning_rate"]),
    ("train-hp-no-equals", [*LORA, "--hp", "batch_size"], ["KEY=VALUE"]),
    ("train-hp-unknown-key", [*LORA, "--hp", "colour=red"], ["colour"]),
    ("train-negative-rank", [*LORA, "--method-cfg", "r=-4"], ["r"]),
    ("train-rank-not-int", [*LORA, "--method-cfg", "r=big"], ["r"]),
    # train: stack YAML
    ("stack-yaml-missing", train(f"{T}/nope.yaml"), ["does not exist"]),
    ("stack-yaml-broken", ["train", f"{T}/broken.yaml", "--db", f"{T}/db", "--out", f"{T}/out"], ["not valid YAML"]),
    ("stack-yaml-list", ["train", f"{T}/list.yaml", "--db", f"{T}/db", "--out", f"{T}/out"], ["mapping"]),
    ("stack-yaml-unknown-key", ["train", f"{T}/unknown_key.yaml", "--db", f"{T}/db", "--out", f"{T}/out"], ["colour"]),
    ("stack-yaml-wrong-type", ["train", f"{T}/wrong_type.yaml", "--db", f"{T}/db", "--out", f"{T}/out"], ["stages"]),
    ("stack-yaml-unknown-method", ["train", f"{T}/bad_method.yaml", "--db", f"{T}/db", "--out", f"{T}/out"],
     ["lorra", "lora"]),
    ("stack-yaml-negative-hp", ["train", f"{T}/bad_hp.yaml", "--db", f"{T}/db", "--out", f"{T}/out"], ["max_steps"]),
    ("stack-yaml-python-tag", ["train", f"{T}/python_tag.yaml", "--db", f"{T}/db", "--out", f"{T}/out"],
     ["not valid YAML"]),
    # train: paths
    ("train-out-is-file", train("--stack", "sft:lora", out=f"{T}/plain.txt"), ["not a folder"]),
    ("train-out-not-empty", train("--stack", "sft:lora", out=f"{T}/nonempty"), ["--force"]),
    ("train-out-not-writable", train("--stack", "sft:lora", out=NOT_WRITABLE), ["not writable"]),
    ("train-events-no-folder", train("--stack", "sft:lora", "--events", f"{T}/no/dir/ev.jsonl"), ["--events"]),
    ("train-db-is-file", train("--stack", "sft:lora", db=f"{T}/plain.txt"), ["--db", "not a folder"]),
    ("train-resume-without-out", ["train", "--stack", "sft:lora", "--model", "tiny-llama", "--task", "smoke",
                                  "--resume", "--db", f"{T}/db"], ["--resume", "--out"]),
    ("train-resume-empty-out", [*LORA, "--resume"], ["--resume", "stack.json"]),
    ("train-negative-save-steps", [*LORA, "--save-steps", "-5"], ["--save-steps"]),
    ("train-launcher-unknown", [*LORA, "--launcher", "torchrun"], ["--launcher", "torchrun"]),
    ("train-num-processes-zero", [*LORA, "--launcher", "accelerate", "--num-processes", "0"], ["--num-processes"]),
    ("train-num-processes-alone", [*LORA, "--num-processes", "2"], ["--launcher accelerate"]),
    # constitution (rlaif) and task YAML
    ("constitution-missing", [*TRAIN, "--stack", "rlaif:lora", "--cfg", f"constitution={T}/nope.yaml"],
     ["does not exist"]),
    ("constitution-empty", [*TRAIN, "--stack", "rlaif:lora", "--cfg", f"constitution={T}/constitution_empty.yaml"],
     ["principles"]),
    ("constitution-broken", [*TRAIN, "--stack", "rlaif:lora", "--cfg", f"constitution={T}/constitution_broken.yaml"],
     ["not valid YAML"]),
    ("task-yaml-broken", ["@tasks", *LORA], ["not valid YAML"]),
    # methods, model, data, eval
    ("methods-unknown-model", ["methods", "--model", "tiny-lama"], ["tiny-lama", "tiny-llama"]),
    ("methods-bad-flag", ["methods", "--jsn"], ["--jsn"]),
    ("model-prepare-unknown", ["model", "prepare", "smollm-135m"], ["smollm-135m", "smollm2-135m"]),
    ("data-prepare-unknown", ["data", "prepare", "gsm-symbolc"], ["gsm-symbolc", "gsm-symbolic"]),
    ("data-prepare-nothing", ["data", "prepare"], ["--all"]),
    ("data-prepare-zero-limit", ["data", "prepare", "smoke", "--limit", "0"], ["--limit"]),
    ("data-inspect-missing", ["data", "inspect", f"{T}/data/nope.jsonl"], ["nope.jsonl", "does not exist"]),
    ("data-inspect-empty", ["data", "inspect", f"{T}/data/empty.jsonl"], ["empty.jsonl", "empty"]),
    ("data-inspect-fifo", ["data", "inspect", f"{T}/data/fifo.jsonl", "@odd"], ["fifo.jsonl", "FIFO"]),
    ("data-inspect-unknown-format", ["data", "inspect", f"{T}/data/pref.jsonl", "--format", "chat"],
     ["--format", "chat"]),
    ("train-data-label-not-bool", ["train", "--stack", "kto:lora", "--model", "tiny-llama", "--data",
                                   f"{T}/data/kto.jsonl", "--db", f"{T}/db", "--out", f"{T}/out"],
     ["kto.jsonl", "line 1", "column 'label'"]),
    ("train-data-wrong-format", ["train", "--stack", "sft:lora", "--model", "tiny-llama", "--data",
                                 f"{T}/data/pref.jsonl", "--db", f"{T}/db", "--out", f"{T}/out"],
     ["pref.jsonl", "prompt_completion", "preference"]),
    ("train-data-and-task", [*LORA, "--data", f"{T}/data/pref.jsonl"], ["--task or --data"]),
    ("train-format-without-data", [*LORA, "--format", "text"], ["--format", "--data"]),
    ("eval-unknown-task", ["eval", "--model", "tiny-llama", "--task", "wiki-topic"], ["wiki-topic", "wiki-topics"]),
    ("eval-unknown-model", ["eval", "--model", "tiny-lama", "--task", "smoke"], ["tiny-lama", "tiny-llama"]),
    ("eval-zero-limit", ["eval", "--model", "tiny-llama", "--task", "smoke", "--limit", "0"], ["--limit"]),
    ("eval-zero-batch", ["eval", "--model", "tiny-llama", "--task", "smoke", "--batch-size", "0"], ["--batch-size"]),
    ("eval-missing-adapter", ["eval", "--model", "tiny-llama", "--task", "smoke", "--adapter", f"{T}/nope"],
     ["nope", "adapter"]),
    # chat / export a finished run (@report writes run r0: status ok, no saved output)
    ("chat-unknown-run", ["@report", "chat", "--run", "r9", "--db", f"{T}/db"], ["unknown run id", "r9"]),
    ("chat-no-output", ["@report", "chat", "--run", "r0", "--db", f"{T}/db"], ["r0", "no saved output"]),
    ("chat-zero-tokens", ["@report", "chat", "--run", "r0", "--db", f"{T}/db", "--max-new-tokens", "0"],
     ["--max-new-tokens"]),
    ("export-no-output", ["@report", "export", "--run", "r0", "--db", f"{T}/db", "--to", "gguf", "--out", f"{T}/m.gguf"],
     ["r0", "no saved output"]),
    ("export-out-exists", ["@report", "export", "--run", "r0", "--db", f"{T}/db", "--to", "hf", "--out",
                           f"{T}/nonempty"], ["nonempty", "--force"]),
    ("export-bad-quant", ["export", "--run", "r0", "--to", "gguf", "--quant", "q4", "--out", f"{T}/m.gguf"], ["q4"]),
    # bench run / list / tune / overhead, matrix YAML
    ("bench-run-unknown-matrix", ["bench", "run", "--matrix", "smokee", "--db", f"{T}/db"], ["smokee", "smoke"]),
    ("bench-run-bad-shard", ["bench", "run", "--matrix", "smoke", "--shard", "4/4", "--db", f"{T}/db"], ["--shard"]),
    ("bench-run-shard-text", ["bench", "run", "--matrix", "smoke", "--shard", "first", "--db", f"{T}/db"], ["--shard"]),
    ("bench-run-negative-timeout", ["bench", "run", "--matrix", "smoke", "--timeout", "-5", "--db", f"{T}/db"],
     ["--timeout"]),
    ("bench-run-zero-limit", ["bench", "run", "--matrix", "smoke", "--limit", "0", "--db", f"{T}/db"], ["--limit"]),
    ("bench-run-negative-memory", ["bench", "run", "--matrix", "smoke", "--memory-limit-gb", "-1", "--db", f"{T}/db"],
     ["--memory-limit-gb"]),
    ("bench-run-bad-filter", ["bench", "run", "--matrix", "smoke", "--filter", "method ===", "--db", f"{T}/db"],
     ["--filter"]),
    ("bench-run-db-is-file", ["bench", "run", "--matrix", "smoke", "--db", f"{T}/plain.txt"], ["not a folder"]),
    ("matrix-yaml-broken", ["bench", "run", "--matrix", f"{T}/matrix_broken.yaml", "--db", f"{T}/db"], ["YAML"]),
    ("matrix-yaml-unknown-key", ["bench", "run", "--matrix", f"{T}/matrix_key.yaml", "--db", f"{T}/db"], ["colour"]),
    ("matrix-yaml-unknown-method", ["bench", "run", "--matrix", f"{T}/matrix_method.yaml", "--db", f"{T}/db"],
     ["lorra"]),
    ("bench-list-bad-flag", ["bench", "list", "--all"], ["--all"]),
    ("bench-unknown-action", ["bench", "sprint"], ["sprint"]),
    ("bench-tune-unknown-method", ["bench", "tune", "--method", "lorra", "--objective", "sft", "--task", "smoke",
                                   "--trials", "2", "--db", f"{T}/db"], ["lorra", "lora"]),
    ("bench-tune-zero-trials", ["bench", "tune", "--method", "lora", "--objective", "sft", "--task", "smoke",
                                "--trials", "0", "--db", f"{T}/db"], ["--trials"]),
    ("bench-tune-bad-storage", ["bench", "tune", "--method", "lora", "--objective", "sft", "--task", "smoke",
                                "--trials", "1", "--storage", "nosuchdb://x/y", "--db", f"{T}/db"], ["storage"]),
    ("bench-tune-negative-steps", ["bench", "tune", "--method", "lora", "--objective", "sft", "--task", "smoke",
                                   "--trials", "1", "--max-steps", "-2", "--db", f"{T}/db"], ["max"]),
    ("bench-tune-own-eval-split", ["bench", "tune", "--method", "lora", "--objective", "sft", "--task", "smoke",
                                   "--trials", "1", "--hp", "eval_split=test", "--db", f"{T}/db"], ["eval_split"]),
    ("bench-tune-zero-lr", ["bench", "tune", "--method", "lora", "--objective", "sft", "--task", "smoke",
                            "--lr", "0", "--db", f"{T}/db"], ["--lr"]),
    ("bench-tune-no-trials-no-grid", ["bench", "tune", "--method", "lora", "--objective", "sft", "--task", "smoke",
                                      "--db", f"{T}/db"], ["--trials", "--lr"]),
    ("bench-overhead-few-steps", ["bench", "overhead", "--steps", "1"], ["--steps"]),
    ("bench-overhead-unknown-method", ["bench", "overhead", "--method", "dora"], ["dora"]),
    ("bench-overhead-zero-batch", ["bench", "overhead", "--batch-size", "0"], ["--batch-size"]),
    ("bench-stress-zero-writers", ["bench", "stress", "--writers", "0", "--db", f"{T}/db"], ["--writers"]),
    ("bench-stress-negative-kills", ["bench", "stress", "--kills", "-1", "--db", f"{T}/db"], ["--kills"]),
    # db show / sql / export / merge
    ("db-show-missing", ["db", "show", "--db", f"{T}/nope"], ["does not exist"]),
    ("db-show-unknown-column", ["db", "show", "--db", f"{T}/db", "--columns", "run_idd"], ["run_idd", "run_id"]),
    ("db-show-zero-limit", ["db", "show", "--db", f"{T}/db", "--limit", "0"], ["--limit"]),
    ("db-show-bad-format", ["db", "show", "--db", f"{T}/db", "--format", "xml"], ["xml"]),
    ("db-show-db-is-file", ["db", "show", "--db", f"{T}/plain.txt"], ["not a folder"]),
    ("db-sql-bad-query", ["db", "sql", "--db", f"{T}/db", "SELEC * FROM runs"], ["SQL error"]),
    ("db-sql-write", ["db", "sql", "--db", f"{T}/db", "DROP TABLE runs"], ["read-only", "'DROP'"]),
    ("db-sql-two-statements", ["db", "sql", "--db", f"{T}/db", "SELECT 1; DELETE FROM runs"], ["read-only", "DELETE"]),
    ("db-show-bad-where", ["db", "show", "--db", f"{T}/db", "--where", "nope = 1"], ["--where", "nope"]),
    ("db-show-db-is-device", ["db", "show", "--db", "/dev/zero"], ["/dev/zero", "not a folder"]),
    ("bench-db-scale-zero-records", ["bench", "db-scale", "--records", "0"], ["--records"]),
    ("db-export-bad-extension", ["db", "export", "--db", f"{T}/db", "--out", f"{T}/x.txt"], [".parquet"]),
    ("db-export-exists", ["db", "export", "--db", f"{T}/db", "--out", f"{T}/plain.txt"], ["extension"]),
    ("db-export-exists-no-force", ["@export", "db", "export", "--db", f"{T}/db", "--out", f"{T}/old.csv"], ["--force"]),
    ("db-export-missing-folder", ["db", "export", "--db", f"{T}/db", "--out", f"{T}/no/dir/x.csv"], ["does not exist"]),
    ("db-export-not-writable", ["db", "export", "--db", f"{T}/db", "--out", "/proc/self/x.csv"], ["cannot write"]),
    ("db-merge-missing-source", ["db", "merge", f"{T}/nope", "--db", f"{T}/db"], ["does not exist"]),
    ("db-merge-not-writable", ["db", "merge", f"{T}/db", "--db", "/proc/self/db"], ["/proc/self/db"]),
    # report
    ("report-missing-db", ["report", "--db", f"{T}/nope", "--out", f"{T}/r"], ["does not exist"]),
    ("report-bad-format", ["@report", "report", "--db", f"{T}/db", "--out", f"{T}/r", "--format", "pdf"], ["pdf"]),
    ("report-out-is-file", ["@report", "report", "--db", f"{T}/db", "--out", f"{T}/plain.txt"], ["plain.txt"]),
    ("report-overwrite", ["@report", "@old-report", "report", "--db", f"{T}/db", "--out", f"{T}/r"], ["--force"]),
    # estimate
    ("estimate-unknown-model", ["estimate", "--model", "llama-3.1-8", "--method", "lora"], ["llama-3.1-8b"]),
    ("estimate-unknown-gpu", ["estimate", "--model", "llama-3.1-8b", "--gpu", "rtx-4909"], ["rtx-4909", "rtx-4090"]),
    ("estimate-unknown-method", ["estimate", "--model", "llama-3.1-8b", "--method", "qlorra"], ["qlorra", "qlora"]),
    ("estimate-unknown-objective", ["estimate", "--model", "llama-3.1-8b", "--objective", "dpoo"], ["dpoo", "dpo"]),
    ("estimate-negative-seq", ["estimate", "--model", "llama-3.1-8b", "--seq-len", "-1"], ["seq"]),
    ("estimate-zero-batch", ["estimate", "--model", "llama-3.1-8b", "--micro-batch", "0"], ["batch"]),
    ("estimate-bad-zero-stage", ["estimate", "--model", "llama-3.1-8b", "--zero-stage", "5"], ["zero"]),
    ("estimate-bad-precision", ["estimate", "--model", "llama-3.1-8b", "--precision", "fp8"], ["fp8"]),
    ("estimate-zero-gpus", ["estimate", "--model", "llama-3.1-8b", "--num-gpus", "0"], ["gpus"]),
    ("estimate-negative-params", ["estimate", "--params-b", "-7"], ["params"]),
    ("estimate-negative-tokens", ["estimate", "--model", "llama-3.1-8b", "--gpu", "h100", "--tokens", "-5"], ["tokens"]),
    ("estimate-params-not-number", ["estimate", "--params-b", "seven"], ["seven"]),
    # advise
    ("advise-unknown-gpu", ["advise", "--gpu", "rtx-4909", "--goal", "chat"], ["rtx-4909", "rtx-4090"]),
    ("advise-unknown-goal", ["advise", "--gpu", "rtx-4090", "--goal", "chatt"], ["chatt", "chat"]),
    ("advise-unknown-data", ["advise", "--gpu", "rtx-4090", "--goal", "chat", "--data", "pairz"], ["pairz", "pairs"]),
    ("advise-negative-budget", ["advise", "--gpu", "rtx-4090", "--goal", "chat", "--budget-hours", "-3"], ["budget"]),
    ("advise-zero-gpus", ["advise", "--gpu", "rtx-4090", "--goal", "chat", "--num-gpus", "0"], ["gpus"]),
    ("advise-zero-top", ["advise", "--gpu", "rtx-4090", "--goal", "chat", "--top", "0"], ["top"]),
    ("advise-unknown-model", ["advise", "--gpu", "rtx-4090", "--goal", "chat", "--model", "llama-9"], ["llama-9"]),
    ("advise-missing-gpu", ["advise", "--goal", "chat"], ["--gpu"]),
    ("advise-unknown-teacher", ["advise", "--gpu", "rtx-4090", "--goal", "distill", "--data", "teacher",
                                "--teacher", "gpt-9"], ["gpt-9"]),
    ("advise-no-data", ["advise", "--gpu", "rtx-4090", "--goal", "chat", "--data", ","], ["--data"]),
    ("advise-zero-epochs", ["advise", "--gpu", "rtx-4090", "--goal", "chat", "--epochs", "0"], ["epochs"]),
    ("advise-bad-start", ["advise", "--gpu", "rtx-4090", "--goal", "chat", "--start", "chat"], ["start", "instruct"]),
    # catalogs, tui, top level
    ("gpus-bad-flag", ["gpus", "--yaml"], ["--yaml"]),
    ("models-bad-flag", ["models", "--yaml"], ["--yaml"]),
    ("tui-db-is-file", ["tui", "--db", f"{T}/plain.txt"], ["not a folder"]),
    ("unknown-command", ["trian"], ["trian"]),
    # the real entry point, as a user's shell runs it
    ("sub-train-unknown-method", ["@sub", *TRAIN, "--stack", "sft:lorra"], ["lorra", "lora"]),
    ("sub-train-malformed-yaml", ["@sub", "train", f"{T}/broken.yaml", "--db", f"{T}/db", "--out", f"{T}/out"],
     ["not valid YAML"]),
    ("sub-tui-db-is-file", ["@sub", "tui", "--db", f"{T}/plain.txt"], ["not a folder"]),
    ("sub-launcher-bad-count", ["@sub", *LORA, "--launcher", "accelerate", "--num-processes", "-2"],
     ["--num-processes"]),
    # odd files: refused from a stat before they are opened, in a subprocess with a hang guard
    ("odd-stack-binary", ["@odd", "train", f"{T}/binary.yaml", "--db", f"{T}/db", "--out", f"{T}/out"],
     ["stack file", "binary.yaml", "binary", "accepted: a UTF-8 YAML"]),
    ("odd-stack-not-utf8", ["@odd", "train", f"{T}/latin1.yaml", "--db", f"{T}/db", "--out", f"{T}/out"],
     ["latin1.yaml", "not UTF-8", "accepted: a UTF-8 YAML"]),
    ("odd-stack-dev-zero", ["@odd", "train", "/dev/zero", "--db", f"{T}/db", "--out", f"{T}/out"],
     ["/dev/zero", "character device", "accepted"]),
    ("odd-stack-fifo", ["@odd", "train", f"{T}/fifo.yaml", "--db", f"{T}/db", "--out", f"{T}/out"],
     ["fifo.yaml", "FIFO", "accepted"]),
    ("odd-stack-folder", ["@odd", "train", f"{T}/folder.yaml", "--db", f"{T}/db", "--out", f"{T}/out"],
     ["folder.yaml", "a folder, not a file"]),
    ("odd-stack-oversized", ["@odd", "train", f"{T}/big.yaml", "--db", f"{T}/db", "--out", f"{T}/out"],
     ["big.yaml", "11 MiB", "at most 10 MiB"]),
    ("odd-estimate-model-dev-zero", ["@odd", "estimate", "--model", "/dev/zero"],
     ["model config /dev/zero", "character device", "JSON"]),
    ("odd-estimate-model-fifo-config", ["@odd", "estimate", "--model", f"{T}/fifomodel"],
     ["fifomodel/config.json", "FIFO"]),
    ("odd-estimate-model-broken-json", ["@odd", "estimate", "--model", f"{T}/jsonmodel"],
     ["jsonmodel/config.json", "not valid JSON"]),
    ("odd-advise-model-dev-zero", ["@odd", "advise", "--gpu", "rtx-4090", "--goal", "chat", "--model", "/dev/zero"],
     ["/dev/zero", "character device"]),
    ("odd-train-model-dev-zero", ["@odd", *train("--stack", "sft:lora", model="/dev/zero")],
     ["/dev/zero", "not a folder", "tiny-llama"]),
    ("odd-train-model-fifo-config", ["@odd", *train("--stack", "sft:lora", model=f"{T}/fifomodel")],
     ["fifomodel/config.json", "FIFO"]),
    ("odd-train-model-fifo-weights", ["@odd", *train("--stack", "sft:lora", model=f"{T}/pipemodel")],
     ["pipemodel", "model.safetensors", "FIFO"]),
    ("odd-methods-model-fifo-config", ["@odd", "methods", "--model", f"{T}/fifomodel"],
     ["fifomodel/config.json", "FIFO"]),
    ("odd-eval-model-dev-zero", ["@odd", "eval", "--model", "/dev/zero", "--task", "smoke"],
     ["/dev/zero", "not a folder"]),
    ("odd-matrix-binary", ["@odd", "bench", "run", "--matrix", f"{T}/binary.yaml", "--db", f"{T}/db"],
     ["matrix", "binary.yaml", "binary"]),
    ("odd-matrix-fifo", ["@odd", "bench", "run", "--matrix", f"{T}/fifo.yaml", "--db", f"{T}/db"],
     ["matrix", "fifo.yaml", "FIFO"]),
    ("odd-matrix-dev-zero", ["@odd", "bench", "run", "--matrix", "/dev/zero", "--db", f"{T}/db"],
     ["matrix /dev/zero", "character device"]),
    ("odd-constitution-binary", ["@odd", *TRAIN, "--stack", "rlaif:lora", "--cfg", f"constitution={T}/binary.yaml"],
     ["constitution", "binary.yaml", "binary"]),
    ("odd-constitution-fifo", ["@odd", *TRAIN, "--stack", "rlaif:lora", "--cfg", f"constitution={T}/fifo.yaml"],
     ["constitution", "fifo.yaml", "FIFO"]),
    ("odd-task-yaml-binary", ["@odd", "@tasks-binary", *LORA], ["task file", "smoke.yaml", "binary"]),
    ("odd-eval-adapter-binary", ["@odd", "eval", "--model", "tiny-llama", "--task", "smoke", "--adapter",
                                 f"{T}/binadapter"], ["adapter config", "binary"]),
    ("odd-overhead-model-fifo", ["@odd", "bench", "overhead", "--model", f"{T}/fifo.yaml", "--method", "lora",
                                 "--task", "smoke", "--steps", "3"], ["fifo.yaml", "FIFO"]),
]


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def make_files(tmp: Path, flags: set[str]) -> None:
    for rel, text in FILES.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if text == "FIFO":
            os.mkfifo(path)
        elif text == "FOLDER":
            path.mkdir()
        elif text == "BIG":
            with open(path, "wb") as fh:
                fh.truncate(BIG)
        elif isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    if flags & {"@report", "@export"}:
        from bench.results import write_record

        write_record(tmp / "db", {"run_id": "r0", "status": "ok", "stage": "sft:lora", "method": "lora",
                                  "objective": "sft", "model": "tiny-llama", "task": "smoke"})
    if "@export" in flags:
        (tmp / "old.csv").write_text("run_id\nprecious\n")
    if "@old-report" in flags:
        (tmp / "r").mkdir()
        (tmp / "r" / "comparison.md").write_text("# last week's report\n")


def run_case(argv: list[str], tmp: Path, flags: set[str], capsys, monkeypatch) -> tuple[int, str]:
    env = {"TUNEBENCH_TASKS_DIR": str(tmp / f[1:]) for f in flags if f.startswith("@tasks")}
    if flags & {"@sub", "@odd"}:
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env}
        timeout = ODD_TIMEOUT if "@odd" in flags else 120
        try:
            proc = subprocess.run([sys.executable, "-m", "advisor.cli", *argv], cwd=ROOT, env=full_env,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"hung: no answer within {timeout} s (a FIFO opened, or a device read forever?)")
        return proc.returncode, proc.stderr
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse errors exit directly
        rc = e.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line(argv, words, tmp_path, capsys, monkeypatch):
    flags = {a for a in argv if a.startswith("@")}
    argv = [a.replace(T, str(tmp_path)) for a in argv if not a.startswith("@")]
    make_files(tmp_path, flags)
    before = snapshot(tmp_path)
    rc, err = run_case(argv, tmp_path, flags, capsys, monkeypatch)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert rc == 2, f"exit {rc}: {err}"
    assert len(lines) == 1 and len(err.splitlines()) == 1, err
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    assert snapshot(tmp_path) == before, "the command wrote or changed files"
    assert not Path(NOT_WRITABLE).exists()


def test_catalog_covers_every_command():
    from advisor.cli import build_parser

    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    covered = {next(a for a in c[1] if not a.startswith("@")) for c in CASES}
    assert commands - {"tui"} <= covered | {"tui"} and "tui" in covered, commands - covered
    assert len(CASES) >= 40


# -- security defaults, checked on the source tree ---------------------------------------------
PACKAGES = ("advisor", "bench", "methods", "reports")
FORBIDDEN = {
    "shell=True": "subprocesses take argument lists, never a shell string",
    "os.system(": "subprocesses take argument lists, never a shell string",
    "os.popen(": "subprocesses take argument lists, never a shell string",
    "yaml.load(": "YAML is read with yaml.safe_load",
    "yaml.unsafe_load": "YAML is read with yaml.safe_load",
    "yaml.full_load": "YAML is read with yaml.safe_load",
    "trust_remote_code=True": "remote code stays off unless a user flag turns it on",
    "pickle.load": "weights and results are safetensors/parquet, never pickles",
    "safe_serialization=False": "weights are saved as safetensors",
}


def source_lines():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                yield path.relative_to(ROOT), n, line


@pytest.mark.parametrize("needle", sorted(FORBIDDEN))
def test_source_has_no_unsafe_call(needle):
    hits = [f"{p}:{n}" for p, n, line in source_lines() if needle in line.split("#")[0]]
    assert not hits, f"{FORBIDDEN[needle]}: {hits}"


def test_torch_load_only_with_weights_only():
    hits = [f"{p}:{n}" for p, n, line in source_lines() if "torch.load(" in line and "weights_only=True" not in line]
    assert not hits, f"torch.load needs weights_only=True: {hits}"


def test_yaml_parsers_refuse_python_tags(tmp_path, monkeypatch):
    """The stack, matrix, task and constitution loaders all go through yaml.safe_load."""
    from bench import matrix as mx
    from common.stack import load_stack_yaml
    from bench.taskdata import get_task
    from methods._judge import load_constitution
    from common.errors import UserError

    evil = "!!python/object/apply:os.system ['touch " + str(tmp_path / "pwned") + "']"
    f = tmp_path / "evil.yaml"
    f.write_text(f"model: {evil}\ntask: smoke\nname: x\nprinciples: [{evil}]\nstages: []\nruns: []\n")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "evil.yaml").write_text(f.read_text())
    monkeypatch.setenv("TUNEBENCH_TASKS_DIR", str(tmp_path / "tasks"))
    for load in (load_stack_yaml, lambda p: mx.load(str(p)), load_constitution, lambda p: get_task("evil")):
        with pytest.raises(UserError):
            load(f)
    assert not (tmp_path / "pwned").exists()
