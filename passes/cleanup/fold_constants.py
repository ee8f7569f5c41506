"""fold-constants: evaluate nodes whose inputs are all constant and store their outputs as initializers.

Taken in: a standard-domain node without subgraphs whose inputs are all true constants
(initializers that are not graph inputs -- a caller may override those -- or Constant outputs),
and Shape/Size/Gather-of-Shape of statically shaped values. The value is computed by onnx's
reference evaluator, i.e. by the op's definition: exact as far as the reference implements the
op (float results may differ from a backend's in the last bits, as any two implementations do).
Not taken: ops whose value is not a function of their inputs -- RandomNormal/Uniform[Like],
Multinomial, Bernoulli, Dropout in training mode (constant training_mode true or is_test = 0);
nodes producing If-branch outputs of subgraphs; non-tensor results. Size: the output size is
known *before* evaluating -- from the declared shapes, else from onnx shape inference run on the
node with the constant inputs' values (ConstantOfShape, Expand, Tile, Range, broadcasting ...);
over `max_bytes`, or unknown, the node is not evaluated (a 40 GB ConstantOfShape must not be
allocated only to be discarded); over --max-tensor-bytes (`PassContext.max_tensor_bytes`) a used
node is a ModelValidationError naming node and op, as the model would compute it at run time.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import onnx
import onnx_ir as ir

from edgec.errors import ModelValidationError
from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import onnx_opset
from edgec.ir.evaluate import NONDETERMINISTIC, evaluate_node, positional_node_proto
from edgec.ir.safety import node_label
from edgec.passes.cleanup._common import (
    all_graphs,
    has_subgraph,
    int_attr,
    is_standard,
    replace_with_constant,
    static_dims,
)

logger = logging.getLogger(__name__)

# Ops whose output depends on input *metadata* only: foldable when that metadata is static.
_SHAPE_OPS = ("Shape", "Size")


def _shape_slice(node: ir.Node, rank: int) -> tuple[int, int]:
    start, end = int_attr(node, "start", 0), int_attr(node, "end", rank)
    start = max(0, min(rank, start + rank if start < 0 else start))
    end = max(0, min(rank, end + rank if end < 0 else end))
    return start, end


def _fold_metadata(node: ir.Node) -> list[np.ndarray] | None:
    """Shape/Size of a statically shaped value; Gather of (part of) a Shape at static positions."""
    if node.op_type in _SHAPE_OPS:
        x = node.inputs[0] if node.inputs else None
        if x is None or x.shape is None:
            return None
        if node.op_type == "Size":
            dims = static_dims(x)
            return None if dims is None else [np.array(int(np.prod(dims, dtype=np.int64)), dtype=np.int64)]
        start, end = _shape_slice(node, len(x.shape))
        sel = list(x.shape)[start:end]
        if not all(isinstance(d, int) for d in sel):
            return None
        return [np.array(sel, dtype=np.int64)]
    if node.op_type == "Gather" and len(node.inputs) == 2:
        data, idx = node.inputs
        shape_node = data.producer() if data is not None else None
        if shape_node is None or shape_node.op_type != "Shape" or not is_standard(shape_node):
            return None
        src = shape_node.inputs[0]
        indices = const_array(idx)
        if src is None or src.shape is None or indices is None:
            return None
        start, end = _shape_slice(shape_node, len(src.shape))
        dims = list(src.shape)[start:end]
        flat = [int(i) + len(dims) if int(i) < 0 else int(i) for i in indices.reshape(-1)]
        if any(i < 0 or i >= len(dims) or not isinstance(dims[i], int) for i in flat):
            return None
        return [np.array([dims[i] for i in flat], dtype=np.int64).reshape(indices.shape)]
    return None


def _training_dropout(node: ir.Node) -> bool:
    if node.op_type != "Dropout":
        return False
    if int_attr(node, "is_test", 1) == 0:
        return True
    training = node.inputs[2] if len(node.inputs) > 2 else None
    t = const_array(training)
    return training is not None and (t is None or bool(np.any(t)))


def _foldable(node: ir.Node) -> bool:
    return (is_standard(node) and node.op_type not in NONDETERMINISTIC and not _training_dropout(node)
            and not has_subgraph(node))


_DATA_LIMIT = 4096  # elements: inputs passed to shape inference as data (shapes, repeats, scalars)


def _inferred_shapes(node: ir.Node, arrays: list[np.ndarray | None], opset: int) -> list[tuple[list[int], int]] | None:
    """(shape, bytes) of each output by onnx shape inference on `node` with the constant inputs'
    values, or None when inference does not give every output a static shape."""
    try:
        proto, names = positional_node_proto(node, arrays)
        types, data = {}, {}
        for n, a in zip(names, arrays):
            if not n:
                continue
            types[n] = onnx.helper.make_tensor_type_proto(onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            if a.size <= _DATA_LIMIT:
                data[n] = onnx.numpy_helper.from_array(a)
        schema = onnx.defs.get_schema(node.op_type, opset, "")
        out = onnx.shape_inference.infer_node_outputs(schema, proto, types, input_data=data)
    except Exception:
        return None
    shapes = []
    for i in range(len(node.outputs)):
        t = out.get(f"out{i}")
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            return None
        dims = t.tensor_type.shape.dim
        if not all(d.HasField("dim_value") for d in dims):
            return None
        shape = [d.dim_value for d in dims]
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.tensor_type.elem_type).itemsize
        shapes.append((shape, math.prod(shape) * itemsize))  # Python ints: no int64 overflow
    return shapes


def _check_limit(node: ir.Node, shapes: list[tuple[list[int], int]], limit: int, file: str) -> None:
    """A deterministic node of constant inputs computes exactly this value at run time: one over
    --max-tensor-bytes (an Expand/Tile/ConstantOfShape/Range bomb whose size only constant
    arithmetic reveals) makes the model unrunnable, a bad model rather than a value not to fold.
    Unused outputs are left to eliminate-dead-code."""
    if not any(o.uses() or o.is_graph_output() for o in node.outputs):
        return
    for shape, nbytes in shapes:
        if nbytes > limit:
            raise ModelValidationError(
                f"{file}: {node_label(node.name, node.op_type)} would produce shape {shape} = {nbytes:,} bytes, "
                f"over the limit of {limit:,} (--max-tensor-bytes)")


def _too_big(node: ir.Node, max_bytes: int) -> bool:
    for o in node.outputs:
        dims = static_dims(o)
        if dims is not None and o.dtype is not None and o.dtype.itemsize is not None:
            if int(np.prod(dims, dtype=np.int64)) * o.dtype.itemsize > max_bytes:
                return True
    return False


@register_pass
class FoldConstants(Pass):
    """Evaluate constant subgraphs (incl. Shape/Size of static shapes) and store results as initializers."""

    name = "fold-constants"
    options = {"max_bytes": 16 * 1024 * 1024}

    def run(self, model: ir.Model, ctx) -> PassResult:
        max_bytes = int(self.opts["max_bytes"])
        opset = onnx_opset(model, 1)
        limit = (ctx.max_tensor_bytes, model.meta.get("edgec.source") or model.graph.name or "model")
        modified = False
        for graph in all_graphs(model.graph):
            for node in list(graph):
                modified |= self._fold_node(graph, node, max_bytes, opset, graph is not model.graph, limit)
        return PassResult(model, modified)

    def _fold_node(self, graph: ir.Graph, node: ir.Node, max_bytes: int, opset: int, subgraph: bool,
                   limit: tuple[int, str]) -> bool:
        """`limit`: --max-tensor-bytes and the model's file name, for `_check_limit`."""
        if not _foldable(node) or not node.outputs:
            return False
        if subgraph and any(o.is_graph_output() for o in node.outputs):
            # If branches may differ in shape; a constant (precisely shaped) branch output changes
            # how runtimes type the If. Leave subgraph outputs computed.
            return False
        if node.op_type == "Constant":
            out = node.outputs[0]
            array = const_array(out)
            if array is None:
                return False
            replace_with_constant(graph, out, array)
            graph.remove(node, safe=True)
            return True
        results = _fold_metadata(node)
        if results is None:
            arrays = [const_array(v) if v is not None else None for v in node.inputs]
            if any(a is None and v is not None for a, v in zip(arrays, node.inputs)):
                return False
            if _too_big(node, max_bytes):
                return False
            shapes = _inferred_shapes(node, arrays, opset)
            if shapes is not None:
                _check_limit(node, shapes, *limit)
            size = None if shapes is None else sum(nbytes for _, nbytes in shapes)
            if size is None or size > max_bytes:
                logger.info("not folding %s (%s): output size %s", node.name, node.op_type,
                            "unknown before evaluation" if size is None else f"{size} bytes > {max_bytes}")
                return False
            results = evaluate_node(node, arrays, opset)
            if results is None:
                return False
        if len(results) != len(node.outputs):
            return False
        if any(r.nbytes > max_bytes or r.dtype == object for r in results):
            return False
        for out, r in zip(node.outputs, results):
            if out.name:
                replace_with_constant(graph, out, r)
        graph.remove(node, safe=True)
        return True
