"""ConvTranspose (2-D, group 1, dilation 1, constant weights) as one ordinary Conv plus a pixel shuffle.

With stride s and kernel k, pad the kernel with zeros to K = J*s taps (J = ceil(k / s)). Output
position o = q*s + r of the un-padded ("full") transposed convolution receives
sum_j x[q - j] * w[r + s*j]: for each phase r that is a stride-1 correlation of x, padded by J-1,
with the flipped sub-kernel w[r + s*(J-1-j')]. All s*s phases are one Conv with Cout*s*s output
channels and a JxJ kernel; a reshape/transpose interleaves the phases into the full output, a
slice applies the pads. No multiply-add touches an inserted zero (as dilating the input would),
and the Conv gets edgec's convolution schedules (TVM's conv2d_transpose has none: the PP-OCR
detectors spent 90% of their time in it). kernel == stride, pads 0 (the detectors' upsampling)
is a 1x1 Conv and a depth-to-space.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.targets.tvm.lower_context import attr, const, shape_of
from edgec.targets.tvm.ops import lowers

_R = relax.op


def phase_weights(w: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """ConvTranspose weights [Cin, Cout, kh, kw] -> Conv weights [Cout*sh*sw, Cin, Jh, Jw] whose
    output channel (co, ry, rx) computes phase (ry, rx) of the full transposed convolution."""
    cin, cout, kh, kw = w.shape
    sh, sw = stride
    jh, jw = -(-kh // sh), -(-kw // sw)
    padded = np.zeros((cin, cout, jh * sh, jw * sw), w.dtype)
    padded[:, :, :kh, :kw] = w
    # tap j of phase r is padded[..., r + s*j]; the correlation reads it flipped (j' = J-1-j)
    taps = padded.reshape(cin, cout, jh, sh, jw, sw)[:, :, ::-1, :, ::-1, :]
    return np.ascontiguousarray(taps.transpose(1, 3, 5, 0, 2, 4).reshape(cout * sh * sw, cin, jh, jw))


@lowers("ConvTranspose")
def conv_transpose(ctx, node, xs):
    x, b = xs[0], (xs[2] if len(xs) > 2 else None)
    w = ctx.const_array(node.inputs[1])
    xshape = shape_of(x)
    if w is None or w.ndim != 4 or xshape is None or len(xshape) != 4:
        return NotImplemented
    if (int(attr(node, "group", 1)) != 1 or attr(node, "dilations", [1, 1]) != [1, 1]
            or attr(node, "auto_pad", "NOTSET") != "NOTSET" or attr(node, "output_shape") is not None):
        return NotImplemented
    sh, sw = (int(s) for s in attr(node, "strides", [1, 1]))
    pt, pl, pb, pr = (int(p) for p in attr(node, "pads", [0, 0, 0, 0]))
    oph, opw = (int(p) for p in attr(node, "output_padding", [0, 0]))
    cin, cout, kh, kw = w.shape
    n, c, h, wd = xshape
    if c != cin or min(pt, pl, pb, pr) < 0:
        return NotImplemented
    jh, jw = -(-kh // sh), -(-kw // sw)
    oh, ow = (h - 1) * sh + kh - pt - pb + oph, (wd - 1) * sw + kw - pl - pr + opw
    full_h, full_w = (h + jh - 1) * sh, (wd + jw - 1) * sw
    if oh <= 0 or ow <= 0:
        return NotImplemented
    # float16 comes as float32 (targets/tvm/half.py): it accumulates in float32, as Conv
    wc = const(phase_weights(w.astype(str(x.ty.dtype)), (sh, sw)))
    y = ctx.emit(_R.nn.conv2d(x, wc, strides=[1, 1], padding=[jh - 1, jw - 1, jh - 1, jw - 1]))
    y = ctx.emit(_R.reshape(y, [n, cout, sh, sw, h + jh - 1, wd + jw - 1]))
    y = ctx.emit(_R.permute_dims(y, [0, 1, 4, 2, 5, 3]))
    y = ctx.emit(_R.reshape(y, [n, cout, full_h, full_w]))
    eh, ew = max(0, pt + oh - full_h), max(0, pl + ow - full_w)
    if eh or ew:  # output_padding past the last tap: positions no input reaches (only the bias)
        y = ctx.emit(_R.nn.pad(y, [0, 0, 0, 0, 0, eh, 0, ew]))
        full_h, full_w = full_h + eh, full_w + ew
    if (pt, pl, oh, ow) != (0, 0, full_h, full_w):
        y = ctx.emit(_R.strided_slice(y, axes=[2, 3], begin=[pt, pl], end=[pt + oh, pl + ow]))
    if b is not None:
        y = ctx.emit(_R.add(y, _R.reshape(b, [1, cout, 1, 1])))
    return y
