"""Blocks for tensors of any rank: shape subgraphs (Shape/Gather/Concat/Reshape, Expand to a
computed shape, ConstantOfShape, Range), Reduce*, Slice (negative steps and indices), Expand,
Tile, TopK, CumSum, Split/Concat, Transpose."""

from __future__ import annotations

import numpy as np

from edgec.fuzz.blocks_elementwise import activation, positive
from edgec.fuzz.graph import Graph, Value

MAX_ELEMENTS = 8192


def numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def shape_of(g: Graph, x: Value) -> Value:
    return g.op("Shape", [x], (x.rank,), "int64")


def reshape_computed(g: Graph, x: Value) -> Value:
    """Merge two adjacent dims with a shape computed from Shape(x), then maybe restore it."""
    i = int(g.rng.integers(x.rank - 1))
    s = shape_of(g, x)
    parts = []
    if i > 0:
        parts.append(g.op("Slice", [s, g.ints([0]), g.ints([i])], (i,), "int64"))
    dims = [g.op("Gather", [s, g.ints([j])], (1,), "int64", axis=0) for j in (i, i + 1)]
    parts.append(g.op("Mul", dims, (1,), "int64"))
    if i + 2 < x.rank:
        parts.append(g.op("Slice", [s, g.ints([i + 2]), g.ints([x.rank])], (x.rank - i - 2,), "int64"))
    target = g.op("Concat", parts, (x.rank - 1,), "int64", axis=0) if len(parts) > 1 else parts[0]
    merged = x.shape[:i] + (x.shape[i] * x.shape[i + 1],) + x.shape[i + 2:]
    y = activation(g, g.op("Reshape", [x, target], merged))
    return g.op("Reshape", [y, s], x.shape) if g.chance(0.6) else y


def reshape_special(g: Graph, x: Value) -> Value:
    """Reshape with 0 (copy a dim) and -1 (infer a dim), then back."""
    flat = (x.shape[0], numel(x.shape[1:]))
    y = activation(g, g.op("Reshape", [x, g.ints([0, -1])], flat))
    return g.op("Reshape", [y, g.ints(list(x.shape))], x.shape)


def unsqueeze_squeeze(g: Graph, x: Value) -> Value:
    axis = int(g.rng.integers(-x.rank - 1, x.rank + 1))
    pos = axis if axis >= 0 else axis + x.rank + 1
    shape = x.shape[:pos] + (1,) + x.shape[pos:]
    y = activation(g, g.op("Unsqueeze", [x, g.ints([axis])], shape))
    return g.op("Squeeze", [y, g.ints([pos])], x.shape)


def transpose(g: Graph, x: Value) -> Value:
    perm = [int(p) for p in g.rng.permutation(x.rank)]
    return g.op("Transpose", [x], tuple(x.shape[p] for p in perm), perm=perm)


def expand_computed(g: Graph, x: Value) -> Value:
    """Expand a reduction back to Shape(x): a broadcast to a computed shape."""
    axis = int(g.rng.integers(x.rank))
    kept = tuple(1 if a == axis else d for a, d in enumerate(x.shape))
    r = g.op("ReduceMax", [x], kept, axes=[axis], keepdims=1)
    e = g.op("Expand", [r, shape_of(g, x)], x.shape)
    return g.same(g.pick(("Sub", "Add", "Mul")), x, e)


def constant_of_shape(g: Graph, x: Value) -> Value:
    fill = g.op("ConstantOfShape", [shape_of(g, x)], x.shape,
                value=__import__("onnx").helper.make_tensor("v", 1, [1], [float(g.pick([0.5, -1.0, 2.0]))]))
    return g.same(g.pick(("Add", "Mul")), x, fill)


def range_positions(g: Graph, x: Value) -> Value:
    """Positions 0..n-1 of the last dim from Range over a Gather of Shape(x), cast to float."""
    n = x.shape[-1]
    limit = g.op("Gather", [shape_of(g, x), g.ints(-1)], (), "int64", axis=0)
    r = g.op("Range", [g.ints(0), limit, g.ints(1)], (n,), "int64")
    pos = g.op("Cast", [r], (n,), to=1)
    return g.op("Add", [x, g.op("Mul", [pos, g.const(np.float32(0.1))], (n,))], x.shape)


def size_scale(g: Graph, x: Value) -> Value:
    size = g.op("Cast", [g.op("Size", [x], (), "int64")], (), to=1)
    return g.same("Mul", x, g.op("Div", [g.const(np.float32(4.0)), size], ()))


