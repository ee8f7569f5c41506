"""Channel-dependency graph of an ONNX graph (networkx): which channels of which tensors must be
removed together, and which groups of tensors cannot lose channels at all.

A *space* is one axis of one tensor whose indices are channels: an activation's channel axis
(key ("v", name)) or an axis of a constant bound to it (key ("i", initializer, axis)): a
Conv/Gemm/MatMul weight's output or input axis, a bias, BatchNormalization's parameters, a
per-channel constant of an elementwise op. Two graphs are built in one pass over the nodes in
order:

- `elements`: nodes (key, index); an edge says "these two indices are the same channel" (the
  output channel o of a Conv is row o of its weight and of its bias; channel c of a residual Add's
  output is channel c of each of its inputs; Concat offsets; Flatten maps channel c to features
  c*HW..c*HW+HW-1; a depthwise/grouped Conv ties a group's input and output channels into one).
  A connected component is a *unit*: the indices removed together.
- `clusters`: nodes are space keys, plus ("block", reason) nodes; a connected component is a
  *group* of coupled layers. A group touching a block node is not pruned (the reason is reported):
  a graph input or output carries its channels, an op the analysis does not know reads them, a
  Reshape mixes them with other axes, a constant is shared with another node, a shape is read.

Conv and ConvTranspose (group 1), Gemm (transA 0) and MatMul with a constant 2-D weight start a
new space on their output (they are the *sources*); the channel axis of their data input is a sink (the weight's
input axis is bound to it). Everything else must map input channels to output channels exactly,
or it blocks the group.

The graph's data structure is in _channel_graph.py; the handlers of Split, Pad and Slice (which
cut or shift a channel axis) in _channel_slicing.py; of Unsqueeze, Squeeze, Resize and Softmax
(which move the channel axis or work along others) in _channel_axes.py; the other ops' handlers
are here."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir.constants import const_array
from edgec.ir.domains import is_onnx_domain
from edgec.passes.cleanup._common import int_attr, ints_attr
from edgec.passes.fusion._common import rank
from edgec.passes.pruning._channel_axes import (
    matmul_batched,
    reshape_heads,
    reshape_keeping_channels,
    resize,
    softmax,
    squeeze_or_unsqueeze,
)
from edgec.passes.pruning._channel_graph import ChannelGraph, bind, data_sink, vkey
from edgec.passes.pruning._channel_slicing import pad, slice_, split
from edgec.passes.pruning._shape_values import shape_

UNARY = {
    "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Gelu", "Erf", "Elu", "Selu",
    "Softplus", "Softsign", "Mish", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Identity", "Dropout", "Cast",
    "Celu", "ThresholdedRelu", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos",
}
SPATIAL = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool"}  # channels on axis 1
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "PRelu", "Pow", "Where"}
REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceProd"}


def build(model: ir.Model) -> ChannelGraph:
    cg = ChannelGraph()
    graph = model.graph
    for node in graph:
        _visit(cg, node)
    for v in graph.outputs:
        s = cg.carried(v)
        if s is not None:
            cg.block(s.key, f"'{v.name}' is a graph output")
    return cg


def _visit(cg: ChannelGraph, node: ir.Node) -> None:
    ins = [cg.carried(v) for v in node.inputs]
    op = node.op_type if is_onnx_domain(node.domain) else f"{node.domain}.{node.op_type}"
    handler = _HANDLERS.get(op)
    if handler is not None:
        why = handler(cg, node, ins)
        if why is None:
            return
    else:
        why = f"{op} node '{node.name}' reads them (not analyzed)"
        if op == "Shape":
            why = f"Shape node '{node.name}' reads the shape"
    for s in ins:
        if s is not None:
            cg.block(s.key, why)


def _conv(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x, out = ins[0], node.outputs[0]
    if any(s is not None for s in ins[1:]):
        return f"Conv node '{node.name}' takes them as its weight or bias"
    w = node.inputs[1]
    arr = const_array(w)
    r = rank(out)  # a symbolic batch or image size is fine: only the channel axis is sliced
    if arr is None or not w.is_initializer() or r is None or r < 3:
        if x is not None:
            return f"Conv node '{node.name}' has no constant weight or an output of unknown rank"
        return None
    groups = int_attr(node, "group", 1)
    cout = arr.shape[0]
    bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if groups == 1:
        return data_sink(cg, node, x, w, 1, 1) or _source(cg, node, x, 0, cout)
    if x is None:  # a grouped conv on fixed channels: its groups cannot shrink
        return None
    if x.axis != 1:
        return f"Conv node '{node.name}' reads channel axis {x.axis} as a non-channel axis"
    ci, co = arr.shape[1], cout // groups
    key = vkey(out)
    cg.space(key, 1, cout)
    for g in range(groups):  # a group's input and output channels are one unit: the group is removed whole
        members = [(x.key, g * ci + a) for a in range(ci)] + [(key, g * co + b) for b in range(co)]
        cg.clusters.add_edge(x.key, key)
        cg.elements.add_edges_from(zip(members[:-1], members[1:]))
    bind(cg, w, 0, key, "out", f"Conv '{node.name}' weight")
    if bias is not None:
        bind(cg, bias, 0, key, "const", f"Conv '{node.name}' bias")
    cg.grouped.append((node, key, co))
    return None


def _conv_transpose(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    """ConvTranspose (group 1): weight [C_in, C_out, kH, kW], so its input axis 0 reads the data's
    channels and its axis 1 makes the output's (a source, like Conv with the axes swapped)."""
    x, out = ins[0], node.outputs[0]
    if any(s is not None for s in ins[1:]):
        return f"ConvTranspose node '{node.name}' takes them as its weight or bias"
    w = node.inputs[1]
    arr = const_array(w)
    r = rank(out)
    if arr is None or not w.is_initializer() or r is None or r < 3 or int_attr(node, "group", 1) != 1:
        if x is not None:
            return f"ConvTranspose node '{node.name}' is grouped or has no constant weight"
        return None
    return data_sink(cg, node, x, w, 0, 1) or _source(cg, node, x, 1, arr.shape[1])


