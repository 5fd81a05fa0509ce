"""``tunebench estimate``: peak GPU memory (with a breakdown), time and cost of one stage.

    tunebench estimate --model llama-3.1-8b --method qlora --objective dpo --gpu rtx-4090 --tokens 20000000
    tunebench estimate --params-b 13 --method full --num-gpus 8 --zero-stage 3 --gpu h100 --json
    tunebench estimate --model llama-3.1-8b --method lora --framework axolotl --gpu rtx-4090
    tunebench estimate frameworks
    tunebench estimate calibrate --db ~/.cache/tunebench/db

``--framework NAME`` (default tunebench: what ``tunebench train`` launches) fills every knob the user did
not set (checkpointing, precision, master weights, optimizer, LM head, ZeRO stage, CPU offload) with that
framework's cited default (advisor/frameworks.py, advisor/catalog/frameworks.yaml).

With ``--trace`` the JSON gains "trace": bench/trace.py's Trace.to_dict() (traced peak, breakdown,
phase, seconds, notes) and "trace_error" (estimate/trace - 1); with --zero-stage the trace counts one
rank's shards as the step runs (optimizer states, gradients once reduce-scattered, weights at stage 3).

JSON shape: {"peak_gib": float, "breakdown": {name: gib}, "fits": bool|null, "hours": float|null,
"cost_usd": float|null, "trainable_params": int, "total_params": int, "notes": [str], "framework": str,
"assumed": {"framework", "grad_ckpt", "precision", "amp", "master_weights", "optimizer", "lm_head", "zero_stage",
"num_gpus", "master_in_optimizer", "offload_optimizer", "offload_params", "from_profile": [knob]}, "fix": str|null (the cheapest change
that fits with 5% headroom; null when the run fits or no --gpu), "cpu_offloaded": {name: gib}}; peak is per GPU.

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
    "  tunebench estimate --model llama-3.1-70b --method qlora --objective dpo --trace --json\n"
    "  tunebench estimate --model llama-3.1-8b --method lora --framework axolotl --gpu rtx-4090\n"
    "  tunebench estimate --params-b 13 --method full --framework deepspeed-zero3-offload --gpu a100-80gb\n"
    "  tunebench estimate frameworks\n"
    "  tunebench estimate calibrate --db ~/.cache/tunebench/db"
)


def register(sub):
    p = add_command(sub, "estimate", "estimate peak GPU memory, time and cost before launching", EXAMPLES)
    p.add_argument("--model", help="catalog name (see `tunebench models`) or a folder with config.json")
    p.add_argument("--params-b", type=float, help="parameter count in billions (generic Llama shape)")
    p.add_argument("--method", default="lora", help="parameterization (full, lora, qlora, ...; default lora)")
    p.add_argument("--objective", default="sft", help="objective (sft, dpo, grpo, ...; default sft)")
    p.add_argument("--framework", default="tunebench",
                   help="whose defaults to assume for the knobs you do not set (default tunebench: what `tunebench "
                        "train` launches); `tunebench estimate frameworks` lists them with sources")
    p.add_argument("--precision", help="bf16 | fp16 | fp32 (default: the framework's)")
    p.add_argument("--seq-len", type=int, default=1024, help="tokens per sequence (default 1024)")
    p.add_argument("--micro-batch", type=int, default=1, help="sequences per GPU per step (default 1)")
    p.add_argument("--grad-ckpt", action=argparse.BooleanOptionalAction,
                   help="gradient checkpointing (default: the framework's)")
    p.add_argument("--optimizer", help="adamw | adamw8bit | paged_adamw8bit | sgd (default: the framework's)")
    p.add_argument("--lora-r", type=int, help="adapter rank, the method's 'r' (default: the method's, 8 for LoRA)")
    p.add_argument("--targets", help="adapter targets, the method's 'target_modules': all-linear | attn | qv | mlp | "
                   "q_proj,v_proj,... (default: the method's, all-linear for LoRA)")
    p.add_argument("--virtual-tokens", type=int, help="prompt/prefix tuning: the method's 'num_virtual_tokens'")
    p.add_argument("--method-cfg", action="append", default=[], metavar="KEY=VALUE",
                   help="set one of the method's settings (repeatable; see `tunebench methods --json`)")
    p.add_argument("--attn", default="sdpa", choices=("sdpa", "flash", "eager"), help="attention implementation")
    p.add_argument("--num-gpus", type=int, default=1)
    p.add_argument("--zero-stage", type=int, help="ZeRO/FSDP sharding stage 0-3 (default: the framework's)")
    p.add_argument("--gpu", help="catalog GPU (see `tunebench gpus`); gives fits, hours and cost")
    p.add_argument("--usd-per-hour", type=float, help="override the catalog price per GPU-hour")
    p.add_argument("--tokens", type=float, help="training tokens in total (all epochs); gives hours and cost")
    p.add_argument("--teacher", help="distill: the teacher model (default: the student's shape)")
    p.add_argument("--generations", type=int, default=8, help="grpo: completions per prompt")
    p.add_argument("--gen-len", type=int, default=256, help="grpo/ppo: generated tokens per completion")
    p.add_argument("--trace", action="store_true",
                   help="also trace two real training steps on fake tensors (bench/trace.py) and print the traced "
                        "peak next to the estimate (seconds to a minute or two; no GPU, no weights)")
    p.add_argument("--master-weights", action=argparse.BooleanOptionalAction,
                   help="fp32 master weights and optimizer states with bf16 compute (DeepSpeed/FSDP mixed precision, "
                        "an fp32-loaded model under autocast): 16 bytes per trained parameter (default: the framework's)")
    p.add_argument("--lm-head", choices=("full", "fused"),
                   help="SFT-family loss: full = the model's cross-entropy over full logits (HF Trainer, plain loops), "
                        "fused = TRL's tiled LM head (TRL SFTTrainer, tunebench train on GPU) (default: the framework's)")
    p.add_argument("--json", action="store_true", help="print the stable JSON shape")
    p.set_defaults(func=run)
    s = p.add_subparsers(dest="action", metavar="ACTION", required=False, parser_class=type(p))
    c = s.add_parser("calibrate", help="fit the estimator's constants on measured GPU runs",
                     description="Fit activation_scale and MFU on measured runs; report held-out error before/after.")
    c.add_argument("--db", required=True, help="results DB directory")
    c.add_argument("--out", help="calibration file to write (default advisor/calibration.json)")
    c.set_defaults(func=run_calibrate)
    fw = s.add_parser("frameworks", help="list the --framework profiles: each knob's default and its source",
                      description="What each framework does by default (advisor/catalog/frameworks.yaml), per "
                                  "method family, with the file or page that says so.",
                      epilog="examples:\n  tunebench estimate frameworks\n  tunebench estimate frameworks --json",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    fw.add_argument("--json", action="store_true", help="one object per knob: framework, applies_to, knob, value, source")
    fw.set_defaults(func=run_frameworks)
    ct = s.add_parser("calibrate-time", help="fit the time model's MFU and method slowdowns on measured runs",
                      description="Fit, per hardware class (cpu, gpu), the MFU and each method's and objective's "
                                  "slowdown on this project's own measured tokens/s (advisor/timing_fit.py).",
                      epilog="example:\n  tunebench estimate calibrate-time --db reports/reference/cpu-amd-epyc-2c-smollm2-135m/db",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    ct.add_argument("--db", required=True, action="append", help="results DB directory (repeat for several)")
    ct.add_argument("--out", help="file to write (default advisor/timing.json)")
    ct.set_defaults(func=run_calibrate_time)
    tc = s.add_parser("trace-check", help="trace every run of a results DB and compare with its measured peak",
                      description="For every ok run of a DB: the traced live bytes at the forward->backward boundary "
                                  "(bench/trace.py, fp32, the run's hyperparams) vs the measured peak_tensor_bytes.",
                      epilog="examples:\n  tunebench estimate trace-check --db reports/reference/cpu-amd-epyc-2c-smollm2-135m/db\n"
                             "  tunebench estimate trace-check --db DIR --only sft:lora,dpo:lora --json",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    tc.add_argument("--db", required=True, help="results DB directory")
    tc.add_argument("--only", help="comma list of objective:method pairs to check")
    tc.add_argument("--json", action="store_true", help="one JSON object per row")
    tc.set_defaults(func=run_trace_check)
    tg = s.add_parser("trace-grid", help="score the estimator against the tracer on the committed grid",
                      description="make: write the grid file; run: trace the rows results.csv lacks (resumable); "
                                  "score: estimate every traced row, write the CSV columns and the plot, "
                                  "print median and p95 |error| (files under reports/reference/trace-grid/).",
                      epilog="examples:\n  tunebench estimate trace-grid run --limit 20\n"
                             "  tunebench estimate trace-grid run --retry-failed --timeout 120\n"
                             "  tunebench estimate trace-grid run --jobs 2         # two rows at a time (one per core)\n"
                             "  tunebench estimate trace-grid score",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    tg.add_argument("step", choices=("make", "run", "score"))
    tg.add_argument("--limit", type=int, help="run: trace at most this many rows")
    tg.add_argument("--timeout", type=int, default=150, help="run: CPU-seconds one row may trace before it is "
                    "killed and recorded as failed (default 150)")
    tg.add_argument("--jobs", type=int, default=1, help="run: rows traced at the same time, each in its own "
                    "process (default 1)")
    tg.add_argument("--redo", help="run: trace again exactly these rows, traced before or not: a comma list of "
                    "ids, or 'zero' for every row sharded over more than one GPU (after a tracer change moves them)")
    tg.add_argument("--retry-failed", action="store_true", help="run: trace the rows recorded as failed again "
                    "first (replacing them), then the untraced ones")
    tg.set_defaults(func=run_trace_grid)
    cc = s.add_parser("cpu-check", help="the --gpu cpu estimate vs every ok CPU run's measured peak RSS",
                      description="For every ok CPU record: the estimate (its model, method, settings, batch, "
                                  "max_length; --gpu cpu) vs its peak_rss_bytes, at max_length and at the length its "
                                  "batches were padded to (from its task's records); median and p90 |error| "
                                  "(advisor/cpu_memory.py).",
                      epilog="examples:\n  tunebench estimate cpu-check --db reports/reference/cpu-amd-epyc-2c-smollm2-135m/db\n"
                             "  tunebench estimate cpu-check --db DIR --db DIR2 --fit",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    cc.add_argument("--db", required=True, action="append", help="results DB directory (repeat for several)")
    cc.add_argument("--fit", action="store_true", help="measure the runtime baseline in a fresh process, refit "
                    "the allocator factor on these runs and write advisor/cpu_memory.json")
    cc.set_defaults(func=run_cpu_check)


def run_cpu_check(args):
    import subprocess
    import sys

    from advisor import cpu_memory as cm

    # the baseline is measured in a fresh process, while this one reads the records
    measure = subprocess.Popen([sys.executable, "-m", "advisor.cpu_memory"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True) if args.fit else None
    try:
        rows = cm.rows([Path(d).expanduser() for d in args.db])
    finally:
        out = measure.communicate()[0] if measure else ""
    if args.fit:
        if measure.returncode:
            raise RuntimeError(f"python -m advisor.cpu_memory failed (exit {measure.returncode})")
        doc = cm.write(rows, [Path(d) for d in args.db], json.loads(out.strip().splitlines()[-1]))
        b = doc["error"]["before"]
        print(f"before (runtime {b['runtime_gib']} GiB, allocator factor {b['allocator_factor']}): median |error| "
              f"{b['max_length']['median']:.1%} p90 {b['max_length']['p90']:.1%} at max_length, "
              f"{b['padded_length']['median']:.1%} p90 {b['padded_length']['p90']:.1%} at padded length")
        print(f"wrote {cm.CONSTANTS}: runtime {doc['runtime_gib']} GiB (measured), allocator factor "
              f"{doc['allocator_factor']} (fitted on {len(doc['fitted_on']['run_ids'])} runs)")
    gib = 2**30
    print(f"{'stage':24} {'task':14} {'batch×seq':>9} {'RSS':>6} {'est':>6} {'error':>7} {'padded':>6} {'est':>6} "
          f"{'error':>7}   (GiB)")
    for r in rows:
        padded = (f"{r.padded:6d} {r.predict(padded=True) / gib:6.2f} {r.error(padded=True):+7.1%}"
                  if r.tensors_padded is not None else f"{'-':>6} {'-':>6} {'-':>7}")
        print(f"{r.stage:24} {r.task:14} {f'{r.batch}×{r.seq}':>9} {r.measured / gib:6.2f} {r.predict() / gib:6.2f} "
              f"{r.error():+7.1%} {padded}")
    for label, e in cm.errors(rows).items():
        if e["n"]:
            print(f"{e['n']} runs at {label.replace('_', ' ')}: median |error| {e['median']:.1%}, p90 {e['p90']:.1%}")
    return 0


def request_from_args(args):
    from advisor.catalogs import gpu, shape
    from advisor.estimator import Request

    return Request(
        shape=shape(args.model, args.params_b), method=args.method, objective=args.objective,
        seq_len=args.seq_len, micro_batch=args.micro_batch,
        lora_r=args.lora_r, targets=args.targets,
        virtual_tokens=args.virtual_tokens, method_cfg=parse_method_cfg(args.method_cfg), attn=args.attn, num_gpus=args.num_gpus,
        gpu=gpu(args.gpu) if args.gpu else None, tokens=int(args.tokens) if args.tokens else None,
        teacher=shape(args.teacher) if args.teacher else None, generations=args.generations,
        gen_len=args.gen_len, usd_per_hour=args.usd_per_hour,
        **{k: getattr(args, k) for k in explicit_knobs(args)},
    )


# Knobs a framework profile sets unless the user gave the flag (None = not given).
FRAMEWORK_KNOBS = ("precision", "grad_ckpt", "optimizer", "zero_stage", "master_weights", "lm_head")


def explicit_knobs(args) -> set[str]:
    return {k for k in FRAMEWORK_KNOBS if getattr(args, k) is not None}


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
    from advisor import frameworks

    check_numbers(args)
    res = frameworks.run(args.framework, request_from_args(args), explicit_knobs(args))
    req, est, assumed = res.assumed.request, res.estimate, res.assumed
    found = frameworks.find_fix(req, req.gpu, assumed) if req.gpu else None  # None when it fits
    fix = found.line(req.gpu) if found else None
    d = est.to_dict()
    d.update(framework=assumed.framework, assumed=assumed.to_dict(), fix=fix,
             cpu_offloaded={k: round(v / 2**30, 3) for k, v in res.offloaded.items()},
             notes=est.notes + [f"{assumed.framework}: {n}" for n in assumed.notes])
    if args.trace:
        d["trace"] = run_trace(args, req)
        d["trace_error"] = d["peak_gib"] / d["trace"]["peak_gib"] - 1
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    where = f" on {req.gpu.name}" if req.gpu else ""
    print(f"{req.shape.name} · {args.objective}:{args.method} · {req.precision} · seq {args.seq_len} × batch {args.micro_batch}"
          f"{' · grad ckpt' if req.grad_ckpt else ''}{where}")
    print(f"assumed: {assumed.line()}")
    print(f"peak per GPU: {d['peak_gib']:.2f} GiB" + ("" if est.fits is None else (" — fits" if est.fits else f" — does NOT fit ({req.gpu.memory_gib} GiB)")))
    for k, v in d["breakdown"].items():
        if v:
            print(f"  {k:28} {v:8.2f} GiB")
    for k, v in d["cpu_offloaded"].items():
        print(f"  {'CPU: ' + k:28} {v:8.2f} GiB")
    if fix:
        print(f"fix: {fix}")
    print(f"trainable: {est.trainable_params:,} of {est.total_params:,} ({100 * est.trainable_params / est.total_params:.3g}%)")
    if d["hours"] is not None:
        cost = f", ${d['cost_usd']:.2f}" if d["cost_usd"] is not None else ""
        print(f"time: {d['hours']:.2f} h{cost}")
    for n in d["notes"]:
        print(f"note: {n}")
    if args.trace:
        t = d["trace"]
        print(f"traced peak: {t['peak_gib']:.2f} GiB in {t['phase']} of step {t['step']} "
              f"(estimate {d['trace_error']:+.1%}; traced in {t['seconds']:.1f} s, {t['ops']:,} ops)")
        for k, v in t["breakdown_gib"].items():
            print(f"  {k:28} {v:8.2f} GiB")
        for n in t["notes"]:
            print(f"trace note: {n}")
    return 0


def trace_request(req):
    """The estimate's request as a bench/trace.py TraceRequest (one rank, before ZeRO)."""
    from bench.trace import TraceRequest

    precision = "mixed" if req.master_weights else ("fp32" if req.precision == "fp32" else "bf16")
    from advisor.estimator import cards_for, method_config

    par, _ = cards_for(req.method, req.objective)
    cfg = method_config(req, par).model_dump()
    return TraceRequest(shape=req.shape, method=req.method, method_cfg=cfg, objective=req.objective,
                        seq_len=req.seq_len, micro_batch=req.micro_batch, grad_ckpt=req.grad_ckpt,
                        precision=precision, optimizer=req.optimizer, gen_len=req.gen_len,
                        generations=req.generations, lm_head=req.lm_head, zero_stage=req.zero_stage,
                        num_gpus=req.num_gpus)


