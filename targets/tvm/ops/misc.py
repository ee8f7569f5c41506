"""Activations and math without a direct Relax op (Celu, Mish, Swish, Pow across dtypes),
Pad (constant pads, all modes, negative pads, axes), cumulative ops (CumSum/CumProd with
exclusive/reverse), OneHot, ReverseSequence, BitCast."""

from __future__ import annotations

import numpy as np
from tvm import relax, topi

from edgec.errors import GUARD_PREFIX
from edgec.targets.tvm.lower_context import attr, const, dtype_of, has_input, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.cast import onnx_dtype
from edgec.targets.tvm.ops.runtime_params import runtime_pad

_R = relax.op


def _f(x, v):
    return const(v, dtype_of(x))


@lowers("Celu")
def celu(ctx, node, xs):
    x = xs[0]
    a = float(attr(node, "alpha", 1.0))
    neg = ctx.emit(_R.multiply(_f(x, a), _R.subtract(_R.exp(_R.divide(x, _f(x, a))), _f(x, 1.0))))
    return _R.add(_R.maximum(x, _f(x, 0.0)), _R.minimum(neg, _f(x, 0.0)))


@lowers("Mish")
def mish(ctx, node, xs):
    x = xs[0]
    dt = dtype_of(x)
    # log(1 + exp(x)) loses all digits for x << 0 in float32: evaluate in float64
    x64 = ctx.emit(_R.astype(x, "float64")) if dt != "float64" else x
    sp = ctx.emit(_R.log(_R.add(_R.exp(x64), const(1.0, "float64"))))
    y = ctx.emit(_R.multiply(x64, _R.tanh(sp)))
    return _R.astype(y, dt) if dt != "float64" else y


@lowers("Softplus")
def softplus(ctx, node, xs):
    x = xs[0]
    dt = dtype_of(x)
    x64 = ctx.emit(_R.astype(x, "float64")) if dt != "float64" else x
    y = ctx.emit(_R.log(_R.add(_R.exp(x64), const(1.0, "float64"))))
    return _R.astype(y, dt) if dt != "float64" else y


@lowers("Elu")
def elu(ctx, node, xs):
    x = xs[0]
    a = float(attr(node, "alpha", 1.0))
    neg = ctx.emit(_R.multiply(_f(x, a), _R.subtract(_R.exp(x), _f(x, 1.0))))
    return _R.where(_R.less(x, _f(x, 0.0)), neg, x)


@lowers("Swish")
def swish(ctx, node, xs):
    x = xs[0]
    a = float(attr(node, "alpha", 1.0))
    return _R.multiply(x, _R.sigmoid(_R.multiply(x, _f(x, a)) if a != 1.0 else x))


@lowers("Pow")
def pow_(ctx, node, xs):
    x, y = xs
    dx, dy = dtype_of(x), dtype_of(y)
    if dx.startswith("float") and dx == dy:
        return _R.power(x, y)
    if dx.startswith("float"):  # float base, integer exponent: output has the base's type
        return _R.power(x, ctx.emit(_R.astype(y, dx)))
    # integer base: compute in float64 (exact for results below 2**53), then back to the base type
    p = ctx.emit(_R.power(ctx.emit(_R.astype(x, "float64")), ctx.emit(_R.astype(y, "float64"))))
    return _R.astype(p, dx)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


