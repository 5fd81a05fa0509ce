"""``tunebench estimate``: peak GPU memory (with a breakdown), time and cost of one stage.

    tunebench estimate --model llama-3.1-8b --method qlora --objective dpo --gpu rtx-4090 --tokens 20000000
    tunebench estimate --params-b 13 --method full --num-gpus 8 --zero-stage 3 --gpu h100 --json
    tunebench estimate calibrate --db ~/.cache/tunebench/db

JSON shape: {"peak_gib": float, "breakdown": {name: gib}, "fits": bool|null, "hours": float|null,
"cost_usd": float|null, "trainable_params": int, "total_params": int, "notes": [str]}; peak is per GPU.

The method's settings are its card's (``tunebench methods --json`` lists them with their defaults):
``--method-cfg KEY=VALUE`` sets any of them; ``--lora-r``, ``--targets`` and ``--virtual-tokens`` are
shorthands for ``r``, ``target_modules`` and ``num_virtual_tokens`` (a note says when the method has none).
"""
import argparse
import json
from pathlib import Path

from advisor.cli import add_command

EXAMPLES = (
    "  tunebench estimate --model llama-3.1-8b --method qlora --gpu rtx-4090\n"
    "  tunebench estimate --model llama-3.2-3b --method lora --objective dpo --seq-len 2048 --micro-batch 2 --gpu l4 --tokens 5e7\n"
    "  tunebench estimate --params-b 70 --method full --num-gpus 8 --zero-stage 3 --gpu h100 --json\n"
    "  tunebench estimate --model llama-3.2-3b --method adapter_houlsby --method-cfg reduction_factor=8\n"
    "  tunebench estimate calibrate --db ~/.cache/tunebench/db"
)


def register(sub):
    p = add_command(sub, "estimate", "estimate peak GPU memory, time and cost before launching", EXAMPLES)
    p.add_argument("--model", help="catalog name (see `tunebench models`) or a folder with config.json")
    p.add_argument("--params-b", type=float, help="parameter count in billions (generic Llama shape)")
    p.add_argument("--method", default="lora", help="parameterization (full, lora, qlora, ...; default lora)")
    p.add_argument("--objective", default="sft", help="objective (sft, dpo, grpo, ...; default sft)")
    p.add_argument("--precision", default="bf16", help="bf16 | fp16 | fp32 (default bf16)")
    p.add_argument("--seq-len", type=int, default=1024, help="tokens per sequence (default 1024)")
    p.add_argument("--micro-batch", type=int, default=1, help="sequences per GPU per step (default 1)")
    p.add_argument("--grad-ckpt", action=argparse.BooleanOptionalAction, default=False,
                   help="gradient checkpointing (default off)")
    p.add_argument("--optimizer", default="adamw", help="adamw | adamw8bit | paged_adamw8bit | sgd")
    p.add_argument("--lora-r", type=int, help="adapter rank, the method's 'r' (default: the method's, 8 for LoRA)")
    p.add_argument("--targets", help="adapter targets, the method's 'target_modules': all-linear | attn | qv | mlp | "
                   "q_proj,v_proj,... (default: the method's, all-linear for LoRA)")
    p.add_argument("--virtual-tokens", type=int, help="prompt/prefix tuning: the method's 'num_virtual_tokens'")
    p.add_argument("--method-cfg", action="append", default=[], metavar="KEY=VALUE",
                   help="set one of the method's settings (repeatable; see `tunebench methods --json`)")
    p.add_argument("--attn", default="sdpa", choices=("sdpa", "flash", "eager"), help="attention implementation")
    p.add_argument("--num-gpus", type=int, default=1)
    p.add_argument("--zero-stage", type=int, default=0, help="ZeRO/FSDP sharding stage 0-3 (default 0)")
    p.add_argument("--gpu", help="catalog GPU (see `tunebench gpus`); gives fits, hours and cost")
    p.add_argument("--usd-per-hour", type=float, help="override the catalog price per GPU-hour")
    p.add_argument("--tokens", type=float, help="training tokens in total (all epochs); gives hours and cost")
    p.add_argument("--teacher", help="distill: the teacher model (default: the student's shape)")
    p.add_argument("--generations", type=int, default=8, help="grpo: completions per prompt")
    p.add_argument("--gen-len", type=int, default=256, help="grpo/ppo: generated tokens per completion")
    p.add_argument("--json", action="store_true", help="print the stable JSON shape")
    p.set_defaults(func=run)
    s = p.add_subparsers(dest="action", metavar="ACTION", required=False, parser_class=type(p))
    c = s.add_parser("calibrate", help="fit the estimator's constants on measured GPU runs",
                     description="Fit activation_scale and MFU on measured runs; report held-out error before/after.")
    c.add_argument("--db", required=True, help="results DB directory")
    c.add_argument("--out", help="calibration file to write (default advisor/calibration.json)")
    c.set_defaults(func=run_calibrate)


