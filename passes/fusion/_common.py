"""Helpers shared by the fusion passes."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir.constants import const_array


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


def normalized_shape(x: ir.Value | None, axis: int) -> tuple[int, ...] | None:
    """The static dims of `x` from (negative) `axis` on: the shape a normalization's scale has."""
    r = rank(x)
    if r is None or not -r <= axis < 0:
        return None
    dims = tuple(x.shape.dims)[axis:]
    return dims if all(isinstance(d, int) for d in dims) else None


def _param_shape(v: ir.Value) -> tuple[int, ...] | None:
    arr = const_array(v)
    return tuple(arr.shape) if arr is not None else static_shape(v)


def norm_param_problem(v: ir.Value | None, x: ir.Value, axis: int, what: str) -> str:
    """Why `v`, multiplied into (or added to) a normalization of `x` over the axes from `axis` on,
    is not a per-normalized-position parameter ('' if it is).

    It must not enlarge the output (rank <= x's), its dims before the normalized ones must be 1,
    and the normalized dims must equal x's (a constant may also have 1s there: it is broadcast)."""
    if v is None:
        return f"{what} is absent"
    norm = normalized_shape(x, axis)
    if norm is None:
        return "the normalized dims of the input are not static"
    s = _param_shape(v)
    if s is None:
        return f"{what} '{v.name}' has no static shape"
    r = rank(x)
    if len(s) > r:
        return f"{what} '{v.name}' {list(s)} has more dims than the input (it would broadcast the output)"
    padded = (1,) * (r - len(s)) + s
    lead, tail = padded[: r - len(norm)], padded[r - len(norm):]
    is_const = const_array(v) is not None
    ok_tail = all(t in (1, n) for t, n in zip(tail, norm)) if is_const else tail == norm
    if any(d != 1 for d in lead) or not ok_tail:
        return (f"{what} '{v.name}' {list(s)} does not broadcast like a vector over the normalized "
                f"axes {list(norm)} of the input")
    return ""


def as_norm_param(op, v: ir.Value, x: ir.Value, axis: int) -> ir.Value:
    """`v` (accepted by `norm_param_problem`) with exactly the normalized shape: constants are
    broadcast into a new initializer, other values reshaped (dropping leading 1s)."""
    norm = normalized_shape(x, axis)
    arr = const_array(v)
    if arr is not None:
        if arr.shape == norm:
            return v
        tail = arr.reshape(((1,) * len(norm) + arr.shape)[-len(norm):])  # leading dims are 1s
        return op.initializer(np.ascontiguousarray(np.broadcast_to(tail, norm)), hint=v.name or "norm_param")
    if static_shape(v) == norm:
        return v
    return op.Reshape(v, np.array(norm, dtype=np.int64))
