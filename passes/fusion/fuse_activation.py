"""fuse-activation: Conv/Gemm/MatMul + activation → edgec.FusedConv/FusedGemm/FusedMatMul.

Activations: Relu, Clip (constant bounds, e.g. ReLU6), LeakyRelu, Sigmoid, HardSigmoid, HardSwish,
Tanh and SiLU (x * Sigmoid(x)). A residual Add after Conv becomes FusedConv's 4th input Z:
Y = act(Conv(X, W, B) + Z), the same order as com.microsoft.FusedConv. Semantics of the edgec
ops: docs/edgec-ops.md.

Why exact: the fused op computes the same ops in the same order (its reference body is the base op
then the activation), so the result is bit-exact as long as the activation is the one the fused op
implements *with the same parameters*: LeakyRelu alpha and HardSigmoid alpha/beta are copied
(spec defaults when absent); Clip bounds must be constant scalars present as inputs and are stored
as float32 `activation_params`, so they are taken only if float32 holds them exactly (a double
bound like 0.1 would move) and, before opset 15 (no CastLike in the body), only for float32
tensors. The base output must feed nothing but the activation (the rewrite engine declines
shared intermediates); the residual Z must have exactly the Conv output's static shape (a
broadcast Z would change Y's shape).

Only what edgec's backend lowers is fused: FusedConv has no TVM-importer fallback, so a Conv is
fused only when `conv_lowerable` (edgec/targets/lowerable.py, the same test the Conv lowering
makes) accepts it: ranks 3-5 (1-D/2-D/3-D), auto_pad resolvable from static shapes.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import register_pass
from edgec.ir.edgec_ops import CONV_ATTRS, EDGEC_DOMAIN, GEMM_ATTRS, fused_function
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass
from edgec.targets.lowerable import conv_lowerable

from ._common import static_shape

BASES = ("Conv", "Gemm", "MatMul", "FusedConv", "FusedGemm", "FusedMatMul")
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Silu")
_DEFAULTS = {"LeakyRelu": {"alpha": 0.01}, "HardSigmoid": {"alpha": 0.2, "beta": 0.5}}


def _kind(base: str) -> str:
    return base.removeprefix("Fused")


def _base_pattern(op, base: str, x):
    if base.startswith("Fused"):
        return getattr(op, base)(x, _domain=EDGEC_DOMAIN, _allow_other_inputs=True, _name="base",
                                 activation=lambda a: a in (None, ""))
    return getattr(op, base)(x, _allow_other_inputs=True, _name="base")


def _not_lowerable(match) -> str:
    """Why edgec's backend could not lower the fused op (FusedConv has no TVM-importer fallback,
    so a Conv only edgec's Conv lowering takes is fused), '' when it can."""
    base = match.node("base")
    return conv_lowerable(base) if _kind(base.op_type) == "Conv" else ""


def _filled_inputs(op, match) -> tuple[list, str]:
    """The base node's inputs with a zero bias added for Conv/Gemm if it had none."""
    base = match.node("base")
    inputs = list(base.inputs)
    kind = _kind(base.op_type)
    if kind == "MatMul" or (len(inputs) > 2 and inputs[2] is not None):
        return inputs, ""
    if kind == "Conv":
        w = static_shape(inputs[1])
        channels = w[0] if w else None
    else:
        out = static_shape(base.outputs[0])
        channels = out[-1] if out else None
    if channels is None:
        return inputs, f"{kind} has no bias and its output channel count is unknown"
    if op is None:
        return inputs, ""
    dtype = inputs[1].dtype.numpy() if inputs[1].dtype is not None else np.float32
    return inputs[:2] + [op.initializer(np.zeros(channels, dtype=dtype), "zero_bias")] + inputs[3:], ""


def _fused_node(op, match, act: str, params: list[float], z=None):
    base = match.node("base")
    kind = _kind(base.op_type)
    inputs, _ = _filled_inputs(op, match)
    if z is not None:
        inputs = inputs + [z]
    has_z = kind == "Conv" and len(inputs) == 4
    names = {"Conv": CONV_ATTRS, "Gemm": GEMM_ATTRS, "MatMul": ()}[kind]
    attrs = {k: a for k, a in base.attributes.items() if k in names}
    fn = fused_function(kind, act, params, has_z, match.opset)
    op.add_function(fn)
    return getattr(op, f"Fused{kind}")(*inputs, _domain=EDGEC_DOMAIN, _overload=fn.overload, activation=act,
                                       activation_params=[float(p) for p in params] or None, **attrs)


class _BaseActivation(RewriteRule):
    base = "Conv"
    act = "Relu"
    min_opset = 11

    def pattern(self, op, x):
        y = _base_pattern(op, self.base, x)
        if self.act == "Silu":
            return [op.Mul(y, op.Sigmoid(y)), op.Silu(y, _domain=EDGEC_DOMAIN)]
        return getattr(op, self.act)(y, _allow_other_inputs=self.act == "Clip", _name="act")

    def params(self, match) -> tuple[list[float] | None, str]:
        if self.act == "Clip":
            act = match.node("act")
            bounds = [match.const_value_of(v) if v is not None else None for v in list(act.inputs[1:3]) + [None] * 2][:2]
            if any(b is None or b.size != 1 for b in bounds):
                return None, "Clip bounds must be constant scalars (min and max)"
            vals = [b.reshape(()) for b in bounds]
            if any(np.float32(v) != v and not np.isnan(v) for v in vals):
                return None, "Clip bound is not exactly representable in float32 (activation_params)"
            dtype = match.node("base").outputs[0].dtype
            if match.opset < 15 and dtype != ir.DataType.FLOAT:
                return None, "Clip on a non-float32 tensor before opset 15 (the fused body has no CastLike)"
            return [float(v) for v in vals], ""
        if self.act in _DEFAULTS:
            return [float(match.attr("act", k, d)) for k, d in _DEFAULTS[self.act].items()], ""
        return [], ""

    def check(self, match):
        params, why = self.params(match)
        if params is None:
            return MatchResult.fail(why)
        if why := _not_lowerable(match):
            return MatchResult.fail(why)
        _, why = _filled_inputs(None, match)
        return MatchResult.fail(why) if why else MatchResult.success()

    def rewrite(self, op, match):
        params, _ = self.params(match)
        return _fused_node(op, match, self.act, params)


class ConvResidualAdd(RewriteRule):
    """Add(Conv(...), Z) with Z of the Conv output's exact shape → FusedConv(X, W, B, Z), no activation."""

    min_opset = 11

    def pattern(self, op, x, z):
        return op.Add(_base_pattern(op, "Conv", x), z)

    def check(self, match):
        out, zs = static_shape(match.node("base").outputs[0]), static_shape(match["z"])
        if out is None or zs != out:
            return MatchResult.fail(f"residual shape {zs} is not the Conv output shape {out}")
        if why := _not_lowerable(match):
            return MatchResult.fail(why)
        _, why = _filled_inputs(None, match)
        return MatchResult.fail(why) if why else MatchResult.success()

    def rewrite(self, op, match):
        return _fused_node(op, match, "", [], z=match["z"])


RULES = (ConvResidualAdd,) + tuple(
    type(f"{base}{act}", (_BaseActivation,), {"base": base, "act": act}) for base in BASES for act in ACTIVATIONS
)


@register_pass
class FuseActivation(RewriteRulePass):
    """Fuse activations (and a residual Add after Conv) into edgec.FusedConv/FusedGemm/FusedMatMul."""

    name = "fuse-activation"
    rules = RULES
