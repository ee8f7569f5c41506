"""Shapes read at run time, for the channel analysis: a Shape node that reads a channel tensor,
and a Reshape target built by a Concat of shape pieces.

A model exported with a dynamic batch computes its Reshape targets: `Concat(Unsqueeze(Gather(
Shape(x), 0)), [82], [-1])` (fold-constants has already turned every piece that only static dims
feed into a constant). Such a target can still be read entry by entry:

- a constant piece gives its numbers, and where each sits (the Concat input and index), so that
  a count naming the channels is rewritten after pruning like a constant target's (cg.counts);
- `Gather(Shape(v), i)` (through an Unsqueeze, or with 1-D indices) or a Slice of `Shape(v)` gives
  v's dims, numbers or symbolic dims;
- any other piece of known length gives unknown entries (None), which prove nothing.

A Shape node of a channel tensor is harmless when everything it feeds (through Casts) is a Gather
or Slice of entries other than the channel axis: those values do not change when channels are
removed. Any
other use (a Gather of the channel axis, arithmetic on the whole shape) ends the group."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir.constants import const_array
from edgec.ir.domains import is_onnx_domain
from edgec.passes.cleanup._common import int_attr
from edgec.passes.fusion._common import rank
from edgec.passes.pruning._channel_graph import ChannelGraph
from edgec.passes.pruning._channel_slicing import constant_slice


def _shape_axes(shape_node: ir.Node) -> list[int] | None:
    """The input axes a Shape node's output entries are (its start / end attributes)."""
    r = rank(shape_node.inputs[0])
    if r is None:
        return None
    start, end = int_attr(shape_node, "start", 0), int_attr(shape_node, "end", r)
    start, end = (max(0, min(r, a + r if a < 0 else a)) for a in (start, end))
    return list(range(start, end))


def _picked(use: ir.Node, shape: ir.Value, axes: list[int]) -> list[int] | None:
    """The input axes a Gather (axis 0, constant indices) or Slice (axis 0, constant bounds, step
    1) of the Shape output `shape` reads; None when it cannot be told."""
    if not is_onnx_domain(use.domain) or use.inputs[0] is not shape or any(v is shape for v in use.inputs[1:]):
        return None
    n = len(axes)
    if use.op_type == "Gather" and int_attr(use, "axis", 0) == 0 and use.inputs[1] is not None:
        idx = const_array(use.inputs[1])
        if idx is None or idx.ndim > 1 or not np.all((idx >= -n) & (idx < n)):
            return None
        return [axes[int(i)] for i in idx.reshape(-1)]
    if use.op_type == "Slice":
        args = constant_slice(use, 1)
        if args is None or args[2] != [0] or (args[3] is not None and list(args[3].reshape(-1)) != [1]):
            return None
        return axes[slice(int(args[0].reshape(-1)[0]), int(args[1].reshape(-1)[0]))]
    return None


