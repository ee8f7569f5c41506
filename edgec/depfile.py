"""Build-tool dependency files (`edgec compile --depfile OUT.d`): Make/Ninja syntax, as `gcc -MD`
writes them, listing every file a compile read, so that a build reruns edgec exactly when one
of them changes:

    art/metadata.json: model.onnx model.onnx.data records.json my_pass.py calib/0.npy ...

What is listed: the model; its external data files; the --config file; a board file given as
--target; the tuning records (--records); the single-file
plugins (--plugin) and the source files of the installed `edgec.passes` entry-point plugins and
of the `edgec.targets` entry-point boards (and the board files they name); the
calibration data files (--quantize with --calibration-data). The target is the artifact's
metadata.json, the last file edgec writes: make it the build rule's output (docs/build-systems.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from edgec.output_paths import write_file_atomic


def escape(path: str) -> str:
    """A path as a Make/Ninja depfile word: spaces, '#', ':' after a drive-less word and '$' escaped
    the way GNU Make reads them (Ninja's depfile parser accepts the same)."""
    out = path.replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")
    return out


def external_data_files(model_path: str | os.PathLike) -> list[Path]:
    """The external data files a model's tensors name (resolved beside the model), in first-use order."""
    import onnx

    from edgec.ir.loader import iter_tensors

    model_path = Path(model_path)
    proto = onnx.load_model(str(model_path), load_external_data=False)
    seen: dict[Path, None] = {}
    for t in iter_tensors(proto.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = {e.key: e.value for e in t.external_data}.get("location")
            if loc:
                seen.setdefault(model_path.parent / loc, None)
    return list(seen)


def entry_point_plugin_files(group: str = "edgec.passes") -> list[Path]:
    """The source files of the modules registered under an entry-point group (`edgec.passes`)."""
    from importlib.metadata import entry_points
    from importlib.util import find_spec

    files = []
    for ep in entry_points(group=group):
        try:
            spec = find_spec(ep.module)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin and os.path.isfile(spec.origin):
            files.append(Path(spec.origin))
    return files


def calibration_files(directory: str | None) -> list[Path]:
    if not directory or not os.path.isdir(directory):
        return []
    return sorted(p for p in Path(directory).iterdir() if p.is_file())


def compile_dependencies(model_path, records: str | None = None, plugins=(), calibration_data: str | None = None,
                         external: list[Path] | None = None, config: str | None = None,
                         target: str | None = None) -> list[Path]:
    """Every file `edgec compile MODEL` read with these options (no duplicates); `external`: the
    model's external data files when already known (else the model is parsed for them); `config`:
    the --config file; `target`: the --target value (a board file is a dependency)."""
    from edgec.targets.boards import entry_point_board_files, is_board_file

    deps = [Path(model_path), *(external_data_files(model_path) if external is None else external)]
    if config:
        deps.append(Path(config))
    if target and is_board_file(target):
        deps.append(Path(target))
    if records:
        deps.append(Path(records))
    deps += [Path(p) for p in plugins]
    deps += entry_point_plugin_files()
    deps += entry_point_board_files()
    deps += calibration_files(calibration_data)
    return list(dict.fromkeys(deps))


def write_depfile(path: str | os.PathLike, target: str | os.PathLike, deps: list[Path]) -> None:
    """Write `target: deps...` (one dependency per continued line) atomically."""
    lines = [escape(str(target)) + ":"] + [" " + escape(str(d)) for d in deps]
    write_file_atomic(path, " \\\n".join(lines) + "\n", "depfile")
