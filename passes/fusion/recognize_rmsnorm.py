"""recognize-rmsnorm: x / Sqrt(ReduceMean(x², -1) + eps) · gamma → RMSNormalization.

Emits ONNX `RMSNormalization` (opset ≥ 23), else `edgec.RMSNormalization` (last axis only).
Accepted forms of the normalization: Div(x, r), Mul(x, Reciprocal(r)), Mul(x, Div(1, r)).
gamma must broadcast like a vector over the normalized axes (leading dims 1, never enlarging the
output); it is passed with exactly the normalized shape (constants broadcast, others reshaped).
"""

from __future__ import annotations

from edgec.infra.pass_base import register_pass
from edgec.ir.edgec_ops import EDGEC_DOMAIN, rms_norm_function
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass

from ._common import as_norm_param, norm_param_problem, normalized_shape, rank
from ._reduce import trailing_axis


class RMSNorm(RewriteRule):
    def pattern(self, op, x, gamma):
        out = []
        for sq in (op.Pow(x, op.scalar(2.0)), op.Mul(x, x)):
            r = op.Sqrt(op.Add(op.ReduceMean(sq, _allow_other_inputs=True, _name="ms"), op.const("eps")))
            for n in (op.Div(x, r), op.Mul(x, op.Reciprocal(r)), op.Mul(x, op.Div(op.scalar(1.0), r))):
                out.append(op.Mul(n, gamma))
        return out

    def check(self, match):
        axis = trailing_axis(match.node("ms"), rank(match["x"]))
        if axis is None or (axis != -1 and match.opset < 23):
            return MatchResult.fail("ReduceMean must reduce the last axis with keepdims")
        if match.const("eps").size != 1:
            return MatchResult.fail("epsilon is not a scalar")
        if normalized_shape(match["x"], axis) is None:
            return MatchResult.fail("the normalized dims of the input are not static")
        why = norm_param_problem(match["gamma"], match["x"], axis, "gamma")
        return MatchResult.fail(why) if why else MatchResult.success()

    def rewrite(self, op, match):
        axis = trailing_axis(match.node("ms"), rank(match["x"]))
        eps = float(match.const("eps").reshape(()))
        gamma = as_norm_param(op, match["gamma"], match["x"], axis)
        if match.opset >= 23:
            return op.RMSNormalization(match["x"], gamma, axis=axis, epsilon=eps)
        fn = rms_norm_function(match.opset)
        op.add_function(fn)
        return op.RMSNormalization(match["x"], gamma, _domain=EDGEC_DOMAIN, axis=-1, epsilon=eps)


@register_pass
class RecognizeRMSNorm(RewriteRulePass):
    """Recognize RMS normalization chains as RMSNormalization (ONNX at opset >= 23, else edgec)."""

    name = "recognize-rmsnorm"
    rules = (RMSNorm,)
