"""QLinearConv as an integer convolution for targets with dot-product instructions (`ctx.dot`).

    acc = Conv(x_u8, w_s8) (int32, zero padding) + (B - x_zp * sum of w over the in-bounds taps)
    y   = requantize(acc, x_scale * w_scale / y_scale, y_zp)      (quant_util.requantize)

acc equals Conv(x - x_zp, w) + B of the generic lowering exactly, so the outputs are bit for bit
the same. The correction is a constant per output channel (no padding, or x_zp = 0), else a
constant per output element (the taps that fall in the padding differ at the borders). The
uint8 x int8 conv2d is legalized by `targets/tvm/conv_int8.py` (blocked NCHW16c: VNNI for dense
convs, int32 vector multiply-adds for depthwise ones).

Taken: 2-D, group 1 or depthwise (group = channels, one filter each), uint8 x with a constant scalar zero point, constant int8 weights with zero
point 0 (per tensor or per output channel), an optional int32 bias; anything else returns None
and the caller keeps the generic lowering.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.targets.tvm.lower_context import attr, const, dtype_of, shape_of
from edgec.targets.tvm.ops.quant_util import conv_pads

_R = relax.op


def _scalar_const(ctx, node, i: int):
    """The value of optional input `i` as a Python int (absent: 0); None if it is not a constant scalar."""
    if i >= len(node.inputs) or node.inputs[i] is None or not node.inputs[i].name:
        return 0
    a = ctx.const_array(node.inputs[i])
    return int(a.reshape(-1)[0]) if a is not None and a.size == 1 else None


def in_bounds_weight_sum(w: np.ndarray, hw: list[int], pads: list[int], strides: list[int],
                         dilations: list[int], out_hw: list[int]) -> np.ndarray:
    """[OC, OH, OW] int64: per output element, the sum of the weights over the taps that read
    the input rather than its padding."""
    s = w.astype(np.int64).sum(axis=1)  # [OC, KH, KW]
    oc, kh, kw = s.shape
    out = np.zeros((oc, *out_hw), np.int64)
    for ky in range(kh):
        iy = np.arange(out_hw[0]) * strides[0] + ky * dilations[0] - pads[0]
        my = (iy >= 0) & (iy < hw[0])
        for kx in range(kw):
            ix = np.arange(out_hw[1]) * strides[1] + kx * dilations[1] - pads[1]
            mx = (ix >= 0) & (ix < hw[1])
            out += s[:, ky, kx, None, None] * (my[:, None] & mx[None, :])
    return out


def int8_conv_acc(ctx, node, xs):
    """int32 Conv(x - x_zp, w) + B of a QLinearConv via a uint8 x int8 conv2d, or None when the
    node is not one this path handles (see the module docstring)."""
    if ctx.dot not in ("vnni", "sdot", "neon", "pmaddwd"):
        return None
    x, w_v = xs[0], node.inputs[3]
    w = ctx.const_array(w_v)
    xshape, y = shape_of(x), node.outputs[0]
    if w is None or w.dtype != np.int8 or w.ndim != 4 or xshape is None or len(xshape) != 4:
        return None
    group = int(attr(node, "group", 1))
    depthwise = group == xshape[1] == w.shape[0] and w.shape[1] == 1
    if dtype_of(x) != "uint8" or not (group == 1 and w.shape[1] == xshape[1] or depthwise):
        return None
    x_zp = _scalar_const(ctx, node, 2)
    w_zp = ctx.const_array(node.inputs[5]) if len(node.inputs) > 5 and node.inputs[5] is not None \
        and node.inputs[5].name else np.zeros((), np.int8)
    if x_zp is None or w_zp is None or np.any(w_zp != 0):
        return None
    bias = np.zeros(w.shape[0], np.int64)
    if len(node.inputs) > 8 and node.inputs[8] is not None and node.inputs[8].name:
        b = ctx.const_array(node.inputs[8])
        if b is None or b.dtype != np.int32 or b.size != w.shape[0]:
            return None
        bias = b.reshape(-1).astype(np.int64)
    kernel = [int(k) for k in attr(node, "kernel_shape", w.shape[2:])]
    if kernel != list(w.shape[2:]):
        return None
    strides = [int(s) for s in attr(node, "strides", [1, 1])]
    dilations = [int(d) for d in attr(node, "dilations", [1, 1])]
    pads = conv_pads(node, xshape[2:], kernel, strides, dilations)
    out_hw = [(xshape[2 + i] + pads[i] + pads[2 + i] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1
              for i in range(2)]
    if min(out_hw) < 1 or y is None:
        return None
    if x_zp and any(pads):
        corr = bias[:, None, None] - x_zp * in_bounds_weight_sum(w, xshape[2:], pads, strides, dilations, out_hw)
        corr = corr[None]
    else:
        corr = (bias - x_zp * w.astype(np.int64).sum(axis=(1, 2, 3))).reshape(1, -1, 1, 1)
    if np.abs(corr).max(initial=0) >= 2**31:
        return None
    acc = ctx.emit(_R.nn.conv2d(x, const(w), strides=strides, padding=pads, dilation=dilations,
                                groups=group, out_dtype="int32"))
    return ctx.emit(_R.add(acc, const(corr.astype(np.int32))))
