"""Shape and data-movement ops with compile-time-constant parameters."""

from __future__ import annotations

import numpy as np
from tvm import relax, te, tirx

from edgec.errors import GUARD_PREFIX, ModelValidationError
from edgec.targets.tvm import symbolic
from edgec.targets.tvm.lower_context import attr, dtype_of, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.runtime_params import empty_like, runtime_slice
from edgec.targets.tvm.symbolic import dims_of, shape_value

_R = relax.op


@lowers("Reshape")
def reshape(ctx, node, xs):
    """The target shape may be a constant or a shape value over symbolic dims (symbolic.py)."""
    target = shape_value(ctx, node.inputs[1])
    in_dims = dims_of(xs[0])
    if target is None or in_dims is None:
        return NotImplemented
    allowzero = attr(node, "allowzero", 0)
    new = [in_dims[i] if (isinstance(d, int) and d == 0 and not allowzero) else d
           for i, d in enumerate(symbolic.as_dims(target))]
    if all(isinstance(d, int) for d in new + in_dims):
        return _R.reshape(xs[0], new)
    if sum(1 for d in new if isinstance(d, int) and d == -1) == 1:  # infer it: Relax cannot, symbolically
        known = 1
        for d in new:
            known = known if isinstance(d, int) and d == -1 else known * d
        total = 1
        for d in in_dims:
            total = total * d
        new = [symbolic.simplify(tirx.floordiv(total, known)) if isinstance(d, int) and d == -1 else d for d in new]
    return _R.reshape(xs[0], new)


@lowers("Flatten")
def flatten(ctx, node, xs):
    s = shape_of(xs[0])
    if s is None:
        return NotImplemented
    axis = int(attr(node, "axis", 1))
    axis = axis + len(s) if axis < 0 else axis
    lead = int(np.prod(s[:axis], dtype=np.int64))
    return _R.reshape(xs[0], [lead, int(np.prod(s[axis:], dtype=np.int64))])


@lowers("Transpose")
def transpose(ctx, node, xs):
    return _R.permute_dims(xs[0], attr(node, "perm"))


@lowers("Concat")
def concat(ctx, node, xs):
    return _R.concat([x for x in xs if x is not None], axis=int(attr(node, "axis")))


def _axes(ctx, node, input_index: int):
    if ctx.opset >= 13 and len(node.inputs) > input_index:
        a = ctx.const_array(node.inputs[input_index])
        return None if a is None else [int(v) for v in a.reshape(-1)]
    return attr(node, "axes")


@lowers("Unsqueeze")
def unsqueeze(ctx, node, xs):
    axes = _axes(ctx, node, 1)
    s = shape_of(xs[0])
    if axes is None or s is None:
        return NotImplemented
    out_rank = len(s) + len(axes)
    axes = sorted(a % out_rank for a in axes)
    new, it = [], iter(s)
    for i in range(out_rank):
        new.append(1 if i in axes else next(it))
    return _R.reshape(xs[0], new)


@lowers("Squeeze")
def squeeze(ctx, node, xs):
    s = shape_of(xs[0])
    if s is None:
        return NotImplemented
    has_axes = (ctx.opset >= 13 and len(node.inputs) > 1 and node.inputs[1] is not None) or (
        ctx.opset < 13 and attr(node, "axes") is not None)
    axes = _axes(ctx, node, 1) if has_axes else [i for i, d in enumerate(s) if d == 1]
    if axes is None:
        return NotImplemented
    axes = {a % len(s) for a in axes}
    return _R.reshape(xs[0], [d for i, d in enumerate(s) if i not in axes])


@lowers("Gather")
def gather(ctx, node, xs):
    idx = ctx.const_array(node.inputs[1])
    s = shape_of(xs[0])
    if idx is None and symbolic.has_symbolic_dim(xs[1]):
        return _runtime_gather(ctx, node, xs)
    if idx is None or s is None:
        return NotImplemented
    axis = int(attr(node, "axis", 0)) % len(s)
    idx = np.where(idx < 0, idx + s[axis], idx).astype("int64")
    return _R.take(xs[0], relax.const(idx), axis=axis)


def _runtime_gather(ctx, node, xs):
    """Gather with run-time indices of a symbolic shape (an embedding lookup of token ids): negative indices wrapped, and a guard that every index is in range (TVM's
    take reads memory at the index: a token id >= vocab would read past the table)."""
    dims, idx_dims = dims_of(xs[0]), dims_of(xs[1])
    if dims is None or idx_dims is None or not dtype_of(xs[1]).startswith("int"):
        return NotImplemented
    axis = int(attr(node, "axis", 0)) % len(dims)
    idx = ctx.emit(_R.astype(xs[1], "int64"))
    _guard_in_range(ctx, node, ctx.emit(_R.expand_dims(idx, -1)), [dims[axis]])
    dim = ctx.emit(_R.reshape(_R.shape_to_tensor(relax.ShapeExpr([dims[axis]])), []))
    idx = ctx.emit(_R.where(_R.less(idx, relax.const(0, "int64")), _R.add(idx, dim), idx))
    return _R.take(xs[0], idx, axis=axis)


