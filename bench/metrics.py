"""How a run is measured: memory meters, the environment fingerprint and the config hash.

    python -m bench.metrics          # prints this machine's fingerprint as JSON

``with Meter(device) as m: train(); rec.update(m.result())`` fills the schema's memory
columns (the result schema, bench/schema.py):

- ``peak_rss_bytes``: host RSS of this process, sampled every 20 ms by a background thread
  (psutil); if the kernel's lifetime peak (``ru_maxrss``) rose while the meter was open, that
  exact peak is used instead, since it was then set inside the window.
- ``peak_tensor_bytes`` (CPU): live tensor bytes at the forward->backward boundary of the first
  two training steps (the second one holds the optimizer state too), where training holds the
  most tensors: the unique storages reachable from Python (weights, optimizer state) united with
  everything autograd saved for backward, tracked with ``saved_tensors_hooks`` (a Python call per
  saved tensor, not per op, so cheap; one heap walk per sampled boundary). Gradients that
  appear while backward frees activations, transient buffers inside a kernel and C++-only
  allocations are not seen, so this is a lower bound on the allocator's peak. None if no
  backward pass ran inside the meter.
  torch's profiler memory events were tried and rejected: on this CPU build they reported 3
  events for a whole training step, and the profiler doubled step time.
  Once both boundaries are sampled the hooks track nothing more (``_pack`` returns at once) and
  ``settle()`` — called after a training step, when no other saved-tensor hooks are pushed —
  removes them, so later steps run without a Python call per saved tensor. The seconds spent in
  the two heap walks accumulate in ``paused_s``, which bench/progress.py leaves out of step times.
- ``boundary_batches`` (in the record's extra, CPU): what each sampled boundary's forward fed, as
  ``[batch, seq, masked]``: the token ids' shape entering the policy's embedding and whether its
  first decoder layer got a materialized attention mask (padding in the batch) -- the length the
  run really trained at, which bench/trace_check.py traces. Recorded by ``watch(model)``'s
  forward pre-hooks while grad is on (the last such forward before backward began).
- ``background_cpu_share`` (in the record's extra): CPU time other processes used while the meter
  was open, as a share of the machine (wall seconds x cores): a run measured beside other work has
  slower steps, and the report leaves its speed out of the speed columns (its memory and quality
  stand). From /proc/stat's busy time less this process's own CPU time.
- CUDA: ``peak_reserved_bytes`` / ``peak_allocated_bytes`` from torch (peaks reset at enter)
  and ``nvml_used_bytes``, the peak device-wide used memory NVML reported while sampling.
  Without a GPU these stay None; that is the normal case, not an error.
"""
from __future__ import annotations

import gc
import hashlib
import json
import os
import platform
import re
import resource
import subprocess
import threading
import time
import warnings
import weakref
from importlib import metadata
from pathlib import Path

import psutil

PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate")
SAMPLE_S = 0.02
BOUNDARY_SAMPLES = 2
BUSY = 0.10  # background CPU share above which a run's speed is not the method's own


def measured_quietly(extra: str | None) -> bool:
    """Whether a record's speed counts: its extra JSON's background_cpu_share is at most BUSY
    (records from before the meter measured it count)."""
    try:
        share = json.loads(extra or "{}").get("background_cpu_share")
    except (ValueError, AttributeError):
        return True
    return share is None or share <= BUSY


