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

Conv (group 1), Gemm (transA 0) and MatMul with a constant 2-D weight start a new space on their
output (they are the *sources*); the channel axis of their data input is a sink (the weight's
input axis is bound to it). Everything else must map input channels to output channels exactly,
or it blocks the group."""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import onnx_ir as ir

from edgec.ir.domains import is_onnx_domain
from edgec.passes.cleanup._common import constant_array, int_attr, ints_attr, static_dims

UNARY = {
    "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Gelu", "Erf", "Elu", "Selu",
    "Softplus", "Softsign", "Mish", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Identity", "Dropout", "Cast",
    "Celu", "ThresholdedRelu", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos",
}
SPATIAL = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool"}  # channels on axis 1
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "PRelu", "Pow"}
REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceProd"}


@dataclass
class Space:
    key: tuple
    axis: int
    size: int
    role: str = "act"  # act | out (a weight's output axis) | in (a weight's input axis) | bn | const
    feeds: tuple | None = None  # role "in": the activation key whose channels this axis reads


@dataclass
class ChannelGraph:
    spaces: dict[tuple, Space] = field(default_factory=dict)
    elements: nx.Graph = field(default_factory=nx.Graph)
    clusters: nx.Graph = field(default_factory=nx.Graph)
    sources: list[tuple[ir.Node, tuple]] = field(default_factory=list)  # (node, its output activation key)
    grouped: list[tuple[ir.Node, tuple, int]] = field(default_factory=list)  # (Conv, out key, channels per group)
    splits: list[tuple[ir.Node, list[tuple]]] = field(default_factory=list)  # (Split, output keys)
    slices: list[tuple[ir.Node, tuple, int, int, int]] = field(default_factory=list)  # (Slice, input key, i in axes, start, end)
    first: set = field(default_factory=set)  # ids of source nodes reading a graph input

    # --- building blocks -------------------------------------------------------------------------
    def space(self, key: tuple, axis: int, size: int, role: str = "act", feeds: tuple | None = None) -> Space:
        if key in self.spaces:
            return self.spaces[key]
        s = Space(key, axis, size, role, feeds)
        self.spaces[key] = s
        self.clusters.add_node(key)
        self.elements.add_nodes_from((key, j) for j in range(size))
        return s

    def tie(self, ka: tuple, ia, kb: tuple, ib) -> None:
        self.clusters.add_edge(ka, kb)
        self.elements.add_edges_from(((ka, int(a)), (kb, int(b))) for a, b in zip(ia, ib))

    def same(self, ka: tuple, kb: tuple) -> None:
        n = self.spaces[ka].size
        self.tie(ka, range(n), kb, range(n))

    def block(self, key: tuple, reason: str) -> None:
        self.clusters.add_edge(key, ("block", reason))

    def carried(self, v: ir.Value | None) -> Space | None:
        return None if v is None or v.name is None else self.spaces.get(("v", v.name))


def label(node: ir.Node) -> str:
    """A node's name, or its weight's when it has none (ONNX names are optional)."""
    w = node.inputs[1] if len(node.inputs) > 1 and node.inputs[1] is not None else None
    return node.name or (f"{node.op_type}({w.name})" if w is not None else node.op_type)


def _vkey(v: ir.Value) -> tuple:
    return ("v", v.name)


def _bind(cg: ChannelGraph, v: ir.Value | None, axis: int, act: tuple, role: str, why: str) -> bool:
    """Bind axis `axis` of constant `v` to activation space `act` index for index; block if `v`
    is not a constant read by this node only or its extent differs."""
    arr = constant_array(v)
    size = cg.spaces[act].size
    if arr is None or not v.is_initializer():
        cg.block(act, f"{why} is not a constant initializer")
        return False
    if len(v.uses()) != 1:
        cg.block(act, f"{why} '{v.name}' is shared by {len(v.uses())} nodes")
        return False
    if arr.ndim <= axis or arr.shape[axis] != size:
        cg.block(act, f"{why} '{v.name}' has shape {list(arr.shape)}, not {size} along axis {axis}")
        return False
    key = ("i", v.name, axis)
    if key in cg.spaces:  # the same constant bound twice by one node (x * w + w): not a layout we prune
        cg.block(act, f"{why} '{v.name}' is read twice")
        return False
    cg.space(key, axis, size, role, feeds=act if role == "in" else None)
    cg.same(key, act)
    return True


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


def _data_sink(cg: ChannelGraph, node: ir.Node, x: Space | None, w: ir.Value, w_axis: int, want_axis: int) -> str | None:
    """Bind the weight's input axis to the channels of the data input `x` (when they are pruned)."""
    if x is None:
        return None
    if x.axis != want_axis:
        return f"{node.op_type} node '{node.name}' reads channel axis {x.axis} as a non-channel axis"
    _bind(cg, w, w_axis, x.key, "in", f"{node.op_type} '{node.name}' weight")
    return None


