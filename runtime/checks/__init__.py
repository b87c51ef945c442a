"""Runtime checks (RT codes): one small class per check, discovered by walking this package."""

from __future__ import annotations

import importlib
import pkgutil

from .base import Check

__all__ = ["Check", "all_check_classes"]


def all_check_classes() -> list[type[Check]]:
    """Every concrete Check subclass defined in this package, ordered by code."""
    found: dict[str, type[Check]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, Check) and obj is not Check and obj.code \
                    and obj.__module__ == mod.__name__:
                if obj.code in found and found[obj.code] is not obj:
                    raise RuntimeError(f"two runtime checks with code {obj.code}")
                found[obj.code] = obj
    return [found[c] for c in sorted(found)]
