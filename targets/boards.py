"""Board presets as data: a TOML or JSON file (or an `edgec.targets` entry point) describing a
target, so that a user's board needs no change to edgec (docs/boards.md).

    name = "rpi3"                      # required; lower case, not a built-in target's name
    description = "Raspberry Pi 3 Model B (Cortex-A53)"
    base = "armv8"                     # a built-in target to derive from (toolchain, emulator, layout)
    mcpu = "cortex-a53"                # overrides of the base's TVM target
    mattr = ["+neon"]
    vector_bits = 128
    num_cores = 4                      # TVM's "num-cores" target attribute
    l2_bytes = 524288                  # per-core L2 cache (conv schedules size weight panels by it)
    l1d_bytes = 32768                  # per-core L1 data cache (and register tiles' inner panels)

Without `base`, `arch` and a `tvm` table (TVM target JSON with "kind") are required. Every key
is checked: an unknown key, a wrong type or a bad value is a TargetError (exit 2) naming the file
and the key. `edgec compile --target path/to/board.toml` uses a board file; installed packages
add boards through the `edgec.targets` entry-point group (the entry point loads a TargetSpec, a
board file path, or a list of them). The board file is a dependency in `--depfile` output and
part of the compile cache key.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgec.errors import TargetError

ENTRY_POINT_GROUP = "edgec.targets"
BOARD_SUFFIXES = (".toml", ".json")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
ARCHES = ("x86_64", "aarch64", "armv7", "cuda", "opencl")

# key -> (type check, what the value must be)
_STR, _INT, _STRS, _TABLE = "a string", "a positive integer", "a list of strings", "a table (TVM target JSON)"
KEYS: dict[str, str] = {
    "name": _STR, "description": _STR, "base": _STR, "arch": _STR, "tvm": _TABLE,
    "mcpu": _STR, "mattr": _STRS, "vector_bits": _INT, "num_cores": _INT, "l2_bytes": _INT, "l1d_bytes": _INT,
    "cross_compiler": _STR, "toolchain_package": _STR, "emulator": _STRS,
    "layout": _STR, "dtypes": _STRS, "features": _STRS, "runtime": _STR,
}
_CHOICES = {"arch": ARCHES, "layout": ("NCHW", "NHWC"), "runtime": ("vm", "plan")}


def is_board_file(target: str) -> bool:
    """Whether a --target value names a board file (a path ending in .toml/.json), not a target
    name or a TVM target JSON object."""
    t = target.strip()
    return not t.startswith("{") and t.lower().endswith(BOARD_SUFFIXES)


def read_board_file(path: str | Path) -> dict:
    """The board file's table (TOML or JSON by suffix); TargetError naming the file otherwise.
    Only a regular file of at most 1 MiB is read (not a FIFO that would block, not a device)."""
    from edgec.safe_read import read_regular_file

    p = Path(path)
    if not p.exists():
        raise TargetError(f"board file '{path}' does not exist")
    raw = read_regular_file(p, f"board file '{path}'", TargetError, max_bytes=1 << 20)
    try:
        text = raw.decode("utf-8")
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except ValueError as e:  # UnicodeDecodeError, JSONDecodeError and TOMLDecodeError are ValueErrors
        raise TargetError(f"board file '{path}' is not valid {p.suffix[1:].upper()}: "
                          f"{' '.join(str(e).split())[:300]}") from None
    if not isinstance(data, dict):
        raise TargetError(f"board file '{path}' must hold a table (an object), not {type(data).__name__}")
    return data


def board_from_dict(data: dict, source: str):
    """A TargetSpec from a board table; `source` (the file, or the entry point) is named in errors."""
    from edgec.targets.registry import TARGETS

    def bad(key: str, why: str) -> TargetError:
        return TargetError(f"{source}: key '{key}' {why}")

    for key in data:
        if key not in KEYS:
            raise bad(key, f"is unknown (known: {', '.join(sorted(KEYS))})")
    for key, value in data.items():
        _check_type(key, value, bad)
        if key in _CHOICES and value not in _CHOICES[key]:
            raise bad(key, f"must be one of {', '.join(_CHOICES[key])}, not '{value}'")
    name = data.get("name")
    if name is None:
        raise bad("name", "is required")
    if not _NAME.match(name):
        raise bad("name", f"'{name}' must be lower case letters, digits, '.', '_' or '-'")
    builtin = {t.name: t for t in TARGETS}
    if name in builtin or name == "host":
        raise bad("name", f"'{name}' is a built-in target; give the board its own name")
    if "base" in data:
        if data["base"] not in builtin:
            raise bad("base", f"'{data['base']}' is not a built-in target (known: {', '.join(sorted(builtin))})")
        spec = builtin[data["base"]]
        tvm = {**spec.tvm, **data.get("tvm", {})}
        arch = data.get("arch", spec.arch)
        description = data.get("description", f"{spec.description}, as board '{name}'")
    else:
        for key in ("arch", "tvm"):
            if key not in data:
                raise bad(key, "is required when there is no 'base'")
        spec = None
        tvm = dict(data["tvm"])
        arch = data["arch"]
        description = data.get("description", f"board '{name}'")
    if "kind" not in tvm or not isinstance(tvm["kind"], str):
        raise bad("tvm", 'needs a "kind" (e.g. "llvm")')
    for key, attr in (("mcpu", "mcpu"), ("mattr", "mattr"), ("num_cores", "num-cores")):
        if key in data:
            if tvm["kind"] != "llvm":
                raise bad(key, f"applies to CPU (llvm) targets only, not kind '{tvm['kind']}'")
            tvm[attr] = data[key]
    if "mattr" in data and any(not a or a[0] not in "+-" for a in data["mattr"]):
        raise bad("mattr", "entries must start with '+' or '-' (e.g. \"+neon\")")
    fields: dict[str, Any] = {"name": name, "description": description, "tvm": tvm, "arch": arch,
                              "aliases": (), "source": source}
    for key in ("cross_compiler", "toolchain_package", "layout", "vector_bits", "runtime", "l2_bytes", "l1d_bytes"):
        if key in data:
            fields[key] = data[key]
    for key in ("emulator", "dtypes", "features"):
        if key in data:
            fields[key] = tuple(data[key])
    if spec is None:
        from edgec.targets.registry import TargetSpec

        return TargetSpec(**fields)
    return replace(spec, **fields)


def _check_type(key: str, value: Any, bad) -> None:
    want = KEYS[key]
    ok = {
        _STR: isinstance(value, str) and value != "",
        _INT: isinstance(value, int) and not isinstance(value, bool) and value > 0,
        _STRS: isinstance(value, list) and all(isinstance(v, str) and v for v in value),
        _TABLE: isinstance(value, dict),
    }[want]
    if not ok:
        raise bad(key, f"must be {want}, got {json.dumps(value, default=str)}")


def load_board(path: str | Path, check_llvm_names: bool = True):
    """The TargetSpec a board file describes. With `check_llvm_names`, the CPU and features are
    checked against LLVM's names for the triple (imports TVM)."""
    spec = board_from_dict(read_board_file(path), f"board file '{path}'")
    if check_llvm_names:
        check_board_llvm_names(spec)
    return spec


