"""Reductions: Reduce* (axes as attribute or constant input, noop_with_empty_axes, empty
reduction sets), ArgMax/ArgMin (select_last_index).

Long floating-point sums (more than `LONG_SUM` elements per output: ReduceSum/Mean/L1/L2/
SumSquare/LogSum/LogSumExp, GlobalAveragePool) are reduced in stages: a reduced axis longer than
`LONG_SUM` is split into blocks (when a block size in [32, LONG_SUM] divides it), and the reduced axes are summed in groups of at most `LONG_SUM`
elements, innermost first, each group's partial sums summed by the next. A single serial fp32
accumulator over n values has error growing with n (a mean over a 120x160 plane was 2e-4 off, a
zoo model failed on it); staged, it grows with the group sizes (~ sqrt(n) each). Reductions of at
most `LONG_SUM` elements (GlobalAveragePool over 7x7, LayerNorm over 768) are emitted as before."""

from __future__ import annotations

from itertools import combinations

import numpy as np
from tvm import relax

from edgec.errors import GUARD_PREFIX
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
    axes = reduce_axes(ctx, node, len(s))
    if axes is NotImplemented:
        return _runtime_axes(ctx, node, xs, s)
    return _reduce(ctx, node, x, s, axes)


def _declared_shape(v) -> list[int] | None:
    if v is None or v.shape is None or not all(isinstance(d, int) for d in v.shape):
        return None
    return [int(d) for d in v.shape]


def _candidates(s: list[int], y: list[int], k: int, keep: bool) -> list[list[int]]:
    """Every sorted set of k distinct axes that reduces shape `s` to the declared shape `y`."""
    out = []
    for axes in combinations(range(len(s)), k):
        kept = [1 if i in axes else d for i, d in enumerate(s) if keep or i not in axes]
        if kept == y:
            out.append(list(axes))
    return out


_MAX_CANDIDATES = 8


def _runtime_axes(ctx, node, xs, s):
    """Reduce* whose axes are a runtime input, for a declared output shape: each axes set that
    gives that shape is reduced, the one the runtime axes name is selected, and a runtime guard
    raises when they name none of them (e.g. keepdims=0 over one of two equal dims)."""
    if not _axes_in_input(node.op_type, ctx.opset) or not has_input(node, 1) or len(xs) < 2:
        return NotImplemented
    a, y = xs[1], _declared_shape(node.outputs[0])
    pa = shape_of(a)
    if y is None or pa is None or len(pa) > 1 or not dtype_of(a).startswith("int"):
        return NotImplemented
    k, r = int(np.prod(pa, dtype=np.int64)), len(s)
    keep = bool(attr(node, "keepdims", 1))
    if k == 0:  # an empty axes tensor: its value is its static shape
        axes = [] if attr(node, "noop_with_empty_axes", 0) else list(range(r))
        return _reduce(ctx, node, xs[0], s, axes)
    cands = _candidates(s, y, k, keep)
    if not cands or len(cands) > _MAX_CANDIDATES:
        return NotImplemented
    a64 = a if dtype_of(a) == "int64" else ctx.emit(_R.astype(a, "int64"))
    a64 = ctx.emit(_R.reshape(a64, [k, 1]))
    norm = ctx.emit(_R.where(_R.less(a64, const(np.int64(0))), _R.add(a64, const(np.int64(r))), a64))
    matches = []
    for c in cands:  # runtime axes == c as sets: every axis is in c and every member of c is named
        hit = ctx.emit(_R.astype(_R.equal(norm, const(np.array([c], np.int64))), "int64"))
        rows = ctx.emit(_R.min(_R.sum(hit, axis=[1]), axis=[0]))
        cols = ctx.emit(_R.min(_R.sum(hit, axis=[0]), axis=[0]))
        matches.append(ctx.emit(_R.logical_and(_R.greater(rows, const(np.int64(0))),
                                               _R.greater(cols, const(np.int64(0))))))
    out = ctx.emit(_reduce(ctx, node, xs[0], s, cands[-1]))
    for c, m in zip(cands[-2::-1], matches[-2::-1]):
        out = ctx.emit(_R.where(m, ctx.emit(_reduce(ctx, node, xs[0], s, c)), out))
    ok = matches[0]
    for m in matches[1:]:
        ok = ctx.emit(_R.logical_or(ok, m))
    file = ctx.file
    ctx.guard(ok, f"{GUARD_PREFIX}{file}: node '{node.name or node.op_type}' ({node.op_type}) input "
                  f"'{node.inputs[1].name}': the runtime axes do not give the declared output shape {y}; "
                  f"compiled for axes {' or '.join(str(c) for c in cands)}")
    return out


