"""PassRegistry: filled from modules (classes marked by @register_pass), from the
`edgec.passes` entry-point group (plugins) and from single-file plugins (`--plugin FILE.py`,
`load_plugin_file`). A duplicate name is an error."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from edgec.errors import PipelineError
from edgec.infra.pass_base import Pass, is_registered_pass
from edgec.safe_read import check_regular_file

ENTRY_POINT_GROUP = "edgec.passes"


class PassRegistry:
    def __init__(self) -> None:
        self._passes: dict[str, type[Pass]] = {}
        self._origin: dict[str, str] = {}
        self._plugin_files: dict[str, list[str]] = {}  # resolved path -> pass names it added

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


def load_plugin_file(path: str | Path, registry: PassRegistry | None = None) -> list[str]:
    """Import the Python file `path` as a module and add its @register_pass classes to `registry`
    (default: `default_registry()`, the one pipelines are parsed with). Loading the same file into
    the same registry again is a no-op. Returns the pass names the file defines.

    A missing file, one that is not a regular file (a FIFO, a device), a file that fails to
    import, one without passes, or a pass name that is already taken is a PipelineError (exit 2)
    naming the file. Exceptions raised later inside a
    plugin pass's `run` are reported like any pass crash (exit 1)."""
    registry = registry if registry is not None else default_registry()
    resolved = Path(path).expanduser().resolve()
    key = str(resolved)
    if key in registry._plugin_files:
        return list(registry._plugin_files[key])
    check_regular_file(resolved, f"plugin '{path}'", PipelineError)  # not a FIFO importlib would block on
    name = f"edgec_plugin_{resolved.stem}_{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    try:
        spec = importlib.util.spec_from_file_location(name, resolved)
        if spec is None or spec.loader is None:
            raise ImportError("not a Python source file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise PipelineError(f"plugin '{path}' failed to import: {type(e).__name__}: "
                            f"{' '.join(str(e).split())[:300]}") from None
    found = [obj for _, obj in inspect.getmembers(module, is_registered_pass) if obj.__module__ == name]
    if not found:
        raise PipelineError(f"plugin '{path}' defines no @register_pass class")
    for cls in found:  # all or nothing
        if cls.name in registry:
            raise PipelineError(f"plugin '{path}': duplicate pass name '{cls.name}' "
                                f"(already defined by {registry._origin[cls.name]})")
    for cls in found:
        registry.add(cls, origin=f"plugin {path}")
    registry._plugin_files[key] = [cls.name for cls in found]
    return [cls.name for cls in found]
