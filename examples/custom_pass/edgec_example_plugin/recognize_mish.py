"""recognize-mish: x * Tanh(Softplus(x)) -> Mish(x) (ONNX opset >= 18).

Darknet/YOLOv4-style exports and PyTorch exports below opset 18 spell Mish as three ops (or five,
with Softplus written as Log(Exp(x) + 1)). One Mish node is one kernel that evaluates the whole
activation (edgec's lowering computes it in float64, so large negative x keep their digits).
Exact in real arithmetic; float results may differ in the last bits from the three-op form.
"""

from __future__ import annotations

import onnx_ir as ir

from edgec.infra.pass_base import register_pass
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass

FLOATS = (ir.DataType.FLOAT16, ir.DataType.FLOAT, ir.DataType.DOUBLE)


class MishFromSoftplus(RewriteRule):
    min_opset = 18  # Mish entered ONNX in opset 18

    def pattern(self, op, x):
        return [
            op.Mul(x, op.Tanh(op.Softplus(x))),  # Mul is commutative: Tanh(...) * x matches too
            op.Mul(x, op.Tanh(op.Log(op.Add(op.Exp(x), op.scalar(1.0, name="one"))))),
        ]

    def check(self, match):
        dtype = match["x"].dtype
        if dtype not in FLOATS:
            return MatchResult.fail(f"x has dtype {dtype}; Mish takes float16/float/double")
        one, shape = match.const("one"), match["x"].shape
        if one is not None and one.ndim > 0 and (one.size != 1 or shape is None or one.ndim > len(shape)):
            return MatchResult.fail(f"the constant 1 of shape {list(one.shape)} could broadcast x to another shape")
        return MatchResult.success()

    def rewrite(self, op, match):
        return op.Mish(match["x"])


@register_pass
class RecognizeMish(RewriteRulePass):
    """Recognize x * Tanh(Softplus(x)) (also with Softplus as Log(Exp(x) + 1)) as Mish (opset >= 18)."""

    name = "recognize-mish"
    rules = (MishFromSoftplus,)
