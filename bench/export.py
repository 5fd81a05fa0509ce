"""Export a finished run: a merged Hugging Face folder, a GGUF file, or (unmergeable methods) the adapter.

    tunebench export --run RUN_ID --to hf --out ./my-model
    tunebench export --run RUN_ID --to gguf --out ./my-model.gguf --quant q8_0
    python -c "from bench.export import export_run as x; from bench.trained import find_run as f; x(f('RUN_ID'), 'hf', 'out')"

``export(a, to, out, quant, force)`` writes to a temporary name next to ``out`` and renames it
into place when complete, so an interrupted export never leaves a half-written ``out``. A method
whose card says it cannot merge (prompt, prefix, ptuning, bottleneck adapters) exports its adapter
folder with ``tunebench-export.json`` and a README naming the base it needs; GGUF needs a merged
model, so it is refused for those. The GGUF writer is bench/gguf_export.py.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bench.trained import Artifacts, load_tokenizer, merged
from common.errors import UserError

TARGETS = ("hf", "gguf")
MANIFEST = "tunebench-export.json"


@dataclass(frozen=True)
class Exported:
    path: Path
    kind: str      # "hf" (merged folder), "gguf", or "adapter" (unmergeable: adapter + base reference)
    bytes: int
    seconds: float
    note: str = ""


def size_of(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def check_out(out: Path, force: bool) -> None:
    if os.path.lexists(out) and not force:
        raise UserError(f"{out} already exists; pass --force to replace it")
    if not out.parent.is_dir():
        raise UserError(f"the folder {out.parent} for --out does not exist")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _publish(tmp: Path, out: Path) -> None:
    """Replace ``out`` with the finished ``tmp`` (a folder or a file)."""
    _remove(out)
    os.replace(tmp, out)


def write_hf(a: Artifacts, dest: Path) -> None:
    model = merged(a)
    model.save_pretrained(dest, safe_serialization=True)
    load_tokenizer(a).save_pretrained(dest)


def base_reference(a: Artifacts) -> dict:
    r = a.record
    return {"run_id": r["run_id"], "stack": r["stack"], "stage": r["stage"], "method": a.par.name,
            "mergeable": False, "base_model": r["model"], "base_folder": str(a.base_dir),
            "task": r["task"], "method_cfg": a.pcfg.model_dump()}


README = """# {stage} adapter from tunebench run {run_id}

{method} cannot merge into the base weights (it adds {latency} at inference), so this folder holds
the trained adapter only. Load it on its base model:

- base model: `{base_model}` (the folder this stage started from: `{base_folder}`)
- method settings: `method_cfg` in `{manifest}`

```python
{load}
```
"""
LATENCY = {"adapter": "extra adapter modules", "extra-tokens": "extra virtual tokens"}
PEFT_LOAD = """from peft import AutoPeftModelForCausalLM   # finds the base folder named in adapter_config.json
model = AutoPeftModelForCausalLM.from_pretrained("{out}")"""
OWN_LOAD = """# a tunebench module (no PEFT equivalent): restore it on the base model
from methods import parameterization
par = parameterization("{method}")
model = par.load(base_model, "{out}", par.make_config(method_cfg))"""


def write_adapter(a: Artifacts, dest: Path, final: Path) -> None:
    shutil.copytree(a.adapter_dir, dest)
    ref = base_reference(a)
    (dest / MANIFEST).write_text(json.dumps(ref, indent=1) + "\n")
    load = PEFT_LOAD if (dest / "adapter_config.json").exists() else OWN_LOAD
    (dest / "README.md").write_text(README.format(
        **ref, latency=LATENCY.get(a.par.card.latency, a.par.card.latency), manifest=MANIFEST,
        load=load.format(out=final, method=a.par.name)))


def export(a: Artifacts, to: str, out: Path | str, quant: str = "f16", force: bool = False) -> Exported:
    """Write the run's model to ``out`` as ``to`` (hf | gguf); see the module docstring."""
    from bench.gguf_export import QUANTS, write_gguf

    out = Path(out).expanduser().absolute()
    if to not in TARGETS:
        raise UserError(f"--to must be one of {', '.join(TARGETS)}, got {to!r}")
    if quant not in QUANTS:
        raise UserError(f"--quant must be one of {', '.join(QUANTS)}, got {quant!r}")
    check_out(out, force)
    if not a.mergeable and to == "gguf":
        raise UserError(f"{a.par.name} cannot merge into the base, so there is no single GGUF model; "
                        "use --to hf to export the adapter with its base reference")
    t0, tmp, note = time.perf_counter(), out.with_name(f".{out.name}.tmp{os.getpid()}"), ""
    _remove(tmp)
    try:
        if to == "gguf":
            write_gguf(merged(a), load_tokenizer(a), tmp, quant, name=f"{a.record['model']} {a.record['stage']}")
            kind = "gguf"
        elif a.mergeable:
            write_hf(a, tmp)
            kind = "hf"
        else:
            write_adapter(a, tmp, out)
            kind = "adapter"
            note = f"{a.par.name} cannot merge into the base; exported the adapter with its base reference"
        _publish(tmp, out)
    finally:
        _remove(tmp)  # gone already unless the export failed
    return Exported(path=out, kind=kind, bytes=size_of(out), seconds=time.perf_counter() - t0, note=note)


def export_run(record: dict, to: str, out: Path | str, quant: str = "f16", force: bool = False) -> Exported:
    """``export`` for a result record (a row of ``read_runs``): what a UI's export action calls."""
    from bench.trained import artifacts

    check_out(Path(out).expanduser().absolute(), force)
    return export(artifacts(record), to, out, quant, force)
