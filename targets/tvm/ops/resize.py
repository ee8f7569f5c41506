"""Resize (opset 10+) and Upsample with constant scales/sizes (runtime scales:
`resize_runtime.py`): every mode (nearest, linear,
cubic, antialias), coordinate transformation, nearest_mode, exclude_outside, axes,
keep_aspect_ratio_policy and tf_crop_and_resize extrapolation.

Resize is separable: along each resized axis, output[y] = sum_t coeff[y, t] * input[idx[y, t]].
The taps (idx, coeff) are computed at compile time by onnx's own reference 1-D kernel applied to
an identity matrix, so edgec inherits ONNX's exact coordinate semantics; at run time each axis is
a few `take`s and multiply-adds (or a single `take` for nearest)."""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.targets.tvm.lower_context import attr, const, dtype_of, has_input, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.resize_runtime import runtime_scales_resize, runtime_sizes_resize

_R = relax.op


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def _coeff_fn(mode, antialias, nearest_mode, cubic_a):
    from onnx.reference.ops import op_resize as ref

    if mode == "nearest":
        if antialias:
            raise Unsupported("antialias is not defined for mode 'nearest'")
        return lambda x, scale: ref._nearest_coeffs(x, mode=nearest_mode)
    if mode == "cubic":
        f = ref._cubic_coeffs_antialias if antialias else ref._cubic_coeffs
        return lambda x, scale: f(x, scale, A=cubic_a)
    if mode == "linear":
        return ref._linear_coeffs_antialias if antialias else ref._linear_coeffs
    raise Unsupported(f"Resize mode '{mode}'")


def _out_geometry(shape, scales, sizes, axes, policy):
    """(scale_factors, output_size) for all axes, as onnx's reference _interpolate_nd computes them."""
    r = len(shape)
    if axes is not None:
        if scales is not None:
            full = [1.0] * r
            for i, d in enumerate(axes):
                full[d] = float(scales[i])
            scales = full
        if sizes is not None:
            full = list(shape)
            for i, d in enumerate(axes):
                full[d] = int(sizes[i])
            sizes = full
    else:
        axes = list(range(r))
    if sizes is not None:
        scales = [sizes[i] / shape[i] for i in range(r)]
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            if policy not in ("not_larger", "not_smaller"):
                raise Unsupported(f"keep_aspect_ratio_policy '{policy}'")
            sc = pick(scales[a] for a in axes)
            scales = [sc if i in axes else 1.0 for i in range(r)]
            sizes = [int(sc * shape[i] + 0.5) if i in axes else shape[i] for i in range(r)]
    else:
        scales = [float(v) for v in scales]
        sizes = [int(v) for v in (np.array(scales) * np.array(shape)).astype(int)]
    return scales, sizes, axes


def _taps(in_w, out_w, scale, fct, roi, ctm, exclude_outside):
    """(idx[out, K], coeff[out, K], extrapolated[out]) for one axis."""
    from onnx.reference.ops import op_resize as ref

    w = ref._interpolate_1d_along_axis(np.eye(in_w), 0, scale, out_w, fct, roi=roi,
                                       extrapolation_value=np.nan, coordinate_transformation_mode=ctm,
                                       exclude_outside=exclude_outside)
    ext = np.isnan(w).any(axis=1)
    w = np.where(np.isnan(w), 0.0, w)
    k = max(1, int((w != 0).sum(axis=1).max()))
    idx = np.zeros((out_w, k), np.int64)
    coeff = np.zeros((out_w, k), np.float64)
    for y in range(out_w):
        nz = np.nonzero(w[y])[0]
        idx[y, :len(nz)] = nz
        coeff[y, :len(nz)] = w[y, nz]
    return idx, coeff, ext


def _resize_axis(ctx, x, axis, rank, idx, coeff, ext, extrapolation, nearest):
    dt = dtype_of(x)
    out_w = idx.shape[0]
    bshape = [1] * rank
    bshape[axis] = out_w
    if nearest and np.all((coeff == 1.0) | (coeff == 0.0)) and np.all(coeff.sum(axis=1)[~ext] == 1.0):
        y = ctx.emit(_R.take(x, const(idx[np.arange(out_w), coeff.argmax(axis=1)]), axis=axis))
    else:
        if not dt.startswith("float"):
            raise Unsupported(f"Resize interpolation of {dt} data")
        y = None
        for t in range(idx.shape[1]):
            g = ctx.emit(_R.take(x, const(idx[:, t]), axis=axis))
            term = ctx.emit(_R.multiply(g, const(coeff[:, t].reshape(bshape).astype(dt), dt)))
            y = term if y is None else ctx.emit(_R.add(y, term))
    if ext.any():
        y = ctx.emit(_R.where(const(ext.reshape(bshape)), const(extrapolation, dt), y))
    return y


