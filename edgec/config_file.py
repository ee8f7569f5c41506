"""Declarative compile settings (`edgec compile --config FILE`): the options of `edgec compile` as
TOML, so that a project keeps its target, pipeline, quantization and shapes in one reviewed file:

    # edgec.toml (top-level keys), or pyproject.toml under [tool.edgec]
    target = "armv8"
    passes = ["fold-constants", "eliminate-dead-code"]   # or one string, as --passes
    opt-level = 3
    input-shapes = { input = [1, 3, 224, 224] }
    symbolic-dims = true
    dims = { batch = "1..8" }                            # or [1, 8]
    plugins = ["passes/my_pass.py"]
    [quantize]                                           # [tool.edgec.quantize] in pyproject.toml
    mode = "int8"
    calibration-data = "calib/"
    method = "minmax"
    samples = 64

Every key is a `compile` option's long name without the dashes (`weights-file`, `io-layout`,
`max-nodes`, `records`, `emit`, `bundle`, `prune` where compile has --prune ...); the renamed ones
are in RENAMED and QUANTIZE_KEYS. Options on the command line override the file (the file's values
become click's defaults: `ctx.default_map`). Relative paths are relative to the file's directory.
Options saying where outputs go or what is printed (-o, --report, --depfile, --dump-ir, --timing,
--cache-dir ...) are not settings of the model's compile and are refused in the file. There is no
discovery: only the file given with --config is read (a build's command line names every input).
Misuse (a TOML syntax error, an unknown key, a value of the wrong type) is one line naming the
file and the key (ConfigError, exit 2).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import click

from edgec.errors import ConfigError

# config key -> compile's parameter name, where it is not the key with '-' as '_'
RENAMED = {"input-shapes": "input_shape", "dims": "dim_bounds", "plugins": "plugin"}
QUANTIZE_KEYS = {"mode": "quantize", "calibration-data": "calibration_data", "method": "calibration_method",
                 "samples": "calibration_samples", "group-size": "group_size"}
# parameters that say where outputs go, what is printed, or which cache serves the build
NOT_SETTINGS = {"model", "out", "print_pipeline", "report", "dump_ir", "timing", "trace_rewrites", "depfile",
                "cache_dir", "no_cache", "config"}
PATH_PARAMS = {"records", "calibration_data", "plugin"}
LIST_AS_TEXT = {"passes", "mattr", "emit"}  # a list of strings or the CLI's comma-separated text


def read_table(path: str | os.PathLike) -> dict:
    """The settings table of `path`: [tool.edgec] of a pyproject.toml, else the whole file."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror or e}") from None
    if Path(path).name == "pyproject.toml":
        table = doc.get("tool", {}).get("edgec")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: no [tool.edgec] table")
        return table
    return doc


def _where(path, prefix: str, key: str) -> str:
    return f"{path}: key '{prefix}{key}'"


def _sub(where: str, name: str) -> str:
    """The place of entry `name` of the table at `where` ("F: key 'dims'" -> "F: key 'dims.batch'")."""
    return f"{where[:-1]}.{name}'"


def _text_list(value, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    raise ConfigError(f"{where}: expected a string or a list of strings, got {_show(value)}")


def _show(value) -> str:
    return f"{type(value).__name__} {value!r}"


def _multiple(param: str, value, where: str, base: Path) -> tuple[str, ...]:
    """A repeatable option's values from the file's table or list."""
    if param == "input_shape":
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table of input name = [dims], got {_show(value)}")
        out = []
        for name, dims in value.items():
            if not (isinstance(dims, list) and dims and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                           for d in dims)):
                raise ConfigError(f"{_sub(where, name)}: expected a list of non-negative integers, got {_show(dims)}")
            out.append(f"{name}=" + ",".join(str(d) for d in dims))
        return tuple(out)
    if param == "dim_bounds":
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table of dim name = \"LO..HI\" or [LO, HI], got {_show(value)}")
        out = []
        for name, b in value.items():
            if isinstance(b, list) and len(b) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in b):
                b = f"{b[0]}..{b[1]}"
            if not isinstance(b, str):
                raise ConfigError(f"{_sub(where, name)}: expected \"LO..HI\" or [LO, HI], got {_show(b)}")
            out.append(f"{name}={b}")
        return tuple(out)
    if isinstance(value, str):
        value = [value]
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"{where}: expected a list of strings, got {_show(value)}")
    return tuple(str(base / v) for v in value) if param in PATH_PARAMS else tuple(value)


