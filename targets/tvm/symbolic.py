"""Shape computations over symbolic dims, evaluated while lowering.

A model compiled with symbolic dims (`lower_model(..., symbolic=True)`) has inputs whose named
or unknown dims are TIR variables. The ONNX graph computes with them the way exporters write
it: Shape -> Gather / Slice -> Unsqueeze -> Concat -> (Mul, Div, ...) -> Reshape / Expand /
ConstantOfShape / Range. Constant folding (`lower._fold`) cannot evaluate those; this module
does, with elements that are ints or TIR expressions of the dims ("shape values", numpy object
arrays kept in `LowerContext.symbolic`). Consumers read them with `shape_value`, so a Reshape
gets the target shape `[batch, seq, 4, 16]` as Relax shape expressions, and the compiled code
computes every size from the input shapes at run time. A shape value is also emitted as an
int64 tensor (`materialize`) for any consumer that needs the data; dead-code elimination drops it
when nothing does.

Only small integer tensors (at most `MAX_ELEMENTS` elements) are evaluated; an op this module
does not know leaves its outputs as ordinary run-time tensors.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np
import onnx_ir as ir
import tvm
import tvm.sym
from tvm import relax, tirx

from edgec.ir.domains import is_onnx_domain
from edgec.targets.tvm.lower_context import LowerContext, attr, const

_R = relax.op
MAX_ELEMENTS = 64
_ANALYZER = tvm.sym.Analyzer()


def new_dim(name: str, bounds: tuple[int, int] | None = None) -> tirx.Var:
    """A symbolic input dim: an int64 variable the analyzer knows to be >= 0 (a size), so that
    `seq != -1` (exporters compare shapes with -1 before Expand) is decided at compile time;
    within `bounds` (lo, hi) when given (`--dim NAME=LO..HI`)."""
    v = tirx.Var(name, "int64")
    lo, hi = bounds if bounds is not None else (0, tvm.sym.ConstIntBound.POS_INF)
    _ANALYZER.update(v, tvm.sym.ConstIntBound(lo, hi))
    return v


def simplify(e):
    """An int for a constant expression, else the simplified TIR expression."""
    if isinstance(e, (int, np.integer)):
        return int(e)
    e = _ANALYZER.simplify(e)
    return int(e.value) if isinstance(e, tirx.IntImm) else e


_BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "FloorDiv": "//", "Div": "//", "FloorMod": "%", "Mod": "%"}


def format_dim(e) -> str | int:
    """A dim for people and metadata: an int, a name, or an expression of names (`seq // 2`)."""
    e = simplify(e)
    if isinstance(e, int):
        return e
    if isinstance(e, tirx.Var):
        return str(e.name)
    kind = type(e).__name__
    if kind in _BINARY:
        def side(x):
            s = format_dim(x)
            return f"({s})" if isinstance(s, str) and " " in s else str(s)
        return f"{side(e.a)} {_BINARY[kind]} {side(e.b)}"
    if kind in ("Max", "Min"):
        return f"{kind.lower()}({format_dim(e.a)}, {format_dim(e.b)})"
    return str(e)


def is_symbolic(arr: np.ndarray) -> bool:
    return arr.dtype == object and any(not isinstance(e, int) for e in arr.reshape(-1))


def dims_of(x: relax.Expr) -> list | None:
    """A tensor expression's shape: ints and TIR expressions, or None (unknown rank/shape)."""
    s = getattr(getattr(x, "ty", None), "shape", None)
    if not isinstance(s, relax.ShapeExpr):
        return None
    return [simplify(d) for d in s.values]


def has_symbolic_dim(x: relax.Expr) -> bool:
    dims = dims_of(x)
    return dims is not None and any(not isinstance(d, int) for d in dims)


def shape_value(ctx: LowerContext, v: ir.Value | None) -> np.ndarray | None:
    """The value of `v` if known at compile time: an int array (a constant) or an object array of
    ints and TIR expressions (a shape value); None otherwise."""
    if v is None:
        return None
    c = ctx.const_array(v)
    return c if c is not None else ctx.symbolic.get(v.name)


def as_dims(arr: np.ndarray) -> list:
    """A 1-D shape value as Relax shape dims (ints / PrimExprs)."""
    return [simplify(e) for e in arr.reshape(-1)]


