"""fold-batchnorm: inference BatchNormalization into a preceding Conv/ConvTranspose/Gemm, or into Mul+Add.

BN(y) = (y - mean) * s + bias with s = scale / sqrt(var + epsilon), per channel (axis 1).

Taken in: inference BN (no training_mode, no running-statistics outputs) with constant
scale/bias/mean/var and var + epsilon > 0 everywhere, so s and the shift are finite (at
var + epsilon = 0 the spec's (y - mean) / 0 is +-inf where the folded y * inf + (bias - mean * inf)
is NaN; a negative sum is an invalid model and is declined too). Folded into the producer only
when the producer's output feeds nothing else (the rewrite engine declines shared
intermediates), its weight (and bias) are constant floats and its channel count is BN's;
otherwise Mul + Add by constants of the *input's* dtype (opset 15 lets scale be float while x is
float16). The factors are computed in float64 and rounded once: exact up to float rounding and
reassociation, not bit-exact.
"""

from __future__ import annotations

import numpy as np

from edgec.infra.pass_base import register_pass
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass

from ._common import rank

_BN_PARAMS = ("scale", "bias", "mean", "var")


def _bn_factors(match) -> tuple[np.ndarray, np.ndarray] | None:
    """(s, shift) with BN(y) = y * s + shift, or None if a parameter is not constant."""
    params = [match.const(p) for p in _BN_PARAMS]
    if any(p is None for p in params):
        return None
    scale, bias, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
    eps = match.attr("bn", "epsilon", 1e-5)
    s = scale / np.sqrt(var + eps)
    return s, bias - mean * s


def _check_bn(match) -> str:
    bn = match.node("bn")
    if match.attr("bn", "training_mode", 0) or any(o.name for o in bn.outputs[1:]):
        return "BatchNormalization is in training mode (or has running-statistics outputs)"
    if any(match.const(p) is None for p in _BN_PARAMS):
        return "BatchNormalization parameters are not constant"
    var = match.const("var").astype(np.float64)
    if np.any(~(var + match.attr("bn", "epsilon", 1e-5) > 0)):
        return "var + epsilon <= 0 (or NaN): 1/sqrt is not finite, folding would change inf into NaN"
    with np.errstate(all="ignore"):
        s, shift = _bn_factors(match)
        dtype = match.const("scale").dtype
        if not (np.all(np.isfinite(s.astype(dtype))) and np.all(np.isfinite(shift.astype(dtype)))):
            return "folded scale or shift overflows"
    return ""


def _input_dtype(match) -> np.dtype | None:
    """The dtype of BN's input X (what a Mul/Add replacement's constants must have)."""
    t = match["x"].dtype
    try:
        dt = np.dtype(t.numpy()) if t is not None else None
    except Exception:
        return None
    return dt if dt is not None and dt.kind == "f" else None