def _scalar(opt: click.Option, value, where: str, base: Path, ctx: click.Context):
    """`value` checked as `opt` takes it on the command line (its type, range and choices)."""
    if opt.is_flag or opt.secondary_opts or isinstance(opt.type, click.types.BoolParamType):
        ok, wanted = isinstance(value, bool), "true or false"
    elif isinstance(opt.type, click.types.IntParamType):
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(opt.type, click.types.FloatParamType):
        ok, wanted = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    else:
        ok, wanted = isinstance(value, str), "a string"
    if not ok:
        raise ConfigError(f"{where}: expected {wanted}, got {_show(value)}")
    if opt.name in PATH_PARAMS:
        value = str(base / value)
    elif opt.name == "target":
        from edgec.targets.boards import is_board_file

        if is_board_file(value):  # a board file (docs/boards.md), like the other paths
            value = str(base / value)
    if not opt.is_flag and not opt.secondary_opts:
        try:
            value = opt.type.convert(value, opt, ctx)
        except click.BadParameter as e:
            raise ConfigError(f"{where}: {' '.join(e.format_message().split())}") from None
    return value


def _options(command: click.Command) -> dict[str, click.Option]:
    return {p.name: p for p in command.params if isinstance(p, click.Option) and p.name not in NOT_SETTINGS}


def default_map(path: str | os.PathLike, ctx: click.Context) -> dict:
    """The file's settings as click defaults of `ctx.command` ({parameter name: value}), every key
    and value checked."""
    table = read_table(path)
    prefix = "tool.edgec." if Path(path).name == "pyproject.toml" else ""
    base = Path(path).resolve().parent
    opts = _options(ctx.command)
    inverse = {v: k for k, v in RENAMED.items()}
    under_quantize = set(QUANTIZE_KEYS.values()) - {"quantize"}  # `quantize = "int8"` is the short form
    top_level = {inverse.get(n, n.replace("_", "-")): n for n in opts if n not in under_quantize}
    out: dict = {}

    def put(key: str, param: str, value, where_prefix: str):
        opt, where = opts[param], _where(path, where_prefix, key)
        if param in LIST_AS_TEXT:
            value = _text_list(value, where)
        out[param] = _multiple(param, value, where, base) if opt.multiple else _scalar(opt, value, where, base, ctx)

    for key, value in table.items():
        if key == "quantize" and isinstance(value, dict):
            for qkey, qvalue in value.items():
                if qkey not in QUANTIZE_KEYS:
                    raise ConfigError(f"{path}: unknown key '{prefix}quantize.{qkey}' "
                                      f"(known: {', '.join(QUANTIZE_KEYS)})")
                put(qkey, QUANTIZE_KEYS[qkey], qvalue, f"{prefix}quantize.")
        elif key in top_level:
            put(key, top_level[key], value, prefix)
        else:
            raise ConfigError(f"{path}: unknown key '{prefix}{key}' (known: {', '.join(sorted(top_level))})")
    return out


def use_config(ctx: click.Context, param, value) -> None:
    """--config's callback (an eager option): the file's settings become the command's defaults,
    and its path is recorded for the depfile and the compile cache (ctx.meta["edgec.config"])."""
    if value is None:
        return
    ctx.default_map = {**(ctx.default_map or {}), **default_map(value, ctx)}
    ctx.meta["edgec.config"] = str(value)
