"""Resize / Upsample with runtime `scales` (or `sizes`) and a declared output shape.

The scales are runtime values, but the output shape is static (declared), so the sampling taps are
computed at run time in float64 exactly as onnx's reference `_interpolate_1d_with_x` does, per
resized axis: the source coordinate x of each output index (coordinate_transformation_mode),
ratio = x - floor(x) (1 when x is an integer), the n = 2 (nearest, linear) or 4 (cubic) nearest
source indices ceil(x) - n/2 + t inside the edge-padded range, their coefficients (nearest_mode,
linear, cubic with cubic_coeff_a, exclude_outside renormalization), then `take` (clip mode, i.e.
edge padding) and a weighted sum. A runtime guard checks floor(scale * in) == the declared size.
Antialias and tf_crop_and_resize are declined (NotImplemented).
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.errors import GUARD_PREFIX
from edgec.targets.tvm.lower_context import attr, const, dtype_of, shape_of
from edgec.targets.tvm.ops.runtime_params import declared_shape

_R = relax.op
_F = "float64"
_CTM = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric")
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def _f(v):
    return const(np.float64(v))


def runtime_sizes_resize(ctx, node, x, sizes, ctm: str):
    """Runtime `sizes`: the scales are sizes / input dims, or for keep_aspect_ratio_policy
    not_larger / not_smaller their min / max over the resized axes (as onnx's reference)."""
    s = shape_of(x)
    policy = _s(attr(node, "keep_aspect_ratio_policy", "stretch"))
    if s is None or shape_of(sizes) is None or len(shape_of(sizes)) != 1 or policy not in (
            "stretch", "not_larger", "not_smaller"):
        return NotImplemented
    axes = attr(node, "axes")
    axes = [int(a) % len(s) for a in axes] if axes is not None else list(range(len(s)))
    if shape_of(sizes) != [len(axes)] or 0 in [s[a] for a in axes]:
        return NotImplemented
    ratio = ctx.emit(_R.divide(_R.astype(sizes, _F), const(np.array([s[a] for a in axes], np.float64))))
    if policy != "stretch":
        pick = _R.min if policy == "not_larger" else _R.max
        one = ctx.emit(pick(ratio, axis=[0], keepdims=True))
        ratio = ctx.emit(_R.broadcast_to(one, [len(axes)]))
    return runtime_scales_resize(ctx, node, x, ratio, ctm, rounding=policy != "stretch", input_name=node.inputs[3].name)


def runtime_scales_resize(ctx, node, x, scales, ctm: str, nearest_default: str = "round_prefer_floor",
                          rounding: bool = False, input_name: str | None = None):
    s, y = shape_of(x), declared_shape(node.outputs[0])
    mode = _s(attr(node, "mode", "nearest"))
    nearest_mode = _s(attr(node, "nearest_mode", nearest_default))
    if (s is None or y is None or len(y) != len(s) or 0 in y or int(attr(node, "antialias", 0))
            or ctm not in _CTM or mode not in ("nearest", "linear", "cubic") or nearest_mode not in _NEAREST
            or not dtype_of(x).startswith("float") or shape_of(scales) is None):
        return NotImplemented
    r = len(s)
    axes = attr(node, "axes")
    axes = [int(a) % r for a in axes] if axes is not None else list(range(r))
    if shape_of(scales) != [len(axes)]:
        return NotImplemented
    sc = ctx.emit(_R.astype(scales, _F))
    dt = dtype_of(x)
    data = ctx.emit(_R.astype(x, _F))
    checks = []
    for i, a in enumerate(axes):
        scale = ctx.emit(_R.reshape(_R.strided_slice(sc, axes=[0], begin=[i], end=[i + 1]), []))
        out_w = ctx.emit(_R.multiply(scale, _f(s[a])))  # the reference's float output width
        size = ctx.emit(_R.floor(_R.add(out_w, _f(0.5)) if rounding else out_w))  # sizes + policy round
        checks.append(ctx.emit(_R.equal(_R.astype(size, "int64"), const(np.int64(y[a])))))
        data = _resize_axis(ctx, node, data, a, r, s[a], y[a], scale, out_w, mode, ctm, nearest_mode)
    ok = checks[0]
    for c in checks[1:]:
        ok = ctx.emit(_R.logical_and(ok, c))
    if input_name is None:
        input_name = node.inputs[1 if node.op_type == "Upsample" or ctx.opset < 11 else 2].name
    ctx.guard(ok, f"{GUARD_PREFIX}{ctx.file}: node '{node.name or node.op_type}' ({node.op_type}) input "
                  f"'{input_name}': the runtime value does not give the declared output shape {y}")
    return _R.astype(data, dt)


def _source_coordinate(ctx, ctm, yv, scale, out_w, in_w, out_int):
    if ctm == "asymmetric":
        return ctx.emit(_R.divide(yv, scale))
    half = ctx.emit(_R.subtract(_R.divide(_R.add(yv, _f(0.5)), scale), _f(0.5)))
    if ctm == "half_pixel":
        return half
    one = ctx.emit(_R.equal(out_w, _f(1.0)))
    if ctm == "pytorch_half_pixel":
        return ctx.emit(_R.where(one, _f(-0.5), half))
    if ctm == "align_corners":
        x = ctx.emit(_R.divide(_R.multiply(yv, _f(in_w - 1)), _R.subtract(out_w, _f(1.0))))
        return ctx.emit(_R.where(one, _f(0.0), x))
    # half_pixel_symmetric
    adjustment = ctx.emit(_R.divide(_f(out_int), out_w))
    offset = ctx.emit(_R.multiply(_f(in_w / 2), _R.subtract(_f(1.0), adjustment)))
    return ctx.emit(_R.add(offset, half))


def _coefficients(ctx, node, mode, nearest_mode, ratio):
    one = _f(1.0)
    if mode == "linear":
        return [ctx.emit(_R.subtract(one, ratio)), ratio]
    if mode == "nearest":
        integer = ctx.emit(_R.equal(ratio, one))
        half = _f(0.5)
        right = {"round_prefer_floor": lambda: _R.greater(ratio, half),
                 "round_prefer_ceil": lambda: _R.greater_equal(ratio, half),
                 "floor": lambda: _R.less(ratio, _f(-1.0)),  # never: always the left sample
                 "ceil": lambda: _R.greater(ratio, _f(-1.0))}[nearest_mode]()
        right = ctx.emit(_R.logical_or(integer, right))
        c1 = ctx.emit(_R.astype(right, _F))
        return [ctx.emit(_R.subtract(one, c1)), c1]
    a = float(attr(node, "cubic_coeff_a", -0.75))

    def far(t):  # ((A(t+1) - 5A)(t+1) + 8A)(t+1) - 4A
        t1 = ctx.emit(_R.add(t, one))
        p = ctx.emit(_R.add(_R.multiply(_R.subtract(_R.multiply(_f(a), t1), _f(5 * a)), t1), _f(8 * a)))
        return ctx.emit(_R.subtract(_R.multiply(p, t1), _f(4 * a)))

    def near(t):  # ((A+2)t - (A+3)) t t + 1
        p = ctx.emit(_R.subtract(_R.multiply(_f(a + 2), t), _f(a + 3)))
        return ctx.emit(_R.add(_R.multiply(_R.multiply(p, t), t), one))

    inv = ctx.emit(_R.subtract(one, ratio))
    return [far(ratio), near(ratio), near(inv), far(inv)]


def _resize_axis(ctx, node, data, axis, rank, in_w, out_int, scale, out_w, mode, ctm, nearest_mode):
    yv = const(np.arange(out_int, dtype=np.float64))
    x = _source_coordinate(ctx, ctm, yv, scale, out_w, in_w, out_int)
    fl = ctx.emit(_R.floor(x))
    integer = ctx.emit(_R.equal(x, fl))
    ratio = ctx.emit(_R.where(integer, _f(1.0), _R.subtract(x, fl)))
    coeffs = _coefficients(ctx, node, mode, nearest_mode, ratio)
    n = len(coeffs)
    pad = -(-n // 2)
    ceil = ctx.emit(_R.where(integer, x, _R.add(fl, _f(1.0))))
    base = ctx.emit(_R.astype(_R.subtract(ceil, _f(n // 2)), "int64"))
    base = ctx.emit(_R.clip(base, -pad, in_w - 1 + pad - (n - 1)))  # the n nearest inside the padded range
    idx = [ctx.emit(_R.add(base, const(np.int64(t)))) for t in range(n)]
    if int(attr(node, "exclude_outside", 0)):
        kept = []
        for c, i in zip(coeffs, idx):
            inside = ctx.emit(_R.logical_and(_R.greater_equal(i, const(np.int64(0))), _R.less(i, const(np.int64(in_w)))))
            kept.append(ctx.emit(_R.multiply(c, _R.astype(inside, _F))))
        total = kept[0]
        for c in kept[1:]:
            total = ctx.emit(_R.add(total, c))
        coeffs = [ctx.emit(_R.divide(c, total)) for c in kept]
    bshape = [1] * rank
    bshape[axis] = out_int
    out = None
    for c, i in zip(coeffs, idx):
        g = ctx.emit(_R.take(data, _R.clip(i, 0, in_w - 1), axis=axis, mode="clip"))
        term = ctx.emit(_R.multiply(g, _R.reshape(c, bshape)))
        out = term if out is None else ctx.emit(_R.add(out, term))
    return out
