"""recognize-layernorm: the decomposed LayerNorm chain → LayerNormalization (opset ≥ 17).

    mean = ReduceMean(x, trailing axes); d = x - mean; var = ReduceMean(d² or d·d, same axes)
    y = d / Sqrt(var + eps) * gamma + beta            (the trailing Add is optional)
"""

from __future__ import annotations

from edgec.infra.pass_base import register_pass
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass

from ._common import rank
from ._reduce import trailing_axis


class LayerNorm(RewriteRule):
    min_opset = 17

    def pattern(self, op, x, gamma, beta):
        d = op.Sub(x, op.ReduceMean(x, _allow_other_inputs=True, _name="mean"))
        out = []
        for sq in (op.Pow(d, op.scalar(2.0)), op.Mul(d, d)):
            var = op.ReduceMean(sq, _allow_other_inputs=True, _name="var")
            n = op.Div(d, op.Sqrt(op.Add(var, op.const("eps"))))
            out += [op.Add(op.Mul(n, gamma), beta), op.Mul(n, gamma)]
        return out

    def check(self, match):
        r = rank(match["x"])
        a1 = trailing_axis(match.node("mean"), r)
        a2 = trailing_axis(match.node("var"), r)
        if a1 is None or a1 != a2:
            return MatchResult.fail("ReduceMean axes are not the same trailing axes with keepdims")
        users = match.output.consumers()
        if match.get("beta") is None and len(users) == 1 and users[0].op_type == "Add" and not match.output.is_graph_output():
            return MatchResult.fail("deferring to the longer pattern with the bias Add")
        eps = match.const("eps")
        if eps.size != 1:
            return MatchResult.fail("epsilon is not a scalar")
        return MatchResult.success()

    def rewrite(self, op, match):
        axis = trailing_axis(match.node("mean"), rank(match["x"]))
        eps = float(match.const("eps").reshape(()))
        beta = match.get("beta")
        return op.LayerNormalization(match["x"], match["gamma"], *([beta] if beta is not None else []),
                                     axis=axis, epsilon=eps)


@register_pass
class RecognizeLayerNorm(RewriteRulePass):
    """Recognize decomposed layer normalization chains as LayerNormalization (opset >= 17)."""

    name = "recognize-layernorm"
    rules = (LayerNorm,)
