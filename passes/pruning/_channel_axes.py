"""Channel-dependency handlers of the ops that move the channel axis or work along other axes:
Unsqueeze / Squeeze (the channel axis shifts), a Reshape that keeps the channels as one axis
(its target's channel entry is rewritten after pruning), Resize (scales the spatial axes; a `sizes` input
that names the channel count is rewritten after pruning), Softmax / LogSoftmax / Hardmax along
another axis. Each one either carries the channels to its output or says why it cannot."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir.constants import const_array
from edgec.passes.cleanup._common import int_attr, ints_attr
from edgec.passes.fusion._common import rank
from edgec.passes.pruning._channel_graph import ChannelGraph, vkey


def _raw_axes(node: ir.Node) -> list[int] | None:
    """The `axes` of a Squeeze/Unsqueeze: the attribute before opset 13, a constant input after."""
    axes = ints_attr(node, "axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        arr = const_array(node.inputs[1])
        axes = None if arr is None else [int(a) for a in arr.reshape(-1)]
    return axes


def _normalized(axes: list[int], r: int) -> list[int]:
    return sorted(a + r if a < 0 else a for a in axes)


def unsqueeze(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    if any(s is not None for s in ins[1:]):
        return f"Unsqueeze node '{node.name}' takes them as its axes"
    raw, r_in = _raw_axes(node), rank(node.inputs[0])
    if raw is None or r_in is None:
        return f"Unsqueeze node '{node.name}' has axes that are not constant"
    r_out = r_in + len(raw)
    axes = _normalized(raw, r_out)
    kept = [a for a in range(r_out) if a not in axes]  # the output positions of the input's axes, in order
    cg.carry(x, node.outputs[0], kept[x.axis])
    return None


def squeeze(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    if any(s is not None for s in ins[1:]):
        return f"Squeeze node '{node.name}' takes them as its axes"
    raw, r = _raw_axes(node), rank(node.inputs[0])
    if raw is None or r is None:  # no axes: every axis of extent 1, which a pruned channel axis may become
        return f"Squeeze node '{node.name}' has no constant axes"
    axes = _normalized(raw, r)
    if x.axis in axes:
        return f"Squeeze node '{node.name}' squeezes the channel axis"
    cg.carry(x, node.outputs[0], x.axis - sum(a < x.axis for a in axes))
    return None


def reshape_keeping_channels(cg: ChannelGraph, node: ir.Node, x) -> bool:
    """A Reshape with a constant target that keeps the channels whole as axis b of its output:
    target[b] is the channel count (or 0 at the same axis) and the axes before the channels (or
    after them) hold the same static number of elements on both sides. Row-major order then maps
    (before, c, after) to (before', c, after') one to one. False when that cannot be shown."""
    shape = const_array(node.inputs[1])
    dims = node.inputs[0].shape
    if shape is None or shape.ndim != 1 or dims is None or int_attr(node, "allowzero", 0):
        return False
    target = [int(v) for v in shape]
    full = [dims[i] if t == 0 and i < len(dims) else t for i, t in enumerate(target)]  # 0 copies the input's dim
    for b, t in enumerate(full):
        if t != x.size or (target[b] == 0 and b != x.axis):
            continue
        if _same_static(list(dims)[:x.axis], full[:b]) or _same_static(list(dims)[x.axis + 1:], full[b + 1:]):
            cg.carry(x, node.outputs[0], b)
            if target[b] != 0:
                cg.reshapes.append((node, vkey(node.outputs[0]), b))
            return True
    return False


def _same_static(a: list, b: list) -> bool:
    """Both lists are known positive integers with the same product."""
    ok = all(isinstance(d, int) and d > 0 for d in a + b)
    return ok and int(np.prod(a, dtype=np.int64)) == int(np.prod(b, dtype=np.int64))


def resize(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    """Resize keeps the channels when it does not scale their axis: a constant scale of 1 there, or
    constant `sizes` whose channel entry is the channel count (rewritten after pruning: cg.resizes)."""
    x = ins[0]
    if x is None:
        return None
    if any(s is not None for s in ins[1:]):
        return f"Resize node '{node.name}' takes them as roi, scales or sizes"
    r = rank(node.inputs[0])
    if r is None:
        return f"Resize node '{node.name}' has an input of unknown rank"
    axes = ints_attr(node, "axes")
    axes = list(range(r)) if axes is None else [a + r if a < 0 else a for a in axes]
    if x.axis not in axes:
        cg.carry(x, node.outputs[0], x.axis)
        return None
    i = axes.index(x.axis)
    scales = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    sizes_v = node.inputs[3] if len(node.inputs) > 3 and node.inputs[3] is not None else None
    sizes = const_array(sizes_v) if sizes_v is not None else None
    if sizes_v is None and scales is not None and scales.size == len(axes):
        if float(scales.reshape(-1)[i]) != 1.0:
            return f"Resize node '{node.name}' scales the channels"
        cg.carry(x, node.outputs[0], x.axis)
        return None
    if sizes is not None and sizes.size == len(axes):
        if int(sizes.reshape(-1)[i]) != x.size:
            return f"Resize node '{node.name}' resizes the channels"
        if not sizes_v.is_initializer() or len(sizes_v.uses()) != 1:
            return f"Resize node '{node.name}' has sizes that are not its own initializer"
        cg.carry(x, node.outputs[0], x.axis)
        cg.resizes.append((node, vkey(node.outputs[0]), i))
        return None
    return f"Resize node '{node.name}' has scales/sizes that are not constant"


def softmax(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    r = rank(node.inputs[0])
    axis = int_attr(node, "axis", -1 if _opset_13_or_later(node) else 1)
    if r is None:
        return f"{node.op_type} node '{node.name}' has an input of unknown rank"
    axis = axis + r if axis < 0 else axis
    if not _opset_13_or_later(node) and x.axis >= axis:  # before opset 13: over all axes from `axis` on
        return f"{node.op_type} node '{node.name}' normalizes over the channels"
    if _opset_13_or_later(node) and x.axis == axis:
        return f"{node.op_type} node '{node.name}' normalizes over the channels"
    cg.carry(x, node.outputs[0], x.axis)
    return None


def _opset_13_or_later(node: ir.Node) -> bool:
    v = node.version
    if v is None and node.graph is not None:
        v = node.graph.opset_imports.get("")
    return v is None or v >= 13
