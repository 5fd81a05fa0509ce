"""The GPU campaign: memory and speed of fine-tuning methods on random-init real shapes, one JSON line per run.

    make gpu-campaign                      # on the GPU machine: writes $OUT/campaign.jsonl (≤ --deadline-s)
    make gpu-campaign DRY=1                # the same code on tiny shapes on the CPU (the test suite runs it)
    python -m bench.campaign --plan        # the run list, highest priority first
    tunebench db import-campaign $OUT/campaign.jsonl   # afterwards, here: JSON lines -> result records

Made for a lent GPU machine whose Python has torch, transformers, peft, accelerate and nvidia-ml-py
but not trl, bitsandbytes, polars, optuna or pydantic, and which carries no model weights (at most
64 MiB travel). So it imports only those and the stdlib (bench/campaign_plan.py, campaign_env.py,
campaign_run.py); tests/bench/test_campaign.py runs the dry run with the others made unimportable.

Priority (a), the campaign: llama-3.2-1b/3b, qwen2.5-7b and llama-3.1-8b shapes (random weights:
memory and speed depend on the shape, not the values) × full, lora, dora, ia3, prefix, Houlsby
adapters, qlora (where bitsandbytes imports: carry its wheel; otherwise a "skipped" line) × seq 2048/512 ×
checkpointing off/on, warm-up + timed steps each. Per run: torch max_memory_allocated/reserved,
NVML used (peak), tokens/s, step time, MFU (bench/campaign_run.py says which N), trainable
parameters, and the hardware fingerprint. OOM is a result (status "oom"); memory is freed between
runs. A run is started only if its expected time (from the runs already measured) fits before the
deadline; the runs left out are listed in the closing "summary" line.
Priority (b), SmolLM2-135M quality runs, needs the real weights and the training stack (trl): the
script checks for both and writes one "quality" line saying why it skipped them.

Every line is written, flushed and fsynced on its own, so a campaign killed at any point keeps
every finished run. Lines: {"kind": "campaign"} (header), "run" (one per run), "quality", "summary".
"""
from __future__ import annotations

import time

T0 = time.monotonic()  # the deadline counts from here (interpreter start is a second or two earlier)

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

FORMAT = "tunebench-campaign/1"
# 9 minutes for the whole `run` call: ~2 min machine start-up, the rest for this script.
DEFAULT_DEADLINE_S = 390
DRY_DEADLINE_S = 50
GRACE_S = 30            # a run still going this long after the deadline is stopped (status "timeout")
MARGIN = 1.3            # expected run time = longest seen for that model (or scaled from another) × this
FIRST_RUN_S = 30.0      # expected time of the very first run (CUDA start-up included), before anything was measured
DRY_FIRST_RUN_S = 5.0
SMOLLM = "smollm2-135m"
# Errors in every one of the first runs mean a broken environment, not a result: stop and save device time.
FAIL_FAST = 3


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class Sink:
    """Appends one JSON object per line, each flushed and fsynced before the next run starts."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.fh = path, open(path, "a", encoding="utf-8")

    def write(self, obj: dict) -> None:
        self.fh.write(json.dumps({"format": FORMAT, **obj}, sort_keys=True) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())


class Timer:
    """Expected seconds of a run: the longest measured on that model, else scaled by parameter count."""

    def __init__(self, first_s: float):
        self.first_s = first_s
        self.seen: dict[str, tuple[float, int]] = {}  # model -> (longest wall seconds, approx params)

    def expect(self, run) -> float:
        from bench.campaign_plan import approx_params

        if run.model in self.seen:
            return self.seen[run.model][0] * MARGIN
        if not self.seen:
            return self.first_s
        s, n = max(self.seen.values(), key=lambda v: v[1])
        return s * max(1.0, approx_params(run.dims) / n) * MARGIN

    def add(self, run, seconds: float) -> None:
        from bench.campaign_plan import approx_params

        old = self.seen.get(run.model, (0.0, 0))[0]
        self.seen[run.model] = (max(old, seconds), approx_params(run.dims))


def free(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def measure(run, device: str, nv, handle, peak_tflops: float | None, hard_deadline: float) -> dict:
    """One run as a JSON-ready dict; OOM, errors and the hard deadline become its status."""
    import torch

    from bench.campaign_env import NvmlPeak
    from bench.campaign_run import MFU_DEFINITION, Deadline, build, train

    cuda = device.startswith("cuda")
    out = {"status": "ok", "error": None}
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        out.update(baseline_allocated_bytes=torch.cuda.memory_allocated(),
                   baseline_reserved_bytes=torch.cuda.memory_reserved())
    t0 = time.monotonic()
    meter = NvmlPeak(nv, handle)
    out["nvml_baseline_bytes"] = meter.used()
    model = None
    try:
        with meter:
            model, total, mfu_n = build(run, device)
            out.update(total_params=total, mfu_params=mfu_n, build_s=time.monotonic() - t0)
            out.update(train(model, run, device, hard_deadline))
    except torch.OutOfMemoryError as e:
        out.update(status="oom", error=str(e).strip().splitlines()[0][:500])
    except Deadline as e:
        out.update(status="timeout", error=str(e))
    except Exception as e:  # one broken run must not end the campaign: it is recorded and the next one starts
        out.update(status="error", error=f"{type(e).__name__}: {str(e).strip()[:500]}")
        print("".join(traceback.format_exc().splitlines(keepends=True)[-12:]), file=sys.stderr, flush=True)
    out["wall_time_s"] = time.monotonic() - t0
    model = None  # dropped before the peaks are read and the cache emptied
    if cuda:
        out.update(peak_allocated_bytes=torch.cuda.max_memory_allocated(),
                   peak_reserved_bytes=torch.cuda.max_memory_reserved(), nvml_used_bytes=meter.peak)
    free(device)
    if cuda:
        out["leftover_allocated_bytes"] = torch.cuda.memory_allocated() - out["baseline_allocated_bytes"]
    if out.get("step_time_s"):
        out["tokens_per_s"] = run.tokens_per_step / out["step_time_s"]
        out["mfu"] = 6 * mfu_n * out["tokens_per_s"] / (peak_tflops * 1e12) if peak_tflops else None
        out["mfu_definition"] = MFU_DEFINITION
    return out


def run_line(run, campaign_id: str, fp: dict) -> dict:
    return {"kind": "run", "campaign_id": campaign_id, "index": run.index, "key": run.key, "priority": "a",
            "model": run.model, "method": run.method, "objective": run.objective, "seq_len": run.seq_len,
            "micro_batch": run.micro_batch, "grad_ckpt": run.grad_ckpt, "precision": run.precision,
            "steps": run.steps, "warmup_steps": run.warmup_steps, "learning_rate": run.learning_rate,
            "seed": run.seed, "method_cfg": run.method_cfg, "started_at": now(), "fingerprint": fp}


def bitsandbytes_missing() -> str | None:
    """Why qlora cannot run here (None: it can). Imported, not just found: a wheel without its CUDA library fails."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not importable here"
    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:  # a carried wheel that does not match this CUDA, say
        return f"bitsandbytes failed to import: {type(e).__name__}: {str(e).strip()[:200]}"
    return None


