"""fuse-matmul-add: MatMul(2-D x, constant W) + constant bias → Gemm(x, W, bias).

Taken in: x of rank exactly 2 (Gemm has no batch dims), W a constant float matrix [K, N], the bias
a constant of W's dtype shaped like Gemm's C broadcasts: a scalar, [1], [N], [1, 1] or [1, N]
(never [M, N]-varying rows only via [M, 1]/[M, N], nor rank 3, which would enlarge the output).
Add is commutative, so c + MatMul is taken too; the MatMul output must feed only the Add.
Integer MatMul is left alone (Gemm on integers has no onnxruntime kernel: the --verify reference
could no longer run the optimized model). Gemm computes the same products and the same sum with
C added: exact up to float reassociation (a backend may add C into the accumulator first).
"""

from __future__ import annotations

from edgec.infra.pass_base import register_pass
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass

from ._common import rank


class MatMulAdd(RewriteRule):
    min_opset = 11  # Gemm with unidirectional-broadcast C

    def pattern(self, op, x, w, c):
        return op.Add(op.MatMul(x, w), c)

    def check(self, match):
        if rank(match["x"]) != 2:
            return MatchResult.fail(f"MatMul input rank is {rank(match['x'])}, Gemm needs 2-D")
        w, c = match.const("w"), match.const("c")
        if w is None or w.ndim != 2:
            return MatchResult.fail("MatMul weight is not a constant matrix")
        if c is None:
            return MatchResult.fail("bias is not constant")
        n = w.shape[1]
        if c.ndim > 2 or (c.ndim >= 1 and c.shape[-1] not in (1, n)) or (c.ndim == 2 and c.shape[0] != 1):
            return MatchResult.fail(f"bias shape {list(c.shape)} is not [N], [1, N] or a scalar")
        if c.dtype != w.dtype:
            return MatchResult.fail("bias and weight dtypes differ")
        if w.dtype.kind != "f":
            return MatchResult.fail("integer MatMul (Gemm on integers has no onnxruntime kernel)")
        return MatchResult.success()

    def rewrite(self, op, match):
        return op.Gemm(match["x"], match["w"], match["c"])


@register_pass
class FuseMatMulAdd(RewriteRulePass):
    """Fuse MatMul of a 2-D input by a constant matrix plus a constant bias into Gemm."""

    name = "fuse-matmul-add"
    rules = (MatMulAdd,)
