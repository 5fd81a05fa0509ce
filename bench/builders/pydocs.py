"""pydocs-dapt: the Python standard library's own docstrings as a domain corpus.

    tunebench data prepare pydocs-dapt

Every Python install carries its stdlib sources; no package or root access is needed. Each
module becomes a "page" (module docstring, then every public class and function with its
signature and docstring, read with ``ast`` so nothing is imported). Pages are cut into chunks of
at most ``max_chars`` at paragraph breaks. Splits are by top-level package (``email.*`` all
in one split), seeded, so every test chunk comes from pages the model never trained on.

The corpus depends on the interpreter's version (3.11 here): the manifest's sha256 is stable
for one Python release, not across releases.
"""
from __future__ import annotations

import ast
import random
import sys
import sysconfig
from pathlib import Path

SKIP = {"test", "tests", "idlelib", "lib2to3", "turtledemo", "ensurepip", "site-packages", "__pycache__",
        "tkinter", "pydoc_data", "__phello__", "venv"}


def stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def module_files() -> list[tuple[str, Path]]:
    """(dotted module name, file) for every stdlib module, sorted by name."""
    root = stdlib()
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in SKIP or part.startswith("config-") for part in rel.parts) or "-" in path.stem:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and not any(p.startswith("_") for p in parts):
            out.append((".".join(parts), path))
    return sorted(out)


def _signature(node) -> str:
    try:
        return f"({ast.unparse(node.args)})"
    except Exception:  # very old syntax corner cases; the name alone still documents it
        return "(...)"


def entries(path: Path) -> list[tuple[str, str, str]]:
    """[(qualified name, signature, docstring)] of the module's public classes and functions."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return []
    out = []
    mod_doc = ast.get_docstring(tree)
    if mod_doc:
        out.append(("", "", mod_doc))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            doc = ast.get_docstring(node)
            sig = "" if isinstance(node, ast.ClassDef) else _signature(node)
            if doc:
                out.append((node.name, sig, doc))
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and not sub.name.startswith("_"):
                        sdoc = ast.get_docstring(sub)
                        if sdoc:
                            out.append((f"{node.name}.{sub.name}", _signature(sub), sdoc))
    return out


def page(module: str, ents: list[tuple[str, str, str]]) -> str:
    parts = [f"Module {module}"]
    for name, sig, doc in ents:
        parts.append(doc if not name else f"{module}.{name}{sig}\n{doc}")
    return "\n\n".join(parts)


def chunks(text: str, max_chars: int) -> list[str]:
    """Paragraph-aligned pieces of at most max_chars (a longer paragraph is cut at a line)."""
    out, cur = [], ""
    for para in text.split("\n\n"):
        while len(para) > max_chars:
            cut = para.rfind("\n", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            if cur:
                out.append(cur)
                cur = ""
            out.append(para[:cut])
            para = para[cut:].lstrip("\n")
        if cur and len(cur) + 2 + len(para) > max_chars:
            out.append(cur)
            cur = ""
        cur = f"{cur}\n\n{para}" if cur else para
    if cur:
        out.append(cur)
    return [c for c in out if c.strip()]


def split_modules(seed: int, test_fraction: float) -> dict[str, list[tuple[str, Path]]]:
    """Modules grouped by top-level package; a seeded share of the packages is held out."""
    groups: dict[str, list] = {}
    for name, path in module_files():
        groups.setdefault(name.split(".")[0], []).append((name, path))
    tops = sorted(groups)
    random.Random(seed).shuffle(tops)
    n_test = round(len(tops) * test_fraction)
    return {"test": [m for t in sorted(tops[:n_test]) for m in groups[t]],
            "train": [m for t in sorted(tops[n_test:]) for m in groups[t]]}


def build(task, limit: int | None = None, progress=None) -> dict:
    opt = task.options
    out = {}
    for split, mods in split_modules(task.seed, opt["test_fraction"]).items():
        recs = []
        for name, path in mods:
            ents = entries(path)
            if ents:
                recs += [{"text": c} for c in chunks(page(name, ents), opt["max_chars"]) if len(c) >= opt["min_chars"]]
        if progress:
            progress(f"{split}: {len(recs)} chunks")
        random.Random(task.seed).shuffle(recs)
        out[split] = {"text": recs[: task.splits[split]]}
    return out


if __name__ == "__main__":  # python -m bench.builders.pydocs: corpus size per split
    for s, mods in split_modules(0, 0.15).items():
        print(s, len(mods), sys.version.split()[0])
