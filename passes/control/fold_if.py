"""fold-if: replace an If whose condition is constant by the nodes of the branch it takes.

An If whose condition is only known at run time stays: the TVM backend lowers it to a Relax If
whose branches are private functions (targets/tvm/ops/control.py)."""

from __future__ import annotations

import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import onnx_opset
from edgec.passes.cleanup._common import all_graphs, is_standard
from edgec.passes.control._common import (
    Emitter,
    Namer,
    move_initializers,
    name_counts,
    rebind_output,
    rename_on_clash,
)


def taken_branch(node: ir.Node) -> ir.Graph | None:
    """The branch an If takes when its condition is a constant (else None)."""
    cond = const_array(node.inputs[0]) if node.inputs else None
    if cond is None or cond.size != 1:
        return None
    attr = node.attributes.get("then_branch" if bool(cond.reshape(-1)[0]) else "else_branch")
    if attr is None or attr.type != ir.AttributeType.GRAPH:
        return None
    branch = attr.as_graph()
    return branch if len(branch.outputs) == len(node.outputs) else None


def inline_branch(graph: ir.Graph, node: ir.Node, branch: ir.Graph, namer: Namer, opset: int) -> None:
    """Move `branch`'s initializers and nodes into `graph` before `node` and let its outputs take
    the place of `node`'s. Outer-scope references need no mapping: they are the same Values."""
    own = name_counts(branch)
    results = list(branch.outputs)
    branch.outputs.clear()  # a branch output owns its value: release them before moving

    def rename(name: str) -> str:
        return rename_on_clash(name, namer, own)

    move_initializers(branch, graph, namer, own)
    nodes = list(branch)
    branch.remove(nodes)
    for n in nodes:
        n.name = rename(n.name) if n.name else None
        for o in n.outputs:
            if o.name:
                o.name = rename(o.name)
    graph.insert_before(node, nodes)
    moved = {id(o) for n in nodes for o in n.outputs}
    emit = Emitter(graph, node, namer, opset, prefix=node.name or "If")
    taken: set[int] = set()
    finals = []
    for out, res in zip(node.outputs, results):
        if out.is_graph_output() and (id(res) not in moved or id(res) in taken or res.is_graph_output()):
            res = emit.op("Identity", [res])  # an outer value, initializer or a second use: copy
        taken.add(id(res))
        finals.append(res)
    emit.commit()
    for out, res in zip(node.outputs, finals):
        if res.type is None:
            res.type = out.type
        if res.shape is None and out.shape is not None:
            res.shape = out.shape.copy()
        rebind_output(out, res, namer)
    graph.remove(node, safe=True)


@register_pass
class FoldIf(Pass):
    """Inline the taken branch of an If whose condition is constant (run after fold-constants)."""

    name = "fold-if"
    options = {}

    def run(self, model: ir.Model, ctx) -> PassResult:
        namer: Namer | None = None
        modified = False
        opset = onnx_opset(model, 1)
        for graph in all_graphs(model.graph):
            for node in list(graph):
                if node.op_type != "If" or not is_standard(node) or node.graph is not graph:
                    continue
                branch = taken_branch(node)
                if branch is None:
                    continue
                namer = namer or Namer(model)
                inline_branch(graph, node, branch, namer, opset)
                modified = True
        return PassResult(model, modified)
