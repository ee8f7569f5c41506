"""specialize-shape-inputs: compile shape-determining runtime inputs as constants, with a runtime guard.

A static-shape compiler needs a Reshape's target shape, a Reduce's axes, TopK's k, ... at compile
time. When such a parameter is a runtime value (a graph input, or computed) but the node's input
and output shapes are statically known (declared graph outputs / value_info / shape inference),
the parameter often follows from the shapes alone: Reshape/Expand/ConstantOfShape target = the
output shape, Reduce axes = the dims reduced to 1 (keepdims=1) or the one way to delete dims
(keepdims=0), Tile repeats = out / in, TopK k / OneHot depth / window length / Split sizes /
CenterCropPad shape / Resize sizes = output dims, (Un)Squeeze axes = the only size-1 dims to
insert/remove, AffineGrid size = [N, any C, spatial dims of the output]. The pass then feeds the node that value through

    y = edgec.AssertEqual(canonical(runtime value), expected)   # y == expected

so backends compile the constant, and the runtime value is still checked: the backend raises
(naming file, node, op and input) when it differs. `canonical` is built from standard ONNX ops
so that equivalent spellings pass the guard: negative axes normalized and sorted, Reshape's 0 / -1
resolved, Expand's 1 resolved, entries the op ignores (AffineGrid's C) masked. Ambiguous cases (keepdims=1 over size-1 dims, keepdims=0 removing
one of equal dims, Resize `scales`, whose value also moves sampling coordinates) are left alone.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import onnx_opset
from edgec.ir.edgec_ops import EDGEC_DOMAIN, assert_equal_function
from edgec.passes.cleanup._common import is_standard, static_dims
from edgec.passes.control._common import Emitter, Namer
from edgec.passes.shapes._derive import DERIVATIONS, Canon, Specialization

# ops whose output has the shape of their first input (shapes propagate forward and backward)
_UNARY = {"Abs", "Neg", "Exp", "Log", "Sqrt", "Cast", "CastLike", "Identity", "Relu", "Sigmoid", "Tanh",
          "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Not", "Erf", "Softplus", "Sin", "Cos"}
# broadcasting elementwise ops: the output shape is the inputs' broadcast shape, and an input
# whose co-inputs are all single elements of lower rank (or scalars) has the output's shape
_BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"}
# ops whose lowering with runtime parameters needs a declared output shape: the pass records
# shapes carried through elementwise ops on their outputs
_NEEDS_SHAPE = {"Range", "Slice", "Pad", "Resize", "Upsample"}


def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...] | None:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        return None


_MAX_DEPTH = 12


def known_shape(v: ir.Value | None, path: frozenset[int] = frozenset()) -> tuple[int, ...] | None:
    """`v`'s static shape: declared, a constant's, or carried forward or backward through
    shape-preserving and broadcasting elementwise ops (at most `_MAX_DEPTH` ops away)."""
    if v is None:
        return None
    s = static_dims(v)
    if s is not None:
        return s
    c = const_array(v)
    if c is not None:
        return tuple(int(d) for d in c.shape)
    if id(v) in path or len(path) >= _MAX_DEPTH:
        return None
    path = path | {id(v)}
    p = v.producer()
    if p is not None and is_standard(p):
        if p.op_type in _UNARY and p.inputs and p.outputs[0] is v:
            s = known_shape(p.inputs[0], path)
        elif p.op_type in _BROADCAST and p.inputs:
            shapes = [known_shape(x, path) for x in p.inputs]
            s = None if any(x is None for x in shapes) else _broadcast(shapes)
        if s is not None:
            return s
    for use in v.uses():
        n, i = use.node, use.idx
        if not is_standard(n):
            continue
        if i == 0 and n.op_type in _UNARY:
            s = known_shape(n.outputs[0], path)
        elif n.op_type in _BROADCAST:
            out = known_shape(n.outputs[0], path)
            others = [known_shape(x, path) for j, x in enumerate(n.inputs) if j != i] if out is not None else [None]
            if all(o is not None and (len(o) == 0 or len(o) < len(out) and int(np.prod(o)) == 1) for o in others):
                s = out
        if s is not None:
            return s
    return None


def _canonical(em: Emitter, x: ir.Value, canon: Canon, dtype: np.dtype) -> ir.Value:
    def c(values):
        return np.asarray(values, dtype=dtype)

    if canon.kind == "axes":
        n = em.op("Where", [em.op("Less", [x, c(0)]), em.op("Add", [x, c(canon.rank)]), x])
        k = int(np.prod(static_dims(x) or (1,)))
        if k > 1:
            n = em.op("TopK", [n, np.array([k], np.int64)], {"largest": 0, "sorted": 1}, num_outputs=2)[0]
        return n
    if canon.kind == "reshape":
        out = x
        if canon.zero:
            out = em.op("Where", [em.op("Equal", [x, c(0)]), c(canon.zero), out])
        return em.op("Where", [em.op("Equal", [x, c(-1)]), c(canon.fill), out])
    if canon.kind == "ignore":
        return em.op("Where", [np.asarray(canon.zero, dtype=bool), x, c(canon.fill)])
    if canon.kind == "expand":
        return em.op("Where", [em.op("Equal", [x, c(1)]), c(canon.fill), x])
    return x


def _record_output_shapes(node: ir.Node) -> bool:
    """Write shapes carried through elementwise ops onto the node's outputs; True if any."""
    changed = False
    for y in node.outputs:
        s = known_shape(y)
        if s is not None and static_dims(y) is None:
            y.shape = ir.Shape(s)
            changed = True
    return changed


