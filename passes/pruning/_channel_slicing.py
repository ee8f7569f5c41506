"""How Split, Pad and Slice map channels in the channel-dependency graph (_channels.py): the
ops that cut or shift a channel axis rather than carrying it through. Each handler returns None
when it bound the channels, else the reason the group cannot be pruned."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir.constants import const_array
from edgec.passes.cleanup._common import int_attr, ints_attr
from edgec.passes.fusion._common import rank
from edgec.passes.pruning._channel_graph import ChannelGraph, vkey


def split(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    r = rank(node.inputs[0])
    axis = int_attr(node, "axis", 0)
    if axis < 0 and r is None:
        return f"Split node '{node.name}' has an input of unknown rank"
    axis = axis + r if axis < 0 else axis
    keys = [vkey(o) for o in node.outputs]
    if axis != x.axis:
        for k in keys:
            cg.space(k, x.axis, x.size)
            cg.same(x.key, k)
        return None
    if len(node.inputs) > 1 and node.inputs[1] is not None and const_array(node.inputs[1]) is None:
        return f"Split node '{node.name}' has split sizes that are not constant"
    sizes = [o.shape[axis] if o.shape is not None and len(o.shape) > axis else None for o in node.outputs]
    if not all(isinstance(d, int) for d in sizes):
        return f"Split node '{node.name}' has outputs of unknown size along the channels"
    off = 0
    for k, d in zip(keys, sizes):
        cg.space(k, axis, d)
        cg.tie(x.key, range(off, off + d), k, range(d))
        off += d
    cg.splits.append((node, keys))
    return None


def pad(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    r = rank(node.inputs[0])
    pads = ints_attr(node, "pads")
    if pads is None and len(node.inputs) > 1:
        arr = const_array(node.inputs[1])
        pads = None if arr is None else [int(v) for v in arr.reshape(-1)]
    axes_in = node.inputs[3] if len(node.inputs) > 3 else None
    if pads is None or r is None or axes_in is not None or len(pads) != 2 * r or any(s is not None for s in ins[1:]):
        return f"Pad node '{node.name}' may pad the channels"
    if pads[x.axis] or pads[x.axis + r]:
        return f"Pad node '{node.name}' pads the channels"
    cg.carry(x, node.outputs[0], x.axis)
    return None


def constant_slice(node: ir.Node, r: int | None) -> tuple | None:
    """(starts, ends, axes normalized for rank `r`, steps or None) of a Slice whose starts, ends
    and given axes and steps are constants; None otherwise."""
    given = (list(node.inputs[1:5]) + [None] * 4)[:4]
    starts, ends, axes, steps = (const_array(v) if v is not None else None for v in given)
    if starts is None or ends is None or r is None or any(v is not None and a is None
                                                           for v, a in zip(given[2:], (axes, steps))):
        return None
    axes = np.arange(len(starts)) if axes is None else axes
    return starts, ends, [int(a) + r if a < 0 else int(a) for a in axes], steps


def slice_(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    if any(s is not None for s in ins[1:]):
        return f"Slice node '{node.name}' takes them as starts/ends"
    args = constant_slice(node, rank(node.inputs[0]))
    if args is None:
        return f"Slice node '{node.name}' has starts/ends/axes/steps that are not constant"
    starts, ends, axes, steps = args
    if x.axis not in axes:
        cg.carry(x, node.outputs[0], x.axis)
        return None
    key = vkey(node.outputs[0])
    i = axes.index(x.axis)
    if steps is not None and int(steps[i]) != 1:
        return f"Slice node '{node.name}' steps over the channels"
    lo, hi = (int(v) + x.size if v < 0 else int(v) for v in (starts[i], ends[i]))
    lo, hi = max(0, min(lo, x.size)), max(0, min(hi, x.size))
    if hi <= lo:
        return f"Slice node '{node.name}' takes no channel"
    if any(len(v.uses()) != 1 for v in node.inputs[1:3]):
        return f"Slice node '{node.name}' shares its starts/ends with other nodes"
    cg.space(key, x.axis, hi - lo)
    cg.tie(x.key, range(lo, hi), key, range(hi - lo))
    cg.slices.append((node, x.key, i, lo, hi))
    return None
