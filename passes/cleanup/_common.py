"""Helpers shared by the cleanup passes (private: not scanned for passes)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir.domains import is_onnx_domain


def all_graphs(graph: ir.Graph) -> list[ir.Graph]:
    """`graph` and every subgraph (If/Loop/Scan bodies), outermost first."""
    out = [graph]
    for node in graph:
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                out.extend(all_graphs(attr.as_graph()))
            elif attr.type == ir.AttributeType.GRAPHS:
                for g in attr.as_graphs():
                    out.extend(all_graphs(g))
    return out


def has_subgraph(node: ir.Node) -> bool:
    return any(a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS) for a in node.attributes.values())


def is_standard(node: ir.Node) -> bool:
    return is_onnx_domain(node.domain)


def static_dims(v: ir.Value | None) -> tuple[int, ...] | None:
    if v is None or v.shape is None:
        return None
    if not all(isinstance(d, int) for d in v.shape):
        return None
    return tuple(int(d) for d in v.shape)


def int_attr(node: ir.Node, name: str, default: int | None = None) -> int | None:
    a = node.attributes.get(name)
    if a is None or a.is_ref():
        return default
    return a.as_int()


def ints_attr(node: ir.Node, name: str) -> list[int] | None:
    a = node.attributes.get(name)
    if a is None or a.is_ref():
        return None
    return list(a.as_ints())


def graph_signature(model: ir.Model) -> tuple:
    """A cheap structural fingerprint (nodes, their I/O arity and names, initializers, opsets)."""
    sig = []
    for g in all_graphs(model.graph):
        sig.append(tuple(
            (id(n), n.op_type, tuple(id(i) for i in n.inputs), tuple((id(o), o.name) for o in n.outputs))
            for n in g
        ))
        sig.append(tuple(sorted(g.initializers)))
        sig.append(tuple(id(o) for o in g.outputs))
    sig.append(tuple(sorted(model.opset_imports.items())))
    return tuple(sig)


def replace_with_constant(graph: ir.Graph, value: ir.Value, array: np.ndarray) -> ir.Value:
    """Replace `value` (a node output of `graph`) by an initializer of the same name holding `array`."""
    name = value.name
    value.name = f"{name}__folded"
    tensor = ir.tensor(np.asarray(array), name=name)
    new = ir.Value(name=name, shape=ir.Shape(tensor.shape.dims), type=ir.TensorType(tensor.dtype),
                   const_value=tensor)
    new.metadata_props.update(value.metadata_props)
    graph.register_initializer(new)
    value.replace_all_uses_with(new, replace_graph_outputs=True)
    return new


def take_over_output_name(old: ir.Value, new: ir.Value) -> None:
    """`new` takes graph-output value `old`'s name (and its type/shape where `new` has none)."""
    name = old.name
    old.name = None
    new.name = name
    if new.type is None:
        new.type = old.type
    if new.shape is None:
        new.shape = old.shape
