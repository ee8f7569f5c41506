"""Slice and Pad whose starts/ends/axes/steps or pads are runtime values, for a declared output shape.

The output shape is static (declared on the node's output), so no dynamic shapes are needed:
each axis is gathered with runtime indices of static length (`take` in clip mode, so a wrong
runtime value cannot read out of bounds), and a runtime guard raises, naming file, node and op,
when the runtime values would give a different output shape than the declared one.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.errors import GUARD_PREFIX
from edgec.targets.tvm.lower_context import attr, const, dtype_of, has_input, shape_of
from edgec.targets.tvm.ops import Unsupported

_R = relax.op
_I64 = "int64"


def declared_shape(v) -> list[int] | None:
    if v is None or v.shape is None or not all(isinstance(d, int) for d in v.shape):
        return None
    return [int(d) for d in v.shape]


def _i64(ctx, x):
    return x if dtype_of(x) == _I64 else ctx.emit(_R.astype(x, _I64))


def _c(v):
    return const(np.int64(v))


def _pick(ctx, sel, values, default):
    """sum(values where sel) if any of sel, else `default` (int64 scalars)."""
    zeros = ctx.emit(_R.zeros_like(values))
    picked = ctx.emit(_R.sum(_R.where(sel, values, zeros)))
    present = ctx.emit(_R.greater(_R.sum(_R.astype(sel, _I64)), _c(0)))
    return ctx.emit(_R.where(present, picked, _c(default)))


def _all(ctx, conds):
    ok = conds[0]
    for c in conds[1:]:
        ok = ctx.emit(_R.logical_and(ok, c))
    return ok


def _per_axis(ctx, node, axes_in: int, count: int, rank: int):
    """Normalized runtime (or constant) axes as an int64 [count] tensor."""
    if has_input(node, axes_in):
        axes = _i64(ctx, ctx.values[node.inputs[axes_in].name])
    else:
        axes = const(np.arange(count, dtype=np.int64))
    norm = ctx.emit(_R.where(_R.less(axes, _c(0)), _R.add(axes, _c(rank)), axes))
    return norm


def _vector(ctx, node, i: int, count: int, default: int):
    if has_input(node, i):
        v = _i64(ctx, ctx.values[node.inputs[i].name])
        return v if shape_of(v) == [count] else ctx.emit(_R.reshape(v, [count]))
    return const(np.full(count, default, np.int64))


def runtime_slice(ctx, node, xs):
    """A Slice whose starts/ends/axes/steps are computed at run time, to the output shape the model
    declares (checked at run time). Without a static input and output shape it is refused in one
    line (exit 2): TVM's importer would make a shapeless `dynamic_strided_slice` that its own
    legalization then crashes on."""
    if ctx.opset < 10:
        return NotImplemented
    x, s, y = xs[0], shape_of(xs[0]), declared_shape(node.outputs[0])
    if s is None:
        raise Unsupported("starts/ends are computed at run time and the input shape is not static")
    if y is None or len(y) != len(s):
        raise Unsupported("starts/ends are computed at run time and the output shape is not static "
                          "(fix the model's inputs with --input-shape, or make the slice bounds constants)")
    ps = shape_of(xs[1])
    if ps is None or len(ps) != 1:
        raise Unsupported("starts must be a 1-D tensor of static length")
    k, r = ps[0], len(s)
    starts, ends = _vector(ctx, node, 1, k, 0), _vector(ctx, node, 2, k, 0)
    steps = _vector(ctx, node, 4, k, 1)
    axes = _per_axis(ctx, node, 3, k, r)
    checks = []
    for d in range(r):
        sel = ctx.emit(_R.equal(axes, _c(d)))
        dim = s[d]
        st, en, sp = _pick(ctx, sel, starts, 0), _pick(ctx, sel, ends, dim), _pick(ctx, sel, steps, 1)
        neg = ctx.emit(_R.less(sp, _c(0)))
        st = ctx.emit(_R.where(_R.less(st, _c(0)), _R.add(st, _c(dim)), st))
        en = ctx.emit(_R.where(_R.less(en, _c(0)), _R.add(en, _c(dim)), en))
        st = ctx.emit(_R.where(neg, _R.clip(st, 0, max(dim - 1, 0)), _R.clip(st, 0, dim)))
        en = ctx.emit(_R.where(neg, _R.clip(en, -1, dim - 1), _R.clip(en, 0, dim)))
        # output length ceil((en - st) / sp), at least 0
        mag = ctx.emit(_R.abs(sp))
        span = ctx.emit(_R.where(neg, _R.subtract(st, en), _R.subtract(en, st)))
        n = ctx.emit(_R.floor_divide(_R.add(span, _R.subtract(mag, _c(1))), _R.maximum(mag, _c(1))))
        n = ctx.emit(_R.maximum(n, _c(0)))
        checks.append(ctx.emit(_R.logical_and(_R.equal(n, _c(y[d])), _R.not_equal(sp, _c(0)))))
        if 0 in y or d in _static_untouched(ctx, node, r):
            continue
        idx = ctx.emit(_R.add(st, _R.multiply(const(np.arange(y[d], dtype=np.int64)), sp)))
        x = ctx.emit(_R.take(x, idx, axis=d, mode="clip"))
    _guard(ctx, node, checks, f"the runtime starts/ends/axes/steps do not give the declared output shape {y}")
    return empty_like(ctx, x, y) if 0 in y else x


def empty_like(ctx, x, shape: list[int]):
    """A zero-size tensor of `shape` computed from `x` (a zero-size constant would be folded, and
    zero-size constants do not survive export_library)."""
    s = shape_of(x)
    if len(s) == len(shape) and all(d <= e for d, e in zip(shape, s)):
        return ctx.emit(_R.strided_slice(x, axes=list(range(len(s))), begin=[0] * len(s), end=list(shape)))
    raise Unsupported(f"no zero-size {shape} from a {s} tensor")


def _static_untouched(ctx, node, r: int) -> set[int]:
    """Axes a Slice with constant `axes` does not slice (nothing to gather along)."""
    if not has_input(node, 3):
        return set()
    a = ctx.const_array(node.inputs[3])
    if a is None:
        return set()
    return set(range(r)) - {int(v) % r for v in a.reshape(-1)}


_MODES = ("constant", "reflect", "edge", "wrap")


def runtime_pad(ctx, node, xs):
    x, s, y = xs[0], shape_of(xs[0]), declared_shape(node.outputs[0])
    mode = attr(node, "mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if s is None or y is None or len(y) != len(s) or 0 in y or 0 in s or mode not in _MODES or ctx.opset < 11:
        return NotImplemented
    pp = shape_of(xs[1])
    if pp is None or len(pp) != 1 or pp[0] % 2:
        return NotImplemented
    k, r = pp[0] // 2, len(s)
    pads = _i64(ctx, xs[1])
    before_all = ctx.emit(_R.strided_slice(pads, axes=[0], begin=[0], end=[k]))
    after_all = ctx.emit(_R.strided_slice(pads, axes=[0], begin=[k], end=[2 * k]))
    axes = _per_axis(ctx, node, 3, k, r)
    value = None
    if mode == "constant" and has_input(node, 2):
        value = ctx.emit(_R.reshape(xs[2], []))
        if dtype_of(value) != dtype_of(x):
            value = ctx.emit(_R.astype(value, dtype_of(x)))
    checks = []
    for d in range(r):
        sel = ctx.emit(_R.equal(axes, _c(d)))
        b, a = _pick(ctx, sel, before_all, 0), _pick(ctx, sel, after_all, 0)
        dim = s[d]
        checks.append(ctx.emit(_R.equal(_R.add(_R.add(b, a), _c(dim)), _c(y[d]))))
        src = ctx.emit(_R.subtract(const(np.arange(y[d], dtype=np.int64)), b))
        if mode == "edge":
            idx = ctx.emit(_R.clip(src, 0, dim - 1))
        elif mode == "wrap":
            idx = ctx.emit(_R.floor_mod(src, _c(dim)))
        elif mode == "reflect":
            period = max(2 * (dim - 1), 1)
            m = ctx.emit(_R.floor_mod(src, _c(period)))
            idx = ctx.emit(_R.where(_R.greater_equal(m, _c(dim)), _R.subtract(_c(period), m), m))
        else:
            idx = ctx.emit(_R.clip(src, 0, dim - 1))
        x = ctx.emit(_R.take(x, idx, axis=d, mode="clip"))
        if mode == "constant":
            inside = ctx.emit(_R.logical_and(_R.greater_equal(src, _c(0)), _R.less(src, _c(dim))))
            shape = [1] * r
            shape[d] = y[d]
            inside = ctx.emit(_R.reshape(inside, shape))
            fill = value if value is not None else const(np.zeros((), dtype=dtype_of(x)) if dtype_of(x) != "bfloat16"
                                                         else 0.0, dtype_of(x))
            x = ctx.emit(_R.where(inside, x, fill))
    _guard(ctx, node, checks, f"the runtime pads do not give the declared output shape {y}")
    return x


def _guard(ctx, node, checks, what: str) -> None:
    name = node.inputs[1].name if node.inputs[1] is not None else "?"
    ctx.guard(_all(ctx, checks),
              f"{GUARD_PREFIX}{ctx.file}: node '{node.name or node.op_type}' ({node.op_type}) input '{name}': {what}")
