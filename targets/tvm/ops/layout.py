"""Channel-last ops emitted by `to-nhwc` (docs/edgec-ops.md): edgec.ConvNHWC, edgec.{Max,Average}PoolNHWC.

ConvNHWC's weight arrives as OHWI; a constant weight of an ungrouped conv is re-laid out to HWIO
at compile time (the kernel layout TVM's NHWC conv schedules prefer).
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.targets.tvm.lower_context import attr, dtype_of
from edgec.targets.tvm.ops import lowers
from edgec.targets.tvm.ops.fused import _activate
from edgec.targets.tvm.ops.nn import _pool_args, _static_rank

_R = relax.op


@lowers("ConvNHWC", domain="edgec")
def conv_nhwc(ctx, node, xs):
    x, w, b = xs[0], xs[1], xs[2]
    if _static_rank(x) != 4 or attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return NotImplemented
    groups = int(attr(node, "group", 1))
    w_const = ctx.const_array(node.inputs[1])
    kernel_layout = "OHWI"
    if w_const is not None and groups == 1:  # in x's dtype: float16 models come as float32 (half.py)
        w_hwio = np.ascontiguousarray(w_const.transpose(1, 2, 3, 0)).astype(dtype_of(x))
        w, kernel_layout = relax.const(w_hwio), "HWIO"
    y = ctx.emit(_R.nn.conv2d(x, w, strides=attr(node, "strides", [1, 1]), padding=attr(node, "pads", [0, 0, 0, 0]),
                              dilation=attr(node, "dilations", [1, 1]), groups=groups,
                              data_layout="NHWC", kernel_layout=kernel_layout))
    if b is not None:
        y = ctx.emit(_R.add(y, b))  # [M] broadcasts along the channel (last) axis
    if len(xs) > 3 and xs[3] is not None:
        y = _R.add(y, xs[3])
    return _activate(ctx, node, y)


@lowers("MaxPoolNHWC", domain="edgec")
def max_pool_nhwc(ctx, node, xs):
    if _static_rank(xs[0]) != 4 or attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return NotImplemented
    return _R.nn.max_pool2d(xs[0], dilation=attr(node, "dilations", [1, 1]), layout="NHWC", **_pool_args(node))


@lowers("AveragePoolNHWC", domain="edgec")
def avg_pool_nhwc(ctx, node, xs):
    if _static_rank(xs[0]) != 4 or attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return NotImplemented
    return _R.nn.avg_pool2d(xs[0], count_include_pad=bool(attr(node, "count_include_pad", 0)), layout="NHWC",
                            **_pool_args(node))
