"""Helpers shared by the fusion passes."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir


def static_shape(v: ir.Value | None) -> tuple[int, ...] | None:
    if v is None or v.shape is None or not all(isinstance(d, int) for d in v.shape):
        return None
    return tuple(v.shape.dims)


def rank(v: ir.Value | None) -> int | None:
    return None if v is None or v.shape is None else len(v.shape)


def channel_vector(c: np.ndarray, out_rank: int, channels: int, axis: int = 1) -> np.ndarray | None:
    """If constant `c` broadcasts against a rank-`out_rank` output only along `axis` (size
    `channels` or 1) and never enlarges it, return it as a length-`channels` vector."""
    if c.ndim > out_rank:
        return None
    shape = (1,) * (out_rank - c.ndim) + c.shape
    for i, d in enumerate(shape):
        if d != 1 and not (i == axis % out_rank and d == channels):
            return None
    flat = c.reshape(-1)
    return np.broadcast_to(flat, (channels,)).copy() if flat.size in (1, channels) else None


def same_float_dtype(*arrays: np.ndarray | None) -> bool:
    dts = {a.dtype for a in arrays if a is not None}
    return len(dts) == 1 and next(iter(dts)).kind == "f"
