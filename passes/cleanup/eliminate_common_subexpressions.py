"""eliminate-common-subexpressions: merge identical nodes and identical small initializers."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes.common import DeduplicateInitializersPass

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.domains import is_onnx_domain, normalize_domain
from edgec.ir.evaluate import NONDETERMINISTIC
from edgec.passes.cleanup._common import (
    all_graphs,
    effective_options,
    graph_signature,
    has_subgraph,
    take_over_output_name,
)


def _attr_key(attr: ir.Attr, size_limit: int):
    """A hashable key for an attribute value, or None when the node must not be merged."""
    if attr.is_ref():
        return ("ref", attr.ref_attr_name)
    v = attr.value
    if attr.type in (ir.AttributeType.INTS, ir.AttributeType.FLOATS, ir.AttributeType.STRINGS):
        return tuple(v)
    if attr.type == ir.AttributeType.TENSOR:
        if v.size > size_limit:
            return None
        a = v.numpy()
        return (a.shape, str(a.dtype), np.ascontiguousarray(a).tobytes())
    if attr.type in (ir.AttributeType.INT, ir.AttributeType.FLOAT, ir.AttributeType.STRING):
        return v
    return None  # graphs, sparse tensors, type protos: not merged


def _node_key(node: ir.Node, size_limit: int):
    if has_subgraph(node) or (is_onnx_domain(node.domain) and node.op_type in NONDETERMINISTIC):
        return None
    attrs = []
    for k, a in sorted(node.attributes.items()):
        key = _attr_key(a, size_limit)
        if key is None:
            return None
        attrs.append((k, a.type.value, key))
    return (normalize_domain(node.domain), node.op_type, node.overload, len(node.outputs),
            tuple(id(v) for v in node.inputs), tuple(attrs))


def _merge(graph: ir.Graph, node: ir.Node, keep: ir.Node) -> None:
    for old, new in zip(node.outputs, keep.outputs):
        if old.is_graph_output():
            if new.is_graph_output() or new.is_graph_input() or new.graph is not graph:
                # Both names must stay visible: the duplicate becomes Identity(kept output).
                ident = ir.node("Identity", inputs=[new], outputs=[
                    ir.Value(name=old.name, type=old.type, shape=old.shape)])
                graph.insert_before(node, ident)
                old.replace_all_uses_with(ident.outputs[0], replace_graph_outputs=True)
                continue
            take_over_output_name(old, new)
        old.replace_all_uses_with(new, replace_graph_outputs=True)
    graph.remove(node, safe=True)


@register_pass
class EliminateCommonSubexpressions(Pass):
    """Merge identical nodes (same op, domain, attributes, inputs) and identical small initializers."""

    name = "eliminate-common-subexpressions"
    options = {"size_limit": 64}

    def run(self, model: ir.Model, ctx) -> PassResult:
        size_limit = int(effective_options(self, ctx)["size_limit"])
        before = graph_signature(model)
        DeduplicateInitializersPass(size_limit=size_limit)(model)
        modified = graph_signature(model) != before
        for graph in all_graphs(model.graph):
            seen: dict = {}
            for node in list(graph):
                key = _node_key(node, size_limit)
                if key is None:
                    continue
                if key in seen:
                    _merge(graph, node, seen[key])
                    modified = True
                else:
                    seen[key] = node
        return PassResult(model, modified)
