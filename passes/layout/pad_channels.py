"""pad-channels: give activations whose channel count no vector block divides zero channels up to
the next multiple of the block, so their convs join the backend's blocked NCHW{b}c layout.

The CPU backend carries a channel-blocked layout (NCHW16c on AVX-512) through the graph, but only
through convs whose channels the block divides. MobileNetV2's 24-channel layers therefore forced
the whole model down to 8-channel blocks (half the vector width) or out of the blocked layout;
with 24 padded to 32 every conv runs with 16 lanes.

A *region* is a connected set of 4-D activations that must share one channel count: conv outputs,
the per-channel ops on them (unary activations, Add/Sub/Mul/Div with each other or with per-channel
constants, pools, depthwise convs, FusedConv's residual `Z`) and the inputs of those ops. It is
padded only when it is closed: every value is produced by a conv or one of those ops, and every
consumer is one of those ops or a group-1 conv reading it as `X` (which then gets zero
input-channel weights). A region that reaches a graph output, a graph input, a reshape, a
reduction over channels, ... is left alone (`--trace` reason: the op that stops it).

What changes: the producing convs get zero output channels (weights and bias), depthwise convs
get zero filters and `group` = the padded count, consuming convs get zero input-channel weights,
per-channel constants get zeros (ones for a divisor). The padded channels then hold f(0)-style
values that only ever meet zero weights, so the real channels are computed with the same
operations in the same order: outputs are unchanged, bit-exact.

Why that is exact -- the proof obligation for every op a region takes in: a padded channel must
hold a *finite* value wherever it meets a zero weight, because 0 * x = 0 only for finite x
(0 * inf = 0 * NaN = NaN, and the sink conv sums it into every real channel). So:
- producers (Conv, FusedConv with an activation of `_FINITE_UNARY`) start padded channels at
  exactly act(0 + 0) -- finite;
- `_FINITE_UNARY` ops map finite to finite (Relu, Sigmoid, Tanh, Elu, ... of any finite value);
  Exp, Log, Sqrt, Reciprocal, Pow, Softplus-style ops that overflow or are undefined at some
  finite value are not taken in;
- Add, Sub, Mul of two region values or with a per-channel constant (padded with 0) stay finite;
- Div only by a per-channel constant (padded with 1). Div by a computed tensor ends the region:
  its padded channels could hold 0 (Relu(x) + c, Sigmoid(x) * c with c padded to 0), and 0/0 is NaN;
- pools and depthwise convs work per channel; anything that mixes channels (reductions, norms or
  Softmax over channels, Reshape, Concat, grouped convs) or that cannot be proven per-channel ends
  the region.
Quantized graphs (fuse-qdq's output) take the same rewrite: QLinearConv is a conv (weights at input
3; padded output channels get zero weights, zero bias, weight scale 1 and zero point 0, so they
hold y_zero_point, an integer), and per-tensor QuantizeLinear / DequantizeLinear (scalar scale and
zero point) are per-channel unary ops: the int8 residual Add (DQ, DQ, Add, Q) stays in the region.
Every padded value there is an integer or the float of one: finite.
If the real model's own input is inf/NaN, a producer's zero weights give NaN in padded channels,
which then reaches real channels where the original might not have had NaN: the pass assumes
finite inputs (as every compiler assuming `-ffinite-math` does for this rewrite).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.passes.cleanup._common import int_attr, static_dims

# finite at every finite input (see the module doc): what a padded channel may pass through
_FINITE_UNARY = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Identity", "Elu",
                 "Selu", "Silu", "Gelu", "Abs", "Neg"}
_BINARY = {"Add", "Sub", "Mul", "Div"}
_POOLS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}
_CONVS = {"Conv", "FusedConv", "QLinearConv"}
_QDQ = {"QuantizeLinear", "DequantizeLinear"}


def _w_index(conv: ir.Node) -> int:
    """Where a conv's weight is: QLinearConv (x, x_scale, x_zp, w, ...) has it at 3."""
    return 3 if conv.op_type == "QLinearConv" else 1


def _per_tensor_qdq(node: ir.Node) -> bool:
    """A Quantize/DequantizeLinear with constant scalar scale and zero point (per tensor)."""
    for i in (1, 2):
        if i >= len(node.inputs) or node.inputs[i] is None:
            continue
        a = const_array(node.inputs[i])
        if a is None or a.size != 1:
            return False
    return int_attr(node, "block_size", 0) == 0


def _kind(node: ir.Node) -> str | None:
    if node.domain not in ("", "ai.onnx", "edgec"):
        return None
    op = node.op_type
    if op in _CONVS and (node.domain == "edgec") == (op == "FusedConv"):
        return "conv"
    if op in _QDQ and node.domain != "edgec":
        return "unary" if _per_tensor_qdq(node) else None
    if node.domain == "edgec" and op not in ("Silu", "Gelu"):
        return None
    if op in _FINITE_UNARY:
        return "unary"
    if op in _BINARY:
        return "binary"
    if op == "MaxPool" and len(node.outputs) > 1 and node.outputs[1].name:
        return None  # indices depend on the channel count
    return "pool" if op in _POOLS else None


