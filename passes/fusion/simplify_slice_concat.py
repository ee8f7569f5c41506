"""simplify-slice-concat: Slice of a Concat that reads whole concat inputs → those inputs;
Concat of adjacent Slices of one tensor along the concat axis → one Slice (or the tensor).

Bit-exact (pure selection). Only single-axis, unit-step Slices with constant parameters along the
Concat axis, static shapes; starts/ends resolved and clamped as Slice does, ranges must cover
whole Concat inputs / be adjacent in order. See docs/pass-safety.md."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.passes.cleanup._common import int_attr, is_standard, static_dims
from edgec.passes.cleanup.remove_identity_ops import bypass


def _slice_range(node: ir.Node, dims: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(axis, begin, end) of a unit-step Slice along one axis with constant parameters, else None."""
    ins = list(node.inputs) + [None] * (5 - len(node.inputs))
    starts, ends = const_array(ins[1]), const_array(ins[2])
    axes = const_array(ins[3]) if ins[3] is not None else np.array([0])
    steps = const_array(ins[4]) if ins[4] is not None else np.array([1])
    if any(a is None for a in (starts, ends, axes, steps)) or starts.size != 1 or axes.size != 1:
        return None
    if int(steps.reshape(-1)[0]) != 1:
        return None
    axis = int(axes.reshape(-1)[0]) % len(dims)
    n = dims[axis]
    b, e = int(starts.reshape(-1)[0]), int(ends.reshape(-1)[0])
    b = min(max(b + n if b < 0 else b, 0), n)
    e = min(max(e + n if e < 0 else e, 0), n)
    return axis, b, max(b, e)


def _slice_of_concat(graph: ir.Graph, node: ir.Node) -> bool:
    cat = node.inputs[0].producer() if node.inputs[0] is not None else None
    if cat is None or cat.op_type != "Concat" or not is_standard(cat) or cat.graph is not graph:
        return False
    dims = static_dims(node.inputs[0])
    parts = [static_dims(v) for v in cat.inputs]
    if dims is None or any(p is None for p in parts) or None in cat.inputs:
        return False
    rng = _slice_range(node, dims)
    axis = int_attr(cat, "axis", 0) % len(dims)
    if rng is None or rng[0] != axis:
        return False
    _, b, e = rng
    offsets = np.cumsum([0] + [p[axis] for p in parts]).tolist()
    if b not in offsets or e not in offsets or e <= b:
        return False
    first, last = offsets.index(b), offsets.index(e)
    picked = list(cat.inputs)[first:last]
    if len(picked) == 1:
        return bypass(graph, node, picked[0])
    new = ir.node("Concat", inputs=picked, attributes={"axis": axis})
    graph.insert_before(node, new)
    new.outputs[0].type, new.outputs[0].shape = node.outputs[0].type, node.outputs[0].shape
    if not bypass(graph, node, new.outputs[0]):
        graph.remove(new, safe=True)
        return False
    return True


def _concat_of_slices(graph: ir.Graph, node: ir.Node) -> bool:
    producers = [v.producer() if v is not None else None for v in node.inputs]
    if len(producers) < 2 or any(p is None or p.op_type != "Slice" or not is_standard(p) for p in producers):
        return False
    src = producers[0].inputs[0]
    dims = static_dims(src)
    if dims is None or any(p.inputs[0] is not src for p in producers):
        return False
    axis = int_attr(node, "axis", 0) % len(dims)
    ranges = [_slice_range(p, dims) for p in producers]
    if any(r is None or r[0] != axis for r in ranges):
        return False
    if any(ranges[i][2] != ranges[i + 1][1] for i in range(len(ranges) - 1)):
        return False
    b, e = ranges[0][1], ranges[-1][2]
    if (b, e) == (0, dims[axis]):
        return bypass(graph, node, src)
    consts = []
    for role, x in (("starts", b), ("ends", e), ("axes", axis)):
        name, i = f"{node.name or 'concat'}_{role}", 0
        while name in graph.initializers:
            name, i = f"{node.name or 'concat'}_{role}_{i}", i + 1
        c = ir.Value(name=name, shape=ir.Shape([1]), type=ir.TensorType(ir.DataType.INT64),
                     const_value=ir.tensor(np.array([x], np.int64)))
        graph.register_initializer(c)
        consts.append(c)
    new = ir.node("Slice", inputs=[src, *consts])
    graph.insert_before(node, new)
    new.outputs[0].type, new.outputs[0].shape = node.outputs[0].type, node.outputs[0].shape
    if not bypass(graph, node, new.outputs[0]):
        graph.remove(new, safe=True)
        return False
    return True


@register_pass
class SimplifySliceConcat(Pass):
    """Remove Slice∘Concat and Concat∘Slice round trips along one axis (static shapes, unit steps)."""

    name = "simplify-slice-concat"

    def run(self, model: ir.Model, ctx) -> PassResult:
        graph = model.graph
        modified = False
        for node in list(graph):
            if node.graph is not graph or not is_standard(node):
                continue
            if node.op_type == "Slice":
                modified |= _slice_of_concat(graph, node)
            elif node.op_type == "Concat":
                modified |= _concat_of_slices(graph, node)
        return PassResult(model, modified)
