"""recognize-hardswish: x·HardSigmoid(x; 1/6, 0.5) and x·Clip(x + 3, 0, 6)/6 forms → HardSwish (opset ≥ 14)."""

from __future__ import annotations

from edgec.infra.pass_base import register_pass
from edgec.rewrite import RewriteRule, RewriteRulePass


def _near(a: float, b: float) -> bool:
    return a is not None and abs(a - b) < 1e-5


class HardSwishFromHardSigmoid(RewriteRule):
    min_opset = 14

    def pattern(self, op, x):
        return op.Mul(x, op.HardSigmoid(x, alpha=lambda a: _near(a, 1 / 6), beta=lambda b: _near(b, 0.5)))

    def rewrite(self, op, match):
        return op.HardSwish(match["x"])


class HardSwishFromRelu6(RewriteRule):
    min_opset = 14

    def pattern(self, op, x):
        relu6 = op.Clip(op.Add(x, op.scalar(3.0)), op.scalar(0.0), op.scalar(6.0))
        return [
            op.Div(op.Mul(x, relu6), op.scalar(6.0)),
            op.Mul(op.Mul(x, relu6), op.scalar(1 / 6, 1e-6)),
            op.Mul(x, op.Div(relu6, op.scalar(6.0))),
            op.Mul(x, op.Mul(relu6, op.scalar(1 / 6, 1e-6))),
        ]

    def rewrite(self, op, match):
        return op.HardSwish(match["x"])


@register_pass
class RecognizeHardSwish(RewriteRulePass):
    """Recognize hard-swish subgraphs (via HardSigmoid or ReLU6) as HardSwish."""

    name = "recognize-hardswish"
    rules = (HardSwishFromHardSigmoid, HardSwishFromRelu6)
