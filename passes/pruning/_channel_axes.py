"""Channel-dependency handlers of the ops that move the channel axis or work along other axes:
Unsqueeze / Squeeze (the channel axis shifts), a Reshape that keeps the channels as one axis or
splits them into attention heads and merges them back (its target's entry is rewritten after
pruning), a MatMul of two activations over their heads, Resize (scales the spatial axes; a `sizes` input
that names the channel count is rewritten after pruning), Softmax / LogSoftmax / Hardmax along
another axis. Each one either carries the channels to its output or says why it cannot."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir.constants import const_array
from edgec.passes.cleanup._common import int_attr, ints_attr
from edgec.passes.fusion._common import rank
from edgec.passes.pruning._channel_graph import ChannelGraph, vkey
from edgec.passes.pruning._shape_values import reshape_target


def _raw_axes(node: ir.Node) -> list[int] | None:
    """The `axes` of a Squeeze/Unsqueeze: the attribute before opset 13, a constant input after."""
    axes = ints_attr(node, "axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        arr = const_array(node.inputs[1])
        axes = None if arr is None else [int(a) for a in arr.reshape(-1)]
    return axes


def _normalized(axes: list[int], r: int) -> list[int]:
    return sorted(a + r if a < 0 else a for a in axes)


def squeeze_or_unsqueeze(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    """Unsqueeze shifts the channel axis past the inserted axes; Squeeze past the removed ones
    (never the channel axis itself). The axes must be constant."""
    x = ins[0]
    if x is None:
        return None
    op = node.op_type
    if any(s is not None for s in ins[1:]):
        return f"{op} node '{node.name}' takes them as its axes"
    raw, r = _raw_axes(node), rank(node.inputs[0])
    if raw is None or r is None:  # Squeeze without axes: every axis of extent 1, which a pruned channel axis may become
        return f"{op} node '{node.name}' has axes that are not constant"
    if op == "Unsqueeze":
        axes = _normalized(raw, r + len(raw))
        kept = [i for i in range(r + len(raw)) if i not in axes]  # the output positions of the input's axes
        cg.carry(x, node.outputs[0], kept[x.axis])
        return None
    axes = _normalized(raw, r)
    if x.axis in axes:
        return f"Squeeze node '{node.name}' squeezes the channel axis"
    cg.carry(x, node.outputs[0], x.axis - sum(i < x.axis for i in axes))
    return None


def reshape_keeping_channels(cg: ChannelGraph, node: ir.Node, x) -> bool:
    """A Reshape with a constant target that keeps the channels whole as axis b of its output:
    target[b] is the channel count (or 0 at the same axis) and the axes before the channels (or
    after them) hold the same static number of elements on both sides. Row-major order then maps
    (before, c, after) to (before', c, after') one to one. False when that cannot be shown."""
    read = reshape_target(node)
    dims = node.inputs[0].shape
    if read is None or dims is None or int_attr(node, "allowzero", 0):
        return False
    target, where, reads = read
    own = _own_channel_reads(node, x, reads)  # entries that follow the pruned count by themselves
    full = [dims[i] if t == 0 and i < len(dims) else t for i, t in enumerate(target)]  # 0 copies the input's dim
    for b, t in enumerate(full):
        follows = (target[b] == 0 and b == x.axis) or b in own
        if t != x.size or (not follows and (target[b] == 0 or where[b] is None)) or own - {b}:
            continue
        if _same_elements(list(dims)[:x.axis], full[:b]) or _same_elements(list(dims)[x.axis + 1:], full[b + 1:]):
            cg.carry(x, node.outputs[0], b)
            if not follows:
                cg.counts.append((*where[b][:2], vkey(node.outputs[0]), where[b][2]))
            return True
    return False


def _own_channel_reads(node: ir.Node, x, reads: list) -> set[int]:
    """Target entries read from the Shape of the Reshape's own input at its channel axis."""
    return {i for i, r in enumerate(reads) if r is not None and r[0] is node.inputs[0] and r[1] == x.axis}


