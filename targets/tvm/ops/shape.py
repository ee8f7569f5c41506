"""Shape-computing ops. Shapes of static-shaped values are compile-time constants here, so the
Reshape/Expand/Slice/... they feed see constants (`ctx.const_array`) instead of Relax shape
values. All-constant nodes are folded before they reach this table (see lower._fold)."""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.errors import GUARD_PREFIX
from edgec.targets.tvm import symbolic
from edgec.targets.tvm.lower_context import attr, const, dtype_of, has_input, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.symbolic import shape_value

_R = relax.op


@lowers("Shape")
def shape(ctx, node, xs):
    s = shape_of(xs[0])
    if s is None:
        return NotImplemented
    r = len(s)
    start, end = int(attr(node, "start", 0)), attr(node, "end")
    start = min(max(start + r if start < 0 else start, 0), r)
    end = r if end is None else min(max(int(end) + r if int(end) < 0 else int(end), 0), r)
    return ctx.constant(node, np.array(s[start:end], dtype=np.int64))


@lowers("Size")
def size(ctx, node, xs):
    s = shape_of(xs[0])
    if s is None:
        return NotImplemented
    return ctx.constant(node, np.array(int(np.prod(s, dtype=np.int64)), dtype=np.int64))


@lowers("ConstantOfShape")
def constant_of_shape(ctx, node, xs):
    c = ctx.const_inputs(node, 0)
    if c is None:
        return NotImplemented
    value = attr(node, "value")
    value = np.zeros((1,), np.float32) if value is None else np.asarray(value).reshape(-1)
    dims = [int(d) for d in c[0].reshape(-1)]
    if any(d < 0 for d in dims):
        raise Unsupported(f"negative dimension in ConstantOfShape shape {dims}")
    return ctx.constant(node, np.full(dims, value[0], dtype=value.dtype))


def _bidirectional(a: list[int], b: list[int]) -> list[int]:
    n = max(len(a), len(b))
    a, b = [1] * (n - len(a)) + a, [1] * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            raise Unsupported(f"shapes {a} and {b} do not broadcast")
        out.append(y if x == 1 else x)
    return out


def _broadcast_dims(a: list, b: list) -> list | None:
    """Bidirectional broadcast of dims that may be symbolic: a 1 takes the other side, equal dims
    (provably) stay; None when it cannot be decided at compile time."""
    n = max(len(a), len(b))
    a, b = [1] * (n - len(a)) + list(a), [1] * (n - len(b)) + list(b)
    out = []
    for x, y in zip(a, b):
        if isinstance(x, int) and x == 1:
            out.append(y)
        elif isinstance(y, int) and y == 1:
            out.append(x)
        elif symbolic.simplify(x - y) == 0:
            out.append(x)
        else:
            return None
    return out


@lowers("Expand")
def expand(ctx, node, xs):
    c = ctx.const_inputs(node, 1)
    s = shape_of(xs[0])
    if c is None and ctx.symbolic:  # a target shape over symbolic dims (Shape(x) of an exporter's mask)
        target, dims = shape_value(ctx, node.inputs[1]), symbolic.dims_of(xs[0])
        out = _broadcast_dims(dims, symbolic.as_dims(target)) if target is not None and dims is not None else None
        if out is None:
            return NotImplemented
        return xs[0] if len(out) == len(dims) and all(symbolic.simplify(x - y) == 0 for x, y in zip(out, dims)) \
            else _R.broadcast_to(xs[0], out)
    if c is None or s is None:
        return NotImplemented
    out = _bidirectional(s, [int(d) for d in c[0].reshape(-1)])
    if out == s:
        return xs[0]
    return _R.broadcast_to(xs[0], out)


@lowers("Tile")
def tile(ctx, node, xs):
    c = ctx.const_inputs(node, 1)
    s = shape_of(xs[0])
    if c is None or s is None:
        return NotImplemented
    reps = [int(r) for r in c[0].reshape(-1)]
    if len(reps) != len(s) or any(r < 0 for r in reps):
        raise Unsupported(f"Tile repeats {reps} do not match input rank {len(s)}")
    if 0 in reps or 0 in s:
        return _R.zeros([d * r for d, r in zip(s, reps)], dtype_of(xs[0]))
    return _R.tile(xs[0], reps)


