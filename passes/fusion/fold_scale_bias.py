"""fold-scale-bias: Mul/Div/Add/Sub by per-output-channel constants into Conv/Gemm weights and bias.

Conv output [N, M, ...]: the constant must broadcast only along axis 1 (size M or 1).
Gemm output [M, N]: only along the last axis (size N or 1). Anything else declines.
Div and Sub fold only with the producer as the first operand (y / c, y - c).

Why exact: Conv/Gemm are linear per output channel, (W x + b) * s = (W * s) x + b * s and
(W x + b) + t = W x + (b + t); the new weights are computed in float64 and rounded once, so the
result equals the original up to float rounding and reassociation (not bit-exact; y / c becomes a
multiplication by 1/c). Declined: a non-constant weight, bias or operand, dtypes that differ, an
operand that is not a per-output-channel broadcast (it would enlarge or mix the output), division
by zero, and any non-finite operand or folded weight/bias (y * inf is +-inf or NaN per element,
a weight of inf makes the whole sum NaN; 1/c or W * s may overflow where the original did not).
The producer's output must feed nothing else (the rewrite engine declines shared intermediates).
"""

from __future__ import annotations

import numpy as np

from edgec.infra.pass_base import register_pass
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass

from ._common import channel_vector


class _FoldConstant(RewriteRule):
    producer = "Conv"  # or "Gemm"
    binary = "Mul"  # Mul, Div, Add, Sub

    def pattern(self, op, x, w, c):
        y = getattr(op, self.producer)(x, w, _allow_other_inputs=True, _name="prod")
        return getattr(op, self.binary)(y, c)

    def _weights(self, match):
        prod = match.node("prod")
        b_val = prod.inputs[2] if len(prod.inputs) > 2 else None
        b = None if b_val is None else match.const_value_of(b_val)
        return prod, match.const("w"), b_val, b

    def _vector(self, match):
        prod, w, b_val, b = self._weights(match)
        c = match.const("c")
        if w is None:
            return None, f"{self.producer} weight is not constant"
        if b_val is not None and b is None:
            return None, f"{self.producer} bias is not constant"
        if c is None:
            return None, f"{self.binary} operand is not constant"
        if c.dtype != w.dtype or w.dtype.kind != "f":
            return None, "operand and weight dtypes differ or are not float"
        if self.producer == "Gemm":
            if b is not None and b.ndim == 2 and b.shape[0] != 1:
                return None, "Gemm C varies along rows"
            channels, out_rank = (w.shape[0] if match.attr("prod", "transB", 0) else w.shape[1]), 2
        else:
            channels, out_rank = w.shape[0], w.ndim
        vec = channel_vector(c, out_rank, channels, 1)
        if vec is None:
            return None, f"{self.binary} operand shape {list(c.shape)} is not a per-output-channel broadcast"
        if self.binary == "Div" and np.any(vec == 0):
            return None, "division by zero"
        if not np.all(np.isfinite(vec)):
            return None, f"{self.binary} operand is not finite"
        new_w, new_b = self._folded(match, vec.astype(np.float64))
        if not (np.all(np.isfinite(new_w)) and np.all(np.isfinite(new_b))):
            return None, "folded weight or bias overflows"
        return vec.astype(np.float64), ""

    def check(self, match):
        vec, why = self._vector(match)
        return MatchResult.success() if vec is not None else MatchResult.fail(why)

    def rewrite(self, op, match):
        prod = match.node("prod")
        vec, _ = self._vector(match)
        new_w, new_b = self._folded(match, vec)
        attrs = {k: a for k, a in prod.attributes.items()}
        if self.producer == "Gemm":
            attrs.update(alpha=1.0, beta=1.0)
        w_init = op.initializer(new_w, "w_folded")
        b_init = op.initializer(new_b, "b_folded")
        return getattr(op, self.producer)(match["x"], w_init, b_init, **attrs)

    def _folded(self, match, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The new weight and bias (in the weight's dtype)."""
        prod, w, b_val, b = self._weights(match)
        w64 = w.astype(np.float64)
        b64 = np.zeros(vec.size) if b is None else b.astype(np.float64)
        if self.producer == "Gemm":
            w64 = w64 * match.attr("prod", "alpha", 1.0)
            b64 = b64 * match.attr("prod", "beta", 1.0)
            col = (slice(None), None) if match.attr("prod", "transB", 0) else (None, slice(None))
        else:
            col = (slice(None),) + (None,) * (w.ndim - 1)
        if self.binary in ("Mul", "Div"):
            s = vec if self.binary == "Mul" else 1.0 / vec
            w64, b64 = w64 * s[col], b64 * s
        else:
            b64 = b64 + (vec if self.binary == "Add" else -vec)
        with np.errstate(all="ignore"):
            return w64.astype(w.dtype), b64.astype(w.dtype)


def _rule(producer: str, binary: str) -> type[_FoldConstant]:
    return type(f"{producer}{binary}", (_FoldConstant,), {"producer": producer, "binary": binary})


RULES = tuple(_rule(p, b) for p in ("Conv", "Gemm") for b in ("Mul", "Div", "Add", "Sub"))


@register_pass
class FoldScaleBias(RewriteRulePass):
    """Fold per-output-channel constant Mul/Div/Add/Sub after Conv/Gemm into its weights and bias."""

    name = "fold-scale-bias"
    rules = RULES
