"""share-tied-embedding: a token embedding tied to the LM head is stored once, in the head's layout.

GPT-2-style exports read one 2-D initializer W [vocab, hidden] twice: `Gather(W, ids)` (the token
embedding) and `Transpose(W, perm=[1, 0])` feeding the head's MatMul. The backend stores what
each kernel reads (the head's copy transposed and packed at compile time), so the weights file
held the table twice (GPT-2 124M: 2 x 147 MiB), and a decode touched both. Rewritten:

    Gather(W, ids, axis=0)  ->  Transpose(Gather(Transpose(W, [1, 0]), ids, axis=1), [1, ..., r, 0])

with the head's Transpose(W) itself (moved before its new user), so W has a single reader: the
Transpose the backend folds (or packs) into the head's layout. A token's row becomes a strided
column of W^T (one cache line per element: `hidden` lines per token, noise next to a decode step).

Bit-exact: pure data movement (the same elements, in the order Gather along axis 0 gives them).
Declines unless W is a 2-D initializer read by a default-domain Gather at axis 0 (or -2) and by a
Transpose with perm [1, 0], and the indices have a known rank.
"""

from __future__ import annotations

import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass


def _axis(node: ir.Node, default: int = 0) -> int:
    a = node.attributes.get("axis")
    return default if a is None else int(a.value)


def _perm(node: ir.Node) -> list[int] | None:
    a = node.attributes.get("perm")
    return None if a is None else [int(p) for p in a.value]


def _default_domain(node: ir.Node) -> bool:
    return node.domain in ("", "ai.onnx")


@register_pass
class ShareTiedEmbedding(Pass):
    """A Gather on an initializer that is also Transposed (tied embedding and LM head) reads the transposed copy: one stored layout."""

    name = "share-tied-embedding"

    def run(self, model: ir.Model, ctx) -> PassResult:
        g = model.graph
        changed = False
        for w in list(g.initializers.values()):
            if w.const_value is None or w.shape is None or len(w.shape) != 2:
                continue
            uses = list(w.uses())
            heads = [n for n, i in uses if n.op_type == "Transpose" and _default_domain(n) and _perm(n) == [1, 0]]
            gathers = [n for n, i in uses if n.op_type == "Gather" and _default_domain(n) and i == 0
                       and _axis(n) in (0, -2) and n.inputs[1] is not None and n.inputs[1].shape is not None]
            if not heads or not gathers:
                continue
            head = heads[0]
            for gather in gathers:
                if head.graph is not gather.graph:
                    continue
                ids, old = gather.inputs[1], gather.outputs[0]
                r = len(ids.shape)
                cols = ir.node("Gather", [head.outputs[0], ids], attributes={"axis": 1},
                               name=f"{gather.name}_cols" if gather.name else None)
                rows = ir.node("Transpose", [cols.outputs[0]], attributes={"perm": [*range(1, r + 1), 0]},
                               name=gather.name or None)
                cols.outputs[0].dtype = old.dtype
                rows.outputs[0].dtype, rows.outputs[0].shape = old.dtype, old.shape
                ir.convenience.replace_nodes_and_values(g, gather, [gather], [cols, rows], [old], [rows.outputs[0]])
                changed = True
        if changed:
            g.sort()  # the head's Transpose (it reads only an initializer) now precedes the Gathers
        return PassResult(model, changed)
