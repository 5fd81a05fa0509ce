"""What hardware this machine has: NVIDIA GPUs via nvidia-ml-py, host memory via psutil.

    python -m advisor.tui.hardware        # prints what the wizard's Hardware screen starts from

No GPU (no driver, no library) is a normal answer, not an error: ``detect()`` then returns an
empty GPU list and the wizard offers CPU or a catalog GPU to plan for.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from advisor.catalogs import gpu, gpus
from advisor.tui.fmt import gib
from common.errors import UserError


@dataclass(frozen=True)
class DetectedGpu:
    name: str
    memory_gib: float


@dataclass(frozen=True)
class Detected:
    gpus: tuple[DetectedGpu, ...] = ()
    host_memory_gib: float = 16.0
    note: str = "no GPU detected"

    @property
    def summary(self) -> str:
        if not self.gpus:
            return f"{self.note}; host memory {gib(self.host_memory_gib)}"
        names = {g.name for g in self.gpus}
        return f"{len(self.gpus)}x {', '.join(sorted(names))} ({gib(self.gpus[0].memory_gib)} each)"


def detect() -> Detected:
    """GPUs through NVML plus total host memory; never raises for a machine without a GPU."""
    import psutil

    host = psutil.virtual_memory().total / 2**30
    try:
        import pynvml
    except ImportError:
        return Detected((), host, "no GPU detected (nvidia-ml-py not installed)")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:  # no driver / library: the normal CPU case
        return Detected((), host, f"no GPU detected ({type(e).__name__.removeprefix('NVMLError_')})")
    try:
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else name
            found.append(DetectedGpu(name, pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**30))
        return Detected(tuple(found), host, "" if found else "no GPU detected")
    except pynvml.NVMLError as e:
        return Detected((), host, f"no GPU detected ({e})")
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def catalog_key(name: str) -> str | None:
    """The catalog entry for a detected device name, or None when the catalog lacks it."""
    try:
        return gpu(name).key
    except UserError:
        pass
    for word in name.lower().split():  # "Tesla T4", "NVIDIA L4": the model word is the key
        try:
            return gpu(word).key
        except UserError:
            continue
    # NVML names look like "NVIDIA H100 80GB HBM3": match on the catalog's own names' words.
    words = set(name.lower().replace("-", " ").split())
    best, score = None, 0
    for key, g in gpus().items():
        common = len(words & set(g.name.lower().replace("-", " ").split()))
        if common > score and common >= 2:
            best, score = key, common
    return best


if __name__ == "__main__":
    d = detect()
    print(d.summary)
    for g in d.gpus:
        print(f"  {g.name}: {gib(g.memory_gib)} -> catalog {catalog_key(g.name) or '(not in catalog)'}")
