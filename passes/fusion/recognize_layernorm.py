"""recognize-layernorm: the decomposed LayerNorm chain → LayerNormalization (opset ≥ 17).

    mean = ReduceMean(x, trailing axes); d = x - mean; var = ReduceMean(d² or d·d, same axes)
    y = d / Sqrt(var + eps) * gamma + beta     (the trailing Add, or both Mul and Add, optional)

gamma and beta must broadcast like a vector over the normalized axes (leading dims 1, never
enlarging the output); they are passed to LayerNormalization with exactly the normalized shape
(constants broadcast, other values reshaped). Without the Mul, gamma is a constant of ones.
"""

from __future__ import annotations

import numpy as np

from edgec.infra.pass_base import register_pass
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass

from ._common import as_norm_param, norm_param_problem, normalized_shape, rank
from ._reduce import trailing_axis


def _other_operand(node, value):
    a, b = (list(node.inputs) + [None, None])[:2]
    if a is b:
        return None
    return b if a is value else a if b is value else None


def _single_user(value, op_type):
    users = value.consumers()
    if len(users) == 1 and users[0].op_type == op_type and not value.is_graph_output():
        return users[0]
    return None


class LayerNorm(RewriteRule):
    min_opset = 17

    def pattern(self, op, x, gamma, beta):
        d = op.Sub(x, op.ReduceMean(x, _allow_other_inputs=True, _name="mean"))
        out = []
        for sq in (op.Pow(d, op.scalar(2.0)), op.Mul(d, d)):
            var = op.ReduceMean(sq, _allow_other_inputs=True, _name="var")
            n = op.Div(d, op.Sqrt(op.Add(var, op.const("eps"))))
            out += [op.Add(op.Mul(n, gamma), beta), op.Mul(n, gamma), n]
        return out

    def check(self, match):
        x = match["x"]
        r = rank(x)
        a1 = trailing_axis(match.node("mean"), r)
        a2 = trailing_axis(match.node("var"), r)
        if a1 is None or a1 != a2:
            return MatchResult.fail("ReduceMean axes are not the same trailing axes with keepdims")
        if match.const("eps").size != 1:
            return MatchResult.fail("epsilon is not a scalar")
        if normalized_shape(x, a1) is None:
            return MatchResult.fail("the normalized dims of the input are not static")
        if x.type is None or not x.type.dtype.is_floating_point():
            return MatchResult.fail("the input's element type is unknown or not floating point")
        for name in ("gamma", "beta"):
            if match.get(name) is not None:
                why = norm_param_problem(match[name], x, a1, name)
                if why:
                    return MatchResult.fail(why)
        # Prefer the longer pattern when the next op is the scale Mul / bias Add it would absorb.
        if match.get("gamma") is None:
            mul = _single_user(match.output, "Mul")
            if mul is not None and not norm_param_problem(_other_operand(mul, match.output), x, a1, "gamma"):
                return MatchResult.fail("deferring to the longer pattern with the scale Mul")
        elif match.get("beta") is None:
            add = _single_user(match.output, "Add")
            if add is not None and not norm_param_problem(_other_operand(add, match.output), x, a1, "beta"):
                return MatchResult.fail("deferring to the longer pattern with the bias Add")
        return MatchResult.success()

    def rewrite(self, op, match):
        x = match["x"]
        axis = trailing_axis(match.node("mean"), rank(x))
        eps = float(match.const("eps").reshape(()))
        if match.get("gamma") is not None:
            gamma = as_norm_param(op, match["gamma"], x, axis)
        else:
            gamma = op.initializer(np.ones(normalized_shape(x, axis), dtype=x.type.dtype.numpy()), hint="ln_ones")
        beta = match.get("beta")
        extra = [as_norm_param(op, beta, x, axis)] if beta is not None else []
        return op.LayerNormalization(x, gamma, *extra, axis=axis, epsilon=eps)


@register_pass
class RecognizeLayerNorm(RewriteRulePass):
    """Recognize decomposed layer normalization chains as LayerNormalization (opset >= 17)."""

    name = "recognize-layernorm"
    rules = (LayerNorm,)