def materialize(ctx: LowerContext, arr: np.ndarray) -> relax.Expr:
    """The shape value `arr` (0-D or 1-D) as an int64 tensor computed at run time."""
    t = ctx.emit(_R.shape_to_tensor(relax.ShapeExpr(as_dims(arr))))
    return ctx.emit(_R.reshape(t, [])) if arr.ndim == 0 else t


def _obj(a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == object:
        return a
    out = np.empty(a.shape, object)
    out.reshape(-1)[:] = [int(e) for e in a.reshape(-1)]
    return out


def _elementwise(fn: Callable) -> Callable:
    def run(node, ins):
        if len(ins) != 2:
            return None
        a, b = np.broadcast_arrays(_obj(ins[0]), _obj(ins[1]))
        out = np.empty(a.shape, object)
        out.reshape(-1)[:] = [simplify(fn(x, y)) for x, y in zip(a.reshape(-1), b.reshape(-1))]
        return [out]
    return run


def _int_div(x, y):
    """ONNX integer Div truncates toward zero."""
    if isinstance(x, int) and isinstance(y, int):
        if not y:
            return None
        q = abs(x) // abs(y)
        return q if (x >= 0) == (y > 0) else -q
    return tirx.truncdiv(x, y)


def _int_mod(x, y):
    if isinstance(x, int) and isinstance(y, int):
        return x % y
    return tirx.floormod(x, y)


def _minmax(fn):
    def f(x, y):
        if isinstance(x, int) and isinstance(y, int):
            return fn(x, y)
        return (tirx.max if fn is max else tirx.min)(x, y)
    return f


def _shape(node, ins, dims):
    r = len(dims)
    start, end = int(attr(node, "start", 0)), attr(node, "end")
    start = min(max(start + r if start < 0 else start, 0), r)
    end = r if end is None else min(max(int(end) + r if int(end) < 0 else int(end), 0), r)
    return [_obj(np.array(dims[start:end], dtype=object) if dims[start:end] else np.zeros(0, np.int64))]


def _size(node, ins, dims):
    n = 1
    for d in dims:
        n = n * d
    return [_scalar(simplify(n))]


def _gather(node, ins):
    data, idx = _obj(ins[0]), ins[1]
    if idx.dtype == object or data.ndim != 1:
        return None
    return [np.take(data, idx.astype(np.int64), axis=int(attr(node, "axis", 0)))]


def _concat(node, ins):
    return [np.concatenate([_obj(a).reshape(-1) if a.ndim == 0 else _obj(a) for a in ins],
                           axis=int(attr(node, "axis", 0)))]


def _unsqueeze(node, ins):
    axes = ins[1] if len(ins) > 1 else np.array(attr(node, "axes", []), np.int64)
    if axes is None or axes.dtype == object:
        return None
    out = _obj(ins[0])
    r = out.ndim + axes.size
    for a in sorted(int(x) % r for x in axes.reshape(-1)):
        out = np.expand_dims(out, a)
    return [out]


def _squeeze(node, ins):
    axes = ins[1] if len(ins) > 1 else attr(node, "axes")
    data = _obj(ins[0])
    if axes is None:
        return [data.squeeze()]
    axes = np.asarray(axes)
    if axes.dtype == object:
        return None
    return [data.squeeze(axis=tuple(int(a) % data.ndim for a in axes.reshape(-1)))]


def _slice(node, ins):
    data = _obj(ins[0])
    if data.ndim != 1 or any(a is not None and a.dtype == object for a in ins[1:]):
        return None
    starts, ends = int(ins[1].reshape(-1)[0]), int(ins[2].reshape(-1)[0])
    if len(ins) > 3 and ins[3] is not None and int(ins[3].reshape(-1)[0]) != 0:
        return None
    step = int(ins[4].reshape(-1)[0]) if len(ins) > 4 and ins[4] is not None else 1
    return [data[slice(starts, ends, step)] if step else None]


def _reshape_value(node, ins):
    if ins[1].dtype == object:
        return None
    shape = [int(d) for d in ins[1].reshape(-1)]
    src = _obj(ins[0])
    shape = [src.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return [src.reshape(shape)]


def _identity(node, ins):
    return [_obj(ins[0])]


def _cast(node, ins):
    to = int(attr(node, "to", 0))
    if to not in (ir.DataType.INT64.value, ir.DataType.INT32.value):
        return None
    return [_obj(ins[0])]


def _reduce_prod(node, ins):
    data = _obj(ins[0])
    if len(ins) > 1 or attr(node, "axes") is not None or data.ndim != 1:
        return None
    n = 1
    for e in data:
        n = n * e
    out = _scalar(simplify(n))
    return [out.reshape([1]) if int(attr(node, "keepdims", 1)) else out]


def _where(node, ins):
    c, a, b = ins
    if c.dtype == object:
        return None
    return [np.where(c.astype(bool), _obj(a), _obj(b))]


def _equal(node, ins):
    a, b = np.broadcast_arrays(_obj(ins[0]), _obj(ins[1]))
    out = []
    for x, y in zip(a.reshape(-1), b.reshape(-1)):
        d = simplify(x - y) if not (isinstance(x, int) and isinstance(y, int)) else x - y
        if not isinstance(d, int):
            if _ANALYZER.can_prove(d != 0):  # a size against a negative number
                d = 1
            else:
                return None  # undecidable at compile time (a symbolic dim against a number)
        out.append(d == 0)
    return [np.array(out, bool).reshape(a.shape)]


# op -> fn(node, inputs) for ops computing on shape values
_OPS: dict[str, Callable] = {
    "Add": _elementwise(operator.add), "Sub": _elementwise(operator.sub), "Mul": _elementwise(operator.mul),
    "Div": _elementwise(_int_div), "Mod": _elementwise(_int_mod),
    "Max": _elementwise(_minmax(max)), "Min": _elementwise(_minmax(min)),
    "Gather": _gather, "Concat": _concat, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Slice": _slice,
    "Reshape": _reshape_value, "Identity": _identity, "Cast": _cast, "ReduceProd": _reduce_prod,
    "Where": _where, "Equal": _equal,
}
_OF_SHAPE = {"Shape": _shape, "Size": _size}


def evaluate(ctx: LowerContext, node: ir.Node, inputs: list) -> list[np.ndarray] | None:
    """The node's outputs as shape values when it computes on shapes and at least one input is a
    symbolic shape value (or it takes the Shape/Size of a tensor with symbolic dims); None when
    it is not such a node."""
    if not is_onnx_domain(node.domain):
        return None
    if node.op_type in _OF_SHAPE:
        dims = dims_of(inputs[0]) if inputs and inputs[0] is not None else None
        if dims is None or all(isinstance(d, int) for d in dims):
            return None
        return _OF_SHAPE[node.op_type](node, inputs, dims)
    fn = _OPS.get(node.op_type)
    if fn is None:
        return None
    vals = [shape_value(ctx, v) if v is not None and v.name else None for v in node.inputs]
    present = [a for v, a in zip(node.inputs, vals) if v is not None and v.name]
    if not present or any(a is None for a in present) or not any(is_symbolic(a) for a in present):
        return None
    if any(a.size > MAX_ELEMENTS or (a.dtype != object and a.dtype.kind not in "iub") for a in present):
        return None
    try:
        outs = fn(node, vals)
    except (ValueError, IndexError, TypeError):
        return None
    if outs is None or any(o is None for o in outs):
        return None
    return [o if isinstance(o, np.ndarray) else _scalar(o) for o in outs]  # numpy gives a 0-d result as the element


def _scalar(e) -> np.ndarray:
    out = np.empty((), object)
    out[()] = e
    return out


def bind_shape_values(ctx: LowerContext, node: ir.Node, outs: list[np.ndarray], dtypes: list[str]) -> None:
    """Outputs computed on shape values: symbolic ones stay shape values (and are emitted as
    tensors of `dtypes` for any consumer that reads the data), all-int ones are constants."""
    for v, arr, dtype in zip(node.outputs, outs, dtypes):
        if not v.name:
            continue
        if is_symbolic(arr):
            ctx.symbolic[v.name] = arr
            t = materialize(ctx, arr)
            ctx.values[v.name] = t if dtype == "int64" else ctx.emit(_R.astype(t, dtype))
        else:
            arr = np.asarray(arr.tolist() if arr.dtype == object else arr, dtype=dtype)
            ctx.constants[v.name] = arr
            ctx.values[v.name] = const(arr)
