"""Artifacts: an output directory with the compiled library, metadata.json and a C header.

Written atomically: everything goes to a hidden temporary directory beside the destination, which
is renamed into place only when complete. An interrupted compile leaves no partial artifact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from edgec.errors import ArtifactError
from edgec.ir.analysis import TensorInfo

FORMAT = "edgec-artifact/1"


class _InterruptFlag:
    """Remembers a SIGINT even when a library swallowed the KeyboardInterrupt it raised.

    TVM wraps a KeyboardInterrupt raised inside a Python callback (a schedule rule, a pass) into an
    FFI error, which a fallback `except Exception` may then absorb: the compile would finish and
    commit the artifact although the user pressed Ctrl-C. `atomic_directory` checks this flag
    before it commits.
    """

    def __init__(self) -> None:
        self.seen = False

    def install(self) -> None:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        self.seen = True
        raise KeyboardInterrupt


INTERRUPTS = _InterruptFlag()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    out = {}
    for pkg in ("edgec", "apache-tvm", "apache-tvm-ffi", "onnx", "onnx-ir", "onnxruntime", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces `dest` only if the block completes."""
    dest = Path(dest).absolute()
    if dest.exists() and not dest.is_dir():
        raise ArtifactError(f"{dest}: exists and is not a directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.tmp-*"):  # left by a killed compile
        with contextlib.suppress(OSError, ValueError):
            pid = int(stale.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
            continue  # still running
        shutil.rmtree(stale, ignore_errors=True)
    for backup in dest.parent.glob(f".{dest.name}.old-*"):  # killed between the two renames below
        if dest.exists():
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.rename(backup, dest)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        yield tmp
        if INTERRUPTS.seen:  # a Ctrl-C some library swallowed: do not commit
            raise KeyboardInterrupt
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        if dest.exists():
            os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        # An interrupt leaves the compiler/linker subprocesses the build started still running
        # (subprocess.communicate does not kill them): stop those writing into `tmp`.
        _terminate_writers(tmp)
        raise
    finally:
        _remove_tree(tmp)


def _terminate_writers(tmp: Path) -> None:
    """SIGTERM descendants of this process whose command line names `tmp` (Linux /proc)."""
    pids, frontier = [], [os.getpid()]
    while frontier:
        for task in Path(f"/proc/{frontier.pop()}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                kids = [int(p) for p in task.read_text().split()]
                pids += kids
                frontier += kids
    needle = str(tmp).encode()
    writers = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
                writers.append(pid)
    deadline = time.monotonic() + 2.0
    while writers and time.monotonic() < deadline:
        writers = [p for p in writers if not _is_zombie(p)]
        time.sleep(0.02)


def _is_zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True


def _remove_tree(path: Path, attempts: int = 10) -> None:
    """rmtree that retries: an interrupted build may still be finishing a write into `path`."""
    for i in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.05 * (i + 1))


def c_identifier(name: str) -> str:
    s = re.sub(r"\W", "_", name).upper()
    return s if s and not s[0].isdigit() else "_" + s


def c_header(model_name: str, inputs: list[TensorInfo], outputs: list[TensorInfo]) -> str:
    guard = f"EDGEC_MODEL_{c_identifier(model_name)}_H"
    lines = [
        f"/* Generated by edgec: I/O of model '{model_name}'. Tensors are dense, row-major. */",
        f"#ifndef {guard}", f"#define {guard}", "#include <stdint.h>", "",
        f"#define EDGEC_MODEL_NUM_INPUTS {len(inputs)}", f"#define EDGEC_MODEL_NUM_OUTPUTS {len(outputs)}", "",
    ]
    for kind, infos in (("INPUT", inputs), ("OUTPUT", outputs)):
        for i, t in enumerate(infos):
            dims = [int(d) for d in t.shape]
            numel = int(np.prod(dims, dtype=np.int64)) if dims else 1
            item = np.dtype(t.dtype).itemsize
            p = f"EDGEC_MODEL_{kind}{i}"
            lines += [
                f"/* {kind.lower()} {i}: \"{t.name}\" {t.dtype}{dims} */",
                f"#define {p}_NAME \"{t.name}\"", f"#define {p}_DTYPE \"{t.dtype}\"",
                f"#define {p}_NDIM {len(dims)}", f"#define {p}_NUMEL {numel}", f"#define {p}_BYTES {numel * item}",
                f"static const int64_t edgec_model_{kind.lower()}{i}_shape[{max(len(dims), 1)}] = "
                f"{{{', '.join(map(str, dims)) or '1'}}};", "",
            ]
    lines += [f"#endif /* {guard} */", ""]
    return "\n".join(lines)


@dataclass
class Artifact:
    path: Path
    metadata: dict

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

    @property
    def weights(self) -> dict | None:
        """The separate weights file's index (edgec.weights), or None when the library holds them all."""
        return self.metadata.get("weights")


def load_artifact(path: str | os.PathLike) -> Artifact:
    p = Path(path)
    meta_path = p / "metadata.json"
    if not p.is_dir():
        raise ArtifactError(f"{p}: not an artifact directory (run `edgec compile ... -o {p}` first)")
    if not meta_path.is_file():
        raise ArtifactError(f"{p}: no metadata.json, not an edgec artifact")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{meta_path}: corrupt metadata: {e}") from None
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"{meta_path}: unknown artifact format {meta.get('format')!r}, expected {FORMAT}")
    art = Artifact(p, meta)
    if not art.library.is_file():
        raise ArtifactError(f"{p}: library {meta['library']} is missing")
    if art.weights and not (p / art.weights.get("file", "")).is_file():
        raise ArtifactError(f"{p}: weights file {art.weights.get('file')} is missing")
    return art
