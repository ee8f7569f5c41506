"""Artifacts: an output directory with the compiled library, metadata.json and a C header.

Written atomically (edgec.atomic_output). metadata.json lists every other file of the artifact with
its size and SHA-256, and carries a checksum of itself: `load_artifact` checks the format, the
metadata's structure, that every path stays inside the artifact, and every file's size and hash
(edgec.artifact_check) before anything in it is loaded or run. A model.so replaced by junk, a
metadata.json edited by hand or truncated, or a library path pointing out of the artifact is a
one-line error (exit 2), never a load.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from edgec.tensor_info import TensorInfo

FORMAT = "edgec-artifact/2"
METADATA = "metadata.json"
PARTIAL_MARK = ".edgec-partial"  # marks an artifact being written (edgec.atomic_output); never listed


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


_HASHED: dict[tuple, str] = {}  # (path, size, mtime_ns, inode) -> sha256, for repeated metadata writes


def file_hash(path: Path) -> str:
    """sha256_file, remembered per (device, inode, size, mtime) within this process: compile
    writes metadata.json more than once and then checks what it wrote."""
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = sha256_file(path)
    return _HASHED[key]


def file_manifest(directory: Path) -> dict[str, dict]:
    """Every file under `directory` but metadata.json: relative path -> {"bytes", "sha256"}."""
    out = {}
    for f in sorted(directory.rglob("*")):
        rel = f.relative_to(directory).as_posix()
        if rel in (METADATA, PARTIAL_MARK) or f.is_dir():
            continue
        out[rel] = {"bytes": f.stat().st_size, "sha256": file_hash(f)}
    return out


def metadata_checksum(meta: dict) -> str:
    """SHA-256 of the metadata without its "checksum" field, in a canonical JSON form."""
    body = {k: v for k, v in meta.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_metadata(directory: Path, meta: dict) -> None:
    """Write `directory`/metadata.json with the manifest of the files now in `directory` and the
    checksum (both updated in `meta`)."""
    meta["files"] = file_manifest(directory)
    meta["checksum"] = metadata_checksum(meta)
    (directory / METADATA).write_text(json.dumps(meta, indent=2) + "\n")


def package_versions() -> dict[str, str]:
    out = {}
    for pkg in ("edgec", "apache-tvm", "apache-tvm-ffi", "onnx", "onnx-ir", "onnxruntime", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def host_info() -> dict:
    """Where and with what a compile ran: build info (`Artifact.build_info`), never artifact bytes."""
    import platform

    return {"host": {"machine": platform.machine(), "system": platform.system(), "python": platform.python_version(),
                     "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()}}


@dataclass
class Artifact:
    path: Path
    metadata: dict
    # what the compile that wrote the artifact measured (pass and backend seconds, host): kept
    # out of the artifact's files so that the same model and options give the same bytes;
    # empty for an artifact loaded from disk. `edgec compile --report` shows it.
    build_info: dict = field(default_factory=dict, compare=False)

    @property
    def library(self) -> Path:
        return self.path / self.metadata["library"]

    @property
    def inputs(self) -> list[TensorInfo]:
        return [TensorInfo(t["name"], tuple(t["shape"]), t["dtype"]) for t in self.metadata["inputs"]]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [TensorInfo(t["name"], tuple(t["shape"]), t["dtype"]) for t in self.metadata["outputs"]]

    @property
    def target(self) -> dict:
        return self.metadata["target"]

    def run(self, inputs: dict | None = None, threads: int | None = None, **named) -> dict:
        """Run the artifact on `inputs` (name -> numpy array; or as keywords), returning name ->
        numpy array. Host artifacts run here; ARM artifacts through their bundle under qemu.
        Raises ArtifactError for inputs that do not fit (names, shapes, dtypes), GuardError when a
        run-time guard of the model fails."""
        from edgec.artifact_run import run_artifact

        return run_artifact(self, {**(inputs or {}), **named}, threads)

    def bench(self, repeat: int = 50, warmup: int = 5, threads: int | None = None,
              dims: dict[str, int] | None = None) -> list[float]:
        """Seconds of each of `repeat` timed runs on seeded inputs (host artifacts)."""
        from edgec.artifact_run import bench_artifact

        return bench_artifact(self, warmup, repeat, threads, dims=dims)

    @property
    def weights(self) -> dict | None:
        """The separate weights file's index (edgec.weights), or None when the library holds them all."""
        return self.metadata.get("weights")




def load_artifact(path: str | os.PathLike) -> Artifact:
    """The artifact at `path`, checked (edgec.artifact_check) before anything in it is used."""
    from edgec.artifact_check import check_artifact

    p = Path(path)
    return Artifact(p, check_artifact(p))