def _source(cg: ChannelGraph, node: ir.Node, x, w_axis: int, size: int) -> None:
    """A (transposed) convolution's output as a new channel space of `size`: its weight's axis
    `w_axis` and its bias make those channels."""
    key = vkey(node.outputs[0])
    cg.space(key, 1, size)
    bind(cg, node.inputs[1], w_axis, key, "out", f"{node.op_type} '{node.name}' weight")
    bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if bias is not None:
        bind(cg, bias, 0, key, "const", f"{node.op_type} '{node.name}' bias")
    cg.sources.append((node, key))
    if x is None and node.inputs[0].producer() is None:
        cg.first.add(id(node))
    return None


def _gemm(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    a, out = ins[0], node.outputs[0]
    if any(s is not None for s in ins[1:]):
        return f"Gemm node '{node.name}' takes them as B or C"
    b = node.inputs[1]
    arr = const_array(b)
    if arr is None or not b.is_initializer() or arr.ndim != 2 or int_attr(node, "transA", 0):
        return f"Gemm node '{node.name}' has no constant B or transposes A" if a is not None else None
    tb = int_attr(node, "transB", 0)
    why = data_sink(cg, node, a, b, 1 if tb else 0, 1)
    if why:
        return why
    key = vkey(out)
    cg.space(key, 1, arr.shape[0] if tb else arr.shape[1])
    bind(cg, b, 0 if tb else 1, key, "out", f"Gemm '{node.name}' B")
    c = node.inputs[2] if len(node.inputs) > 2 else None
    carr = const_array(c) if c is not None else None
    if c is not None and carr is None:
        cg.block(key, f"Gemm '{node.name}' C is not constant")
    elif carr is not None and carr.ndim >= 1 and carr.shape[-1] != 1:
        bind(cg, c, carr.ndim - 1, key, "const", f"Gemm '{node.name}' C")
    cg.sources.append((node, key))
    if a is None and node.inputs[0].producer() is None:
        cg.first.add(id(node))
    return None


def _matmul(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    a, out = ins[0], node.outputs[0]
    b = node.inputs[1]
    arr = const_array(b)
    if arr is None or not b.is_initializer():  # two activations: attention heads on a batch axis
        return matmul_batched(cg, node, ins) if any(s is not None for s in ins[:2]) else None
    ra = rank(node.inputs[0])
    if arr.ndim != 2 or ra is None or ra < 2:
        return f"MatMul node '{node.name}' multiplies them by a non-constant or non-2-D B" if a is not None else None
    why = data_sink(cg, node, a, b, 0, ra - 1)
    if why:
        return why
    key = vkey(out)
    cg.space(key, ra - 1, arr.shape[1])
    bind(cg, b, 1, key, "out", f"MatMul '{node.name}' B")
    cg.sources.append((node, key))
    if a is None and node.inputs[0].producer() is None:
        cg.first.add(id(node))
    return None


def _unary(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None if all(s is None for s in ins) else f"{node.op_type} node '{node.name}' takes them as a parameter"
    if any(s is not None for s in ins[1:]):
        return f"{node.op_type} node '{node.name}' takes them as a parameter"
    if node.op_type in SPATIAL and x.axis != 1:
        return f"{node.op_type} node '{node.name}' pools over channel axis {x.axis}"
    if any(o.uses() or o.is_graph_output() for o in node.outputs[1:]):  # Dropout's mask, MaxPool's indices
        return f"{node.op_type} node '{node.name}' has its second output read"
    cg.carry(x, node.outputs[0], x.axis)
    return None


def _batchnorm(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None if all(s is None for s in ins) else f"BatchNormalization node '{node.name}' takes them as a parameter"
    if x.axis != 1 or any(s is not None for s in ins[1:]) or len(node.outputs) > 1:
        return f"BatchNormalization node '{node.name}' normalizes axis 1, not their axis {x.axis}"
    cg.carry(x, node.outputs[0], 1)
    for i, v in enumerate(node.inputs[1:5]):
        bind(cg, v, 0, vkey(node.outputs[0]), "bn" if i == 0 else "const", f"BatchNormalization '{node.name}' parameter")
    return None


def _elementwise(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    if all(s is None for s in ins):
        return None
    out = node.outputs[0]
    r = rank(out)
    if r is None:
        return f"{node.op_type} node '{node.name}' has an output of unknown rank"
    axes = set()
    for v, s in zip(node.inputs, ins):
        if v is not None and rank(v) is None:
            return f"{node.op_type} node '{node.name}' has an input of unknown rank"
        if s is not None:
            axes.add(s.axis + r - rank(v))
    if len(axes) != 1:
        return f"{node.op_type} node '{node.name}' combines channels on different axes"
    axis = axes.pop()
    size = next(s.size for s in ins if s is not None)
    if any(s is not None and s.size != size for s in ins):
        return f"{node.op_type} node '{node.name}' combines channel spaces of different sizes"
    key = vkey(out)
    cg.space(key, axis, size)
    for v, s in zip(node.inputs, ins):
        if s is not None:
            cg.same(s.key, key)
            continue
        rv = rank(v)
        dims = v.shape if v is not None and v.shape is not None else None
        at = axis - (r - rv) if rv is not None else -1
        extent = dims[at] if dims is not None and 0 <= at < rv else 1
        if extent == 1:
            continue  # broadcast along the channels: nothing to slice
        if const_array(v) is not None:
            bind(cg, v, at, key, "const", f"{node.op_type} '{node.name}' constant")
        else:
            cg.block(key, f"{node.op_type} node '{node.name}' adds '{v.name}', whose channels are not pruned with them")
    return None


def _concat(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    if all(s is None for s in ins):
        return None
    out = node.outputs[0]
    r = rank(out)
    axis = int_attr(node, "axis", 0)
    if axis < 0 and r is None:
        return f"Concat node '{node.name}' has an output of unknown rank"
    axis = axis + r if axis < 0 else axis
    if any(s is None for s in ins):
        return f"Concat node '{node.name}' joins them with tensors whose channels are not pruned"
    chan = {s.axis for s in ins}
    if len(chan) != 1:
        return f"Concat node '{node.name}' joins channels on different axes"
    ch = chan.pop()
    key = vkey(out)
    if ch == axis:
        cg.space(key, ch, sum(s.size for s in ins))
        off = 0
        for s in ins:
            cg.tie(s.key, range(s.size), key, range(off, off + s.size))
            off += s.size
        return None
    if len({s.size for s in ins}) != 1:
        return f"Concat node '{node.name}' joins channel spaces of different sizes"
    cg.space(key, ch, ins[0].size)
    for s in ins:
        cg.same(s.key, key)
    return None


def _flatten(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    if node.op_type == "Reshape" and (reshape_keeping_channels(cg, node, x) or reshape_heads(cg, node, x)):
        return None
    dims = node.inputs[0].shape
    hw_dims = None if dims is None else list(dims)[2:]
    if node.op_type == "Flatten":
        ok = int_attr(node, "axis", 1) == 1
    else:  # [N, -1] keeps the batch: 0 copies it (a symbolic batch included), a number must equal it
        shape = const_array(node.inputs[1])
        ok = (shape is not None and shape.ndim == 1 and len(shape) == 2 and shape[1] == -1
              and dims is not None and (shape[0] == 0 or (isinstance(dims[0], int) and shape[0] == dims[0]))
              and not int_attr(node, "allowzero", 0))
    if not ok or hw_dims is None or x.axis != 1 or not all(isinstance(d, int) for d in hw_dims):
        return f"{node.op_type} node '{node.name}' mixes the channels with other axes"
    hw = int(np.prod(hw_dims, dtype=np.int64))
    key = vkey(node.outputs[0])
    cg.space(key, 1, x.size * hw)
    cg.tie(x.key, np.repeat(np.arange(x.size), hw), key, range(x.size * hw))
    return None


def _transpose(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    perm = ints_attr(node, "perm")
    r = rank(node.inputs[0])
    if perm is None:
        if r is None:
            return f"Transpose node '{node.name}' has an input of unknown rank"
        perm = list(range(r))[::-1]
    cg.carry(x, node.outputs[0], perm.index(x.axis))
    return None


def _reduce(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    axes = ints_attr(node, "axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        a = const_array(node.inputs[1])
        axes = None if a is None else [int(i) for i in a.reshape(-1)]
    r = rank(node.inputs[0])
    if axes is None or r is None:
        return f"{node.op_type} node '{node.name}' may reduce over the channels"
    axes = [a + r if a < 0 else a for a in axes]
    if x.axis in axes:
        return f"{node.op_type} node '{node.name}' reduces over the channels"
    keep = int_attr(node, "keepdims", 1)
    cg.carry(x, node.outputs[0], x.axis if keep else x.axis - sum(a < x.axis for a in axes))
    return None


_HANDLERS = {"Slice": slice_, "Pad": pad, "Conv": _conv, "ConvTranspose": _conv_transpose, "Gemm": _gemm, "MatMul": _matmul, "BatchNormalization": _batchnorm,
             "Concat": _concat, "Flatten": _flatten, "Reshape": _flatten, "Transpose": _transpose, "Split": split,
             **{op: _unary for op in UNARY | SPATIAL}, **{op: _elementwise for op in ELEMENTWISE},
             **{op: _reduce for op in REDUCE}, "Unsqueeze": squeeze_or_unsqueeze, "Squeeze": squeeze_or_unsqueeze, "Resize": resize,
             **{op: softmax for op in ("Softmax", "LogSoftmax", "Hardmax")}, "Shape": shape_}