def _conv_kind(node: ir.Node) -> str | None:
    """'dense' (group 1), 'depthwise' (group = in = out channels) or None."""
    wi = _w_index(node)
    w = static_dims(node.inputs[wi]) if len(node.inputs) > wi else None
    x = static_dims(node.inputs[0])
    if w is None or x is None or len(w) != 4 or len(x) != 4 or const_array(node.inputs[wi]) is None:
        return None
    g = int_attr(node, "group", 1)
    if g == 1:
        return "dense"
    return "depthwise" if g == x[1] == w[0] and w[1] == 1 else None


@dataclass
class Region:
    values: set = field(default_factory=set)
    channels: int | None = None
    producers: set = field(default_factory=set)   # convs whose output channels are padded
    sinks: set = field(default_factory=set)       # dense convs reading a region value as X
    consts: list = field(default_factory=list)    # (node, input index) of per-channel constants
    reason: str = ""


def _grow(start: ir.Value, graph_outputs: set) -> Region:
    r = Region()
    todo = [start]

    def add(v):
        if v not in r.values:
            r.values.add(v)
            todo.append(v)

    def fail(why):
        r.reason = why
        return r

    while todo:
        v = todo.pop()
        dims = static_dims(v)
        if dims is None or len(dims) != 4:
            return fail(f"'{v.name}' is not a static 4-D tensor")
        if r.channels is None:
            r.channels = dims[1]
        if dims[1] != r.channels:
            return fail(f"'{v.name}' has {dims[1]} channels, not {r.channels}")
        if v in graph_outputs or v.is_graph_input() or v.is_initializer():
            return fail(f"'{v.name}' is a graph input/output")
        node = v.producer()
        kind = _kind(node) if node is not None else None
        if kind is None:
            return fail(f"'{v.name}' comes from {node.op_type if node else 'nowhere'}")
        if kind == "conv":
            ck = _conv_kind(node)
            if ck is None:
                return fail(f"conv '{node.name}' is grouped or has non-constant weights")
            act = node.attributes.get_string("activation", "") if node.op_type == "FusedConv" else ""
            if act and act not in _FINITE_UNARY:
                return fail(f"conv '{node.name}' has activation {act}, not known to be finite")
            r.producers.add(node)
            if ck == "depthwise":
                add(node.inputs[0])
            if node.op_type == "FusedConv" and len(node.inputs) > 3 and node.inputs[3] is not None:
                add(node.inputs[3])  # the residual Z
            if node.op_type == "QLinearConv" and not _per_channel_ok(node, r.channels):
                return fail(f"QLinearConv '{node.name}' has a weight scale / zero point that is not per output channel")
        elif kind == "binary":
            if node.op_type == "Div" and const_array(node.inputs[1]) is None:
                return fail(f"Div '{node.name}' divides by a computed tensor (0/0 in padded channels)")
            for i, x in enumerate(node.inputs):
                if const_array(x) is not None:
                    if not _per_channel(x, r.channels):
                        return fail(f"constant '{x.name}' of {node.op_type} '{node.name}' is not per-channel")
                    r.consts.append((node, i))
                else:
                    add(x)
        else:
            add(node.inputs[0])
        for use in v.uses():
            user, idx = use.node, use.idx
            uk = _kind(user)
            if uk == "conv" and idx == 0:
                ck = _conv_kind(user)
                if ck == "dense":
                    r.sinks.add(user)
                elif ck == "depthwise":
                    add(user.outputs[0])
                else:
                    return fail(f"conv '{user.name}' reading '{v.name}' is grouped")
            elif uk == "conv" and idx == 3 and user.op_type == "FusedConv":
                add(user.outputs[0])
            elif uk in ("unary", "pool") and idx == 0:
                add(user.outputs[0])
            elif uk == "binary":
                if user.op_type == "Div" and idx == 1:
                    return fail(f"'{v.name}' is the divisor of Div '{user.name}' (0/0 in padded channels)")
                add(user.outputs[0])
            else:
                return fail(f"'{v.name}' is read by {user.op_type} '{user.name}'")
    return r


def _per_channel_ok(conv: ir.Node, channels: int) -> bool:
    """QLinearConv's weight scale / zero point (inputs 4, 5): constants of 1 or `channels` values."""
    for i in (4, 5):
        if i < len(conv.inputs) and conv.inputs[i] is not None:
            a = const_array(conv.inputs[i])
            if a is None or a.ndim > 1 or a.size not in (1, channels):
                return False
    return True


def _per_channel(v: ir.Value, channels: int) -> bool:
    a = const_array(v)
    if a is None or a.ndim > 4:
        return False
    shape = (1,) * (4 - a.ndim) + a.shape
    return shape[0] == 1 and shape[2] == 1 and shape[3] == 1 and shape[1] in (1, channels)


def _pad_axis(a: np.ndarray, axis: int, to: int, value: float = 0.0) -> np.ndarray:
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, to - a.shape[axis])
    return np.pad(a, widths, constant_values=np.array(value, dtype=a.dtype))