def _conv(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x, out = ins[0], node.outputs[0]
    if any(s is not None for s in ins[1:]):
        return f"Conv node '{node.name}' takes them as its weight or bias"
    w = node.inputs[1]
    arr = constant_array(w)
    dims = static_dims(out)
    if arr is None or not w.is_initializer() or dims is None or len(dims) < 3:
        if x is not None:
            return f"Conv node '{node.name}' has no constant weight or static output shape"
        return None
    groups = int_attr(node, "group", 1)
    cout = arr.shape[0]
    bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if groups == 1:
        why = _data_sink(cg, node, x, w, 1, 1)
        if why:
            return why
        key = _vkey(out)
        cg.space(key, 1, cout)
        _bind(cg, w, 0, key, "out", f"Conv '{node.name}' weight")
        if bias is not None:
            _bind(cg, bias, 0, key, "const", f"Conv '{node.name}' bias")
        cg.sources.append((node, key))
        if x is None and node.inputs[0].producer() is None:
            cg.first.add(id(node))
        return None
    if x is None:  # a grouped conv on fixed channels: its groups cannot shrink
        return None
    if x.axis != 1:
        return f"Conv node '{node.name}' reads channel axis {x.axis} as a non-channel axis"
    ci, co = arr.shape[1], cout // groups
    key = _vkey(out)
    cg.space(key, 1, cout)
    for g in range(groups):  # a group's input and output channels are one unit: the group is removed whole
        members = [(x.key, g * ci + a) for a in range(ci)] + [(key, g * co + b) for b in range(co)]
        cg.clusters.add_edge(x.key, key)
        cg.elements.add_edges_from(zip(members[:-1], members[1:]))
    _bind(cg, w, 0, key, "out", f"Conv '{node.name}' weight")
    if bias is not None:
        _bind(cg, bias, 0, key, "const", f"Conv '{node.name}' bias")
    cg.grouped.append((node, key, co))
    return None


def _gemm(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    a, out = ins[0], node.outputs[0]
    if any(s is not None for s in ins[1:]):
        return f"Gemm node '{node.name}' takes them as B or C"
    b = node.inputs[1]
    arr = constant_array(b)
    if arr is None or not b.is_initializer() or arr.ndim != 2 or int_attr(node, "transA", 0):
        return f"Gemm node '{node.name}' has no constant B or transposes A" if a is not None else None
    tb = int_attr(node, "transB", 0)
    why = _data_sink(cg, node, a, b, 1 if tb else 0, 1)
    if why:
        return why
    key = _vkey(out)
    cg.space(key, 1, arr.shape[0] if tb else arr.shape[1])
    _bind(cg, b, 0 if tb else 1, key, "out", f"Gemm '{node.name}' B")
    c = node.inputs[2] if len(node.inputs) > 2 else None
    carr = constant_array(c) if c is not None else None
    if c is not None and carr is None:
        cg.block(key, f"Gemm '{node.name}' C is not constant")
    elif carr is not None and carr.ndim >= 1 and carr.shape[-1] != 1:
        _bind(cg, c, carr.ndim - 1, key, "const", f"Gemm '{node.name}' C")
    cg.sources.append((node, key))
    if a is None and node.inputs[0].producer() is None:
        cg.first.add(id(node))
    return None


def _matmul(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    a, out = ins[0], node.outputs[0]
    if ins[1] is not None:
        return f"MatMul node '{node.name}' takes them as B"
    b = node.inputs[1]
    arr = constant_array(b)
    adims = static_dims(node.inputs[0])
    if arr is None or not b.is_initializer() or arr.ndim != 2 or adims is None or len(adims) < 2:
        return f"MatMul node '{node.name}' multiplies them by a non-constant or non-2-D B" if a is not None else None
    why = _data_sink(cg, node, a, b, 0, len(adims) - 1)
    if why:
        return why
    key = _vkey(out)
    cg.space(key, len(adims) - 1, arr.shape[1])
    _bind(cg, b, 1, key, "out", f"MatMul '{node.name}' B")
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
    key = _vkey(node.outputs[0])
    cg.space(key, x.axis, x.size)
    cg.same(x.key, key)
    return None


def _batchnorm(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None if all(s is None for s in ins) else f"BatchNormalization node '{node.name}' takes them as a parameter"
    if x.axis != 1 or any(s is not None for s in ins[1:]) or len(node.outputs) > 1:
        return f"BatchNormalization node '{node.name}' normalizes axis 1, not their axis {x.axis}"
    key = _vkey(node.outputs[0])
    cg.space(key, 1, x.size)
    cg.same(x.key, key)
    for i, v in enumerate(node.inputs[1:5]):
        _bind(cg, v, 0, key, "bn" if i == 0 else "const", f"BatchNormalization '{node.name}' parameter")
    return None


def _rank(v: ir.Value | None) -> int | None:
    return None if v is None or v.shape is None else len(v.shape)


def _elementwise(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    if all(s is None for s in ins):
        return None
    out = node.outputs[0]
    r = _rank(out)
    if r is None:
        return f"{node.op_type} node '{node.name}' has an output of unknown rank"
    axes = set()
    for v, s in zip(node.inputs, ins):
        if v is not None and _rank(v) is None:
            return f"{node.op_type} node '{node.name}' has an input of unknown rank"
        if s is not None:
            axes.add(s.axis + r - _rank(v))
    if len(axes) != 1:
        return f"{node.op_type} node '{node.name}' combines channels on different axes"
    axis = axes.pop()
    size = next(s.size for s in ins if s is not None)
    if any(s is not None and s.size != size for s in ins):
        return f"{node.op_type} node '{node.name}' combines channel spaces of different sizes"
    key = _vkey(out)
    cg.space(key, axis, size)
    for v, s in zip(node.inputs, ins):
        if s is not None:
            cg.same(s.key, key)
            continue
        rv = _rank(v)
        dims = v.shape if v is not None and v.shape is not None else None
        at = axis - (r - rv) if rv is not None else -1
        extent = dims[at] if dims is not None and 0 <= at < rv else 1
        if extent == 1:
            continue  # broadcast along the channels: nothing to slice
        if constant_array(v) is not None:
            _bind(cg, v, at, key, "const", f"{node.op_type} '{node.name}' constant")
        else:
            cg.block(key, f"{node.op_type} node '{node.name}' adds '{v.name}', whose channels are not pruned with them")
    return None


def _concat(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    if all(s is None for s in ins):
        return None
    out = node.outputs[0]
    r = _rank(out)
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
    key = _vkey(out)
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
    dims = static_dims(node.inputs[0])
    if node.op_type == "Flatten":
        ok = int_attr(node, "axis", 1) == 1
    else:
        shape = constant_array(node.inputs[1])
        ok = (shape is not None and shape.ndim == 1 and len(shape) == 2 and shape[1] == -1
              and dims is not None and shape[0] in (0, dims[0]) and not int_attr(node, "allowzero", 0))
    if not ok or dims is None or x.axis != 1:
        return f"{node.op_type} node '{node.name}' mixes the channels with other axes"
    hw = int(np.prod(dims[2:], dtype=np.int64))
    key = _vkey(node.outputs[0])
    cg.space(key, 1, x.size * hw)
    cg.tie(x.key, np.repeat(np.arange(x.size), hw), key, range(x.size * hw))
    return None


def _transpose(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    perm = ints_attr(node, "perm")
    r = _rank(node.inputs[0])
    if perm is None:
        if r is None:
            return f"Transpose node '{node.name}' has an input of unknown rank"
        perm = list(range(r))[::-1]
    key = _vkey(node.outputs[0])
    cg.space(key, perm.index(x.axis), x.size)
    cg.same(x.key, key)
    return None


def _reduce(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    axes = ints_attr(node, "axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        a = constant_array(node.inputs[1])
        axes = None if a is None else [int(i) for i in a.reshape(-1)]
    r = _rank(node.inputs[0])
    if axes is None or r is None:
        return f"{node.op_type} node '{node.name}' may reduce over the channels"
    axes = [a + r if a < 0 else a for a in axes]
    if x.axis in axes:
        return f"{node.op_type} node '{node.name}' reduces over the channels"
    keep = int_attr(node, "keepdims", 1)
    key = _vkey(node.outputs[0])
    cg.space(key, x.axis if keep else x.axis - sum(a < x.axis for a in axes), x.size)
    cg.same(x.key, key)
    return None


def _split(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    r = _rank(node.inputs[0])
    axis = int_attr(node, "axis", 0)
    if axis < 0 and r is None:
        return f"Split node '{node.name}' has an input of unknown rank"
    axis = axis + r if axis < 0 else axis
    sizes = [static_dims(o) for o in node.outputs]
    if any(s is None for s in sizes):
        return f"Split node '{node.name}' has outputs of unknown shape"
    keys = [_vkey(o) for o in node.outputs]
    if axis != x.axis:
        for k in keys:
            cg.space(k, x.axis, x.size)
            cg.same(x.key, k)
        return None
    if len(node.inputs) > 1 and node.inputs[1] is not None and constant_array(node.inputs[1]) is None:
        return f"Split node '{node.name}' has split sizes that are not constant"
    off = 0
    for k, d in zip(keys, sizes):
        cg.space(k, axis, d[axis])
        cg.tie(x.key, range(off, off + d[axis]), k, range(d[axis]))
        off += d[axis]
    cg.splits.append((node, keys))
    return None


def _pad(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    r = _rank(node.inputs[0])
    pads = ints_attr(node, "pads")
    if pads is None and len(node.inputs) > 1:
        arr = constant_array(node.inputs[1])
        pads = None if arr is None else [int(v) for v in arr.reshape(-1)]
    axes_in = node.inputs[3] if len(node.inputs) > 3 else None
    if pads is None or r is None or axes_in is not None or len(pads) != 2 * r or any(s is not None for s in ins[1:]):
        return f"Pad node '{node.name}' may pad the channels"
    if pads[x.axis] or pads[x.axis + r]:
        return f"Pad node '{node.name}' pads the channels"
    key = _vkey(node.outputs[0])
    cg.space(key, x.axis, x.size)
    cg.same(x.key, key)
    return None


def _slice(cg: ChannelGraph, node: ir.Node, ins) -> str | None:
    x = ins[0]
    if x is None:
        return None
    if any(s is not None for s in ins[1:]):
        return f"Slice node '{node.name}' takes them as starts/ends"
    r = _rank(node.inputs[0])
    consts = [constant_array(v) if v is not None else None for v in node.inputs[1:5]]
    starts, ends = consts[0], consts[1]
    axes = consts[2] if len(consts) > 2 and consts[2] is not None else (np.arange(len(starts)) if starts is not None else None)
    steps = consts[3] if len(consts) > 3 and consts[3] is not None else None
    if starts is None or ends is None or axes is None or r is None or (len(node.inputs) > 3 and node.inputs[3] is not None
                                                                       and consts[2] is None):
        return f"Slice node '{node.name}' has starts/ends/axes that are not constant"
    axes = [int(a) + r if a < 0 else int(a) for a in axes]
    key = _vkey(node.outputs[0])
    if x.axis not in axes:
        cg.space(key, x.axis, x.size)
        cg.same(x.key, key)
        return None
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


_HANDLERS = {"Slice": _slice, "Pad": _pad, "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "BatchNormalization": _batchnorm,
             "Concat": _concat, "Flatten": _flatten, "Reshape": _flatten, "Transpose": _transpose, "Split": _split,
             **{op: _unary for op in UNARY | SPATIAL}, **{op: _elementwise for op in ELEMENTWISE},
             **{op: _reduce for op in REDUCE}}
