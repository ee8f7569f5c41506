"""Host arrays whose data starts on a 64-byte boundary: what TVM's kernels assume of a tensor
they are handed without a copy (targets/tvm/runtime.py passes such arrays through DLPack), except
for the graph inputs the compile marked as read in place (targets/tvm/unaligned_inputs.py)."""

from __future__ import annotations

import numpy as np


def aligned_empty(shape: tuple, dtype, align: int = 64) -> np.ndarray:
    """An uninitialized C-order array whose data starts on an `align`-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(n + align, np.uint8)
    off = -raw.ctypes.data % align
    return raw[off:off + n].view(dtype).reshape(shape)


def aligned_zeros(shape: tuple, dtype, align: int = 64) -> np.ndarray:
    a = aligned_empty(shape, dtype, align)
    a[...] = 0
    return a
