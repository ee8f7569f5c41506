"""resolve-auto-pad: turn `auto_pad` SAME_UPPER / SAME_LOWER / VALID into explicit `pads` once the
input's spatial shape is static.

tf2onnx emits `auto_pad = "SAME_UPPER"` on every Conv/pool of a TensorFlow `padding="same"` layer
whose spatial dims are dynamic in the exported graph. After `--input-shape` fixes them, the pads
are known; with explicit pads the nodes reach edgec's own lowerings, `fuse-activation`,
`fuse-pad` and `to-nhwc` (all of which decline auto_pad). ONNX semantics: output = ceil(in /
stride), total = max(0, (output - 1) * stride + (kernel - 1) * dilation + 1 - in), SAME_UPPER puts
the odd pixel at the end, SAME_LOWER at the beginning.
"""

from __future__ import annotations

import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.passes.cleanup._common import all_graphs, ints_attr, is_standard, static_dims

_OPS = ("Conv", "ConvInteger", "MaxPool", "AveragePool", "LpPool")


def _auto_pad(node: ir.Node) -> str:
    a = node.attributes.get("auto_pad")
    v = "NOTSET" if a is None else a.value
    return v.decode() if isinstance(v, bytes) else str(v)


def explicit_pads(node: ir.Node) -> list[int] | None:
    """The pads `node`'s auto_pad stands for, or None if the shapes needed are unknown."""
    mode = _auto_pad(node)
    x = static_dims(node.inputs[0])
    if x is None or len(x) < 3:
        return None
    spatial = x[2:]
    n = len(spatial)
    kernel = ints_attr(node, "kernel_shape")
    if kernel is None and node.op_type in ("Conv", "ConvInteger"):
        w = static_dims(node.inputs[1]) if len(node.inputs) > 1 else None
        kernel = list(w[2:]) if w is not None else None
    if kernel is None or len(kernel) != n:
        return None
    if mode == "VALID":
        return [0] * (2 * n)
    strides = ints_attr(node, "strides") or [1] * n
    dilations = ints_attr(node, "dilations") or [1] * n
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small = total // 2
        begin.append(small if mode == "SAME_UPPER" else total - small)
        end.append(total - small if mode == "SAME_UPPER" else small)
    return begin + end


@register_pass
class ResolveAutoPad(Pass):
    """Replace auto_pad SAME_UPPER/SAME_LOWER/VALID with explicit pads where input shapes are static."""

    name = "resolve-auto-pad"

    def run(self, model: ir.Model, ctx) -> PassResult:
        modified = False
        for graph in all_graphs(model.graph):
            for node in graph:
                if node.op_type not in _OPS or not is_standard(node) or _auto_pad(node) == "NOTSET":
                    continue
                if _auto_pad(node) not in ("SAME_UPPER", "SAME_LOWER", "VALID"):
                    continue
                pads = explicit_pads(node)
                if pads is None:
                    continue
                del node.attributes["auto_pad"]
                node.attributes["pads"] = ir.AttrInt64s("pads", pads)
                modified = True
        return PassResult(model, modified)
