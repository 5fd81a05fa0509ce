"""Which model the wizard can actually launch here: a local HF folder or a name bench can load.

    python -m advisor.tui.local_models llama-3.1-8b smollm2-135m ~/models/qwen

``launchable(text)`` returns what ``tunebench train`` will load (a name bench prepares, or a folder)
or the one line that says why not -- a catalog model this machine does not hold is named as
such, with how to get it; it is never silently replaced by another model. ``tokenizer_for`` loads
the tokenizer of a local model (for token lengths of the user's data), or None.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def _known() -> list[str]:
    from bench.models import KNOWN

    return list(KNOWN)


def local_folder(text: str) -> Path | None:
    """The HF folder ``text`` names on this machine: a path, or a name prepared under TUNEBENCH_HOME/models."""
    from bench.home import models_dir

    t = text.strip()
    if not t:
        return None
    p = Path(t).expanduser()
    if (p / "config.json").is_file():
        return p.resolve()
    if "/" not in t and (models_dir() / t / "config.json").is_file():
        return models_dir() / t
    return None


def launchable(text: str) -> tuple[str | None, str | None]:
    """(what ``tunebench train`` loads, None) or (None, one line naming the model and how to get it)."""
    from advisor.catalogs import models
    from bench.home import models_dir

    t = text.strip()
    if not t:
        return None, "model is required"
    if t in _known():
        return t, None  # bench builds these itself (tiny ones in seconds, smollm2 from its package)
    folder = local_folder(t)
    if folder is not None:
        return str(folder), None
    p = Path(t).expanduser()
    if "/" in t or t.startswith((".", "~")):
        what = "has no config.json" if p.is_dir() else "not found"
        return None, f"model folder {p} {what} (accepted: an HF model folder with config.json)"
    if t.lower() in models():
        return None, (f"{t} is not on this machine: download it as an HF folder (e.g. huggingface-cli download "
                      f"ORG/NAME --local-dir DIR) and enter that folder as the model, or save it to "
                      f"{models_dir() / t}")
    return None, (f"unknown model '{t}' (accepted: {', '.join(_known())}, a folder under {models_dir()}, "
                  "or an HF model folder with config.json)")


def tokenizer_for(text: str):
    """The tokenizer of a local model (a callable like ``tok(text)``), or None when there is none here."""
    folder = local_folder(text)
    if folder is None or not any((folder / f).is_file() for f in TOKENIZER_FILES):
        return None
    return _tokenizer(str(folder))


@functools.lru_cache(maxsize=2)
def _tokenizer(folder: str):
    # Cached: the Task step re-reads the data as the path is typed; loading once is enough.
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["smollm2-135m", "llama-3.1-8b"]:
        print(name, "->", launchable(name))
