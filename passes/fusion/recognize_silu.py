"""recognize-silu: x · Sigmoid(x) → edgec.Silu (ONNX has no SiLU before Swish in opset 24)."""

from __future__ import annotations

from edgec.infra.pass_base import register_pass
from edgec.ir.edgec_ops import EDGEC_DOMAIN, silu_function
from edgec.rewrite import RewriteRule, RewriteRulePass


class Silu(RewriteRule):
    def pattern(self, op, x):
        return op.Mul(x, op.Sigmoid(x))

    def rewrite(self, op, match):
        fn = silu_function(match.opset)
        op.add_function(fn)
        return op.Silu(match["x"], _domain=EDGEC_DOMAIN)


@register_pass
class RecognizeSilu(RewriteRulePass):
    """Recognize x * Sigmoid(x) as edgec.Silu."""

    name = "recognize-silu"
    rules = (Silu,)
