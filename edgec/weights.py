"""A compiled artifact's separate weights file (`weights.bin`): big initializers stored raw, beside
the library instead of inside it, and mapped (not read) at run time.

Models with gigabytes of weights cannot embed them in the shared library without copying them
several times while compiling (Relax constants, the serialized executable, the object file) and
at load time, and an x86-64 library with more than 2 GiB of .rodata overflows the default code
model. So the backend turns initializers of at least `MIN_TENSOR_BYTES` into parameters of the
compiled function, and `write_weights` copies their bytes straight from the model's external data
file into `weights.bin` (kernel-side `copy_file_range`; nothing passes through this process's
memory). `open_weights` maps them back copy-on-write, so a run shares the page cache.

Layout: each tensor's raw little-endian bytes at a 4096-aligned offset; the index (name, dtype,
shape, offset, nbytes) lives in metadata.json under "weights".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx_ir as ir

from edgec.errors import ArtifactError

WEIGHTS_FILE = "weights.bin"
ALIGN = 4096
MIN_TENSOR_BYTES = 1 << 20   # smaller initializers stay constants inside the library
AUTO_TOTAL_BYTES = 512 << 20  # "auto": use a weights file when the initializers total at least this
_CHUNK = 64 << 20


def initializer_bytes(model: ir.Model) -> int:
    """Bytes of all initializers, from their declared shapes (external data is not read)."""
    return sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)


def _copy_range(src: str, offset: int, length: int, dst) -> None:
    with open(src, "rb") as f:
        left = length
        while left:
            try:
                n = os.copy_file_range(f.fileno(), dst.fileno(), min(left, 1 << 30), offset)
            except OSError:
                n = 0
            if n == 0:  # unsupported here (or a short source): plain chunked copy
                f.seek(offset)
                while left:
                    buf = f.read(min(left, _CHUNK))
                    if not buf:
                        raise ArtifactError(f"{src}: external data ends before offset {offset + length}")
                    dst.write(buf)
                    left -= len(buf)
                return
            offset += n
            left -= n


def _write_tensor(t: ir.TensorProtocol, f) -> None:
    if isinstance(t, ir.ExternalTensor) and t.dtype.bitwidth >= 8:
        f.flush()
        _copy_range(t.path, t.offset or 0, t.nbytes, f)
        f.seek(0, os.SEEK_END)
    else:
        arr = np.ascontiguousarray(t.numpy())
        flat = arr.reshape(-1).view(np.uint8)
        for i in range(0, flat.size, _CHUNK):
            f.write(flat[i:i + _CHUNK].tobytes())


def write_weights(tensors: list[tuple[str, ir.TensorProtocol]], path: str | os.PathLike) -> list[dict]:
    """Write `tensors` (in this order) to `path`; return their index entries."""
    entries = []
    with open(path, "wb") as f:
        for name, t in tensors:
            pos = f.seek(0, os.SEEK_END)
            pad = -pos % ALIGN
            if pad:
                f.write(b"\0" * pad)
            offset = pos + pad
            _write_tensor(t, f)
            end = f.seek(0, os.SEEK_END)
            if end - offset != t.nbytes:
                raise ArtifactError(f"{path}: wrote {end - offset} bytes for weight '{name}', expected {t.nbytes}")
            entries.append({"name": name, "dtype": str(np.dtype(t.dtype.numpy())), "shape": [int(d) for d in t.shape],
                            "offset": offset, "nbytes": int(t.nbytes)})
    return entries


def open_weights(artifact_dir: str | os.PathLike, index: dict) -> list[np.ndarray]:
    """Map the weights an artifact's metadata lists (copy-on-write, so the arrays are writable
    for DLPack but never change the file). One-line ArtifactError when the file is missing or short."""
    path = Path(artifact_dir) / index.get("file", WEIGHTS_FILE)
    if not path.is_file():
        raise ArtifactError(f"{path}: weights file missing (the artifact's metadata.json lists {len(index['tensors'])} weights)")
    size = path.stat().st_size
    out = []
    for e in index["tensors"]:
        if e["offset"] + e["nbytes"] > size:
            raise ArtifactError(f"{path}: weight '{e['name']}' [{e['offset']}, {e['offset'] + e['nbytes']}) "
                                f"exceeds the file ({size} bytes)")
        shape = tuple(e["shape"])
        if e["nbytes"] == 0:
            out.append(np.zeros(shape, dtype=e["dtype"]))
            continue
        out.append(np.memmap(path, dtype=np.dtype(e["dtype"]).newbyteorder("<"), mode="c", offset=e["offset"],
                             shape=shape))
    return out