class _FoldIntoProducer(RewriteRule):
    producer = ""
    min_opset = 9

    def pattern(self, op, x, w, scale, bias, mean, var):
        y = getattr(op, self.producer)(x, w, _allow_other_inputs=True, _name="prod")
        return op.BatchNormalization(y, scale, bias, mean, var, _name="bn")

    def check(self, match):
        why = _check_bn(match)
        if why:
            return MatchResult.fail(why)
        prod = match.node("prod")
        w = match.const("w")
        b = prod.inputs[2] if len(prod.inputs) > 2 else None
        if w is None:
            return MatchResult.fail(f"{self.producer} weight is not constant")
        if b is not None and match.const_value_of(b) is None:
            return MatchResult.fail(f"{self.producer} bias is not constant")
        if w.dtype.kind != "f":
            return MatchResult.fail("weight is not floating point")
        if self.channels(match, w) != _bn_factors(match)[0].size:
            return MatchResult.fail("BatchNormalization channel count differs from the producer's outputs")
        return MatchResult.success()

    def channels(self, match, w: np.ndarray) -> int:
        raise NotImplementedError

    def scaled_weight(self, match, w: np.ndarray, s: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def rewrite(self, op, match):
        prod = match.node("prod")
        w = match.const("w")
        b = prod.inputs[2] if len(prod.inputs) > 2 else None
        s, shift = _bn_factors(match)
        b0 = np.zeros(s.size) if b is None else match.const_value_of(b).astype(np.float64)
        new_w = self.scaled_weight(match, w.astype(np.float64), s).astype(w.dtype)
        new_b = self.new_bias(match, b0, s, shift).astype(w.dtype)
        attrs = {k: a for k, a in prod.attributes.items()}
        attrs.update(self.attr_overrides())
        return getattr(op, self.producer)(match["x"], op.initializer(new_w, "w_bn"), op.initializer(new_b, "b_bn"), **attrs)

    def new_bias(self, match, b0: np.ndarray, s: np.ndarray, shift: np.ndarray) -> np.ndarray:
        return b0 * s + shift

    def attr_overrides(self) -> dict:
        return {}


class ConvBatchNorm(_FoldIntoProducer):
    producer = "Conv"

    def channels(self, match, w):
        return w.shape[0]

    def scaled_weight(self, match, w, s):
        return w * s.reshape((-1,) + (1,) * (w.ndim - 1))


class ConvTransposeBatchNorm(_FoldIntoProducer):
    producer = "ConvTranspose"

    def channels(self, match, w):
        return match.attr("prod", "group", 1) * w.shape[1]

    def scaled_weight(self, match, w, s):
        g = match.attr("prod", "group", 1)
        grouped = w.reshape((g, w.shape[0] // g) + w.shape[1:])  # [g, Cin/g, Cout/g, k...]
        return (grouped * s.reshape((g, 1, -1) + (1,) * (w.ndim - 2))).reshape(w.shape)


class GemmBatchNorm(_FoldIntoProducer):
    """Y = alpha·A·B + beta·C; the new Gemm has alpha = beta = 1 and B, C scaled per column."""

    producer = "Gemm"

    def check(self, match):
        prod = match.node("prod")
        if len(prod.inputs) > 2 and prod.inputs[2] is not None:
            c = match.const_value_of(prod.inputs[2])
            if c is not None and c.ndim == 2 and c.shape[0] != 1:
                return MatchResult.fail("Gemm C varies along rows")
        return super().check(match)

    def channels(self, match, w):
        return w.shape[0] if match.attr("prod", "transB", 0) else w.shape[1]

    def scaled_weight(self, match, w, s):
        alpha = match.attr("prod", "alpha", 1.0)
        return alpha * (w * s[:, None] if match.attr("prod", "transB", 0) else w * s[None, :])

    def new_bias(self, match, b0, s, shift):
        beta = match.attr("prod", "beta", 1.0)
        return (beta * b0.reshape(-1) * s + shift) if b0.size != 1 else beta * b0.reshape(()) * s + shift

    def attr_overrides(self):
        return {"alpha": 1.0, "beta": 1.0}


class StandaloneBatchNorm(RewriteRule):
    """BN with constant parameters and no foldable producer → Mul(x, s) + shift."""

    min_opset = 9

    def pattern(self, op, x, scale, bias, mean, var):
        return op.BatchNormalization(x, scale, bias, mean, var, _name="bn")

    def check(self, match):
        why = _check_bn(match)
        if why:
            return MatchResult.fail(why)
        if rank(match["x"]) is None or rank(match["x"]) < 2:
            return MatchResult.fail("input rank unknown")
        if _input_dtype(match) is None or match.const("scale").dtype.kind != "f":
            return MatchResult.fail("input dtype unknown or parameters not floating point")
        return MatchResult.success()

    def rewrite(self, op, match):
        s, shift = _bn_factors(match)
        dtype = _input_dtype(match)
        shape = (-1,) + (1,) * (rank(match["x"]) - 2)
        scaled = op.Mul(match["x"], op.initializer(s.reshape(shape).astype(dtype), "bn_scale"))
        return op.Add(scaled, op.initializer(shift.reshape(shape).astype(dtype), "bn_shift"))


@register_pass
class FoldBatchNorm(RewriteRulePass):
    """Fold inference BatchNormalization into Conv/ConvTranspose/Gemm weights, else into Mul+Add."""

    name = "fold-batchnorm"
    rules = (ConvBatchNorm, ConvTransposeBatchNorm, GemmBatchNorm, StandaloneBatchNorm)
