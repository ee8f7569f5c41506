"""The upsampling ops of detection and segmentation heads as torch functions for
`edgec.distill_torch_ops.OPS`: Resize (nearest and linear, the coordinate modes torch has) and
ConvTranspose. A variant torch has no exact equivalent for is one line naming node and op (exit 2);
`edgec distill` also compares the converted student with onnxruntime before it trains."""

from __future__ import annotations

import math

import torch.nn.functional as F

from edgec.errors import UnsupportedOpError


def _attr(node, name: str, default=None):
    """distill_torch_ops.attr (imported on call: that module imports this one), text decoded."""
    from edgec.distill_torch_ops import attr

    v = attr(node, name, default)
    return v.decode() if isinstance(v, bytes) else v


def _refuse(m, node, why: str):
    return UnsupportedOpError(node.name or "", node.op_type, node.domain, m.opset, m.file, why)


def resize(m, node, a):
    x = a[0]
    scales = a[2] if len(a) > 2 and a[2] is not None and a[2].numel() else None
    sizes = a[3] if len(a) > 3 and a[3] is not None and a[3].numel() else None
    if _attr(node, "axes") is not None or (sizes is None and scales is None):
        raise _refuse(m, node, "axes, or neither scales nor sizes")
    if sizes is not None:
        out = [int(s) for s in sizes.tolist()]
    else:
        out = [int(math.floor(d * float(s))) for d, s in zip(x.shape, scales.tolist())]
    if out[:2] != list(x.shape[:2]) or x.dim() not in (3, 4, 5):
        raise _refuse(m, node, "resizes the batch or channel axis")
    mode = _attr(node, "mode", "nearest")
    coord = _attr(node, "coordinate_transformation_mode", "half_pixel")
    if mode == "nearest":
        rounding = _attr(node, "nearest_mode", "round_prefer_floor")
        if coord == "asymmetric" and rounding == "floor":
            return F.interpolate(x, size=out[2:], mode="nearest")
        if coord in ("half_pixel", "pytorch_half_pixel") and rounding == "round_prefer_ceil":
            return F.interpolate(x, size=out[2:], mode="nearest-exact")
        integer_up = all(o % i == 0 for o, i in zip(out[2:], x.shape[2:]))
        if coord in ("half_pixel", "pytorch_half_pixel") and integer_up:  # no ties at integer upscales
            return F.interpolate(x, size=out[2:], mode="nearest-exact")
        raise _refuse(m, node, f"nearest with {coord} / {rounding}")
    if mode == "linear" and coord in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        kind = {3: "linear", 4: "bilinear", 5: "trilinear"}[x.dim()]
        return F.interpolate(x, size=out[2:], mode=kind, align_corners=coord == "align_corners")
    raise _refuse(m, node, f"mode {mode} with {coord}")


def conv_transpose(m, node, a):
    x, w = a[0], a[1]
    b = a[2] if len(a) > 2 else None
    k = w.dim() - 2
    if _attr(node, "auto_pad", "NOTSET") != "NOTSET" or _attr(node, "output_shape") is not None:
        raise _refuse(m, node, "auto_pad or output_shape")
    pads = list(_attr(node, "pads", [0] * (2 * k)))
    if pads[:k] != pads[k:]:
        raise _refuse(m, node, "asymmetric pads")
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[k - 1]
    return fn(x, w, b, list(_attr(node, "strides", [1] * k)), pads[:k],
              list(_attr(node, "output_padding", [0] * k)), _attr(node, "group", 1),
              list(_attr(node, "dilations", [1] * k)))
