"""remove-identity-ops: bypass nodes that compute their input unchanged (Identity, no-op Cast/Reshape/...).

Taken in (each returns its input bit for bit): Identity; inference Dropout (training_mode absent or
constant false, mask output unused; before opset 7 `is_test` must be set: its default 0 is
training); Cast/CastLike to the input's own dtype; Reshape/Expand whose constant target is the
input's static shape; Transpose by the identity; Pad by all-zero pads; single-input
Concat/Sum/Max/Min/Mean; Slice covering every axis fully with step 1; and x + c, c + x with c
all -0.0 (x + (+0.0) turns -0.0 into +0.0, which 1/x tells apart), x - c with c all +0.0, x * 1,
1 * x, x / 1 -- for integer dtypes any zero -- only when c does not broadcast x to a larger shape
and has x's dtype. Bit-exact.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import onnx_opset
from edgec.passes.cleanup._common import (
    all_graphs,
    int_attr,
    ints_attr,
    is_standard,
    static_dims,
    take_over_output_name,
)

_SINGLE_INPUT_NOOPS = ("Concat", "Sum", "Max", "Min", "Mean")


def _reshape_target(dims: tuple[int, ...], shape: np.ndarray, allowzero: int) -> tuple[int, ...] | None:
    out = [int(s) for s in shape.reshape(-1)]
    for i, s in enumerate(out):
        if s == 0 and not allowzero:
            if i >= len(dims):
                return None
            out[i] = dims[i]
    if out.count(-1) > 1:
        return None
    if -1 in out:
        known = int(np.prod([s for s in out if s != -1], dtype=np.int64))
        total = int(np.prod(dims, dtype=np.int64))
        if known == 0 or total % known:
            return None
        out[out.index(-1)] = total // known
    return tuple(out)


def _slice_is_full(node: ir.Node, opset: int) -> bool:
    dims = static_dims(node.inputs[0])
    if dims is None:
        return False
    if opset < 10 or len(node.inputs) == 1:
        starts, ends, axes, steps = ints_attr(node, "starts"), ints_attr(node, "ends"), ints_attr(node, "axes"), None
        if starts is None or ends is None:
            return False
    else:
        arrays = []
        for i in range(1, 5):
            v = node.inputs[i] if i < len(node.inputs) else None
            a = const_array(v) if v is not None else None
            if v is not None and a is None:
                return False
            arrays.append(None if a is None else [int(x) for x in a.reshape(-1)])
        starts, ends, axes, steps = arrays
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        n = dims[axis + len(dims) if axis < 0 else axis]
        if step != 1:
            return False
        start = start + n if start < 0 else start
        end = end + n if end < 0 else end
        if max(0, min(n, start)) != 0 or max(0, min(n, end)) != n:
            return False
    return True


def _neutral_operand(node: ir.Node) -> ir.Value | None:
    """For x+0, 0+x, x-0, x*1, 1*x, x/1: the operand x, if the result has x's shape and dtype."""
    if len(node.inputs) != 2 or any(v is None for v in node.inputs):
        return None
    neutral = 0 if node.op_type in ("Add", "Sub") else 1
    # IEEE: -0 + +0 = +0 and -0 - -0 = +0; only x + (-0) and x - (+0) return every x (incl. -0)
    sign_needed = {"Add": True, "Sub": False}.get(node.op_type)
    candidates = [(0, 1), (1, 0)] if node.op_type in ("Add", "Mul") else [(0, 1)]
    for xi, ci in candidates:
        x, c = node.inputs[xi], node.inputs[ci]
        a = const_array(c)
        xdims = static_dims(x)
        if a is None or xdims is None or x.dtype is None or c.dtype != x.dtype:
            continue
        if not np.all(a == neutral):
            continue
        if sign_needed is not None and a.dtype.kind == "f" and not np.all(np.signbit(a) == sign_needed):
            continue
        if a.ndim > len(xdims) or any(s not in (1, d) for s, d in zip(a.shape[::-1], xdims[::-1])):
            continue  # broadcasting would change the output shape
        return x
    return None


def identity_source(node: ir.Node, opset: int) -> ir.Value | None:
    """The input whose value the node's (first) output equals, or None."""
    if not is_standard(node) or not node.inputs or node.inputs[0] is None:
        return None
    op, x = node.op_type, node.inputs[0]
    if len(node.outputs) != 1 and op != "Dropout":
        return None
    if op == "Identity":
        return x
    if op == "Dropout":
        if len(node.outputs) > 1 and (node.outputs[1].uses() or node.outputs[1].is_graph_output()):
            return None
        if int_attr(node, "is_test", 1 if opset >= 7 else 0) == 0:  # Dropout-1/6: default is training
            return None
        training = node.inputs[2] if len(node.inputs) > 2 else None
        if training is not None:
            t = const_array(training)
            if t is None or bool(t.reshape(-1)[0]):
                return None
        return x
    if op == "Cast":
        to = int_attr(node, "to")
        return x if to is not None and x.dtype is not None and x.dtype.value == to else None
    if op == "CastLike":
        return x if x.dtype is not None and node.inputs[1] is not None and node.inputs[1].dtype == x.dtype else None
    if op in ("Reshape", "Expand") and len(node.inputs) == 2:
        dims, shape = static_dims(x), const_array(node.inputs[1])
        if dims is None or shape is None:
            return None
        if op == "Reshape":
            target = _reshape_target(dims, shape, int_attr(node, "allowzero", 0))
        else:
            try:
                target = tuple(np.broadcast_shapes(dims, tuple(int(s) for s in shape.reshape(-1))))
            except ValueError:
                return None
        return x if target == dims else None
    if op == "Transpose":
        perm = ints_attr(node, "perm")
        if perm is None:
            return x if x.shape is not None and len(x.shape) <= 1 else None
        return x if perm == list(range(len(perm))) else None
    if op == "Pad":
        pads = ints_attr(node, "pads") if len(node.inputs) < 2 or node.inputs[1] is None else None
        if pads is None and len(node.inputs) >= 2 and node.inputs[1] is not None:
            p = const_array(node.inputs[1])
            pads = None if p is None else [int(v) for v in p.reshape(-1)]
        return x if pads is not None and not any(pads) else None
    if op in _SINGLE_INPUT_NOOPS:
        return x if len(node.inputs) == 1 else None
    if op == "Slice":
        return x if _slice_is_full(node, opset) else None
    if op in ("Add", "Sub", "Mul", "Div"):
        return _neutral_operand(node)
    return None


def bypass(graph: ir.Graph, node: ir.Node, src: ir.Value) -> bool:
    """Make the users of node's first output use `src` instead and drop the node. Graph output
    names stay stable: the producer of `src` takes over the output name when it can."""
    out = node.outputs[0]
    if out.is_graph_output():
        if (src.is_graph_input() or src.is_initializer() or src.is_graph_output()
                or src.graph is not graph or src.producer() is None):
            return False
        take_over_output_name(out, src)
    out.replace_all_uses_with(src, replace_graph_outputs=True)
    graph.remove(node, safe=True)
    return True


@register_pass
class RemoveIdentityOps(Pass):
    """Remove nodes that return their input unchanged (Identity, inference Dropout, no-op Cast/Reshape/...)."""

    name = "remove-identity-ops"
    options = {}

    def run(self, model: ir.Model, ctx) -> PassResult:
        opset = onnx_opset(model, 1)
        modified = False
        for graph in all_graphs(model.graph):
            for node in list(graph):
                src = identity_source(node, opset)
                if src is not None and src is not node.outputs[0]:
                    modified |= bypass(graph, node, src)
        return PassResult(model, modified)