def reduce(g: Graph, x: Value) -> Value:
    op = g.pick(("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                 "ReduceLogSumExp", "ReduceSumSquare"))
    n_axes = int(g.rng.integers(1, x.rank + 1)) if x.rank > 1 else 1
    axes = sorted(int(a) for a in g.rng.choice(x.rank, size=n_axes, replace=False))
    keep = int(g.chance(0.5)) if n_axes < x.rank else 1
    if op == "ReduceProd":   # bounded factors in [0.5, 1.5] over few elements
        x = g.same("Add", g.same("Sigmoid", x), g.const(np.float32(0.5)))
        axes = axes[:1]
        keep = 1 if x.rank == 1 else keep
    shape = tuple(1 if a in axes else d for a, d in enumerate(x.shape)) if keep else \
        tuple(d for a, d in enumerate(x.shape) if a not in axes)
    signed = [a - x.rank if g.chance(0.3) else a for a in axes]
    if op == "ReduceSum":
        return g.op(op, [x, g.ints(signed)], shape, keepdims=keep)
    return g.op(op, [x], shape, axes=signed, keepdims=keep)


def _slice_len(dim: int, start: int, end: int, step: int) -> int:
    return len(range(*slice(start, end, step).indices(dim)))


def slice_block(g: Graph, x: Value) -> Value:
    axes = [a for a in range(x.rank) if x.shape[a] > 1] or [x.rank - 1]
    axes = [int(a) for a in g.rng.choice(axes, size=int(g.rng.integers(1, len(axes) + 1)), replace=False)]
    starts, ends, steps, shape = [], [], [], list(x.shape)
    for a in axes:
        d = x.shape[a]
        step = int(g.pick([1, 1, 2, -1, -1, -2, 3]))
        if step > 0:
            start, end = int(g.rng.integers(-d, d)), int(g.pick([d, 1 << 40, -1, d - 1]))
        else:
            start, end = int(g.pick([-1, d - 1, 1 << 40, d // 2])), int(g.pick([-(1 << 62), -d - 1, 0, -d]))
        if _slice_len(d, start, end, step) < 1:
            start, end, step = 0, d, 1
        starts.append(start), ends.append(end), steps.append(step)
        shape[a] = _slice_len(d, start, end, step)
    signed = [a - x.rank if g.chance(0.3) else a for a in axes]
    ins = [x, g.ints(starts), g.ints(ends), g.ints(signed), g.ints(steps)]
    return g.op("Slice", ins, tuple(shape))


def expand_static(g: Graph, x: Value) -> Value:
    """Expand over a new leading dim or a size-1 dim, then reduce it away again (maybe)."""
    reps = int(g.pick([2, 3]))
    if numel(x.shape) * reps > MAX_ELEMENTS:
        return activation(g, x)
    target = (reps,) + x.shape
    y = g.op("Expand", [x, g.ints(list(target) if g.chance(0.5) else [reps] + [1] * x.rank)], target)
    y = g.same("Mul", y, g.const(g.uniform((reps,) + (1,) * x.rank)))
    return g.op("ReduceSum", [y, g.ints([0])], x.shape, keepdims=0)


def tile(g: Graph, x: Value) -> Value:
    reps = [1] * x.rank
    axis = int(g.rng.integers(x.rank))
    reps[axis] = 2 if numel(x.shape) * 2 <= MAX_ELEMENTS else 1
    return g.op("Tile", [x, g.ints(reps)], tuple(d * r for d, r in zip(x.shape, reps)))


def topk(g: Graph, x: Value) -> Value:
    axis = int(g.rng.integers(x.rank))
    k = int(g.rng.integers(1, x.shape[axis] + 1))
    shape = tuple(k if a == axis else d for a, d in enumerate(x.shape))
    vals, _ = g.op("TopK", [x, g.ints([k])], [shape, shape], ["float32", "int64"], n_out=2, axis=axis,
                   largest=int(g.chance(0.7)), sorted=1)
    return vals


def cumsum(g: Graph, x: Value) -> Value:
    axis = int(g.rng.integers(-x.rank, x.rank))
    return g.same("CumSum", x, g.ints(axis), exclusive=int(g.chance(0.3)), reverse=int(g.chance(0.3)))


def split_concat(g: Graph, x: Value) -> Value:
    axes = [a for a in range(x.rank) if x.shape[a] >= 2]
    if not axes:
        return activation(g, x)
    axis = int(g.pick(axes))
    d = x.shape[axis]
    cut = int(g.rng.integers(1, d))
    shapes = [tuple(n if a == axis else s for a, s in enumerate(x.shape)) for n in (cut, d - cut)]
    parts = g.op("Split", [x, g.ints([cut, d - cut])], shapes, n_out=2, axis=axis)
    parts = [activation(g, parts[0]), parts[1]][::-1]
    return g.op("Concat", parts, x.shape, axis=axis - x.rank if g.chance(0.3) else axis)


def div_by_reduction(g: Graph, x: Value) -> Value:
    """Normalize by a computed, safe denominator: x / (ReduceL1(x) + 1) style."""
    kept = x.shape[:-1] + (1,)
    den = positive(g, g.op("ReduceSum", [x, g.ints([-1])], kept, keepdims=1))
    return g.op("Div", [x, den], x.shape)


SHAPE_BLOCKS = {
    "reshape_computed": (reshape_computed, 3, lambda x: x.rank >= 2),
    "reshape_special": (reshape_special, 1, lambda x: x.rank >= 2),
    "unsqueeze_squeeze": (unsqueeze_squeeze, 2, lambda x: x.rank <= 4),
    "transpose": (transpose, 2, lambda x: x.rank >= 2),
    "expand_computed": (expand_computed, 2, lambda x: True),
    "constant_of_shape": (constant_of_shape, 1, lambda x: True),
    "range_positions": (range_positions, 1, lambda x: True),
    "size_scale": (size_scale, 1, lambda x: True),
}

REDUCE_SLICE_BLOCKS = {
    "reduce": (reduce, 3, lambda x: x.rank >= 2 or x.shape[0] > 1),
    "slice": (slice_block, 3, lambda x: True),
    "expand_static": (expand_static, 1, lambda x: x.rank <= 3),
    "tile": (tile, 1, lambda x: True),
    "topk": (topk, 1, lambda x: True),
    "cumsum": (cumsum, 1, lambda x: True),
    "split_concat": (split_concat, 1, lambda x: True),
    "div_by_reduction": (div_by_reduction, 1, lambda x: True),
}


def tensor_input(g: Graph) -> Value:
    rank = int(g.rng.integers(2, 5))
    shape = [int(g.pick([1, 2, 3, 4, 5, 7, 8, 12, 16])) for _ in range(rank)]
    while numel(shape) > 2048:
        shape[int(np.argmax(shape))] //= 2
    return g.input(shape, prefix="x")
