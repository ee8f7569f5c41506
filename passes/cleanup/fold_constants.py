"""fold-constants: evaluate nodes whose inputs are all constant and store their outputs as initializers."""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.domains import onnx_opset
from edgec.ir.evaluate import NONDETERMINISTIC, evaluate_node
from edgec.passes.cleanup._common import (
    all_graphs,
    constant_array,
    effective_options,
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
        indices = constant_array(idx)
        if src is None or src.shape is None or indices is None:
            return None
        start, end = _shape_slice(shape_node, len(src.shape))
        dims = list(src.shape)[start:end]
        flat = [int(i) + len(dims) if int(i) < 0 else int(i) for i in indices.reshape(-1)]
        if any(i < 0 or i >= len(dims) or not isinstance(dims[i], int) for i in flat):
            return None
        return [np.array([dims[i] for i in flat], dtype=np.int64).reshape(indices.shape)]
    return None


def _foldable(node: ir.Node) -> bool:
    return is_standard(node) and node.op_type not in NONDETERMINISTIC and not has_subgraph(node)


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
        max_bytes = int(effective_options(self, ctx)["max_bytes"])
        opset = onnx_opset(model.opset_imports, 1)
        modified = False
        for graph in all_graphs(model.graph):
            for node in list(graph):
                modified |= self._fold_node(graph, node, max_bytes, opset, graph is not model.graph)
        return PassResult(model, modified)

    def _fold_node(self, graph: ir.Graph, node: ir.Node, max_bytes: int, opset: int, subgraph: bool) -> bool:
        if not _foldable(node) or not node.outputs:
            return False
        if subgraph and any(o.is_graph_output() for o in node.outputs):
            # If branches may differ in shape; a constant (precisely shaped) branch output changes
            # how runtimes type the If. Leave subgraph outputs computed.
            return False
        if node.op_type == "Constant":
            out = node.outputs[0]
            array = constant_array(out)
            if array is None:
                return False
            replace_with_constant(graph, out, array)
            graph.remove(node, safe=True)
            return True
        results = _fold_metadata(node)
        if results is None:
            arrays = [constant_array(v) if v is not None else None for v in node.inputs]
            if any(a is None and v is not None for a, v in zip(arrays, node.inputs)):
                return False
            if _too_big(node, max_bytes):
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
