"""A compiled artifact's separate weights file (`weights.bin`): big initializers stored raw, beside
the library instead of inside it, and mapped (not read) at run time.

Models with gigabytes of weights cannot embed them in the shared library without copying them
several times while compiling (Relax constants, the serialized executable, the object file) and
at load time, and an x86-64 library with more than 2 GiB of .rodata overflows the default code
model. So the backend turns initializers of at least `MIN_TENSOR_BYTES` into parameters of the
compiled function, and `write_weights` copies their bytes straight from the model's external data
file into `weights.bin` (kernel-side `copy_file_range`; nothing passes through this process's
memory). `open_weights` maps the file back once, copy-on-write, so a run shares the page cache
and holds each weight once: only the pages its kernels touch become resident.

Layout: each tensor's raw little-endian bytes at a 4096-aligned offset; the index (name, dtype,
shape, offset, nbytes, and "access": "rows" for a table read a few rows at a time, such as a
token embedding) lives in metadata.json under "weights".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Union

import numpy as np
import onnx_ir as ir

from edgec.errors import ArtifactError
from edgec.ir.domains import is_onnx_domain

WEIGHTS_FILE = "weights.bin"
ALIGN = 4096
MIN_TENSOR_BYTES = 1 << 20   # smaller initializers stay constants inside the library
# with a weights file, arrays the compile computes (repacked quantized weights, folded constants)
# of at least this size go to it too (targets/tvm/weights.py lift_large_constants)
MIN_CONSTANT_BYTES = 64 << 10
AUTO_TOTAL_BYTES = 512 << 20  # "auto": use a weights file when the initializers total at least this,
AUTO_SYMBOLIC_BYTES = 16 << 20  # or this with symbolic dims (LLMs: weights mapped once, not deserialized)
_CHUNK = 64 << 20

Source = Union[ir.TensorProtocol, Callable[[], np.ndarray]]


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


def source_array(t: ir.TensorProtocol) -> np.ndarray:
    """`t` as a writable, C-contiguous, 64-byte aligned array for DLPack: external data mapped
    copy-on-write (its own mapping, released with the array), others as numpy gives them (copied
    when not aligned)."""
    if isinstance(t, ir.ExternalTensor) and t.dtype.bitwidth >= 8 and t.nbytes:
        arr = np.memmap(t.path, dtype=np.dtype(t.dtype.numpy()).newbyteorder("<"), mode="c", offset=t.offset or 0,
                        shape=tuple(int(d) for d in t.shape))
    else:
        arr = np.ascontiguousarray(t.numpy())
    if arr.flags.writeable and arr.ctypes.data % 64 == 0:
        return arr
    buf = np.empty(arr.nbytes + 64, np.uint8)  # TVM takes DLPack data only 64-byte aligned
    start = -buf.ctypes.data % 64
    out = buf[start:start + arr.nbytes].view(arr.dtype).reshape(arr.shape)
    out[...] = arr
    return out


def _write_array(arr: np.ndarray, f) -> None:
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    for i in range(0, flat.size, _CHUNK):
        f.write(flat[i:i + _CHUNK].tobytes())


def _write_source(src: Source, f) -> None:
    if isinstance(src, ir.ExternalTensor) and src.dtype.bitwidth >= 8:
        f.flush()
        _copy_range(src.path, src.offset or 0, src.nbytes, f)
        f.seek(0, os.SEEK_END)
    elif callable(src):
        _write_array(src(), f)  # computed now, dropped when written
    else:
        _write_array(src.numpy(), f)


def write_weights(items: list[tuple[str, Source, tuple[int, ...], str]], path: str | os.PathLike) -> list[dict]:
    """Write each (name, source, shape, dtype) in order to `path`; return their index entries.
    A source is an onnx-ir tensor (external data is copied file to file) or a function returning
    the array (called when its turn comes, so only one is in memory)."""
    entries = []
    with open(path, "wb") as f:
        for name, src, shape, dtype in items:
            pos = f.seek(0, os.SEEK_END)
            pad = -pos % ALIGN
            if pad:
                f.write(b"\0" * pad)
            offset = pos + pad
            _write_source(src, f)
            end = f.seek(0, os.SEEK_END)
            nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            if end - offset != nbytes:
                raise ArtifactError(f"{path}: wrote {end - offset} bytes for weight '{name}', expected {nbytes}")
            entries.append({"name": name, "dtype": dtype, "shape": [int(d) for d in shape], "offset": offset,
                            "nbytes": nbytes})
    return entries


def tensor_item(name: str, t: ir.TensorProtocol) -> tuple[str, Source, tuple[int, ...], str]:
    """A write_weights item for an onnx-ir tensor."""
    return name, t, tuple(int(d) for d in t.shape), str(np.dtype(t.dtype.numpy()))


def row_tables(model: ir.Model) -> set[str]:
    """Initializers read only as Gather's table (token embeddings): a run reads a few rows of them,
    so their pages are released after each call (MappedWeights.release_rows). A table that
    something else reads whole is not one (releasing it would fault it in again every call)."""
    out = set()
    for name, v in model.graph.initializers.items():
        uses = list(v.uses())
        if uses and all(n.op_type == "Gather" and is_onnx_domain(n.domain) and i == 0 for n, i in uses):
            out.add(name)
    return out


class MappedWeights:
    """An artifact's weights.bin mapped once (see open_weights): `arrays` in index order, and
    `release_rows()` to drop the pages of "rows" tables from this process's resident set."""

    def __init__(self, mapped, arrays: list[np.ndarray], rows: list[tuple[int, int]]):
        self._mapped, self.arrays, self._rows = mapped, arrays, rows

    @property
    def has_rows(self) -> bool:
        return bool(self._rows)

    def release_rows(self) -> None:
        """Unmap the resident pages of the row tables (madvise DONTNEED; the mapping stays, the
        page cache keeps them): a call reads a few rows, but the kernel maps whole page-cache
        folios around each (ext4 on Linux 6.x: ~1 MiB per row read, MADV_RANDOM or not), so
        without this a token embedding became resident almost whole after ~150 tokens. The
        next call faults its rows in again (minor faults). The pages were never written
        (private mapping, read only by the kernels), so nothing is lost."""
        for start, length in self._rows:
            _advise(self._mapped, "MADV_DONTNEED", start, length)