@lowers("Slice")
def slice_(ctx, node, xs):
    s = shape_of(xs[0])
    if ctx.opset < 10:  # Slice-1: starts/ends/axes are attributes, no steps
        starts, ends = attr(node, "starts"), attr(node, "ends")
        if s is None or starts is None or ends is None:
            return NotImplemented
        starts, ends = [int(v) for v in starts], [int(v) for v in ends]
        axes = attr(node, "axes")
        axes = [int(a) for a in axes] if axes is not None else list(range(len(starts)))
        steps = [1] * len(starts)
    else:
        vals = [ctx.const_array(v) if v is not None else None for v in node.inputs[1:5]]
        if vals[0] is None or vals[1] is None or any(
                v is None and i < len(node.inputs) - 1 and node.inputs[i + 1] is not None for i, v in enumerate(vals)):
            return runtime_slice(ctx, node, xs)
        if s is None:
            return NotImplemented
        starts, ends = vals[0].tolist(), vals[1].tolist()
        axes = vals[2].tolist() if len(vals) > 2 and vals[2] is not None else list(range(len(starts)))
        steps = vals[3].tolist() if len(vals) > 3 and vals[3] is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        return NotImplemented
    if any(st < 0 for st in steps):
        return NotImplemented
    axes = [a % len(s) for a in axes]
    b, e = [], []
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        dim = s[ax]
        st = min(max(st + dim if st < 0 else st, 0), dim)
        en = min(max(en + dim if en < 0 else en, 0), dim)
        b.append(st)
        e.append(max(en, st))
    return _R.strided_slice(xs[0], axes=axes, begin=b, end=e, strides=steps)


@lowers("Split")
def split(ctx, node, xs):
    s = shape_of(xs[0])
    if s is None:
        return NotImplemented
    axis = int(attr(node, "axis", 0)) % len(s)
    if ctx.opset >= 13:
        sizes = ctx.const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
        if sizes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
            return NotImplemented
        sizes = None if sizes is None else sizes.tolist()
    else:
        sizes = attr(node, "split")
    n = len(node.outputs)
    if sizes is None:
        if s[axis] % n:
            return NotImplemented
        sizes = [s[axis] // n] * n
    if 0 in sizes:  # R.split needs strictly increasing indices: slice each part
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        parts = []
        for b, e in zip(bounds[:-1], bounds[1:]):
            if b == e:
                shape = list(s)
                shape[axis] = 0
                parts.append(empty_like(ctx, xs[0], shape))
            else:
                parts.append(ctx.emit(_R.strided_slice(xs[0], axes=[axis], begin=[b], end=[e])))
        return parts
    idx = np.cumsum(sizes)[:-1].tolist()
    out = ctx.emit(_R.split(xs[0], idx, axis=axis))
    return [ctx.emit(relax.TupleGetItem(out, i)) for i in range(n)]


@lowers("GatherND")
def gather_nd(ctx, node, xs):
    """GatherND as one TE kernel, ONNX's negative indices wrapped by the data's (possibly symbolic)
    dims read inside the kernel. Exporters build the attention-mask lookup this way: indices from
    Range/Expand over symbolic batch and sequence dims, which TVM's ONNX converter cannot take
    (it needs static shapes)."""
    data_dims, idx_dims = dims_of(xs[0]), dims_of(xs[1])
    if data_dims is None or idx_dims is None or not isinstance(idx_dims[-1], int):
        return NotImplemented
    b, k = int(attr(node, "batch_dims", 0)), idx_dims[-1]
    if b + k > len(data_dims) or b >= len(idx_dims):
        raise Unsupported(f"GatherND: batch_dims {b} + index depth {k} exceed the data rank {len(data_dims)}")
    const_idx = ctx.const_array(node.inputs[1])
    if const_idx is None:
        _guard_in_range(ctx, node, xs[1], data_dims[b:b + k])
    elif all(isinstance(d, int) for d in data_dims[b:b + k]) and const_idx.size:
        dims = np.array(data_dims[b:b + k], np.int64)
        if ((const_idx < -dims) | (const_idx >= dims)).any():
            raise ModelValidationError(f"{ctx.file}: node '{node.name or node.op_type}' (GatherND): a constant index "
                                       f"is out of range for the data's shape {data_dims}")
    return ctx.bb.emit_te(_gather_nd_te, xs[0], xs[1], b, k, primfunc_name_hint="gather_nd")


def _guard_in_range(ctx, node, idx, dims: list) -> None:
    """Run-time check that every index (the last axis of `idx` runs over `dims`) lies in
    [-dim, dim): the kernels read memory at the index, and exporters compute these indices from
    the inputs' sizes (an attention mask shorter than past + new tokens would index past its end)."""
    dims_t = ctx.emit(_R.shape_to_tensor(relax.ShapeExpr(dims)))
    ok = ctx.emit(_R.logical_and(_R.greater_equal(idx, _R.negative(dims_t)), _R.less(idx, dims_t)))
    ok = ctx.emit(_R.min(_R.astype(ok, "int32")) if 0 not in dims_of(idx) else relax.const(1, "int32"))
    ctx.guard(ctx.emit(_R.greater_equal(ok, relax.const(1, "int32"))),
              f"{GUARD_PREFIX}{ctx.file}: node '{node.name or node.op_type}' ({node.op_type}): an index is out of "
              f"range for the data's shape (a token id >= vocabulary, an attention_mask shorter than past + new "
              f"tokens, ...)")


def _gather_nd_te(data, indices, b: int, k: int):
    lead = list(indices.shape[:-1])

    def element(*i):
        outer, rest = i[:len(lead)], i[len(lead):]
        at = []
        for j in range(k):
            v = indices[(*outer, j)].astype("int64")
            at.append(tirx.if_then_else(v < 0, v + data.shape[b + j], v))
        return data[(*outer[:b], *at, *rest)]

    return te.compute(lead + list(data.shape[b + k:]), element, name="gather_nd")