def config_hash(config: dict) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace); stable across runs and machines."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _nvml():
    """pynvml initialised, or None when there is no NVIDIA driver (a normal case)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # NVMLError_LibraryNotFound without a GPU; ImportError if not installed
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def fingerprint(device: str | None = None) -> dict:
    """Schema columns describing where a run ran; ``hardware`` is the label results group by."""
    import torch

    use_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    fp = {"packages": json.dumps(package_versions(), sort_keys=True), "git_commit": _git_commit(),
          "driver": None, "cuda": torch.version.cuda}
    if use_cuda:
        idx = torch.device(device).index or 0 if device else 0
        props = torch.cuda.get_device_properties(idx)
        count = torch.cuda.device_count()
        fp.update(device_name=props.name, device_count=count, device_memory_bytes=int(props.total_memory),
                  hardware=props.name if count == 1 else f"{count}x {props.name}")
        nv = _nvml()
        if nv is not None:
            try:
                drv = nv.nvmlSystemGetDriverVersion()
                fp["driver"] = drv.decode() if isinstance(drv, bytes) else drv
            except Exception:
                pass
    else:
        name = _cpu_model()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        fp.update(device_name=name, device_count=1, device_memory_bytes=int(psutil.virtual_memory().total),
                  hardware=f"cpu-{_slug(name)}-{cores}c", cuda=None)
    return fp


class _Saved:
    """What autograd keeps for a saved tensor; counts its storage while it is alive. It holds the tensor
    detached: a node that saves its own output (a norm, a softmax) would otherwise hold a box holding a
    tensor whose grad_fn is that node -- a cycle through autograd that Python's gc cannot see, so a graph
    never backpropagated (peft's DoRA init builds one per projection) stayed alive for the whole run."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor):
        self.tensor = tensor


class Meter:
    """Peak memory of a block of training code; see the module docstring for each figure."""

    def __init__(self, device: str | None = "cpu", sample_s: float = SAMPLE_S):
        self.device = str(device or "cpu")
        self.cuda = self.device.startswith("cuda")
        self.sample_s = sample_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._proc = psutil.Process()
        self.peak_rss = 0
        self.peak_nvml: int | None = None
        self._saved: dict[int, list[int]] = {}   # storage ptr -> [references, nbytes]
        self._backward = True
        self._boundaries = 0
        self.peak_tensor: int | None = None
        self._hooks = None
        self._fed: list = [None, None]  # the last grad-enabled forward: its ids [batch, seq]; was attention masked?
        self.boundary_batches: list[list] = []
        self._watch: list = []
        self.paused_s = 0.0  # seconds spent sampling boundaries (instrumentation, not training)
        self._cpu_start = self._cpu_end = None  # _cpu() at enter and exit (background_share)

    # -- host RSS and NVML, sampled ------------------------------------------------------
    def _sample_loop(self):
        nv = _nvml() if self.cuda else None
        handle = None
        if nv is not None:
            try:
                import torch

                idx = torch.device(self.device).index or 0
                handle = nv.nvmlDeviceGetHandleByIndex(idx)
            except Exception:
                handle = None
        while True:
            try:
                rss = self._proc.memory_info().rss
                if rss > self.peak_rss:
                    self.peak_rss = rss
            except psutil.Error:
                pass
            if handle is not None:
                try:
                    used = int(nv.nvmlDeviceGetMemoryInfo(handle).used)
                    self.peak_nvml = max(self.peak_nvml or 0, used)
                except Exception:
                    handle = None
            if self._stop.wait(self.sample_s):
                return

    # -- CPU tensors ---------------------------------------------------------------------
    def _sample_boundary(self) -> None:
        """Live tensors at a forward->backward boundary: every storage reachable from Python
        (weights, optimizer state) united with what autograd saved, each storage counted once."""
        import torch

        t0 = time.perf_counter()
        with warnings.catch_warnings():  # isinstance() on deprecated-module proxies warns
            warnings.simplefilter("ignore")
            objects = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)]
        seen: dict[int, int] = {}
        for obj in objects:
            try:
                if obj.device.type == "cpu" and not obj.is_meta:
                    st = obj.untyped_storage()
                    seen[st.data_ptr()] = st.nbytes()
            except Exception:  # tensor subclasses / quantized params without a plain storage
                continue
        del objects
        with self._lock:
            for ptr, (_, nbytes) in self._saved.items():
                seen[ptr] = nbytes
        total = sum(seen.values())
        self.peak_tensor = max(self.peak_tensor or 0, total)
        if self._fed[0] is not None:
            self.boundary_batches.append([*self._fed[0], self._fed[1]])
        self.paused_s += time.perf_counter() - t0

    def _pack(self, tensor):
        if self._boundaries >= BOUNDARY_SAMPLES:
            return tensor  # sampling is over
        try:
            if tensor.device.type != "cpu":
                return tensor
            st = tensor.untyped_storage()
            ptr, nbytes = st.data_ptr(), st.nbytes()
        except Exception:
            return tensor
        self._backward = False
        box = _Saved(tensor.detach())
        with self._lock:
            entry = self._saved.get(ptr)
            if entry is None:
                self._saved[ptr] = [1, nbytes]
            else:
                entry[0] += 1
        weakref.finalize(box, self._release, ptr)
        return box

    def _release(self, ptr: int) -> None:
        with self._lock:
            entry = self._saved.get(ptr)
            if entry is not None:
                entry[0] -= 1
                if entry[0] == 0:
                    del self._saved[ptr]

    def _unpack(self, box):
        if not self._backward:
            # First unpack after packing: backward has begun, the saved set is complete. Sample
            # the first two boundaries (the second step has the optimizer state too).
            self._backward = True
            self._boundaries += 1
            if self._boundaries <= BOUNDARY_SAMPLES:
                self._sample_boundary()
        return box.tensor if isinstance(box, _Saved) else box

    def watch(self, model) -> None:
        """Record what each grad-enabled forward of ``model`` feeds (its embedding's input ids shape;
        whether its first decoder layer gets an attention mask) for ``boundary_batches``."""
        import torch

        if self.cuda or self._boundaries >= BOUNDARY_SAMPLES:
            return
        emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        layer = next((m[0] for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m)
                      and type(m[0]).__name__.endswith("DecoderLayer")), None)
        if emb is None or layer is None:
            return

        def ids(mod, args):
            if torch.is_grad_enabled() and args and args[0].dim() == 2:
                self._fed[0] = list(args[0].shape)

        def mask(mod, args, kwargs):
            if torch.is_grad_enabled():
                self._fed[1] = kwargs.get("attention_mask") is not None

        self._watch = [emb.register_forward_pre_hook(ids), layer.register_forward_pre_hook(mask, with_kwargs=True)]

    def settle(self) -> None:
        """Remove the saved-tensor hooks once both boundaries are sampled. Call between training
        steps only, where no other saved-tensor hooks (e.g. checkpointing's) are pushed on top."""
        if self._hooks is not None and self._boundaries >= BOUNDARY_SAMPLES:
            self._hooks.__exit__(None, None, None)
            self._hooks = None
            self._unwatch()

    def _unwatch(self) -> None:
        for h in self._watch:
            h.remove()
        self._watch = []

    # -- context -------------------------------------------------------------------------
    def _cpu(self) -> tuple[float, float, float]:
        """(machine busy CPU-seconds, this process's CPU-seconds, monotonic time) now."""
        m, own = psutil.cpu_times(), self._proc.cpu_times()
        busy = sum(m) - m.idle - getattr(m, "iowait", 0.0) - getattr(m, "guest", 0.0) - getattr(m, "guest_nice", 0.0)
        return busy, own.user + own.system + own.children_user + own.children_system, time.monotonic()

    def background_share(self) -> float | None:
        """CPU time other processes took while the meter was open / (wall x cores); see the module docstring."""
        if self._cpu_end is None:
            return None
        (b0, o0, t0), (b1, o1, t1) = self._cpu_start, self._cpu_end
        capacity = (t1 - t0) * (psutil.cpu_count() or 1)
        return round(max(0.0, (b1 - b0) - (o1 - o0)) / capacity, 3) if capacity > 0 else None

    def __enter__(self) -> "Meter":
        self._cpu_start = self._cpu()
        self._ru_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            import torch

            self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
            self._hooks.__enter__()
        self._thread = threading.Thread(target=self._sample_loop, name="tunebench-meter", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._hooks is not None:
            self._hooks.__exit__(*exc)
            self._hooks = None
        self._unwatch()
        self._stop.set()
        self._thread.join()
        self._cpu_end = self._cpu()
        ru_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if ru_end > self._ru_start:
            self.peak_rss = max(self.peak_rss, ru_end)
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self._reserved = int(torch.cuda.max_memory_reserved())
            self._allocated = int(torch.cuda.max_memory_allocated())
        return None

    def result(self) -> dict:
        out = {"peak_rss_bytes": int(self.peak_rss) or None, "peak_tensor_bytes": None,
               "peak_reserved_bytes": None, "peak_allocated_bytes": None, "nvml_used_bytes": self.peak_nvml}
        if self.cuda:
            out["peak_reserved_bytes"] = getattr(self, "_reserved", None)
            out["peak_allocated_bytes"] = getattr(self, "_allocated", None)
        else:
            out["peak_tensor_bytes"] = self.peak_tensor
        return out


if __name__ == "__main__":  # python -m bench.metrics
    print(json.dumps(fingerprint(), indent=2))
