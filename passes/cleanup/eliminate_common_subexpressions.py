"""eliminate-common-subexpressions: merge identical nodes and identical small initializers.

Two nodes merge when they compute the same function of the same values: same domain, op, overload,
output count, the very same input values (by identity) and attributes equal *bit for bit* (floats
compared by their IEEE bits, so 0.0 and -0.0 stay apart: 1/x tells them apart; tensors by dtype,
shape and bytes, up to `size_limit` elements). That is exact for deterministic ops, so not taken:
random ops (RandomNormal/Uniform[Like], Multinomial, Bernoulli), Dropout unless its training mode
is provably off (two training Dropouts draw two masks), ops of domains whose semantics edgec does
not know (custom ops may be random or stateful: only ONNX, ai.onnx.ml and edgec ops merge), nodes
with subgraphs. Initializers merge with onnx_ir's DeduplicateInitializersPass (dtype, shape,
bytes; never graph inputs, which a caller may override). Bit-exact.
"""

from __future__ import annotations

import struct

import numpy as np
import onnx_ir as ir
from onnx_ir.passes.common import DeduplicateInitializersPass

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import is_onnx_domain, normalize_domain
from edgec.ir.evaluate import NONDETERMINISTIC
from edgec.passes.cleanup._common import (
    all_graphs,
    graph_signature,
    has_subgraph,
    int_attr,
    take_over_output_name,
)

_KNOWN_DOMAINS = ("", "ai.onnx.ml", "edgec")


def _float_bits(v: float) -> bytes:
    return struct.pack("<d", float(v))  # -0.0 != 0.0 here (== and hash conflate them)


def _random(node: ir.Node) -> bool:
    """True if the node may draw random numbers (or is of a domain edgec cannot vouch for)."""
    if normalize_domain(node.domain) not in _KNOWN_DOMAINS:
        return True
    if not is_onnx_domain(node.domain):
        return False
    if node.op_type in NONDETERMINISTIC:
        return True
    if node.op_type == "Dropout":
        if int_attr(node, "is_test", 1) == 0:
            return True
        training = node.inputs[2] if len(node.inputs) > 2 else None
        if training is not None:
            t = const_array(training)
            return t is None or bool(np.any(t))
    return False


def _attr_key(attr: ir.Attr, size_limit: int):
    """A hashable key for an attribute value, or None when the node must not be merged."""
    if attr.is_ref():
        return ("ref", attr.ref_attr_name)
    v = attr.value
    if attr.type == ir.AttributeType.FLOATS:
        return tuple(_float_bits(f) for f in v)
    if attr.type == ir.AttributeType.FLOAT:
        return _float_bits(v)
    if attr.type in (ir.AttributeType.INTS, ir.AttributeType.STRINGS):
        return tuple(v)
    if attr.type == ir.AttributeType.TENSOR:
        if v.size > size_limit:
            return None
        a = v.numpy()
        return (a.shape, str(a.dtype), np.ascontiguousarray(a).tobytes())
    if attr.type in (ir.AttributeType.INT, ir.AttributeType.STRING):
        return v
    return None  # graphs, sparse tensors, type protos: not merged


def _node_key(node: ir.Node, size_limit: int):
    if has_subgraph(node) or _random(node):
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
        size_limit = int(self.opts["size_limit"])
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