@lowers("Pad")
def pad(ctx, node, xs):
    x = xs[0]
    s = shape_of(x)
    if s is None:
        return NotImplemented
    r = len(s)
    mode = attr(node, "mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if ctx.opset < 11:
        pads, value = list(attr(node, "pads")), float(attr(node, "value", 0.0))
        axes = list(range(r))
    else:
        c = ctx.const_inputs(node, 1, 3)
        if c is None:
            return runtime_pad(ctx, node, xs)
        pads = [int(p) for p in c[0].reshape(-1)]
        axes = [int(a) % r for a in c[1].reshape(-1)] if c[1] is not None else list(range(r))
        value = 0.0
        if has_input(node, 2):
            cv = ctx.const_inputs(node, 2)
            value = xs[2] if cv is None else cv[0].reshape(-1)[0].item()
    if len(pads) != 2 * len(axes):
        raise Unsupported(f"Pad: {len(pads)} pads for {len(axes)} axes")
    before, after = [0] * r, [0] * r
    for i, a in enumerate(axes):
        before[a], after[a] = pads[i], pads[i + len(axes)]
    if any(p < 0 for p in before + after):  # crop first
        begin = [max(-b, 0) for b in before]
        end = [d - max(-a, 0) for d, a in zip(s, after)]
        x = ctx.emit(_R.strided_slice(x, axes=list(range(r)), begin=begin, end=end))
        before, after = [max(b, 0) for b in before], [max(a, 0) for a in after]
    if not any(before + after):
        return x
    width = [v for pair in zip(before, after) for v in pair]
    if mode not in _PAD_MODES:
        raise Unsupported(f"Pad mode '{mode}'")
    if mode == "constant" and isinstance(value, relax.Expr):  # runtime pad value
        value = ctx.emit(_R.reshape(value, []))
        if dtype_of(value) != dtype_of(x):
            value = ctx.emit(_R.astype(value, dtype_of(x)))
        inside = np.pad(np.ones(shape_of(x), dtype=bool), list(zip(before, after)))
        padded = ctx.emit(_R.nn.pad(x, width, "constant", 0.0))
        return _R.where(const(inside), padded, value)
    return _R.nn.pad(x, width, _PAD_MODES[mode], float(value) if mode == "constant" else 0.0)


def _cumulative(ctx, node, xs, fn):
    x = xs[0]
    s = shape_of(x)
    if s is None:
        return NotImplemented
    c = ctx.const_inputs(node, 1)
    if c is None:
        return _cumulative_runtime_axis(ctx, node, xs, fn, s)
    axis = int(c[0].reshape(-1)[0])
    return _cumulative_along(ctx, node, x, fn, axis + len(s) if axis < 0 else axis)


def _cumulative_runtime_axis(ctx, node, xs, fn, s):
    """The axis is a runtime input (the output shape does not depend on it): scan along every
    axis, select the one named at run time; a guard raises for an axis outside [-r, r-1]."""
    a = xs[1]
    pa = shape_of(a)
    if not s or pa is None or int(np.prod(pa, dtype=np.int64)) != 1 or not dtype_of(a).startswith("int"):
        return NotImplemented
    r = len(s)
    a64 = ctx.emit(_R.reshape(a if dtype_of(a) == "int64" else ctx.emit(_R.astype(a, "int64")), []))
    axis = ctx.emit(_R.where(_R.less(a64, const(np.int64(0))), _R.add(a64, const(np.int64(r))), a64))
    out = ctx.emit(_cumulative_along(ctx, node, xs[0], fn, r - 1))
    for i in range(r - 2, -1, -1):
        out = ctx.emit(_R.where(_R.equal(axis, const(np.int64(i))), ctx.emit(_cumulative_along(ctx, node, xs[0], fn, i)),
                                out))
    ok = ctx.emit(_R.logical_and(_R.greater_equal(axis, const(np.int64(0))), _R.less(axis, const(np.int64(r)))))
    ctx.guard(ok, f"{GUARD_PREFIX}{ctx.file}: node '{node.name or node.op_type}' ({node.op_type}) input "
                  f"'{node.inputs[1].name}': the runtime axis is outside [-{r}, {r - 1}]")
    return out


def _cumulative_along(ctx, node, x, fn, axis):
    exclusive, reverse = bool(attr(node, "exclusive", 0)), bool(attr(node, "reverse", 0))
    if reverse:
        x = ctx.emit(_R.flip(x, axis=axis))
    y = ctx.emit(fn(x, axis=axis, dtype=dtype_of(x), exclusive=exclusive))
    return _R.flip(y, axis=axis) if reverse else y


@lowers("CumSum")
def cumsum(ctx, node, xs):
    return _cumulative(ctx, node, xs, _R.cumsum)


@lowers("CumProd")
def cumprod(ctx, node, xs):
    return _cumulative(ctx, node, xs, _R.cumprod)


@lowers("OneHot")
def one_hot(ctx, node, xs):
    idx, values = xs[0], xs[2]
    s = shape_of(idx)
    c = ctx.const_inputs(node, 1)
    if s is None or c is None:
        return NotImplemented
    depth = int(np.asarray(c[0]).reshape(-1)[0])
    axis = int(attr(node, "axis", -1))
    axis = axis + len(s) + 1 if axis < 0 else axis
    i = idx if dtype_of(idx) == "int64" else ctx.emit(_R.astype(idx, "int64"))
    i = ctx.emit(_R.where(_R.less(i, const(np.int64(0))), _R.add(i, const(np.int64(depth))), i))
    i = ctx.emit(_R.expand_dims(i, axis))
    rng_shape = [1] * (len(s) + 1)
    rng_shape[axis] = depth
    hit = ctx.emit(_R.equal(i, const(np.arange(depth, dtype=np.int64).reshape(rng_shape))))
    off = ctx.emit(_R.strided_slice(values, axes=[0], begin=[0], end=[1]))
    on = ctx.emit(_R.strided_slice(values, axes=[0], begin=[1], end=[2]))
    return _R.where(hit, ctx.emit(_R.reshape(on, [])), ctx.emit(_R.reshape(off, [])))


@lowers("ReverseSequence")
def reverse_sequence(ctx, node, xs):
    x, lens = xs
    if shape_of(x) is None:
        return NotImplemented
    lens = lens if dtype_of(lens) == "int64" else ctx.emit(_R.astype(lens, "int64"))
    return _R.reverse_sequence(x, lens, seq_axis=int(attr(node, "time_axis", 0)),
                               batch_axis=int(attr(node, "batch_axis", 1)))


@lowers("BitCast")
def bitcast(ctx, node, xs):
    x = xs[0]
    to = onnx_dtype(attr(node, "to"))
    src = dtype_of(x)
    if to is None or src not in ("bool",) and np.dtype(src if src != "bfloat16" else "float16").itemsize != (
            np.dtype(to if to != "bfloat16" else "float16").itemsize):
        raise Unsupported(f"BitCast {src} -> {attr(node, 'to')}: only same-width numeric types")
    if "bool" in (src, to):
        raise Unsupported("BitCast to/from bool")
    return ctx.bb.emit_te(topi.reinterpret, x, to)


@lowers("CenterCropPad")
def center_crop_pad(ctx, node, xs):
    x = xs[0]
    s = shape_of(x)
    c = ctx.const_inputs(node, 1)
    if s is None or c is None:
        return NotImplemented
    r = len(s)
    target = [int(v) for v in c[0].reshape(-1)]
    axes = [int(a) % r for a in (attr(node, "axes") or range(r))]
    if len(axes) != len(target):
        raise Unsupported(f"CenterCropPad: {len(target)} sizes for {len(axes)} axes")
    begin, end, before, after = [0] * r, list(s), [0] * r, [0] * r
    for a, t in zip(axes, target):
        if t < s[a]:  # crop: the extra element (odd difference) comes off the end
            begin[a] = (s[a] - t) // 2
            end[a] = begin[a] + t
        elif t > s[a]:  # pad with zeros: the extra element goes after
            before[a] = (t - s[a]) // 2
            after[a] = t - s[a] - before[a]
    if begin != [0] * r or end != list(s):
        x = ctx.emit(_R.strided_slice(x, axes=list(range(r)), begin=begin, end=end))
    if any(before + after):
        x = ctx.emit(_R.nn.pad(x, [v for p in zip(before, after) for v in p], "constant", 0.0))
    return x


@lowers("Mod")
def mod(ctx, node, xs):
    """Float Mod with numpy's (fmod=0) or C's (fmod=1) semantics, incl. inf/NaN and signed zeros.
    Integer Mod is left to the frontend's floor_mod / truncmod."""
    x, y = xs
    dt = dtype_of(x)
    if not dt.startswith("float"):
        return NotImplemented
    q = ctx.emit(_R.divide(x, y))
    zero, fin_x, inf_y = _f(x, 0.0), ctx.emit(_R.isfinite(x)), ctx.emit(_R.isinf(y))
    if int(attr(node, "fmod", 0)):
        r = ctx.emit(_R.subtract(x, _R.multiply(_R.trunc(q), y)))
        r = ctx.emit(_R.where(_R.logical_and(inf_y, fin_x), x, r))
        return _R.where(_R.equal(r, zero), _R.multiply(x, zero), r)  # zero keeps the sign of x
    r = ctx.emit(_R.subtract(x, _R.multiply(_R.floor(q), y)))
    differ = ctx.emit(_R.logical_xor(_R.less(x, zero), _R.less(y, zero)))  # (== on bools miscompiles)
    same_sign = ctx.emit(_R.logical_or(_R.equal(x, zero), _R.logical_not(differ)))
    r = ctx.emit(_R.where(_R.logical_and(inf_y, fin_x), ctx.emit(_R.where(same_sign, x, y)), r))
    neg_zero = ctx.emit(_R.where(_R.less(y, zero), _f(x, -0.0), zero))
    return _R.where(_R.equal(r, zero), neg_zero, r)  # zero takes the sign of y
