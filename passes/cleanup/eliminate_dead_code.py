"""eliminate-dead-code: remove nodes whose outputs are unused, and unused initializers, functions and opsets."""

from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes.common import (
    RemoveUnusedFunctionsPass,
    RemoveUnusedNodesPass,
    RemoveUnusedOpsetsPass,
)

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.domains import canonicalize_onnx_domain
from edgec.passes.cleanup._common import all_graphs, graph_signature


def _remove_unused_subgraph_initializers(model: ir.Model) -> None:
    for graph in all_graphs(model.graph)[1:]:
        for init in list(graph.initializers.values()):
            if not (init.uses() or init.is_graph_output() or init.is_graph_input()):
                del graph.initializers[init.name]


@register_pass
class EliminateDeadCode(Pass):
    """Remove nodes none of whose outputs are used, plus unused initializers, functions and opsets."""

    name = "eliminate-dead-code"
    options = {}

    def run(self, model: ir.Model, ctx) -> PassResult:
        before = graph_signature(model)
        # onnx_ir's RemoveUnusedOpsetsPass keeps only a "" default-domain import: an "ai.onnx"
        # one used by ""-domain nodes would be dropped. Spell it "" first.
        canonicalize_onnx_domain(model)
        # RemoveUnusedNodesPass also drops unused optional outputs (e.g. Dropout's mask), which it
        # does not report as a modification: compare structural signatures instead.
        RemoveUnusedNodesPass()(model)
        _remove_unused_subgraph_initializers(model)
        RemoveUnusedFunctionsPass()(model)
        RemoveUnusedOpsetsPass()(model)
        n_functions = len(model.functions)
        return PassResult(model, graph_signature(model) != before or n_functions != len(model.functions))