def run_trace(args, req) -> dict:
    from bench.trace import trace_peak

    return trace_peak(trace_request(req)).to_dict()


def run_frameworks(args):
    from advisor import frameworks

    rows = frameworks.table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for name, p in frameworks.profiles().items():
        print(f"{name}: {p.label}")
        for r in (r for r in rows if r["framework"] == name):
            print(f"  {r['applies_to']:5} {r['knob']:17} {str(r['value']):15} {r['source']}")
        for n in p.notes:
            print(f"  note: {n}")
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


def run_trace_check(args):
    from bench.trace_check import check
    from common.errors import UserError

    db = Path(args.db).expanduser()
    if not db.is_dir():
        raise UserError(f"--db {args.db}: not a directory")
    only = {x.strip() for x in args.only.split(",") if x.strip()} if args.only else None
    mib = 2**20
    if not args.json:
        print(f"{'objective:method':24} {'batch×seq':>9} {'packed':>6} {'measured':>9} {'traced':>9} {'error':>7} "
              f"{'fed seq':>9} {'traced':>9} {'error':>7} {'op peak':>9} {'secs':>5}")
        print("  (MiB; traced = live bytes where backward starts, at max_length and at what the run fed: each "
              "boundary's recorded length and mask, or ~ the expected padded length)")

    def show(r):
        if args.json:
            print(json.dumps({**r.__dict__, "error": r.error, "fed_error": r.fed_error}))
        else:
            data = (f"{r.fed:>9} {r.traced_fed / mib:9.1f} {r.fed_error:+7.1%}" if r.traced_fed
                    else f"{'-':>9} {'-':>9} {'-':>7}")
            print(f"{r.objective + ':' + r.method:24} {f'{r.batch}×{r.seq}':>9} {'yes' if r.packed else 'no':>6} "
                  f"{r.measured / mib:9.1f} {r.traced_boundary / mib:9.1f} {r.error:+7.1%} {data} "
                  f"{r.traced_peak / mib:9.1f} {r.seconds:5.1f}", flush=True)

    rows = check(db, only, progress=show)
    if rows and not args.json:
        fed = [abs(r.fed_error if r.fed_error is not None else r.error) for r in rows
               if r.packed or r.fed_error is not None]
        for label, errs in (("at max_length", [abs(r.error) for r in rows]),
                            ("as fed (packed runs at max_length)", fed)):
            errs = sorted(errs)
            if errs:
                print(f"{len(errs)} runs {label}: median |error| {errs[len(errs) // 2]:.1%}, "
                      f"within 5%: {sum(e <= 0.05 for e in errs)}, worst {errs[-1]:.1%}")
    return 0


