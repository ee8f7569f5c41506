"""recognize-gelu: 0.5·x·(1 + Erf(x/√2)) and 0.5·x·(1 + Tanh(√(2/π)·(x + 0.044715·x³))) → Gelu.

Emits ONNX `Gelu` (opset ≥ 20), else `edgec.Gelu` (same attribute `approximate`).
"""

from __future__ import annotations

import math

from edgec.infra.pass_base import register_pass
from edgec.ir.edgec_ops import EDGEC_DOMAIN, gelu_function
from edgec.rewrite import RewriteRule, RewriteRulePass

SQRT2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _half_x_times(op, x, inner):
    """0.5 · x · inner in the two association orders (Mul is matched commutatively)."""
    return [op.Mul(op.Mul(x, op.scalar(0.5)), inner), op.Mul(op.Mul(x, inner), op.scalar(0.5))]


def emit_gelu(op, match, x, approximate: str):
    if match.opset >= 20:
        return op.Gelu(x, approximate=approximate)
    fn = gelu_function(approximate, match.opset)
    op.add_function(fn)
    return op.Gelu(x, _domain=EDGEC_DOMAIN, _overload=fn.overload, approximate=approximate)


class GeluErf(RewriteRule):
    def pattern(self, op, x):
        args = [op.Div(x, op.scalar(SQRT2, 1e-4)), op.Mul(x, op.scalar(1 / SQRT2, 1e-4))]
        return [p for a in args for p in _half_x_times(op, x, op.Add(op.Erf(a), op.scalar(1.0)))]

    def rewrite(self, op, match):
        return emit_gelu(op, match, match["x"], "none")


class GeluTanh(RewriteRule):
    def pattern(self, op, x):
        cubes = [op.Pow(x, op.scalar(3.0)), op.Mul(x, op.Mul(x, x)), op.Mul(op.Mul(x, x), x)]
        out = []
        for cube in cubes:
            inner = op.Mul(op.Add(x, op.Mul(cube, op.scalar(0.044715, 1e-5))), op.scalar(SQRT_2_OVER_PI, 1e-4))
            out += _half_x_times(op, x, op.Add(op.Tanh(inner), op.scalar(1.0)))
        return out

    def rewrite(self, op, match):
        return emit_gelu(op, match, match["x"], "tanh")


@register_pass
class RecognizeGelu(RewriteRulePass):
    """Recognize erf- and tanh-form GELU subgraphs as one Gelu (ONNX at opset >= 20, else edgec.Gelu)."""

    name = "recognize-gelu"
    rules = (GeluErf, GeluTanh)