def shape_(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    """Shape of a channel tensor: fine when every use reads other axes only, or reads the channel
    count into a target of a Reshape of this same tensor (see the module doc)."""
    x = ins[0]
    if x is None:
        return None
    axes = _shape_axes(node)
    if axes is None or not _reads_other_axes(node.outputs[0], axes, x.axis, node.inputs[0]):
        return f"Shape node '{node.name}' reads the channel count"
    return None


def _reads_other_axes(shape: ir.Value, axes: list[int], channel_axis: int, data: ir.Value | None) -> bool:
    """Every use of `shape` (a Shape output of `data`, or a Cast of one) picks entries other than
    the channel axis's, or (`data` given: not through a Cast) passes the channel count straight
    into the target of a Reshape of `data` (whose handler then has to carry the channels there)."""
    if shape.is_graph_output():
        return False
    for use in shape.uses():
        node = use.node
        if node.op_type == "Cast" and is_onnx_domain(node.domain):  # the same entries, another int type
            if not _reads_other_axes(node.outputs[0], axes, channel_axis, None):
                return False
            continue
        picked = _picked(node, shape, axes)
        if picked is None or (channel_axis in picked and not (data is not None and _into_own_reshape(node, data))):
            return False
    return True


def _into_own_reshape(pick: ir.Node, data: ir.Value) -> bool:
    """`pick` (a Gather or Slice of Shape(data)) feeds, through an Unsqueeze for a scalar, one
    Concat that is the target of a Reshape of `data` and nothing else."""
    v = pick.outputs[0]
    uses = v.uses()
    if len(uses) == 1 and uses[0].node.op_type == "Unsqueeze" and uses[0].idx == 0:
        v = uses[0].node.outputs[0]
        uses = v.uses()
    if len(uses) != 1 or uses[0].node.op_type != "Concat" or v.is_graph_output():
        return False
    target = uses[0].node.outputs[0]
    readers = target.uses()
    return len(readers) == 1 and readers[0].node.op_type == "Reshape" and readers[0].idx == 1 and \
        readers[0].node.inputs[0] is data and not target.is_graph_output()


def _shape_read(piece: ir.Value) -> tuple[ir.Value, list[int]] | None:
    """(v, the axes of v) a piece reads: `Unsqueeze(Gather(Shape(v), i), [0])`, `Gather(Shape(v),
    [i, ...])` or `Slice(Shape(v), start, end)`; None for any other piece."""
    node = piece.producer()
    scalar = node is not None and node.op_type == "Unsqueeze" and is_onnx_domain(node.domain)
    if scalar:
        axes = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
        if axes is None or [int(a) for a in axes.reshape(-1)] not in ([0], [-1]):
            return None
        node = node.inputs[0].producer()
    if node is None or node.op_type not in ("Gather", "Slice") or not is_onnx_domain(node.domain):
        return None
    shape_node = node.inputs[0].producer()
    if shape_node is None or shape_node.op_type != "Shape" or not is_onnx_domain(shape_node.domain):
        return None
    axes = _shape_axes(shape_node)
    picked = _picked(node, node.inputs[0], axes) if axes is not None else None
    if picked is None or shape_node.inputs[0].shape is None or (scalar and len(picked) != 1):
        return None
    return shape_node.inputs[0], picked


def reshape_target(node: ir.Node) -> tuple[list, list, list] | None:
    """(entries, where, reads) of a Reshape's target: entries are ints, dims (int or symbolic) read
    from a Shape, or None (unknown); where[i] is (node, input position, index) of a constant entry,
    else None; reads[i] is (v, axis) of an entry read from Shape(v), else None. None when the target
    is neither a constant nor a Concat of 1-D pieces read once."""
    target = node.inputs[1]
    arr = const_array(target)
    if arr is not None:
        if arr.ndim != 1:
            return None
        return [int(v) for v in arr], [(node, 1, i) for i in range(len(arr))], [None] * len(arr)
    concat = target.producer()
    if concat is None or concat.op_type != "Concat" or not is_onnx_domain(concat.domain) or \
            int_attr(concat, "axis", 0) not in (0, -1) or len(target.uses()) != 1 or target.is_graph_output():
        return None
    entries, where, reads = [], [], []
    for pos, piece in enumerate(concat.inputs):
        arr = const_array(piece)
        if arr is not None:
            if arr.ndim != 1:
                return None
            entries += [int(v) for v in arr]
            where += [(concat, pos, i) for i in range(len(arr))]
            reads += [None] * len(arr)
            continue
        read = _shape_read(piece)
        if read is not None:
            v, picked = read
            entries += [v.shape[a] for a in picked]
            reads += [(v, a) for a in picked]
        else:
            shape = piece.shape
            if shape is None or len(shape) != 1 or not isinstance(shape[0], int):
                return None
            entries += [None] * shape[0]
            reads += [None] * shape[0]
        where += [None] * (len(entries) - len(where))
    return entries, where, reads
