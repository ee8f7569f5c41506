"""The compile cache (`edgec compile --cache-dir DIR | --no-cache`): a content-addressed store of
artifacts, so that a build system calling edgec again on unchanged inputs gets the artifact in
milliseconds instead of a compile.

Key: SHA-256 over the compile's options (every CLI parameter except where the outputs go and
what is printed), the content of every file named by an option (model, --config, --records,
--plugin files, a board file given as --target, calibration data files), the source files of
installed `edgec.passes` plugins and `edgec.targets` boards, the
versions of edgec, TVM, onnx, onnxruntime and numpy, a digest of edgec's own source files (a
development checkout that changed is a new compiler), and the EDGEC_* environment. Files only
the model names (external data) are found when the model is parsed, so each entry records them
with their hashes (`deps.json`) and a lookup checks them: a changed external data file is a miss.

A hit is checked like any artifact (edgec.artifact_check: the manifest's sizes and hashes), then
copied into the output directory atomically. A damaged entry is a miss (and is replaced). This
module imports no onnx/TVM: a hit costs hashing and copying only.

Entries live under DIR/compile/<key[:2]>/<key>/ (the default DIR: edgec's cache directory,
edgec.user_cache); the oldest entries are evicted when the store exceeds EDGEC_CACHE_MAX_MB
(default 4096 MiB).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

KEY_FORMAT = 1
# the cache's own settings, not the compile's (other EDGEC_* variables, present or future, are keyed)
_ENV_NOT_IN_KEY = {"EDGEC_CACHE", "EDGEC_COMPILE_CACHE", "EDGEC_CACHE_MAX_MB"}
DEFAULT_MAX_MB = 4096
_SOURCE_SUFFIXES = (".py", ".c", ".cc", ".h", ".json", ".toml", ".txt", ".cmake")


def file_digest(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def source_digest() -> str:
    """A digest of edgec's own source files (edgec, edgec.passes, edgec.targets)."""
    from importlib.util import find_spec

    h = hashlib.sha256()
    for pkg in ("edgec", "edgec.passes", "edgec.targets"):
        spec = find_spec(pkg)
        for root in (spec.submodule_search_locations or []) if spec else []:
            for p in sorted(Path(root).rglob("*")):
                if p.suffix in _SOURCE_SUFFIXES and p.is_file() and "__pycache__" not in p.parts:
                    h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def cache_key(options: dict, files: dict[str, list[Path]]) -> str:
    """The key of a compile: `options` (JSON-able) and, per option name, the files whose content
    it depends on."""
    from edgec.artifact import package_versions
    from edgec.depfile import entry_point_plugin_files
    from edgec.targets.boards import entry_point_board_files

    contents = {name: [[p.name, file_digest(p)] for p in paths] for name, paths in sorted(files.items())}
    contents["entry_point_plugins"] = [[p.name, file_digest(p)] for p in entry_point_plugin_files()]
    contents["entry_point_boards"] = [[p.name, file_digest(p)] for p in entry_point_board_files()]
    doc = {"format": KEY_FORMAT, "options": options, "files": contents, "versions": package_versions(),
           "source": source_digest(),
           "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("EDGEC_") and k not in _ENV_NOT_IN_KEY}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


# CLI parameters that say where outputs go or what is printed, not what is compiled
_NOT_IN_KEY = {"out", "report", "timing", "dump_ir", "trace_rewrites", "print_pipeline"}
_META_NOT_IN_KEY = {"edgec.depfile", "edgec.cache_dir", "edgec.no_cache", "edgec.plugins", "edgec.config"}


def cli_key(params: dict, meta: dict) -> tuple[str, dict[str, list[Path]]]:
    """(the key, the files it hashed) of `edgec compile` called with click's `params` and the
    `edgec.*` entries of its context's meta; file-valued options count by name and content."""
    files = {"model": [Path(params["model"])], "plugins": [Path(p) for p in meta.get("edgec.plugins", ())]}
    if params.get("records"):
        files["records"] = [Path(params["records"])]
    from edgec.targets.boards import is_board_file

    if params.get("target") and is_board_file(params["target"]) and os.path.isfile(params["target"]):
        files["target"] = [Path(params["target"])]  # a board file: its content is the target
    if meta.get("edgec.config"):  # its settings are in `params` too; its content is keyed as well
        files["config"] = [Path(meta["edgec.config"])]
    if params.get("calibration_data"):
        from edgec.depfile import calibration_files

        files["calibration_data"] = calibration_files(params["calibration_data"])
    options = {k: v for k, v in params.items() if k not in _NOT_IN_KEY}
    for k in ("model", "records", "calibration_data", *(("target",) if "target" in files else ())):
        if options.get(k):
            options[k] = os.path.basename(str(options[k]))  # the content is in the files' digests
    options.update({k: v for k, v in meta.items() if k.startswith("edgec.") and k not in _META_NOT_IN_KEY})
    if str(params.get("target", "")).strip() == "host":  # what "host" means here: CPU features, L2 size
        from edgec.targets.registry import host_target

        options["host_target"] = host_target().to_json()
    return cache_key(options, files), files


class CompileCache:
    def __init__(self, root: str | os.PathLike | None = None):
        from edgec.user_cache import cache_dir

        self.root = cache_dir(root) / "compile"

    def entry(self, key: str) -> Path:
        return self.root / key[:2] / key

    def lookup(self, key: str, model_path: str | os.PathLike) -> tuple[Path, list[Path]] | None:
        """(the cached artifact directory of `key`, the external data files the model names) when
        the entry is intact and those files are unchanged; None otherwise."""
        from edgec.artifact_check import check_artifact
        from edgec.errors import ArtifactError

        e = self.entry(key)
        try:
            deps = json.loads((e / "deps.json").read_text())
            base = Path(model_path).parent
            external = []
            for rel, digest in deps.get("external_data", []):
                external.append(base / rel)
                if file_digest(base / rel) != digest:
                    return None
            check_artifact(e / "artifact")
        except (OSError, ValueError, TypeError, ArtifactError):
            return None
        os.utime(e)  # recently used: evicted last
        return e / "artifact", external

    def store(self, key: str, artifact: Path, model_path: str | os.PathLike) -> None:
        """Copy a fresh artifact in (atomically: a rename of a complete entry); never fails the compile."""
        from edgec.depfile import external_data_files

        e = self.entry(key)
        tmp = e.parent / f".{key}.tmp-{os.getpid()}"
        try:
            base = Path(model_path).parent
            deps = {"external_data": [[os.path.relpath(p, base), file_digest(p)] for p in external_data_files(model_path)]}
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            shutil.copytree(artifact, tmp / "artifact", copy_function=shutil.copy)
            (tmp / "deps.json").write_text(json.dumps(deps))
            shutil.rmtree(e, ignore_errors=True)
            os.rename(tmp, e)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        self.evict()

    def evict(self) -> None:
        """Remove the least recently used entries beyond EDGEC_CACHE_MAX_MB."""
        limit = int(os.environ.get("EDGEC_CACHE_MAX_MB", DEFAULT_MAX_MB)) << 20
        entries = []
        for e in self.root.glob("*/*"):
            if e.is_dir() and not e.name.startswith("."):
                size = sum(f.stat().st_size for f in e.rglob("*") if f.is_file())
                entries.append((e.stat().st_mtime, size, e))
        total = sum(s for _, s, _ in entries)
        for _, size, e in sorted(entries):
            if total <= limit:
                break
            shutil.rmtree(e, ignore_errors=True)
            total -= size


def copy_artifact(src: Path, out: str | os.PathLike, model_path: str | os.PathLike) -> float:
    """Copy a cached artifact to `out` as edgec writes artifacts (atomically); returns seconds."""
    from edgec.atomic_output import atomic_directory

    t0 = time.perf_counter()
    with atomic_directory(out, [model_path]) as tmp:
        for f in src.iterdir():
            if f.is_dir():
                shutil.copytree(f, tmp / f.name, copy_function=shutil.copy)
            else:
                shutil.copy(f, tmp / f.name)  # fresh mtimes: the build sees a new output
    return time.perf_counter() - t0
