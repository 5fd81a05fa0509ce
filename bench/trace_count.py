"""Live tensor storage, counted at every op: the meter behind ``bench/trace.py``.

    with LiveBytes() as live:
        live.register(model_params, "weights")
        live.phase = "forward"; loss = model(...); ...
    live.peak, live.peak_phase, live.breakdown_at_peak()

A ``TorchDispatchMode`` sees every aten op (composite ops arrive decomposed, so their
temporaries are seen too). Each output storage is counted once when it first appears, tagged
with the phase it was made in, and uncounted by ``weakref.finalize`` on the storage when torch
frees it. Parameters and buffers are registered before the step: ops return views that alias
them, and a counter that only started from a byte total would count the weights twice.
The storages live at the peak are kept, so the peak's breakdown can be named afterwards (which of
them turned out to be gradients or optimizer state). Copying the live set at every new peak cost
O(live storages) per op in a forward (every op there is a new peak); instead each storage carries
the event number it was born at, and a storage freed after the last peak is remembered until the
next one: the peak's set is the live storages born by then plus those.

ZeRO over g ranks is counted as it happens on one rank: ``shard`` maps a tag to the fraction of a
storage one rank holds (1/g for "optimizer" from stage 1, for "weights", "trainable" and
"extra_models" at stage 3, and the dtype copies autocast makes of those), and ``reshard`` shrinks
one storage to its rank's share (a gradient once it is reduce-scattered, stage 2); the peak is then
the largest sharded total at any op.
"""
from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_iter


class LiveBytes(TorchDispatchMode):
    """Counts live tensor storage bytes; see the module docstring."""

    def __init__(self, shard: dict[str, float] | None = None):
        super().__init__()
        self.shard = shard or {}  # tag -> the fraction of such a storage one ZeRO rank holds
        self._sharded: set[int] = set()  # ids of storages already counted as their shard
        self._next_id = 0
        self.live: dict[int, tuple[int, int, str]] = {}  # storage cdata -> (id, nbytes, tag); id = birth event
        self.current = 0
        self.peak = 0
        self.peak_phase = ""
        self.peak_step = 0
        self.step = 0
        self.phase = "setup"
        self._peak_event = -1  # the last storage id born when the peak was reached
        self._gone: dict[int, tuple[int, str]] = {}  # id -> (nbytes, tag): live at the peak, freed since
        self.boundary: dict[int, int] = {}  # step -> live bytes when backward starts
        self.ops = 0

    # -- storages ------------------------------------------------------------------------
    def _add(self, t: torch.Tensor, tag: str) -> None:
        try:
            st = t.untyped_storage()
        except (NotImplementedError, RuntimeError):  # sparse / storage-less subclasses
            return
        key = st._cdata
        if key in self.live:
            return
        n = int(st.nbytes() * self.shard.get(tag, 1))
        self.live[key] = (self._next_id, n, tag)
        self._next_id += 1
        self.current += n
        weakref.finalize(st, self._drop, key)

    def _drop(self, key: int) -> None:
        entry = self.live.pop(key, None)
        if entry is not None:
            self.current -= entry[1]
            if entry[0] <= self._peak_event:
                self._gone[entry[0]] = entry[1:]

    def register(self, tensors, tag: str) -> None:
        """Count tensors that exist before tracing (weights, buffers) under ``tag``."""
        for t in tensors:
            if isinstance(t, torch.Tensor):
                self._add(t, tag)
        self._check_peak()

    def reshard(self, t: torch.Tensor, fraction: float) -> None:
        """Count ``t``'s storage as ``fraction`` of itself from now on (its rank's shard). The full
        storage is retired as if freed (kept in the peak's set when it was live there) and the shard
        counted as a new storage, so the peak's breakdown still sums to the peak."""
        key = t.untyped_storage()._cdata
        entry = self.live.get(key)
        if entry is None or entry[0] in self._sharded:  # a gradient accumulated into twice shrinks once
            return
        i, n, tag = entry
        if i <= self._peak_event:
            self._gone[i] = (n, tag)
        kept = int(n * fraction)
        self.live[key] = (self._next_id, kept, tag)
        self._sharded.add(self._next_id)
        self._next_id += 1
        self.current -= n - kept

    def id_of(self, t: torch.Tensor) -> int | None:
        entry = self.live.get(t.untyped_storage()._cdata)
        return None if entry is None else entry[0]

    def _check_peak(self) -> None:
        if self.current > self.peak:
            self.peak, self.peak_phase, self.peak_step = self.current, self.phase, self.step
            self._peak_event, self._gone = self._next_id - 1, {}

    def mark_boundary(self) -> None:
        """Live bytes where backward begins (what bench/metrics.py samples on a real run)."""
        self.boundary[self.step] = self.current

    # -- dispatch ------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        tag = self.phase
        if func is torch.ops.aten._to_copy.default and self.shard.get("weights", 1) < 1:
            # ZeRO-3: a dtype copy of a sharded weight (autocast's bf16 cast of an fp32 master) is the
            # rank's share of the low-precision weights a ZeRO-3 / FSDP run keeps, not a full copy
            src = self.live.get(args[0].untyped_storage()._cdata) if isinstance(args[0], torch.Tensor) else None
            if src is not None and src[2] in self.shard:
                tag = src[2]
        for t in tree_iter(out):
            if isinstance(t, torch.Tensor):
                self._add(t, tag)
        self._check_peak()
        return out

    def peak_storages(self) -> dict[int, tuple[int, str]]:
        """id -> (nbytes, tag) of every storage live at the peak."""
        at_peak = {i: (n, tag) for i, n, tag in self.live.values() if i <= self._peak_event}
        return {**at_peak, **self._gone}