def quality_line(campaign_id: str) -> dict:
    """Priority (b) needs SmolLM2-135M's real weights (517 MB: they do not travel) and trl: say which is missing."""
    home = Path(os.environ.get("TUNEBENCH_HOME") or Path.home() / ".cache" / "tunebench")
    weights = home / "models" / SMOLLM
    missing = []
    if not (weights / "config.json").exists():
        missing.append(f"no {SMOLLM} weights at {weights} (517 MB safetensors; a device copy carries at most 64 MiB)")
    for pkg in ("trl", "polars", "pydantic"):
        if importlib.util.find_spec(pkg) is None:
            missing.append(f"{pkg} is not installed")
    reason = "; ".join(missing) or "this script measures memory and speed only"
    return {"kind": "quality", "campaign_id": campaign_id, "priority": "b", "status": "skipped",
            "reason": f"SmolLM2-135M quality runs skipped: {reason}. Run them with "
                      "`tunebench bench run --matrix gpu-standard` on a GPU machine with the full install."}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.campaign", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  python -m bench.campaign --out /tmp/c\n"
                                       "  python -m bench.campaign --dry --out /tmp/c\n"
                                       "  python -m bench.campaign --models llama-3.2-1b --methods lora,full --out /tmp/c")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ".tunebench/campaign"),
                   help="folder for campaign.jsonl (default: $OUT, else .tunebench/campaign); lines are appended")
    p.add_argument("--dry", action="store_true", help="tiny shapes on the CPU: the same code path in under a minute")
    p.add_argument("--deadline-s", type=float, help=f"stop starting runs after this many seconds "
                                                    f"(default {DEFAULT_DEADLINE_S}; dry {DRY_DEADLINE_S})")
    p.add_argument("--models", help="comma-separated subset of the campaign's models")
    p.add_argument("--methods", help="comma-separated subset of the methods")
    p.add_argument("--plan", action="store_true", help="print the run list and exit")
    return p.parse_args(argv)


@dataclass
class Session:
    """What every run of one campaign shares: the device, its fingerprint and NVML handle, the output."""

    device: str
    fp: dict
    nv: object
    handle: object
    peak: float | None
    campaign_id: str
    sink: Sink
    no_bnb: str | None