LONG_SUM = 1024  # reduced elements per output above which a float sum is staged


def _split_extent(e: int) -> tuple[int, int] | None:
    """(blocks, block) with blocks * block == e and block the divisor of e in [32, LONG_SUM]
    nearest sqrt(e) (preferring multiples of 8: vector lanes), or None when e has none."""
    best = None
    for b in range(32, min(e // 2, LONG_SUM) + 1):
        if e % b == 0:
            key = (b % 8 != 0, abs(np.log(b) - 0.5 * np.log(e)))
            if best is None or key < best[0]:
                best = (key, b)
    return None if best is None else (e // best[1], best[1])


def _staged(ctx, fn, x, s: list[int], axes: list[int], keepdims: bool):
    n = int(np.prod([s[a] for a in axes], dtype=np.int64))
    if n <= LONG_SUM or not dtype_of(x).startswith("float"):
        return fn(x, axis=axes, keepdims=keepdims)
    out_shape = [1 if i in axes else d for i, d in enumerate(s) if keepdims or i not in axes]
    shape, red = [], []  # the shape with long reduced axes split into blocks, and its reduced axes
    for i, d in enumerate(s):
        for dj in (_split_extent(d) if i in axes and d > LONG_SUM else None) or (d,):
            if i in axes:
                red.append(len(shape))
            shape.append(dj)
    if shape != list(s):
        x = ctx.emit(_R.reshape(x, shape))
    groups, size = [[]], 1  # reduced axes, innermost first, in groups of at most LONG_SUM elements
    for a in reversed(red):  # (an axis no block size divides stays one long group)
        if size * shape[a] > LONG_SUM and groups[-1]:
            groups.append([])
            size = 1
        groups[-1].append(a)
        size *= shape[a]
    for g in groups:
        x = ctx.emit(fn(x, axis=sorted(g), keepdims=True))
    return x if shape_of(x) == out_shape else _R.reshape(x, out_shape)


def staged_sum(ctx, x, s: list[int], axes: list[int], keepdims: bool):
    """sum(x, axes) for x of static shape `s`: staged for a long float sum (module doc), else R.sum."""
    return _staged(ctx, _R.sum, x, s, axes, keepdims)


def staged_mean(ctx, x, s: list[int], axes: list[int], keepdims: bool):
    """mean(x, axes): staged as a mean of block means (equal blocks: the same value, one rounding
    more per stage) for a long float mean, else R.mean. Mean stages, not sums divided once: a
    mean kernel (sum + divide) gets the vectorized row-wise schedule, a lone sum a serial loop."""
    return _staged(ctx, _R.mean, x, s, axes, keepdims)


def _reduce(ctx, node, x, s, axes):
    dt = dtype_of(x)
    pre, red, post, empty = _REDUCE[node.op_type]
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
        y = ctx.emit(_R.log(ctx.emit(staged_sum(ctx, e, s, axes, keep))))
        mk = m if keep else ctx.emit(_R.reshape(m, out_shape))
        return _R.add(y, mk)
    if red == "mean" and not dt.startswith("float"):
        return NotImplemented
    x = ctx.emit(_elementwise(pre, x))
    if red in ("sum", "mean") and dt.startswith("float"):
        y = ctx.emit((staged_sum if red == "sum" else staged_mean)(ctx, x, s, axes, keep))
    else:
        y = ctx.emit(getattr(_R, red)(x, axis=axes, keepdims=keep))
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