def _replace_const(graph: ir.Graph, node: ir.Node, idx: int, arr: np.ndarray, tag: str) -> None:
    """A new initializer for this use only (the old one may be shared with unpadded users)."""
    old = node.inputs[idx]
    name = f"{old.name}__{tag}"
    i = 0
    while name in graph.initializers:
        i += 1
        name = f"{old.name}__{tag}{i}"
    new = ir.Value(name=name, shape=ir.Shape(arr.shape), type=ir.TensorType(ir.DataType.from_numpy(arr.dtype)),
                   const_value=ir.tensor(arr, name=name))
    graph.register_initializer(new)
    node.replace_input_with(idx, new)


def _apply(graph: ir.Graph, r: Region, padded: int) -> None:
    for conv in r.producers:
        wi = _w_index(conv)
        w = const_array(conv.inputs[wi])
        _replace_const(graph, conv, wi, _pad_axis(w, 0, padded), f"pad{padded}")
        # per-output-channel inputs: the bias (Conv 2, QLinearConv 8) with zeros; QLinearConv's
        # weight scale with ones (a valid scale), its weight zero point with zeros
        fills = {8: 0.0, 4: 1.0, 5: 0.0} if conv.op_type == "QLinearConv" else {2: 0.0}
        for i, fill in fills.items():
            a = const_array(conv.inputs[i]) if len(conv.inputs) > i and conv.inputs[i] is not None else None
            bias = i in (2, 8)  # always per channel; a scale or zero point of one value is per tensor
            if a is not None and a.ndim == 1 and a.size == w.shape[0] and (bias or a.size > 1):
                _replace_const(graph, conv, i, _pad_axis(a, 0, padded, fill), f"pad{padded}")
        if int_attr(conv, "group", 1) != 1:
            conv.attributes["group"] = ir.AttrInt64("group", padded)
    for conv in r.sinks:
        wi = _w_index(conv)
        w = const_array(conv.inputs[wi])
        _replace_const(graph, conv, wi, _pad_axis(w, 1, padded), f"in{padded}")
    for node, idx in r.consts:
        a = const_array(node.inputs[idx])
        axis = a.ndim - 3  # the axis broadcast against the channels of a 4-D activation
        if axis < 0 or a.shape[axis] == 1:
            continue
        fill = 1.0 if node.op_type == "Div" and idx == 1 else 0.0
        _replace_const(graph, node, idx, _pad_axis(a, axis, padded, fill), f"pad{padded}")
    for v in r.values:
        n, _, h, w = static_dims(v)
        v.shape = ir.Shape([n, padded, h, w])


def _conv_work(conv: ir.Node, out_ch: dict, in_ch: dict) -> tuple[float, float]:
    """(multiply-adds now, after padding) of one conv; out_ch/in_ch: padded channel counts of
    values being padded."""
    w = static_dims(conv.inputs[_w_index(conv)])
    y = static_dims(conv.outputs[0])
    if w is None or y is None:
        return 0.0, 0.0
    per_out = float(np.prod(y[2:])) * y[0] * w[2] * w[3]
    co = out_ch.get(conv.outputs[0], w[0])
    depthwise = int_attr(conv, "group", 1) != 1
    ci = 1 if depthwise else in_ch.get(conv.inputs[0], w[1])
    return per_out * w[0] * w[1], per_out * co * ci


@register_pass
class PadChannels(Pass):
    """Pad activations' channels with zeros to a multiple of the vector block (block=0: off)."""

    name = "pad-channels"
    # max_growth: the most extra conv work (fraction of all conv multiply-adds) worth the wider
    # blocks. odd_cnn (37/61/83/130 channels: +30%) ran 1.6x slower padded; MobileNetV2 (24 -> 32: +5%) not.
    options = {"block": 0, "max_growth": 0.1}

    def run(self, model: ir.Model, ctx) -> PassResult:
        opts = self.opts
        block = int(opts["block"])
        if block <= 1:
            return PassResult(model, False)
        graph = model.graph
        outputs = set(graph.outputs)
        seen: set = set()
        regions: list[tuple[Region, int]] = []
        for node in list(graph):
            if _kind(node) != "conv" or node.outputs[0] in seen:
                continue
            dims = static_dims(node.outputs[0])
            if dims is None or len(dims) != 4 or dims[1] % block == 0:
                continue
            r = _grow(node.outputs[0], outputs)
            seen |= r.values
            if not r.reason:  # a region that is not closed stays as it is
                regions.append((r, -(-r.channels // block) * block))
        if not regions:
            return PassResult(model, False)
        padded = {v: p for r, p in regions for v in r.values}
        before = after = 0.0
        for node in graph:
            if _kind(node) == "conv":
                b, a = _conv_work(node, padded, padded)
                before, after = before + b, after + a
        if before <= 0 or after > before * (1 + float(opts["max_growth"])):
            return PassResult(model, False)  # all or nothing: a partial padding mixes block sizes
        for r, p in regions:
            _apply(graph, r, p)
        return PassResult(model, True)