def request_from_args(args):
    from advisor.catalogs import gpu, shape
    from advisor.estimator import Request

    return Request(
        shape=shape(args.model, args.params_b), method=args.method, objective=args.objective,
        precision=args.precision, seq_len=args.seq_len, micro_batch=args.micro_batch,
        grad_ckpt=args.grad_ckpt, optimizer=args.optimizer, lora_r=args.lora_r, targets=args.targets,
        virtual_tokens=args.virtual_tokens, method_cfg=parse_method_cfg(args.method_cfg), attn=args.attn, num_gpus=args.num_gpus, zero_stage=args.zero_stage,
        gpu=gpu(args.gpu) if args.gpu else None, tokens=int(args.tokens) if args.tokens else None,
        teacher=shape(args.teacher) if args.teacher else None, generations=args.generations,
        gen_len=args.gen_len, usd_per_hour=args.usd_per_hour,
    )


def parse_method_cfg(items: list[str]) -> dict:
    """``["r=16", "target_modules=q_proj,v_proj"]`` -> {"r": 16, "target_modules": ["q_proj", "v_proj"]}."""
    from common.yamlfile import parse_kv

    out = parse_kv(items, "--method-cfg")
    return {k: [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) and "," in v else v
            for k, v in out.items()}


def check_numbers(args) -> None:
    """Numbers the estimator would silently accept but that mean nothing (negative tokens or prices)."""
    from common.errors import UserError

    for flag, value in (("--tokens", args.tokens), ("--usd-per-hour", args.usd_per_hour), ("--params-b", args.params_b)):
        if value is not None and not value > 0:
            raise UserError(f"{flag} must be > 0, got {value:g}")


def run(args):
    from advisor.estimator import estimate

    check_numbers(args)
    req = request_from_args(args)
    est = estimate(req)
    d = est.to_dict()
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    where = f" on {req.gpu.name}" if req.gpu else ""
    print(f"{req.shape.name} · {args.objective}:{args.method} · {args.precision} · seq {args.seq_len} × batch {args.micro_batch}"
          f"{' · grad ckpt' if args.grad_ckpt else ''}{where}")
    print(f"peak per GPU: {d['peak_gib']:.2f} GiB" + ("" if est.fits is None else (" — fits" if est.fits else f" — does NOT fit ({req.gpu.memory_gib} GiB)")))
    for k, v in d["breakdown"].items():
        if v:
            print(f"  {k:28} {v:8.2f} GiB")
    print(f"trainable: {est.trainable_params:,} of {est.total_params:,} ({100 * est.trainable_params / est.total_params:.3g}%)")
    if d["hours"] is not None:
        cost = f", ${d['cost_usd']:.2f}" if d["cost_usd"] is not None else ""
        print(f"time: {d['hours']:.2f} h{cost}")
    for n in est.notes:
        print(f"note: {n}")
    return 0


def run_calibrate(args):
    from advisor.calibration import calibrate
    from advisor.estimator import CALIBRATION

    doc = calibrate(Path(args.db).expanduser(), Path(args.out) if args.out else CALIBRATION)
    b, a = doc["held_out_error"]["before"], doc["held_out_error"]["after"]

    def pct(x):
        return "n/a" if x is None else f"{x:.1%}"

    print(f"calibration v{doc['version']}: fitted on {doc['rows_fit']} runs, {doc['rows_held_out']} held out")
    print(f"held-out error before: median {pct(b['median'])}, worst {pct(b['worst'])}")
    print(f"held-out error after:  median {pct(a['median'])}, worst {pct(a['worst'])}")
    print("constants: " + ", ".join(f"{k}={v:g}" for k, v in doc["constants"].items()))
    print(f"wrote {args.out or CALIBRATION}")
    return 0
