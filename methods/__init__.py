"""Parameterizations and objectives: one file per method, each registering itself on import.

Each method file declares its card (methods/card.py) and imports torch/peft/trl only inside
its functions, so ``cards()`` loads every card in milliseconds; the files are imported on first
use of the registry (``methods.PARAMETERIZATIONS``, ``parameterization(name)``, ``cards()``).
"""
import importlib
import pkgutil

from methods import registry

_SKIP = {"registry", "card", "context"}
_loaded = False


def load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for m in pkgutil.iter_modules(__path__):
        if m.name not in _SKIP and not m.name.startswith("_"):
            importlib.import_module(f"methods.{m.name}")


def __getattr__(name: str):
    if name in ("OBJECTIVES", "PARAMETERIZATIONS"):
        load_all()
        return getattr(registry, name)
    if name in ("cards", "check_combination", "objective", "parameterization"):
        return getattr(registry, name)
    raise AttributeError(f"module 'methods' has no attribute {name!r}")


__all__ = ["OBJECTIVES", "PARAMETERIZATIONS", "cards", "check_combination", "load_all", "objective",
           "parameterization"]