def _resize(ctx, node, x, roi, scales, sizes, ctm, nearest_mode="round_prefer_floor"):
    s = shape_of(x)
    mode = _s(attr(node, "mode", "nearest"))
    fct = _coeff_fn(mode, int(attr(node, "antialias", 0)), _s(attr(node, "nearest_mode", nearest_mode)),
                    float(attr(node, "cubic_coeff_a", -0.75)))
    axes = attr(node, "axes")
    if axes is not None:
        axes = [int(a) % len(s) for a in axes]
    scales_full, sizes_full, axes = _out_geometry(
        s, None if scales is None else list(scales.reshape(-1)), None if sizes is None else list(sizes.reshape(-1)),
        axes, _s(attr(node, "keep_aspect_ratio_policy", "stretch")))
    r = len(s)
    if roi is not None and roi.size:
        roi = [float(v) for v in roi.reshape(-1)]
        if attr(node, "axes") is not None:
            full = [0.0] * r + [1.0] * r
            for i, d in enumerate(axes):
                full[d], full[r + d] = roi[i], roi[len(axes) + i]
            roi = full
    else:
        roi = None
    y = x
    for a in axes:
        sc, out_w = float(scales_full[a]), int(sizes_full[a])
        if np.isclose(sc, 1.0) and out_w == s[a] and (roi is None or (np.isclose(roi[a], 0) and np.isclose(roi[a + r], 1))):
            continue
        if out_w == 0:
            raise Unsupported("Resize to a zero-size axis")
        idx, coeff, ext = _taps(s[a], out_w, sc, fct, None if roi is None else [roi[a], roi[a + r]], ctm,
                                bool(attr(node, "exclude_outside", 0)))
        y = _resize_axis(ctx, y, a, r, idx, coeff, ext, float(attr(node, "extrapolation_value", 0.0)),
                         mode == "nearest")
    return y


@lowers("Resize")
def resize(ctx, node, xs):
    x = xs[0]
    if shape_of(x) is None:
        return NotImplemented
    if ctx.opset < 11:
        c = ctx.const_inputs(node, 1)
        if c is None:
            return runtime_scales_resize(ctx, node, x, xs[1], "asymmetric")
        return _resize(ctx, node, x, None, c[0], None, "asymmetric")
    c = ctx.const_inputs(node, 1, 2, 3)
    if c is None:
        # runtime scales (no sizes; roi, if any, is constant): taps computed at run time
        roi = ctx.const_inputs(node, 1)
        ctm = _s(attr(node, "coordinate_transformation_mode", "half_pixel"))
        if roi is not None and has_input(node, 2) and ctx.const_inputs(node, 2) is None and not has_input(node, 3):
            return runtime_scales_resize(ctx, node, x, xs[2], ctm)
        scales = ctx.const_inputs(node, 2)
        if (roi is not None and has_input(node, 3) and ctx.const_inputs(node, 3) is None
                and (scales is None or scales[0] is None or scales[0].size == 0)):
            return runtime_sizes_resize(ctx, node, x, xs[3], ctm)
        return NotImplemented
    roi, scales, sizes = c
    if sizes is not None and sizes.size == 0:
        sizes = None
    if scales is not None and scales.size == 0:
        scales = None
    if (scales is None) == (sizes is None):
        raise Unsupported("Resize needs exactly one of scales and sizes")
    return _resize(ctx, node, x, roi, scales, sizes, _s(attr(node, "coordinate_transformation_mode", "half_pixel")))


@lowers("Upsample")
def upsample(ctx, node, xs):
    x = xs[0]
    if shape_of(x) is None:
        return NotImplemented
    if has_input(node, 1):
        c = ctx.const_inputs(node, 1)
        if c is None:
            return runtime_scales_resize(ctx, node, x, xs[1], "asymmetric", "floor")
        scales = c[0]
    else:
        scales = np.array(attr(node, "scales"), dtype=np.float32)
    # Upsample's nearest is np.repeat: asymmetric coordinates rounded down
    return _resize(ctx, node, x, None, scales, None, "asymmetric", nearest_mode="floor")
