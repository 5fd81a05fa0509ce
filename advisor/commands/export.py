"""``tunebench export``: a finished run as a merged Hugging Face folder or a GGUF file.

    tunebench export --run RUN_ID --to hf --out ./my-model
    tunebench export --run RUN_ID --to gguf --out ./my-model.gguf --quant q8_0

Methods that cannot merge (prompt, prefix, ptuning, bottleneck adapters) export their adapter
folder with a README and ``tunebench-export.json`` naming the base model (bench/export.py).
``--json`` prints {path, kind, bytes, seconds, note}.
"""
from __future__ import annotations

import json

from advisor.cli import add_command


def register(sub):
    p = add_command(
        sub, "export", "export a finished run: merged HF folder (safetensors) or GGUF (f16 / q8_0)",
        "  tunebench export --run RUN_ID --to hf --out ./my-model\n"
        "  tunebench export --run RUN_ID --to gguf --out ./my-model.gguf --quant q8_0\n"
        "  tunebench export --run RUN_ID --db ./results --to hf --out ./my-model --force   # replace ./my-model",
    )
    p.add_argument("--run", required=True, metavar="RUN_ID", help="a run id (see tunebench db show)")
    p.add_argument("--db", default=None, help="results folder (default $TUNEBENCH_HOME/db)")
    p.add_argument("--to", required=True, choices=("hf", "gguf"), help="hf: merged safetensors folder; gguf: one file")
    p.add_argument("--out", required=True, help="the folder (hf) or file (gguf) to write; must not exist")
    p.add_argument("--quant", default="f16", choices=("f16", "q8_0"), help="GGUF weight type (default f16)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args):
    from pathlib import Path

    from bench.export import check_out, export
    from bench.trained import artifacts, find_run

    check_out(Path(args.out).expanduser().absolute(), args.force)  # before loading anything
    record = find_run(args.run, args.db)
    from bench.train import quiet_libraries  # imports torch: after the cheap checks

    quiet_libraries()
    a = artifacts(record)
    res = export(a, args.to, args.out, args.quant, args.force)
    if args.json:
        print(json.dumps({"path": str(res.path), "kind": res.kind, "bytes": res.bytes,
                          "seconds": round(res.seconds, 2), "note": res.note}))
        return 0
    if res.note:
        print(res.note)
    what = {"hf": "merged HF folder", "gguf": f"GGUF ({args.quant})", "adapter": "adapter folder"}[res.kind]
    print(f"wrote {what} {res.path}: {res.bytes / 2**20:.1f} MiB in {res.seconds:.1f} s")
    return 0
