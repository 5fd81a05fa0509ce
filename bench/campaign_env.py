"""Where the GPU campaign ran (hardware fingerprint) and the NVML memory sampler it measures with.

Stdlib + torch + nvidia-ml-py only (see bench/campaign.py). The fingerprint's keys follow
bench/metrics.py's record columns (``hardware`` = the device name for one GPU, or
``cpu-<cpu>-<cores>c``), so imported records group with the rest of the database.
"""
from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import threading
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "peft", "accelerate", "nvidia-ml-py", "trl", "bitsandbytes")
SAMPLE_S = 0.01
HERE = Path(__file__).resolve().parent


def package_versions() -> dict[str, str | None]:
    # Like bench.metrics.package_versions, which the campaign cannot import (psutil is not on the device).
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def script_sha256() -> str:
    """Hash of the campaign's own files: which code measured, also where the copy has no .git."""
    h = hashlib.sha256()
    for p in sorted(HERE.glob("campaign*.py")) + [HERE / "campaign_shapes.json"]:
        if p.name != "campaign_import.py":
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def nvml():
    """pynvml initialised, or None without an NVIDIA driver (the CPU dry run) or without the package."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # NVMLError_LibraryNotFound without a GPU; ImportError without nvidia-ml-py
        return None


def nvml_handle(nv, index: int = 0):
    """The NVML handle of torch's device ``index`` (by UUID: CUDA_VISIBLE_DEVICES may renumber)."""
    import torch

    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None:
        try:
            text = str(uuid)
            return nv.nvmlDeviceGetHandleByUUID(text if text.startswith("GPU-") else f"GPU-{text}")
        except Exception:  # older drivers spell UUIDs differently; fall back to the index
            pass
    return nv.nvmlDeviceGetHandleByIndex(index)


def fingerprint(device: str) -> dict:
    """The record columns that say where runs ran, plus details kept in the record's ``extra``."""
    import torch

    fp = {"packages": package_versions(), "cuda": torch.version.cuda,
          "python": platform.python_version(), "driver": None, "git_commit": _git_commit(),
          "script_sha256": script_sha256()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        # One GPU measures; device_count is the GPUs a run used (the estimator reads it as num_gpus).
        fp.update(device_name=props.name, device_count=1, device_memory_bytes=int(props.total_memory),
                  hardware=props.name, visible_devices=torch.cuda.device_count(),
                  capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count,
                  cudnn=torch.backends.cudnn.version())
        nv = nvml()
        if nv is not None:
            drv = nv.nvmlSystemGetDriverVersion()
            fp["driver"] = drv.decode() if isinstance(drv, bytes) else drv
    else:
        name = _cpu_model()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        fp.update(device_name=name, device_count=1, hardware=f"cpu-{_slug(name)}-{cores}c", cuda=None,
                  device_memory_bytes=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return fp


class NvmlPeak:
    """Peak device-wide used memory (NVML) while open, sampled every 10 ms on a thread; None without NVML."""

    def __init__(self, nv, handle):
        self.nv, self.handle, self.peak = nv, handle, None
        self._stop = threading.Event()
        self._thread = None

    def used(self) -> int | None:
        if self.nv is None:
            return None
        return int(self.nv.nvmlDeviceGetMemoryInfo(self.handle).used)

    def _loop(self) -> None:
        while not self._stop.is_set():
            u = self.used()
            self.peak = u if self.peak is None else max(self.peak, u)
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> "NvmlPeak":
        if self.nv is not None:
            self.peak = self.used()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            u = self.used()
            self.peak = max(self.peak, u)
