"""Which ops the channel-blocked layout (NCHW{b}c) may pass through, and barriers before the rest.

Relax's ConvertLayout moves every op that has a layout-inference rule into the layout of its
inputs, but several of those rules are wrong for a packed (sub-indexed) layout such as
`ABCD8b`: a binary op whose other operand broadcasts over the channels ([1,1,H,W]) fails
("Cannot broadcast from 5 to 4"), `concat`/`split` map a negative axis onto the wrong axis,
`split` keeps its indices in channel units while splitting the outer block axis, and the
rules for conv2d_transpose, softmax, ... assume an unpacked layout.

`guard_blocked(mod)` runs before ConvertLayout. Each call of an op with a layout rule is either
provably right in the blocked layout (the allow-list below, with its conditions), or its tensor
arguments are wrapped in a *barrier*: a pure packed call ConvertLayout knows nothing of, so it
returns them to the plain layout (ending the blocked region before the op) and the op itself
sees only plain inputs. `strip_barriers(mod)` removes the barriers after ConvertLayout.
Normalizations that keep more ops blocked (or out of a broken rule) without changing results:
`stack` as concat of expand_dims (its rule aborts on any input), axes made non-negative,
all-ones broadcast operands made scalars, lower-rank operands given leading unit dims, and a
split into equal parts expressed as a number of sections.
Bool tensors never enter the blocked layout: TVM legalizes (and FoldConstant pre-legalizes)
every `layout_transform` with a float 0.0 pad value unless the dtype is an integer, which fails
on a bool mask (an Elu's `x < 0` after a blocked conv).
"""

from __future__ import annotations

import tvm
from tvm import relax

BARRIER = "edgec.layout_barrier"

_UNARY = frozenset("relax." + n for n in (
    "abs acos acosh asin asinh astype atan atanh bitwise_not ceil cos cosh erf exp floor isfinite isinf "
    "isnan log logical_not negative round rsqrt sigmoid sign sin sinh sqrt square tan tanh trunc "
    "nn.gelu nn.gelu_tanh nn.relu nn.selu nn.silu").split())
_BINARY = frozenset("relax." + n for n in (
    "add atan2 bitwise_and bitwise_or bitwise_xor divide equal floor_divide floor_mod greater "
    "greater_equal left_shift less less_equal log_add_exp logical_and logical_or logical_xor maximum "
    "minimum mod multiply not_equal power right_shift subtract").split())
_REDUCE = frozenset("relax." + n for n in "sum mean max min prod std variance".split())
_POOL2D = frozenset(("relax.nn.max_pool2d", "relax.nn.avg_pool2d", "relax.nn.adaptive_avg_pool2d"))
_OWN_RULE = frozenset(("relax.nn.conv2d",))  # decided by convert_to_blocked's layout callback


def _shape(expr) -> list[int] | None:
    ty = getattr(expr, "ty", None)
    if not isinstance(ty, relax.TensorType) or ty.shape is None or ty.ndim < 0:
        return None
    try:
        return [int(d) for d in ty.shape.values]
    except (TypeError, AttributeError):
        return None


def _has_layout_rule(op) -> bool:
    return isinstance(op, tvm.ir.Op) and op.get_attr("FRelaxInferLayout") is not None


def _binary_ok(call: relax.Call) -> bool:
    """Every operand is a scalar or has the output's rank and all of its channels (axis 1): the
    blocked layout of one operand then applies to the other (broadcasting over other axes)."""
    out = _shape(call)
    shapes = [_shape(a) for a in call.args[:2]]
    if out is None or any(s is None for s in shapes):
        return False
    return all(len(s) == 0 or (len(s) == len(out) and (len(out) < 2 or s[1] == out[1])) for s in shapes)


def _reduce_ok(call: relax.Call) -> bool:
    """Reductions that keep the batch and channel axes (global pooling)."""
    s = _shape(call.args[0])
    axes = call.attrs.axis
    if s is None or len(s) < 2 or axes is None:
        return False
    return all(int(a) % len(s) >= 2 for a in axes)


def _out_dtypes(ty) -> list[str]:
    if isinstance(ty, relax.TupleType):
        return [d for f in ty.fields for d in _out_dtypes(f)]
    return [str(ty.dtype)] if isinstance(ty, relax.TensorType) else []


def _keeps_blocked(call: relax.Call) -> bool:
    name = call.op.name
    if "bool" in _out_dtypes(call.ty):
        return False
    if name in _UNARY or name in _OWN_RULE:
        return True
    if name in _BINARY:
        return _binary_ok(call)
    if name in _REDUCE:
        return _reduce_ok(call)
    if name in _POOL2D:
        return str(call.attrs.layout) == "NCHW" and str(call.attrs.out_layout) == "NCHW"
    if name == "relax.concat":
        return call.attrs.axis is not None and int(call.attrs.axis) >= 0
    if name == "relax.split":
        # indices stay in channel units while the op splits the outer block axis: sections only
        return int(call.attrs.axis) >= 0 and isinstance(call.attrs.indices_or_sections, tvm.tirx.IntImm)
    return False


