"""recognize-attention: scaled dot-product attention → edgec.Attention (docs/edgec-ops.md).

    MatMul(Softmax(MatMul(Q, Transpose(K')) {* s | / s | -} {+ mask | -}, axis=-1), V)

The Transpose may have any permutation: K = Transpose(K', perm with its last two entries swapped)
is emitted (nothing if that is the identity), so `edgec.Attention(Q, K, V[, mask], scale)` sees
K in the same layout as Q and V. Q, K and V must have the same rank; `s` a constant scalar.
"""

from __future__ import annotations

from edgec.infra.pass_base import register_pass
from edgec.ir.edgec_ops import EDGEC_DOMAIN, attention_function
from edgec.passes.layout._perm import is_identity, perm_of
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass

from ._common import rank


class Attention(RewriteRule):
    min_opset = 13  # Softmax over one axis

    def pattern(self, op, q, k, v, mask):
        qk = op.MatMul(q, op.Transpose(k, _name="kt"))
        scaled = [op.Mul(qk, op.const("s"), _name="mul"), op.Div(qk, op.const("s"), _name="div"), qk]
        out = []
        for s in scaled:
            for m in (op.Add(s, mask), s):
                out.append(op.MatMul(op.Softmax(m, _name="softmax"), v))
        return out

    def scale(self, match) -> float | None:
        if match.get("s") is None:
            return 1.0
        s = match.const("s")
        if s is None or s.size != 1 or s.dtype.kind != "f" or float(s.reshape(())) == 0:
            return None
        s = float(s.reshape(()))
        return s if "mul" in match.named_nodes else 1.0 / s

    def check(self, match):
        r = rank(match["q"])
        if r is None or r < 2 or rank(match["k"]) != r or rank(match["v"]) != r:
            return MatchResult.fail("Q, K and V ranks differ or are unknown")
        perm = perm_of(match.node("kt"), r)
        if perm is None:
            return MatchResult.fail("Transpose permutation unknown")
        axis = match.attr("softmax", "axis", -1)
        if axis % r != r - 1:
            return MatchResult.fail(f"Softmax axis {axis} is not the last axis")
        if self.scale(match) is None:
            return MatchResult.fail("scale is not a non-zero constant float scalar")
        mask = match.get("mask")
        if mask is not None and (rank(mask) is None or rank(mask) > r):
            return MatchResult.fail("mask rank unknown or larger than the scores' rank")
        return MatchResult.success()

    def rewrite(self, op, match):
        r = rank(match["q"])
        perm = perm_of(match.node("kt"), r)
        kperm = perm[:-2] + [perm[-1], perm[-2]]
        k = match["k"] if is_identity(kperm) else op.Transpose(match["k"], perm=kperm)
        mask = match.get("mask")
        fn = attention_function(r, mask is not None, match.opset)
        op.add_function(fn)
        inputs = [match["q"], k, match["v"]] + ([mask] if mask is not None else [])
        return op.Attention(*inputs, _domain=EDGEC_DOMAIN, _overload=fn.overload, scale=self.scale(match))


@register_pass
class RecognizeAttention(RewriteRulePass):
    """Recognize scaled dot-product attention (Q·Kᵀ, scale, optional mask, Softmax, ·V) as edgec.Attention."""

    name = "recognize-attention"
    rules = (Attention,)