def check_board_llvm_names(spec) -> None:
    """A TargetError naming the board's source and key when LLVM does not know its mcpu/mattr or
    one of its `features` tags (CPU boards)."""
    if not spec.is_cpu:
        return
    from edgec.targets.tvm.llvm_names import check_cpu_and_features, check_feature_tags

    if "mcpu" in spec.tvm or "mattr" in spec.tvm:
        check_cpu_and_features(spec.tvm, f"{spec.source}: key")
    if spec.features:
        check_feature_tags(spec.tvm, spec.features, f"{spec.source}: key")


def entry_point_boards() -> list:
    """Boards installed packages add through the `edgec.targets` entry-point group; each entry
    point loads a TargetSpec, a board file path, or a list/tuple of them."""
    return [spec for spec, _ in _entry_point_items()]


def entry_point_board_files() -> list[Path]:
    """The files the `edgec.targets` entry points read: their modules' sources and the board files
    they name (for --depfile and the compile cache key)."""
    from edgec.depfile import entry_point_plugin_files

    files = entry_point_plugin_files(ENTRY_POINT_GROUP)
    return list(dict.fromkeys(files + [f for _, f in _entry_point_items() if f is not None]))


def _entry_point_items() -> list[tuple[Any, Path | None]]:
    from importlib.metadata import entry_points

    from edgec.targets.registry import TargetSpec

    out = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point '{ep.name}' ({ep.value})"
        try:
            obj = ep.load()
        except Exception as e:
            raise TargetError(f"{where} of group {ENTRY_POINT_GROUP} failed to load: "
                              f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") from None
        for item in obj if isinstance(obj, (list, tuple)) else [obj]:
            if isinstance(item, TargetSpec):
                out.append((item if item.source else replace(item, source=where), None))
            elif isinstance(item, (str, Path)):
                out.append((load_board(item, check_llvm_names=False), Path(item)))
            else:
                raise TargetError(f"{where} gave a {type(item).__name__}; expected a TargetSpec or a board file path")
    return out
