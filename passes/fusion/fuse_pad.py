"""fuse-pad: a constant zero Pad of the spatial dims into the `pads` of the next Conv / MaxPool / AveragePool.

* Conv: always exact (Conv pads with zeros).
* AveragePool: exact with `count_include_pad=1` (set by the rewrite); declines if the pool already
  pads with `count_include_pad=0`, or uses `ceil_mode`.
* MaxPool pads with -inf, not 0: exact only if the Pad input is provably >= 0 and never NaN for
  finite model inputs (produced by Relu, Sigmoid, Softmax, Abs, Exp, HardSigmoid, Clip with a
  constant min >= 0, or a fused op with such an activation) and every window keeps at least one
  real element (pad < kernel); no `ceil_mode`, no dilations, no indices output. Sqrt is not taken:
  Sqrt of a negative finite value is NaN, and max(0, NaN) over an explicit zero pad is not
  max(NaN) over implicit padding (onnxruntime: 0 vs NaN).
"""

from __future__ import annotations

import numpy as np

from edgec.infra.pass_base import register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import is_onnx_domain
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass
from edgec.rewrite.matcher import attr_value

from ._common import rank

# >= 0 and not NaN at every finite input (Sqrt is >= 0 *or NaN*: not here)
_NONNEG_OPS = {"Relu", "Sigmoid", "Softmax", "Abs", "Exp", "HardSigmoid"}
_NONNEG_ACTS = {"Relu", "Sigmoid", "HardSigmoid"}


def full_pads(node, r: int) -> list[int] | None:
    """The Pad node's pads as [begin_0..begin_r-1, end_0..end_r-1], or None unless constant zero padding."""
    if attr_value(node, "mode", "constant") not in ("constant", b"constant"):
        return None
    if len(node.inputs) < 2 or node.inputs[1] is None:  # opset < 11: attributes
        pads, value, axes = attr_value(node, "pads"), attr_value(node, "value", 0.0), None
    else:
        arrays = [const_array(v) if v is not None else None for v in list(node.inputs[1:4]) + [None] * 3][:3]
        if arrays[0] is None or any(v is not None and a is None for v, a in zip(node.inputs[2:4], arrays[1:])):
            return None
        pads, value, axes = arrays
    if pads is None or (value is not None and np.any(np.asarray(value) != 0)):
        return None
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    if axes is None:
        return pads if len(pads) == 2 * r else None
    axes = [int(a) % r for a in np.asarray(axes).reshape(-1)]
    if len(pads) != 2 * len(axes):
        return None
    out = [0] * (2 * r)
    for i, a in enumerate(axes):
        out[a], out[r + a] = pads[i], pads[len(axes) + i]
    return out


def nonnegative(v) -> bool:
    p = v.producer()
    if p is None:
        return False
    if is_onnx_domain(p.domain) and p.op_type in _NONNEG_OPS:
        return True
    if p.op_type == "Clip" and len(p.inputs) > 1 and p.inputs[1] is not None:
        lo = const_array(p.inputs[1])
        return lo is not None and lo.size == 1 and float(lo.reshape(())) >= 0
    if p.domain == "edgec" and p.op_type.startswith("Fused"):
        act = attr_value(p, "activation", "")
        params = attr_value(p, "activation_params", []) or []
        return act in _NONNEG_ACTS or (act == "Clip" and params and params[0] >= 0)
    return False


class _PadInto(RewriteRule):
    target = "Conv"
    min_opset = 2

    def pattern(self, op, x):
        padded = op.Pad(x, _allow_other_inputs=True, _name="pad")
        return getattr(op, self.target)(padded, _allow_other_inputs=True, _name="consumer")

    def spatial(self, match) -> tuple[list[int] | None, str]:
        r = rank(match["x"])
        if r is None or r < 3:
            return None, "input rank unknown or < 3"
        pads = full_pads(match.node("pad"), r)
        if pads is None:
            return None, "Pad is not a constant zero pad with constant pads"
        if any(p < 0 for p in pads):
            return None, "negative pads (cropping)"
        if pads[0] or pads[1] or pads[r] or pads[r + 1]:
            return None, "Pad pads the batch or channel dim"
        consumer = match.node("consumer")
        if attr_value(consumer, "auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
            return None, f"{self.target} uses auto_pad"
        old = attr_value(consumer, "pads", [0] * (2 * (r - 2)))
        n = r - 2
        new = [old[i] + pads[2 + i] for i in range(n)] + [old[n + i] + pads[r + 2 + i] for i in range(n)]
        return new, self.extra_check(match, pads, r)

    def extra_check(self, match, pads, r) -> str:
        return ""

    def check(self, match):
        new, why = self.spatial(match)
        return MatchResult.fail(why) if new is None or why else MatchResult.success()

    def rewrite(self, op, match):
        new, _ = self.spatial(match)
        consumer = match.node("consumer")
        attrs = {k: a for k, a in consumer.attributes.items() if k != "pads"}
        attrs.update(self.attr_overrides())
        return getattr(op, self.target)(match["x"], *consumer.inputs[1:], pads=new, **attrs)

    def attr_overrides(self) -> dict:
        return {}


class PadConv(_PadInto):
    target = "Conv"


class PadAveragePool(_PadInto):
    target = "AveragePool"

    def extra_check(self, match, pads, r):
        c = match.node("consumer")
        if attr_value(c, "ceil_mode", 0):
            return "AveragePool uses ceil_mode"
        if any(attr_value(c, "pads", [0]) or [0]) and not attr_value(c, "count_include_pad", 0):
            return "AveragePool already pads with count_include_pad=0"
        return ""

    def attr_overrides(self):
        return {"count_include_pad": 1}


class PadMaxPool(_PadInto):
    target = "MaxPool"

    def extra_check(self, match, pads, r):
        c = match.node("consumer")
        if len([o for o in c.outputs if o.name]) > 1 or attr_value(c, "ceil_mode", 0):
            return "MaxPool has an indices output or ceil_mode"
        if any(d != 1 for d in attr_value(c, "dilations", [1]) or [1]):
            return "MaxPool is dilated"
        if not nonnegative(match["x"]):
            return "Pad input is not provably >= 0 (MaxPool pads with -inf)"
        k = attr_value(c, "kernel_shape")
        old = attr_value(c, "pads", [0] * (2 * (r - 2)))
        n = r - 2
        if any(old[i] + pads[2 + i] >= k[i] or old[n + i] + pads[r + 2 + i] >= k[i] for i in range(n)):
            return "padding would leave a window without real elements"
        return ""


@register_pass
class FusePad(RewriteRulePass):
    """Fold a constant zero Pad into the pads of a following Conv / MaxPool (input >= 0) / AveragePool."""

    name = "fuse-pad"
    rules = (PadConv, PadAveragePool, PadMaxPool)