@register_pass
class SpecializeShapeInputs(Pass):
    """Compile runtime shape parameters that the static shapes determine as constants, guarded at run time."""

    name = "specialize-shape-inputs"

    def run(self, model: ir.Model, ctx) -> PassResult:
        opset = onnx_opset(model, 1)
        file = model.meta.get("edgec.source") or model.graph.name or "model"
        namer = None
        modified = False
        for node in list(model.graph):
            if not is_standard(node) or node.op_type not in DERIVATIONS and node.op_type not in _NEEDS_SHAPE:
                continue
            if node.op_type not in DERIVATIONS:
                modified |= _record_output_shapes(node)
                continue
            index, derive = DERIVATIONS[node.op_type]
            v = node.inputs[index] if index < len(node.inputs) else None
            dims = static_dims(v)
            if v is None or const_array(v) is not None or dims is None or v.dtype is None:
                continue
            ins = [known_shape(x) for x in node.inputs]
            outs = [known_shape(y) for y in node.outputs]
            modified |= _record_output_shapes(node)
            specs = derive(node, ins, outs, (dims, v.dtype), opset)
            if not specs:
                continue
            namer = namer or Namer(model)
            for spec in specs:
                self._apply(model, node, spec, namer, opset, file)
            modified = True
        return PassResult(model, modified)

    def _apply(self, model: ir.Model, node: ir.Node, spec: Specialization, namer: Namer, opset: int,
               file: str) -> None:
        v = node.inputs[spec.index]
        prefix = f"{node.name or node.op_type}_spec"
        em = Emitter(model.graph, node, namer, opset, prefix)
        expected = em.value(spec.expected)
        if spec.expected.size == 0:  # an empty tensor has no value to check
            em.commit()
            node.replace_input_with(spec.index, expected)
            return
        x = _canonical(em, v, spec.canon, spec.expected.dtype)
        what = f"{file}: node '{node.name or node.op_type}' ({node.op_type}) input '{v.name}'"
        if spec.canon.kind != "exact":
            what += f" ({spec.canon.kind}, canonicalized)"
        guard = ir.Node(EDGEC_DOMAIN, "AssertEqual", [x, expected],
                        attributes=ir.convenience.convert_attributes({"message": what}),
                        name=namer.fresh(f"{prefix}_guard"))
        out = guard.outputs[0]
        out.name = namer.fresh(f"{prefix}_{v.name}")
        out.type = ir.TensorType(v.dtype)
        out.shape = ir.Shape(spec.expected.shape)
        em.nodes.append(guard)
        em.commit()
        node.replace_input_with(spec.index, out)
        fn = assert_equal_function(opset)
        model.functions.setdefault(fn.identifier(), fn)
        model.opset_imports.setdefault(EDGEC_DOMAIN, 1)
        model.ir_version = max(model.ir_version or 0, 10)
