"""store-transposed-weights: a 2-D initializer read as Transpose(W, perm=[1, 0]) is stored
transposed, and a Gather on W (a token embedding tied to the LM head) reads that one copy.

LM heads are exported as MatMul(x, Transpose(W)) with W [vocab, hidden] (GPT-2 ties W to the token
embedding, Gather(W, ids)). With the weights in a weights file, the backend sees W as a run-time
parameter: MatMul's B is then the result of a transpose, which its packed matmul kernel cannot
take (a generic kernel ran GPT-2's head ~10x slower), and a tied W was stored twice (the table and
the head's transposed copy: 2 x 147 MiB for GPT-2 124M). Rewritten, with WT = W^T a new initializer:

    Transpose(W, [1, 0])    ->  WT
    Gather(W, ids, axis=0)  ->  Transpose(Gather(WT, ids, axis=1), [1, ..., r, 0])

so WT is an ordinary MatMul weight and the only reader of the table. A table whose transpose
fold-constants already folded into another initializer (tables up to its 16 MiB limit) is matched
by value (same shape transposed, equal elements): its Gathers read that initializer instead. A token's row becomes a
strided column of WT (`hidden` cache lines per token: noise next to a decode step).

Exact: pure data movement (a MatMul reading the stored WT may sum in another order than with its
Transpose: onnxruntime differs in the last bit). Declines unless W is a 2-D initializer of at most MAX_BYTES (the
transposed copy is made in memory at compile time; bigger ones stay as they are, streamed) whose
readers are only such Transposes and default-domain Gathers at axis 0 (or -2) as the table, with
indices of known rank.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.domains import is_onnx_domain

MAX_BYTES = 256 << 20


def _axis(node: ir.Node) -> int:
    a = node.attributes.get("axis")
    return 0 if a is None else int(a.value)


def _perm(node: ir.Node) -> list[int] | None:
    a = node.attributes.get("perm")
    return None if a is None else [int(p) for p in a.value]


def _default_domain(node: ir.Node) -> bool:
    return is_onnx_domain(node.domain)


def _readers(w: ir.Value) -> tuple[list[ir.Node], list[ir.Node]] | None:
    """(Transposes, Gathers) reading `w`, or None when anything else reads it."""
    transposes, gathers = [], []
    for n, i in w.uses():
        if not _default_domain(n):
            return None
        if n.op_type == "Transpose" and _perm(n) == [1, 0]:
            transposes.append(n)
        elif (n.op_type == "Gather" and i == 0 and _axis(n) in (0, -2) and n.inputs[1] is not None
              and n.inputs[1].shape is not None):
            gathers.append(n)
        else:
            return None
    return transposes, gathers


def _candidate(w: ir.Value) -> bool:
    t = w.const_value
    return t is not None and w.shape is not None and len(w.shape) == 2 and t.nbytes <= MAX_BYTES


def _folded_size(w: ir.Value) -> bool:
    """A 2-D initializer fold-constants could have computed (at most its max_bytes): only those
    are compared by value (comparing reads both whole: large weights stay unread)."""
    from edgec.passes.cleanup.fold_constants import FoldConstants

    return _candidate(w) and w.const_value.nbytes <= FoldConstants.options["max_bytes"]


def _stored_transpose(g: ir.Graph, w: ir.Value) -> ir.Value | None:
    """Another initializer holding exactly w^T (same dtype), or None."""
    rows, cols = w.shape
    arr = None
    for other in g.initializers.values():
        if other is w or not _folded_size(other) or other.is_graph_input() or other.type != w.type:
            continue
        if tuple(other.shape) != (cols, rows):
            continue
        arr = w.const_value.numpy() if arr is None else arr
        if np.array_equal(other.const_value.numpy(), arr.T):
            return other
    return None


def _read_columns(g: ir.Graph, gather: ir.Node, wt: ir.Value) -> None:
    """Gather(W, ids, axis=0) -> Transpose(Gather(wt, ids, axis=1), [1, ..., r, 0]) (wt = W^T)."""
    ids, old = gather.inputs[1], gather.outputs[0]
    r = len(ids.shape)
    cols = ir.node("Gather", [wt, ids], attributes={"axis": 1}, name=f"{gather.name}_columns" if gather.name else None)
    rows = ir.node("Transpose", [cols.outputs[0]], attributes={"perm": [*range(1, r + 1), 0]}, name=gather.name or None)
    cols.outputs[0].dtype = old.dtype
    rows.outputs[0].dtype, rows.outputs[0].shape = old.dtype, old.shape
    ir.convenience.replace_nodes_and_values(g, gather, [gather], [cols, rows], [old], [rows.outputs[0]])


@register_pass
class StoreTransposedWeights(Pass):
    """An initializer read through Transpose [1, 0] is stored transposed; a Gather on it (tied embedding) reads that copy."""

    name = "store-transposed-weights"

    def run(self, model: ir.Model, ctx) -> PassResult:
        g = model.graph
        changed = False
        for name, w in list(g.initializers.items()):
            t = w.const_value
            if not _candidate(w) or w.is_graph_input():
                continue
            readers = _readers(w)
            if readers is None or not readers[0] or any(n.graph is not g for n in readers[0] + readers[1]) \
                    or any(tr.outputs[0].is_graph_output() for tr in readers[0]):
                continue
            transposes, gathers = readers
            wt = ir.Value(name=f"{name}_transposed", shape=ir.Shape([w.shape[1], w.shape[0]]), type=w.type,
                          const_value=ir.tensor(np.ascontiguousarray(t.numpy().T), name=f"{name}_transposed"))
            g.register_initializer(wt)
            for tr in transposes:
                ir.convenience.replace_nodes_and_values(g, tr, [tr], [], [tr.outputs[0]], [wt])
            for gather in gathers:
                _read_columns(g, gather, wt)
            g.initializers.pop(name)
            changed = True
        for name, w in list(g.initializers.items()):  # tables whose transpose is already an initializer
            readers = _readers(w) if _folded_size(w) and not w.is_graph_input() else None
            if readers is None or readers[0] or not readers[1] or any(n.graph is not g for n in readers[1]):
                continue
            wt = _stored_transpose(g, w)
            if wt is None:
                continue
            for gather in readers[1]:
                _read_columns(g, gather, wt)
            g.initializers.pop(name)
            changed = True
        return PassResult(model, changed)