def start(args, planned: int, deadline_s: float) -> Session:
    """Fingerprint the device, open the output, write the header line, import the stack once."""
    import torch

    from bench.campaign_env import fingerprint, nvml, nvml_handle
    from bench.campaign_plan import peak_bf16_tflops

    device = "cpu" if args.dry else "cuda"
    if args.dry:
        torch.set_num_threads(1)  # tiny shapes: threads only add overhead on a shared CPU
    fp = fingerprint(device)
    nv = nvml() if device == "cuda" else None
    gpu_key, peak = peak_bf16_tflops(fp["device_name"]) if device == "cuda" else (None, None)
    campaign_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    ses = Session(device, fp, nv, nvml_handle(nv) if nv is not None else None, peak, campaign_id,
                  Sink(args.out / "campaign.jsonl"), bitsandbytes_missing())
    ses.sink.write({"kind": "campaign", "campaign_id": campaign_id, "started_at": now(), "dry": args.dry,
                    "deadline_s": deadline_s, "runs_planned": planned, "fingerprint": fp,
                    "peak_bf16_tflops": peak, "gpu_catalog_key": gpu_key})
    print(f"campaign {campaign_id}: {planned} runs on {fp['hardware']}, deadline {deadline_s:.0f} s "
          f"-> {ses.sink.path}", flush=True)
    import peft  # noqa: F401  (imported before the freeze below, not inside the first run)
    import transformers

    transformers.logging.set_verbosity_error()  # the device returns only the last 12,000 characters of output
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    free(device)
    gc.freeze()  # the imported modules' objects leave the GC's view: a collect between runs takes ms, not 0.2 s
    return ses


def campaign(plan, ses: Session, deadline: float) -> tuple[dict, list[str], str | None]:
    """Every planned run that fits before the deadline, one line each: (status counts, runs left out, abort reason)."""
    timer = Timer(DRY_FIRST_RUN_S if ses.device == "cpu" else FIRST_RUN_S)
    counts, left_out, aborted = {}, [], None
    for run in plan:
        if aborted or run.skip is None and not (run.method == "qlora" and ses.no_bnb) \
                and time.monotonic() + timer.expect(run) > deadline:
            left_out.append(run.key)
            continue
        line = run_line(run, ses.campaign_id, ses.fp)
        if run.method == "qlora" and ses.no_bnb:
            line.update(status="skipped", error=f"qlora skipped: {ses.no_bnb}")
        elif run.skip:
            line.update(status="skipped", error=run.skip)
        else:
            line.update(measure(run, ses.device, ses.nv, ses.handle, ses.peak, deadline + GRACE_S))
            line["peak_bf16_tflops"] = ses.peak
            if line["status"] in ("ok", "oom"):
                timer.add(run, line["wall_time_s"])
        ses.sink.write(line)
        counts[line["status"]] = counts.get(line["status"], 0) + 1
        print(progress(line, time.monotonic() - T0), flush=True)
        if counts.get("error", 0) >= FAIL_FAST and not counts.get("ok"):
            aborted = f"the first {FAIL_FAST} measured runs failed and none succeeded: {line['error']}"
    return counts, left_out, aborted


def main(argv: list[str] | None = None) -> int:
    from bench.campaign_plan import runs

    args = parse(argv)
    try:
        plan = runs(args.dry, args.models and args.models.split(","), args.methods and args.methods.split(","))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.plan:
        for r in plan:
            print(f"{r.index:3d} {r.key}")
        return 0
    deadline_s = args.deadline_s or (DRY_DEADLINE_S if args.dry else DEFAULT_DEADLINE_S)
    if deadline_s <= 0:
        print(f"error: --deadline-s must be > 0, got {deadline_s:g}", file=sys.stderr)
        return 2
    import torch

    if not args.dry and not torch.cuda.is_available():
        print("error: no CUDA device visible to torch; use --dry for the CPU dry run", file=sys.stderr)
        return 2
    ses = start(args, len(plan), deadline_s)
    counts, left_out, aborted = campaign(plan, ses, T0 + deadline_s)
    ses.sink.write(quality_line(ses.campaign_id))
    ses.sink.write({"kind": "summary", "campaign_id": ses.campaign_id, "finished_at": now(), "aborted": aborted,
                    "wall_s": time.monotonic() - T0, "counts": counts, "not_started": left_out})
    print(f"done in {time.monotonic() - T0:.0f} s: {counts}; {len(left_out)} runs not started"
          + (f"; ABORTED: {aborted}" if aborted else " (deadline)"), flush=True)
    return 1 if aborted else 0


def progress(line: dict, elapsed: float) -> str:
    tail = line.get("error") or ""
    if line["status"] == "ok":
        mem = f"{line['peak_reserved_bytes'] / 2**30:.2f} GiB reserved, " if line.get("peak_reserved_bytes") else ""
        mfu = f", MFU {line['mfu']:.2f}" if line.get("mfu") else ""
        tail = f"{mem}{line['tokens_per_s']:.0f} tok/s{mfu}"
    return f"[{elapsed:5.0f}s] {line['index']:3d} {line['key']}: {line['status']} {tail}"


if __name__ == "__main__":
    sys.exit(main())
