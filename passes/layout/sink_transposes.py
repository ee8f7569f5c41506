"""sink-transposes: move Transposes down through layout-agnostic ops so that they meet and cancel.

    op(Transpose(x, p))                 → Transpose(op(x), p)         unary elementwise ops
    op(Transpose(a, p), Transpose(b, p)) → Transpose(op(a, b), p)     binary elementwise ops
    op(Transpose(a, p), c)              → Transpose(op(a, c'), p)     c constant, c' = c permuted by p⁻¹
    Concat(Transpose(xᵢ, p)..., axis)    → Transpose(Concat(xᵢ..., axis=p[axis]), p)
    Pad / Resize(Transpose(x, p), ...)   → Transpose(Pad / Resize(x, per-axis params permuted), p)

A rewrite never increases the number of Transposes unless every consumer of the op is itself a
Transpose (which the next `fold-transposes` rule composes away). Transposes with other consumers
are kept for them. Pair with fold-transposes (Transpose∘Transpose → one or none).

Why exact (bit-exact; cubic Resize up to rounding order): elementwise ops commute with any
permutation; a constant of lower rank is padded with leading 1s before it is permuted, so it
broadcasts against the same elements; the output rank must equal the input's; per-axis
parameters (Concat axis mod rank, Pad pads, Resize roi/scales/sizes) move with their axes. Any
other op (Reshape, Softmax, Reduce*, Gather, Split, Slice, variadic Max/Min, Pad/Resize with
`axes` or runtime parameters) is not passed: the Transpose stays in front of it. See
docs/pass-safety.md.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import is_onnx_domain
from edgec.ir.edgec_ops import EDGEC_DOMAIN
from edgec.passes.cleanup._common import static_dims
from edgec.passes.fusion._common import rank
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass

from ._perm import inverse, perm_of, permute_constant
from .fold_transposes import RULES as FOLD_RULES

UNARY = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Erf", "Exp", "Log", "Neg", "Abs",
         "Sqrt", "Reciprocal", "Softplus", "Elu", "Selu", "Identity", "Cast", "Gelu", "Clip", "Floor", "Ceil")
EDGEC_UNARY = ("Gelu", "Silu")
BINARY = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min")


def with_shape(value: ir.Value, like: ir.Value | None, perm=None) -> ir.Value:
    """Give a new value the type of `like` and its shape permuted by `perm` (layout rules need ranks)."""
    if like is not None:
        value.type = like.type
        if like.shape is not None:
            dims = list(like.shape.dims)
            value.shape = ir.Shape([dims[a] for a in perm] if perm is not None else dims)
    return value


def dies_with(t: ir.Node, node: ir.Node) -> bool:
    """Transpose `t` becomes dead once `node` stops using it."""
    out = t.outputs[0]
    return not out.is_graph_output() and all(u is node for u in out.consumers())


def feeds_only_transposes(value: ir.Value) -> bool:
    users = value.consumers()
    return bool(users) and not value.is_graph_output() and all(u.op_type == "Transpose" for u in users)


def _transposed_input(v: ir.Value, perm) -> ir.Value | None:
    p = v.producer()
    if p is not None and p.op_type == "Transpose" and is_onnx_domain(p.domain) and perm_of(p, rank(p.inputs[0])) == perm:
        return p.inputs[0]
    return None


class _Sink(RewriteRule):
    shared_intermediates = True

    def gain(self, match, transposes: list[ir.Node]) -> str:
        removed = len({id(t) for t in transposes if dies_with(t, match.root)})
        if removed >= 1 or feeds_only_transposes(match.output):
            return ""
        return "the Transpose has other consumers (sinking would add one)"


class _SinkUnary(_Sink):
    op_type = "Relu"
    domain = ""

    def pattern(self, op, x):
        t = op.Transpose(x, _name="t")
        return getattr(op, self.op_type)(t, _domain=self.domain, _allow_other_inputs=True, _name="n")

    def check(self, match):
        if perm_of(match.node("t"), rank(match["x"])) is None:
            return MatchResult.fail("rank unknown")
        for extra in match.root.inputs[1:]:
            if extra is not None and rank(extra) != 0:
                return MatchResult.fail("extra input is not a scalar")
        why = self.gain(match, [match.node("t")])
        return MatchResult.fail(why) if why else MatchResult.success()

    def rewrite(self, op, match):
        perm = perm_of(match.node("t"), rank(match["x"]))
        n = match.root
        y = getattr(op, self.op_type)(match["x"], *n.inputs[1:], _domain=n.domain, _overload=n.overload,
                                      **dict(n.attributes.items()))
        with_shape(y, match.output, inverse(perm))
        return op.Transpose(y, perm=perm)


class _SinkBinary(_Sink):
    op_type = "Add"

    def pattern(self, op, a, other):
        t = op.Transpose(a, _name="t")
        binary = getattr(op, self.op_type)
        return [binary(t, other, _name="n"), binary(other, t, _name="n")]

    def operand(self, match, perm, r):
        """(replacement for the other operand, Transpose it came from or None, reason)."""
        other = match["other"]
        inner = _transposed_input(other, perm)
        if inner is not None:
            return inner, other.producer(), ""
        c = const_array(other)
        if c is not None:
            pc = permute_constant(c, inverse(perm), r)
            return (pc, None, "") if pc is not None else (None, None, "constant has a higher rank")
        if rank(other) == 0:
            return other, None, ""
        return None, None, "other operand is neither transposed the same way nor constant"

    def check(self, match):
        r = rank(match["a"])
        perm = perm_of(match.node("t"), r)
        if perm is None or rank(match.output) != r:
            return MatchResult.fail("rank unknown, or the other operand broadcasts to a higher rank")
        new, t2, why = self.operand(match, perm, r)
        if new is None:
            return MatchResult.fail(why)
        why = self.gain(match, [match.node("t")] + ([t2] if t2 is not None else []))
        return MatchResult.fail(why) if why else MatchResult.success()

    def rewrite(self, op, match):
        r = rank(match["a"])
        perm = perm_of(match.node("t"), r)
        new, _, _ = self.operand(match, perm, r)
        first = match.root.inputs[0] is match.node("t").outputs[0]
        args = (match["a"], new) if first else (new, match["a"])
        y = getattr(op, self.op_type)(*args, **dict(match.root.attributes.items()))
        with_shape(y, match.output, inverse(perm))
        return op.Transpose(y, perm=perm)


class SinkConcat(_Sink):
    def pattern(self, op, x):
        return op.Concat(op.Transpose(x, _name="t"), _allow_other_inputs=True, _name="n")

    def check(self, match):
        r = rank(match["x"])
        perm = perm_of(match.node("t"), r)
        if perm is None:
            return MatchResult.fail("rank unknown")
        inners = [_transposed_input(v, perm) for v in match.root.inputs]
        if any(i is None for i in inners):
            return MatchResult.fail("not every Concat input is transposed the same way")
        why = self.gain(match, [v.producer() for v in match.root.inputs])
        return MatchResult.fail(why) if why else MatchResult.success()

    def rewrite(self, op, match):
        r = rank(match["x"])
        perm = perm_of(match.node("t"), r)
        inners = [_transposed_input(v, perm) for v in match.root.inputs]
        axis = int(match.attr("n", "axis")) % r
        y = op.Concat(*inners, axis=perm[axis])
        with_shape(y, match.output, inverse(perm))
        return op.Transpose(y, perm=perm)


class SinkPad(_Sink):
    """Pad(Transpose(x, p), pads) → Transpose(Pad(x, pads permuted by p⁻¹), p); constant pads, no axes."""

    def pattern(self, op, x):
        return op.Pad(op.Transpose(x, _name="t"), _allow_other_inputs=True, _name="n")

    def new_pads(self, match):
        r = rank(match["x"])
        perm = perm_of(match.node("t"), r)
        n = match.root
        if perm is None or len(n.inputs) < 2 or len(n.inputs) > 3 or n.inputs[1] is None:
            return None, None
        pads = const_array(n.inputs[1])
        if pads is None or pads.size != 2 * r:
            return None, None
        pads = pads.reshape(-1)
        new = np.zeros_like(pads)
        for i, a in enumerate(perm):
            new[a], new[r + a] = pads[i], pads[r + i]
        return perm, new

    def check(self, match):
        perm, _ = self.new_pads(match)
        if perm is None:
            return MatchResult.fail("pads not constant, or axes given")
        why = self.gain(match, [match.node("t")])
        return MatchResult.fail(why) if why else MatchResult.success()

    def rewrite(self, op, match):
        perm, new = self.new_pads(match)
        y = op.Pad(match["x"], new, *match.root.inputs[2:], **dict(match.root.attributes.items()))
        with_shape(y, match.output, inverse(perm))
        return op.Transpose(y, perm=perm)


def _permute_per_axis(v: np.ndarray, perm: list[int], groups: int) -> np.ndarray | None:
    """A per-axis vector (`groups` blocks of rank entries: pads, roi) of op(Transpose(x, perm))
    re-expressed for op(x): entry i of each block moves to perm[i]."""
    r = len(perm)
    v = v.reshape(-1)
    if v.size == 0:
        return v
    if v.size != groups * r:
        return None
    new = np.empty_like(v)
    for g in range(groups):
        for i, a in enumerate(perm):
            new[g * r + a] = v[g * r + i]
    return new


class SinkResize(_Sink):
    """Resize(Transpose(x, p), roi, scales, sizes) → Transpose(Resize(x, roi', scales', sizes'), p).

    Resize is separable per axis (every mode), so resizing the transposed tensor is resizing `x`
    with the per-axis roi/scales/sizes permuted by p⁻¹. Opset-11+ form (roi input present or
    empty), constant parameters, no `axes` attribute. tf2onnx emits Transpose → Resize for Keras
    Resizing/UpSampling(bilinear) on NHWC tensors."""

    def pattern(self, op, x):
        return op.Resize(op.Transpose(x, _name="t"), _allow_other_inputs=True, _name="n")

    def new_inputs(self, match):
        r = rank(match["x"])
        perm = perm_of(match.node("t"), r)
        n = match.root
        if perm is None or len(n.inputs) < 3 or "axes" in n.attributes:
            return None, None
        out = []
        for k, v in enumerate(n.inputs[1:4], start=1):
            if v is None or not v.name:
                out.append(None)
                continue
            c = const_array(v)
            new = None if c is None else _permute_per_axis(c, perm, 2 if k == 1 else 1)
            if new is None:
                return None, None
            out.append(new)
        return perm, out

    def check(self, match):
        perm, new = self.new_inputs(match)
        if perm is None:
            return MatchResult.fail("roi/scales/sizes not constant, opset-10 form, or axes given")
        if match.root.attributes.get_string("mode", "nearest") == "cubic" and not _onnxruntime_runs_cubic(match, new):
            # exact, but onnxruntime refuses this cubic Resize (it downsamples non-innermost axes):
            # --verify and every comparison with onnxruntime could no longer check the model
            return MatchResult.fail("the moved cubic Resize is one onnxruntime refuses (downsampling NHWC)")
        why = self.gain(match, [match.node("t")])
        return MatchResult.fail(why) if why else MatchResult.success()

    def rewrite(self, op, match):
        perm, new = self.new_inputs(match)
        y = op.Resize(match["x"], *new, **dict(match.root.attributes.items()))
        with_shape(y, match.output, inverse(perm))
        return op.Transpose(y, perm=perm)


def _onnxruntime_runs_cubic(match, new) -> bool:
    """Whether onnxruntime runs the moved cubic Resize (its ScalesValidation): only the two
    innermost axes resized, or, on 4-D, outermost and innermost kept with antialias, or kept with
    every other axis upsampled (scale >= 1)."""
    scales, sizes = (list(new) + [None, None, None])[1:3]
    dims = static_dims(match["x"])
    if scales is not None and scales.size:
        sc = [float(v) for v in scales.tolist()]
    elif sizes is not None and dims is not None and all(d > 0 for d in dims):
        sc = [s / d for s, d in zip(sizes.tolist(), dims)]
    else:
        return False
    if all(v == 1.0 for v in sc[:-2]):
        return True
    if len(sc) != 4 or sc[0] != 1.0 or sc[3] != 1.0:
        return False
    antialias = match.root.attributes.get_int("antialias", 0)
    return bool(antialias) or all(v >= 1.0 for v in sc)


def remove_dead_transposes(graph: ir.Graph) -> int:
    """Transposes left without consumers by a sink rewrite (the other operand's)."""
    dead = [n for n in graph if n.op_type == "Transpose" and not n.outputs[0].uses() and not n.outputs[0].is_graph_output()]
    graph.remove(dead, safe=True)
    return len(dead)


SINK_RULES = (
    tuple(type(f"Sink{o}", (_SinkUnary,), {"op_type": o}) for o in UNARY)
    + tuple(type(f"SinkEdgec{o}", (_SinkUnary,), {"op_type": o, "domain": EDGEC_DOMAIN}) for o in EDGEC_UNARY)
    + tuple(type(f"Sink{o}", (_SinkBinary,), {"op_type": o}) for o in BINARY)
    + (SinkConcat, SinkPad, SinkResize)
)


@register_pass
class SinkTransposes(RewriteRulePass):
    """Sink Transposes through elementwise ops and Concat, and cancel/compose Transpose pairs."""

    name = "sink-transposes"
    rules = FOLD_RULES[:2] + SINK_RULES

    def run(self, model, ctx):
        result = super().run(model, ctx)
        return PassResult(model, bool(remove_dead_transposes(model.graph)) or result.modified)