@lowers("Range")
def range_(ctx, node, xs):
    c = ctx.const_inputs(node, 0, 1, 2)
    if c is None and ctx.symbolic:
        out = _symbolic_range(ctx, node, xs)
        if out is not NotImplemented:
            return out
    if c is None:  # the output length depends on runtime values: only for a declared length
        return _runtime_range(ctx, node, xs)
    start, limit, delta = (np.asarray(v) for v in c)
    n = max(int(np.ceil((limit - start) / delta)), 0)
    return ctx.constant(node, (start + np.arange(n) * delta).astype(start.dtype))


def _symbolic_range(ctx, node, xs):
    """Integer start/limit/delta known as expressions of the symbolic dims (shape values, e.g.
    `arange(past, past + seq)` for the positions of the new tokens): a Relax arange whose length
    Relax derives from them, so the consumers keep the relation to the dims."""
    vals = [shape_value(ctx, v) for v in node.inputs[:3]]
    if any(v is None or v.size != 1 for v in vals) or not dtype_of(xs[0]).startswith("int"):
        return NotImplemented
    start, limit, delta = (symbolic.simplify(v.reshape(-1)[0]) for v in vals)
    if not isinstance(delta, int) or delta <= 0:
        return NotImplemented
    return _R.arange(start, limit, delta, dtype_of(xs[0]))


def _runtime_range(ctx, node, xs):
    """start + i * delta (i < n, computed in float64 / int64 as onnx's reference does with
    numpy.arange) for the declared length n; a runtime guard checks that
    max(ceil((limit - start) / delta), 0) == n."""
    v = node.outputs[0]
    if v.shape is None or len(v.shape) != 1 or not isinstance(v.shape[0], int):
        return NotImplemented
    n, dt = int(v.shape[0]), dtype_of(xs[0])
    wide = "int64" if dt.startswith(("int", "uint")) else "float64"
    start, limit, delta = (ctx.emit(_R.astype(_R.reshape(x, []), wide)) for x in xs[:3])
    out = ctx.emit(_R.astype(_R.add(start, _R.multiply(const(np.arange(n, dtype=wide)), delta)), dt))
    f = [ctx.emit(_R.astype(x, "float64")) for x in (start, limit, delta)]
    count = ctx.emit(_R.ceil(_R.divide(_R.subtract(f[1], f[0]), f[2])))
    count = ctx.emit(_R.maximum(count, const(np.float64(0))))
    ctx.guard(ctx.emit(_R.equal(count, const(np.float64(n)))),
              f"{GUARD_PREFIX}{ctx.file}: node '{node.name or node.op_type}' (Range): the runtime start/limit/delta "
              f"do not give the declared length {n}")
    return out


@lowers("EyeLike")
def eye_like(ctx, node, xs):
    s = shape_of(xs[0])
    if s is None or len(s) != 2:
        return NotImplemented
    dt = attr(node, "dtype")
    from edgec.targets.tvm.ops.cast import onnx_dtype

    dtype = onnx_dtype(dt) if dt is not None else dtype_of(xs[0])
    if dtype is None:
        return NotImplemented
    k = int(attr(node, "k", 0))
    return const(np.eye(s[0], s[1], k=k).astype(dtype if dtype != "bfloat16" else np.float32), dtype)


@lowers("Trilu")
def trilu(ctx, node, xs):
    k = 0
    if has_input(node, 1):
        c = ctx.const_inputs(node, 1)
        if c is None:
            return NotImplemented
        k = int(np.asarray(c[0]).reshape(-1)[0])
    s = shape_of(xs[0])
    if s is None or len(s) < 2:
        return NotImplemented
    if 0 in s:
        return xs[0]
    return (_R.triu if attr(node, "upper", 1) else _R.tril)(xs[0], k)