def reshape_heads(cg: ChannelGraph, node: ir.Node, x) -> bool:
    """A Reshape with a constant target that splits the channels into (heads, per-head) axes, or
    merges a pruned axis with the next one back (attention: [B, S, C] -> [B, S, H, D] and
    [B, S, H, D] -> [B, S, C]). A split ties channel c to head c // D, so a head is removed whole
    (the unit is its D channels in every projection); a merge ties head h to channels h*D..h*D+D-1.
    Either side's other axes must hold the same static number of elements before (or after) the
    pair, and the target's entry for the pruned axis gets the new count."""
    read = reshape_target(node)
    dims = node.inputs[0].shape
    if read is None or dims is None or int_attr(node, "allowzero", 0):
        return False
    target, where, reads = read
    if _own_channel_reads(node, x, reads):  # a count read at run time would not follow the heads
        return False
    dims, a, key = list(dims), x.axis, vkey(node.outputs[0])
    full = [dims[i] if t == 0 and i < len(dims) else t for i, t in enumerate(target)]
    for b in range(len(full) - 1):  # split: C -> (H, D) at axes b, b + 1
        h, d = full[b], full[b + 1]
        if target[b] in (0, -1) or where[b] is None or not (isinstance(h, int) and isinstance(d, int) and h > 1
                                                            and d > 1 and h * d == x.size):
            continue
        if _same_elements(dims[:a], full[:b]) or _same_elements(dims[a + 1:], full[b + 2:]):
            cg.space(key, b, h)
            cg.tie(x.key, range(x.size), key, [c // d for c in range(x.size)])
            cg.counts.append((*where[b][:2], key, where[b][2]))
            return True
    d = dims[a + 1] if a + 1 < len(dims) else None
    if not isinstance(d, int) or d < 2:
        return False
    for b, t in enumerate(full):  # merge: (H, D) at axes a, a + 1 -> H * D at axis b
        if t != x.size * d or target[b] == 0 or where[b] is None:
            continue
        if _same_elements(dims[:a], full[:b]) or _same_elements(dims[a + 2:], full[b + 1:]):
            cg.space(key, b, x.size * d)
            cg.tie(x.key, [c // d for c in range(x.size * d)], key, range(x.size * d))
            cg.counts.append((*where[b][:2], key, where[b][2]))
            return True
    return False


def matmul_batched(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    """MatMul of two activations whose channels (attention heads) sit on the same batch axis:
    each output slice along it reads the same slice of both inputs, so the axis is carried."""
    ra, rb = rank(node.inputs[0]), rank(node.inputs[1])
    present = [s for s in ins[:2] if s is not None]
    r = rank(node.outputs[0])
    if None in (ra, rb, r) or ra != rb or ra < 3:
        return f"MatMul node '{node.name}' multiplies them by a non-constant tensor"
    axes = {s.axis for s in present}
    if len(axes) != 1 or next(iter(axes)) >= r - 2:
        return f"MatMul node '{node.name}' multiplies them as rows or columns"
    axis = axes.pop()
    if len(present) == 2 and present[0].size != present[1].size:
        return f"MatMul node '{node.name}' multiplies channel spaces of different sizes"
    for v, s in zip(node.inputs[:2], ins[:2]):
        if s is None and (v.shape is None or v.shape[axis] != 1):
            return f"MatMul node '{node.name}' multiplies them by '{v.name}', whose channels are not pruned with them"
    key = vkey(node.outputs[0])
    cg.space(key, axis, present[0].size)
    for s in present:
        cg.same(s.key, key)
    return None


def _same_static(a: list, b: list) -> bool:
    """Both lists are known positive integers with the same product."""
    ok = all(isinstance(d, int) and d > 0 for d in a + b)
    return ok and int(np.prod(a, dtype=np.int64)) == int(np.prod(b, dtype=np.int64))


def _same_elements(a: list, b: list) -> bool:
    """Both lists hold the same number of elements: static with the same product, or the same dims
    one by one, symbolic dims compared by name (a dynamic batch read back from the input's Shape)."""
    if _same_static(a, b):
        return True
    return len(a) == len(b) and all(_same_dim(x, y) for x, y in zip(a, b))


def _same_dim(x, y) -> bool:
    if isinstance(x, int) or isinstance(y, int):
        return isinstance(x, int) and isinstance(y, int) and x == y and x > 0
    if not isinstance(x, ir.SymbolicDim) or not isinstance(y, ir.SymbolicDim):
        return False
    return x.value is not None and x.value == y.value


def resize(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    """Resize keeps the channels when it does not scale their axis: a constant scale of 1 there, or
    constant `sizes` whose channel entry is the channel count (rewritten after pruning: cg.counts)."""
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
        cg.carry(x, node.outputs[0], x.axis)
        cg.counts.append((node, 3, vkey(node.outputs[0]), i))
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