def _normalize(bb: relax.BlockBuilder, call: relax.Call) -> relax.Call:
    """The same computation in a form more ops keep blocked: non-negative axes, all-ones
    broadcast operands as scalars, lower-rank operands with leading unit dims, equal splits by
    sections."""
    name = call.op.name
    if name == "relax.stack" and isinstance(call.args[0], relax.Tuple):
        # ConvertLayout's rule for stack aborts ("Invalid SLayout: can't find S") even on plain
        # inputs (Mean of several inputs lowers to stack + mean): the same values by concat
        ndim = call.args[0].fields[0].ty.ndim if call.args[0].fields else -1
        if ndim >= 0:
            axis = int(call.attrs.axis) % (ndim + 1) if call.attrs.axis is not None else 0
            parts = [bb.emit(relax.op.expand_dims(x, axis)) for x in call.args[0].fields]
            return bb.normalize(relax.op.concat(parts, axis=axis))
    if name == "relax.concat" and call.attrs.axis is not None and int(call.attrs.axis) < 0:
        fields = call.args[0].ty.fields
        if fields:
            return bb.normalize(relax.op.concat(call.args[0], axis=int(call.attrs.axis) + fields[0].ndim))
    if name == "relax.split":
        s = _shape(call.args[0])
        if s is None:
            return call
        axis = int(call.attrs.axis) % len(s)
        ios = call.attrs.indices_or_sections
        if not isinstance(ios, tvm.tirx.IntImm):
            idx = [int(i) for i in ios]
            n = len(idx) + 1
            if idx and s[axis] % n == 0 and idx == [s[axis] // n * (k + 1) for k in range(n - 1)]:
                ios = n
            else:
                ios = idx
        else:
            ios = int(ios)
        return bb.normalize(relax.op.split(call.args[0], ios, axis=axis))
    if name in _BINARY:
        out = _shape(call)
        shapes = [_shape(a) for a in call.args[:2]]
        if out is None or any(s is None for s in shapes) or len(out) < 2:
            return call
        args = list(call.args)
        changed = False
        for i, s in enumerate(shapes):
            other = shapes[1 - i]
            if 0 < len(s) and all(d == 1 for d in s) and len(other) == len(out):
                args[i], changed = _reshape(bb, args[i], []), True
            elif 0 < len(s) < len(out):
                args[i], changed = _reshape(bb, args[i], [1] * (len(out) - len(s)) + s), True
        if changed:
            return bb.normalize(relax.Call(call.op, args, call.attrs, call.ty_args))
    return call


def _reshape(bb: relax.BlockBuilder, x: relax.Expr, shape: list[int]) -> relax.Expr:
    if isinstance(x, tvm.ir.expr.Constant):
        return relax.const(x.value.numpy().reshape(shape), str(x.ty.dtype))
    return bb.emit(relax.op.reshape(x, shape))


def _barrier(bb: relax.BlockBuilder, x: relax.Expr) -> relax.Expr:
    if isinstance(x, relax.Tuple):
        return relax.Tuple([_barrier(bb, f) for f in x.fields])
    if isinstance(x.ty, (relax.TensorType, relax.TupleType)):
        return bb.emit(relax.op.call_pure_packed(BARRIER, x, ty_args=x.ty))
    return x


@relax.expr_functor.mutator
class _Guard(relax.PyExprMutator):
    def visit_call_(self, call):  # noqa: N802
        call = super().visit_call_(call)
        if not _has_layout_rule(call.op):
            return call
        call = _normalize(self.builder_, call)
        if _keeps_blocked(call):
            return call
        return relax.Call(call.op, [_barrier(self.builder_, a) for a in call.args], call.attrs, call.ty_args)


@relax.expr_functor.mutator
class _Strip(relax.PyExprMutator):
    def visit_call_(self, call):  # noqa: N802
        call = super().visit_call_(call)
        if (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.call_pure_packed"
                and isinstance(call.args[0], relax.ExternFunc) and call.args[0].global_symbol == BARRIER):
            return call.args[1]
        return call


def _each_function(mod: tvm.IRModule, mutator) -> tvm.IRModule:
    for gv, f in list(mod.functions.items()):
        if isinstance(f, relax.Function):
            mod[gv] = mutator().visit_expr(f)
    return mod


def guard_blocked(mod: tvm.IRModule) -> tvm.IRModule:
    """Barriers before every op whose blocked-layout rule is not known to be right."""
    return _each_function(mod, _Guard)


def strip_barriers(mod: tvm.IRModule) -> tvm.IRModule:
    return relax.transform.CanonicalizeBindings()(_each_function(mod, _Strip))

