"""Reductions: Reduce* (axes as attribute or constant input, noop_with_empty_axes, empty
reduction sets), ArgMax/ArgMin (select_last_index)."""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.targets.tvm.lower_context import attr, const, dtype_of, has_input, shape_of
from edgec.targets.tvm.ops import lowers

_R = relax.op

# op -> (elementwise pre-transform, reduction, elementwise post-transform, identity of the empty set)
_SQ = "square"
_REDUCE = {
    "ReduceSum": (None, "sum", None, 0.0),
    "ReduceMean": (None, "mean", None, np.nan),
    "ReduceMax": (None, "max", None, -np.inf),
    "ReduceMin": (None, "min", None, np.inf),
    "ReduceProd": (None, "prod", None, 1.0),
    "ReduceL1": ("abs", "sum", None, 0.0),
    "ReduceL2": (_SQ, "sum", "sqrt", 0.0),
    "ReduceSumSquare": (_SQ, "sum", None, 0.0),
    "ReduceLogSum": (None, "sum", "log", -np.inf),
    "ReduceLogSumExp": ("exp", "sum", "log", -np.inf),
}


def _axes_in_input(op: str, opset: int) -> bool:
    return opset >= 13 if op == "ReduceSum" else opset >= 18


def _elementwise(name, x):
    if name is None:
        return x
    if name == _SQ:
        return _R.multiply(x, x)
    return getattr(_R, name)(x)


def reduce_axes(ctx, node, rank: int):
    """The normalized axes (sorted), [] for "no reduction" (noop), or NotImplemented."""
    if _axes_in_input(node.op_type, ctx.opset):
        if has_input(node, 1):
            c = ctx.const_inputs(node, 1)
            if c is None:
                return NotImplemented
            axes = [int(v) for v in c[0].reshape(-1)]
        else:
            axes = []
    else:
        axes = list(attr(node, "axes", []) or [])
    if not axes:
        return [] if attr(node, "noop_with_empty_axes", 0) else list(range(rank))
    if any(not -rank <= a < rank for a in axes) and rank > 0:
        return NotImplemented
    return sorted({a % rank for a in axes}) if rank else []


@lowers(*_REDUCE)
def reduce(ctx, node, xs):
    x = xs[0]
    s = shape_of(x)
    if s is None:
        return NotImplemented
    dt = dtype_of(x)
    pre, red, post, empty = _REDUCE[node.op_type]
    axes = reduce_axes(ctx, node, len(s))
    if axes is NotImplemented:
        return NotImplemented
    keep = bool(attr(node, "keepdims", 1))
    if not axes:  # noop_with_empty_axes: the elementwise parts only
        return _elementwise(post, ctx.emit(_elementwise(pre, x)))
    out_shape = [1 if i in axes else d for i, d in enumerate(s) if keep or i not in axes]
    if any(s[a] == 0 for a in axes):  # reducing an empty set: the reduction's identity
        if not dt.startswith("float"):
            if dt == "bool":
                empty = {np.inf: True, -np.inf: False}.get(empty, False)
            elif empty in (np.inf, -np.inf) or np.isnan(empty):
                info = np.iinfo(np.dtype(dt))
                empty = {np.inf: info.max, -np.inf: info.min}.get(empty, 0)
        # broadcast_to, not R.full: TVM 0.27's legalization of full() fails for float fill values
        return _R.broadcast_to(const(empty, dt), out_shape)
    if dt == "bool" and node.op_type in ("ReduceMax", "ReduceMin"):  # any / all
        y = ctx.emit(getattr(_R, red)(ctx.emit(_R.astype(x, "int8")), axis=axes, keepdims=keep))
        return _R.astype(y, "bool")
    if node.op_type == "ReduceLogSumExp" and dt.startswith("float"):
        # log(sum(exp(x - m))) + m with m = max(x): no overflow for large x
        m = ctx.emit(_R.max(x, axis=axes, keepdims=True))
        m = ctx.emit(_R.where(_R.isinf(m), _R.zeros_like(m), m))
        e = ctx.emit(_R.exp(_R.subtract(x, m)))
        y = ctx.emit(_R.log(_R.sum(e, axis=axes, keepdims=keep)))
        mk = m if keep else ctx.emit(_R.reshape(m, out_shape))
        return _R.add(y, mk)
    if red == "mean" and not dt.startswith("float"):
        return NotImplemented
    y = ctx.emit(getattr(_R, red)(ctx.emit(_elementwise(pre, x)), axis=axes, keepdims=keep))
    return _elementwise(post, y)


@lowers("ArgMax", "ArgMin")
def arg_reduce(ctx, node, xs):
    x = xs[0]
    s = shape_of(x)
    if s is None or not s:
        return NotImplemented
    axis = int(attr(node, "axis", 0)) % len(s)
    keep = bool(attr(node, "keepdims", 1))
    fn = _R.argmax if node.op_type == "ArgMax" else _R.argmin
    if attr(node, "select_last_index", 0):
        flipped = ctx.emit(_R.flip(x, axis=axis))
        idx = ctx.emit(fn(flipped, axis=axis, keepdims=keep))
        idx = ctx.emit(_R.astype(idx, "int64"))
        return _R.subtract(const(np.int64(s[axis] - 1)), idx)
    idx = ctx.emit(fn(x, axis=axis, keepdims=keep))
    return _R.astype(idx, "int64") if dtype_of(idx) != "int64" else idx