def open_weights(artifact_dir: str | os.PathLike, index: dict) -> list[np.ndarray]:
    """The weights an artifact's metadata lists, mapped (map_weights)."""
    return map_weights(artifact_dir, index).arrays


def map_weights(artifact_dir: str | os.PathLike, index: dict) -> MappedWeights:
    """Map the weights an artifact's metadata lists: the file mapped once, copy-on-write (the
    arrays are writable for DLPack but never change the file), each weight a view of it. Tables
    marked "access": "rows" are advised random access (no read-ahead from disk: only the rows
    read are loaded). One-line ArtifactError when the file is missing or short."""
    import mmap

    path = Path(artifact_dir) / index.get("file", WEIGHTS_FILE)
    if not path.is_file():
        raise ArtifactError(f"{path}: weights file missing (the artifact's metadata.json lists {len(index['tensors'])} weights)")
    size = path.stat().st_size
    for e in index["tensors"]:
        if e["offset"] + e["nbytes"] > size:
            raise ArtifactError(f"{path}: weight '{e['name']}' [{e['offset']}, {e['offset'] + e['nbytes']}) "
                                f"exceeds the file ({size} bytes)")
    mapped = _map_private(path) if size else None
    out, rows = [], []
    for e in index["tensors"]:
        dtype, shape = np.dtype(e["dtype"]).newbyteorder("<"), tuple(e["shape"])
        if e["nbytes"] == 0:
            out.append(np.zeros(shape, dtype=dtype))
            continue
        out.append(np.frombuffer(mapped, dtype=dtype, count=int(np.prod(shape, dtype=np.int64)),
                                 offset=e["offset"]).reshape(shape))
        if e.get("access") == "rows":
            start = e["offset"] // mmap.PAGESIZE * mmap.PAGESIZE
            rows.append((start, e["offset"] + e["nbytes"] - start))
            _advise(mapped, "MADV_RANDOM", *rows[-1])
    return MappedWeights(mapped, out, rows)


def _map_private(path: Path):
    import mmap

    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)


def _advise(mapped, advice: str, start: int, length: int) -> None:
    import mmap

    if hasattr(mapped, "madvise") and hasattr(mmap, advice):
        try:
            mapped.madvise(getattr(mmap, advice), start, length)
        except (OSError, ValueError):  # only a hint
            pass
