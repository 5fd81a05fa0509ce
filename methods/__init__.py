"""Parameterizations and objectives. Importing this package registers every method file."""
import importlib
import pkgutil

from methods.registry import OBJECTIVES, PARAMETERIZATIONS, check_combination, objective, parameterization

_SKIP = {"registry", "errors"}

for _m in pkgutil.iter_modules(__path__):
    if _m.name not in _SKIP and not _m.name.startswith("_"):
        importlib.import_module(f"methods.{_m.name}")

__all__ = ["OBJECTIVES", "PARAMETERIZATIONS", "check_combination", "objective", "parameterization"]
