"""PassRegistry: filled from modules (classes marked by @register_pass) and from the
`edgec.passes` entry-point group (plugins). A duplicate name is an error."""

from __future__ import annotations

import importlib
import inspect
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType

from edgec.errors import PipelineError
from edgec.infra.pass_base import Pass, is_registered_pass

ENTRY_POINT_GROUP = "edgec.passes"


class PassRegistry:
    def __init__(self) -> None:
        self._passes: dict[str, type[Pass]] = {}
        self._origin: dict[str, str] = {}

    def add(self, cls: type[Pass], origin: str = "") -> None:
        if not is_registered_pass(cls):
            raise TypeError(f"{cls.__name__} is not decorated with @register_pass")
        if cls.name in self._passes and self._passes[cls.name] is not cls:
            raise PipelineError(
                f"duplicate pass name '{cls.name}': {self._origin[cls.name]} and {origin or cls.__module__}"
            )
        self._passes[cls.name] = cls
        self._origin[cls.name] = origin or cls.__module__

    def add_module(self, module: ModuleType | str) -> None:
        mod = importlib.import_module(module) if isinstance(module, str) else module
        for _, obj in inspect.getmembers(mod, is_registered_pass):
            if obj.__module__ == mod.__name__:
                self.add(obj)

    def add_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        for ep in entry_points(group=group):
            obj = ep.load()
            if isinstance(obj, ModuleType):
                self.add_module(obj)
            elif is_registered_pass(obj):
                self.add(obj, origin=f"entry point {ep.name}")
            else:
                raise PipelineError(f"entry point '{ep.name}' ({ep.value}) is neither a module nor a registered Pass")

    def get(self, name: str) -> type[Pass]:
        try:
            return self._passes[name]
        except KeyError:
            raise PipelineError(f"unknown pass '{name}' (see `edgec passes`)") from None

    def names(self) -> list[str]:
        return sorted(self._passes)

    def items(self):
        return sorted(self._passes.items())

    def __contains__(self, name: str) -> bool:
        return name in self._passes


def builtin_registry() -> PassRegistry:
    """A fresh registry with edgec's built-in passes only."""
    from edgec.passes import BUILTIN_MODULES

    reg = PassRegistry()
    for m in BUILTIN_MODULES:
        reg.add_module(m)
    return reg


@lru_cache(maxsize=1)
def default_registry() -> PassRegistry:
    """Built-in passes plus installed plugins (entry-point group `edgec.passes`). Cached, read-only by convention."""
    reg = builtin_registry()
    reg.add_entry_points()
    return reg
