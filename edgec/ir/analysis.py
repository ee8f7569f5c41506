"""Graph analyses over edgec's IR: op histogram, parameters, FLOPs, I/O, networkx views."""

from __future__ import annotations

import dataclasses
from collections import Counter

import networkx as nx
import numpy as np
import onnx_ir as ir

from edgec.ir.domains import is_onnx_domain
from edgec.tensor_info import TensorInfo  # noqa: F401 - re-exported: edgec.ir.analysis.TensorInfo


def dtype_name(dt: ir.DataType | None) -> str:
    if dt is None:
        return "unknown"
    try:
        return str(np.dtype(dt.numpy()))
    except Exception:
        return dt.name.lower()


def value_info(v: ir.Value) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else (d.value if d.value is not None else None) for d in v.shape) if v.shape is not None else ()
    return TensorInfo(v.name or "", shape, dtype_name(v.dtype))


def dim_label(value_name: str, index: int, dim) -> int | str:
    """An input dim as the compiled code sees it: its size, its symbolic name, or for an unnamed
    unknown dim `<input>_dim<index>` (one symbol of its own)."""
    if isinstance(dim, int):
        return dim
    name = getattr(dim, "value", dim)
    return str(name) if name else f"{value_name}_dim{index}"


def graph_inputs(model: ir.Model) -> list[TensorInfo]:
    """The real inputs (graph inputs that are not initializers); dynamic dims by `dim_label`."""
    inits = set(model.graph.initializers)
    out = []
    for v in model.graph.inputs:
        if v.name in inits:
            continue
        t = value_info(v)
        out.append(dataclasses.replace(t, shape=tuple(dim_label(t.name, i, d) for i, d in enumerate(t.shape))))
    return out


def graph_outputs(model: ir.Model) -> list[TensorInfo]:
    return [value_info(v) for v in model.graph.outputs]


def op_histogram(model: ir.Model) -> Counter:
    return Counter(
        (f"{n.domain}::{n.op_type}" if not is_onnx_domain(n.domain) else n.op_type)
        for n in ir.traversal.RecursiveGraphIterator(model.graph)
    )


def node_count(model: ir.Model) -> int:
    return sum(1 for _ in ir.traversal.RecursiveGraphIterator(model.graph))


def parameter_count(model: ir.Model) -> int:
    total = 0
    for v in model.graph.initializers.values():
        if v.shape is not None and all(isinstance(d, int) for d in v.shape):
            total += int(np.prod(v.shape.dims, dtype=np.int64)) if len(v.shape) else 1
    return total


def _numel(v: ir.Value | None) -> int | None:
    """Elements of `v`, a symbolic dimension (a batch, a sequence length) counted as 1."""
    if v is None or v.shape is None:
        return None
    return int(np.prod([d if isinstance(d, int) else 1 for d in v.shape], dtype=np.int64)) if len(v.shape) else 1


def node_flops(node: ir.Node) -> int:
    """Multiply-accumulates count as 2 FLOPs; elementwise ops as 1 per output element. Symbolic
    dimensions count as 1: a model with a symbolic batch gets its FLOPs per sample."""
    out = _numel(node.outputs[0]) if node.outputs else None
    if out is None:
        return 0
    op = node.op_type
    if op in ("Conv", "ConvTranspose") and len(node.inputs) > 1 and node.inputs[1] is not None:
        w = node.inputs[1].shape
        if w is None or not all(isinstance(d, int) for d in w):
            return 0
        per_out = int(np.prod(w.dims[1:], dtype=np.int64))  # Cin/group * kH * kW
        if op == "ConvTranspose":
            x = _numel(node.inputs[0]) or 0
            return 2 * x * int(np.prod(w.dims[1:], dtype=np.int64))
        return 2 * out * per_out
    if op in ("MatMul", "Gemm", "FusedMatMul"):
        a = node.inputs[0].shape if node.inputs[0] is not None else None
        if a is None or not len(a) or not isinstance(a[-1], int):
            return 0
        k = a[-1]
        if op == "Gemm" and node.attributes.get("transA") is not None and node.attributes["transA"].as_int():
            k = a[0]
        return 2 * out * k
    return out


def flops(model: ir.Model) -> int:
    return sum(node_flops(n) for n in ir.traversal.RecursiveGraphIterator(model.graph))


def to_networkx(graph: ir.Graph) -> nx.DiGraph:
    """A DiGraph over node indices (edges = producer → consumer) for dominator/ordering analyses."""
    g = nx.DiGraph()
    index = {id(n): i for i, n in enumerate(graph)}
    for i, n in enumerate(graph):
        g.add_node(i, op=n.op_type, name=n.name)
        for v in n.inputs:
            if v is not None and v.producer() is not None and id(v.producer()) in index:
                g.add_edge(index[id(v.producer())], i)
    return g