def run_calibrate_time(args):
    from advisor.timing import TIMING
    from advisor.timing_fit import calibrate_time

    doc = calibrate_time([Path(d).expanduser() for d in args.db], Path(args.out) if args.out else TIMING)
    for cls, fit in doc["classes"].items():
        e = fit["error"]
        print(f"{cls}: {fit['runs']} runs, MFU {fit['mfu']:.3f}; tokens/s error in sample median "
              f"{e['in_sample']['median']:.1%} p90 {e['in_sample']['p90']:.1%}, leaving each run out median "
              f"{e['leave_one_out']['median']:.1%} p90 {e['leave_one_out']['p90']:.1%}")
    print(f"wrote {args.out or TIMING}")
    return 0


def run_trace_grid(args):
    from advisor import trace_grid

    if args.step == "make":
        print(f"wrote {trace_grid.write_grid()} configurations to {trace_grid.GRID}")
    elif args.step == "run":
        if args.jobs < 1:
            raise UserError(f"--jobs must be at least 1, got {args.jobs}")
        n = trace_grid.run(limit=args.limit, timeout_s=args.timeout, retry_failed=args.retry_failed, jobs=args.jobs,
                           ids=trace_grid.redo_ids(args.redo) if args.redo else None)
        print(f"traced {n} rows into {trace_grid.RESULTS}")
    else:
        out = trace_grid.score()
        if "median" not in out:
            print(f"no traced rows in {trace_grid.RESULTS}")
            return 0
        print(f"{out['rows']} traced configurations ({out['failed']} failed to trace): estimate vs trace "
              f"median |error| {out['median']:.1%}, p95 {out['p95']:.1%}, worst {out['worst']:.1%}, "
              f"signed median {out['signed_median']:+.1%}")
        print(f"wrote {trace_grid.RESULTS} and {trace_grid.PLOT}")
    return 0
