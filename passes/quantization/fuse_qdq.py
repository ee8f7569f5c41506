"""fuse-qdq: DequantizeLinear -> Conv / MatMul / Gemm [-> Relu] -> QuantizeLinear into integer ops.

    Q(Conv(DQ(x), DQ(w)[, DQ(b)]))     -> QLinearConv(x, .., w, .., y_scale, y_zp[, b])
    Q(MatMul(DQ(a), DQ(b)))            -> QLinearMatMul(a, .., b, .., y_scale, y_zp)
    Q(Gemm(DQ(a), DQ(b)[, DQ(c)]))     -> com.microsoft.QGemm(a, .., b, .., c, y_scale, y_zp)
    ... with Relu before the Q         -> Max(that, y_zp)   (exact: round is monotonic, Q(0) = zp)
    ... with Clip(lo, hi) before the Q -> Clip(that, Q(lo), Q(hi))   (exact for the same reason:
                                          Q(clip(v, lo, hi)) = clip(Q(v), Q(lo), Q(hi)); ReLU6)

This is how QDQ models (edgec quantize, onnxruntime's quantizer, NNCF, TF exports) become integer
execution: the product is an exact int32 accumulation and the requantization happens once, in
the op; the backend lowers these ops as integer kernels. Against the QDQ graph, which computes the
product in float and quantizes it, an output can differ by one quantization step where the float
result lies within float rounding of a .5 tie (tests bound it).

Taken in (otherwise the region ends and the QDQ ops stay): 8-bit x and y (16-bit activations have
no QLinear ops); constant weights (int8/uint8) with a per-tensor or per-output-channel scale
along the op's output axis (Conv axis 0, MatMul's 2-D B axis 1, Gemm's B by transB) and zero
point 0 when per channel; per-tensor constant x/y scales and zero points; a bias that is
DequantizeLinear(int32, x_scale * w_scale, 0) (onnxruntime's convention, checked to float
rounding); Gemm with beta = 1; the Conv/MatMul/Gemm and Relu outputs feed nothing else. Q/DQ of
the ai.onnx or com.microsoft domain, the same domain within a match."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import register_pass
from edgec.ir.constants import const_array
from edgec.rewrite import MatchResult, RewriteRule, RewriteRulePass

MS = "com.microsoft"
_8BIT = (ir.DataType.UINT8, ir.DataType.INT8)


def _dq_parts(node: ir.Node) -> tuple[ir.Value, ir.Value, ir.Value | None, int]:
    """(quantized input, scale, zero point or None, axis) of a DequantizeLinear."""
    zp = node.inputs[2] if len(node.inputs) > 2 else None
    a = node.attributes.get("axis")
    return node.inputs[0], node.inputs[1], zp, (a.as_int() if a is not None else 1)




def _single_use(v: ir.Value) -> bool:
    return not v.is_graph_output() and len(v.uses()) == 1


class _QdqRule(RewriteRule):
    shared_intermediates = True  # a DQ'd input may feed other ops; the core ops are checked below
    core = ""       # Conv / MatMul / Gemm
    domain = ""     # of the Q/DQ nodes
    act = ""        # "", "Relu" or "Clip" between the core op and the Q
    bias = False

    def pattern(self, op, xq, sx, wq, sw, sy):
        d = self.domain
        x = op.DequantizeLinear(xq, sx, _domain=d, _allow_other_inputs=True, _name="dqx")
        w = op.DequantizeLinear(wq, sw, _domain=d, _allow_other_inputs=True, _name="dqw")
        ins = [x, w]
        if self.bias:
            ins.append(op.DequantizeLinear(op.const("bq"), op.const("sb"), _domain=d, _allow_other_inputs=True,
                                           _name="dqb"))
        y = getattr(op, self.core)(*ins, _name="core")
        if self.act == "Relu":
            y = op.Relu(y, _name="relu")
        elif self.act == "Clip":
            y = op.Clip(y, _allow_other_inputs=True, _name="relu")
        return op.QuantizeLinear(y, sy, _domain=d, _allow_other_inputs=True, _name="q")

    def weight_axis(self, match) -> int | None:
        raise NotImplementedError

    def check(self, match):
        if self.act and match.opset < 12:
            return MatchResult.fail("Max / Clip on 8-bit integers needs opset 12")
        if self.act == "Clip" and _clip_bounds(match.node("relu")) is None:
            return MatchResult.fail("Clip bounds are not constant scalars")
        core = match.node("core")
        inner = [core.outputs[0]] + ([match.node("relu").outputs[0]] if self.act else [])
        if not all(_single_use(v) for v in inner):
            return MatchResult.fail(f"the {self.core} (or Relu) output is used elsewhere")
        xq, sx, zx, _ = _dq_parts(match.node("dqx"))
        wq, sw, zw, w_axis = _dq_parts(match.node("dqw"))
        q = match.node("q")
        zy = q.inputs[2] if len(q.inputs) > 2 else None
        if xq.dtype not in _8BIT or wq.dtype not in _8BIT:
            return MatchResult.fail("inputs are not 8-bit (16-bit activations have no QLinear ops)")
        if zy is None or zy.dtype not in _8BIT or any(a.name in ("output_dtype", "saturate", "block_size")
                                                      for a in q.attributes.values()):
            return MatchResult.fail("output is not 8-bit with an explicit zero point")
        for name, v in (("x scale", sx), ("x zero point", zx), ("y scale", q.inputs[1]), ("y zero point", zy)):
            a = const_array(v) if v is not None else np.zeros(())
            if a is None or a.size != 1:
                return MatchResult.fail(f"{name} is not a constant scalar")
        w, s, z = const_array(wq), const_array(sw), (const_array(zw) if zw is not None else np.zeros((), np.int8))
        if w is None or s is None or z is None:
            return MatchResult.fail("weight, its scale or zero point is not constant")
        if s.size > 1:
            axis = self.weight_axis(match)
            if axis is None or w_axis % w.ndim != axis or s.ndim != 1 or s.size != w.shape[axis]:
                return MatchResult.fail(f"weight scale is not per tensor or along the output axis {axis}")
            if np.any(z != 0):
                return MatchResult.fail("per-channel weight zero point is not 0")
        if self.bias:
            bq, sb, zb, _ = _dq_parts(match.node("dqb"))
            b, sbv = const_array(bq), const_array(sb)
            if b is None or bq.dtype != ir.DataType.INT32 or sbv is None:
                return MatchResult.fail("bias is not a constant int32 DequantizeLinear")
            if zb is not None and (const_array(zb) is None or np.any(const_array(zb) != 0)):
                return MatchResult.fail("bias zero point is not 0")
            want = np.float32(const_array(sx).reshape(())) * s.astype(np.float32)
            if not np.allclose(np.broadcast_to(sbv, want.shape) if want.ndim else sbv, want, rtol=1e-6, atol=0):
                return MatchResult.fail("bias scale is not x_scale * w_scale")
        return MatchResult.success()

    def operands(self, op, match):
        """[x, x_scale, x_zp, w, w_scale, w_zp] with zero points made explicit."""
        out = []
        for name in ("dqx", "dqw"):
            q, s, z, _ = _dq_parts(match.node(name))
            if z is None:
                z = op.initializer(np.zeros((), q.dtype.numpy()), f"{q.name}_zero_point")
            out += [q, s, z]
        return out

    def finish(self, op, match, y):
        q = match.node("q")
        if self.act == "Relu":
            return op.Max(y, q.inputs[2])
        if self.act == "Clip":
            scale, zp = const_array(q.inputs[1]), const_array(q.inputs[2])
            qlo, qhi = (_quantize_scalar(v, scale, zp) for v in _clip_bounds(match.node("relu")))
            return op.Clip(y, op.initializer(qlo, f"{q.outputs[0].name}_clip_lo"),
                           op.initializer(qhi, f"{q.outputs[0].name}_clip_hi"))
        return y


def _clip_bounds(node: ir.Node) -> tuple[float, float] | None:
    """(lo, hi) of a Clip (absent: -inf / inf), from its inputs or (opset < 11) attributes;
    None unless they are constant scalars."""
    out = []
    for i, name, default in ((1, "min", -np.inf), (2, "max", np.inf)):
        v = node.inputs[i] if len(node.inputs) > i else None
        if v is not None and v.name:
            a = const_array(v)
            if a is None or a.size != 1:
                return None
            out.append(float(np.float32(a.reshape(-1)[0])))
        else:
            a = node.attributes.get(name)
            out.append(float(a.as_float()) if a is not None else default)
    return None if np.isnan(out).any() else (out[0], out[1])


def _quantize_scalar(v: float, scale: np.ndarray, zp: np.ndarray) -> np.ndarray:
    """QuantizeLinear of one float32 value: saturate(round_half_even(v / scale) + zp), in zp's dtype."""
    info = np.iinfo(zp.dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = np.round(np.float32(v) / np.float32(scale.reshape(-1)[0])).astype(np.float64) + float(zp.reshape(-1)[0])
    return np.asarray(np.clip(q, info.min, info.max), zp.dtype).reshape(())


class _Conv(_QdqRule):
    core = "Conv"

    def weight_axis(self, match):
        return 0

    def rewrite(self, op, match):
        q = match.node("q")
        attrs = {k: v for k, v in match.node("core").attributes.items()}
        bias = [_dq_parts(match.node("dqb"))[0]] if self.bias else []
        y = op.QLinearConv(*self.operands(op, match), q.inputs[1], q.inputs[2], *bias, **attrs)
        return self.finish(op, match, y)


class _MatMul(_QdqRule):
    core = "MatMul"

    def weight_axis(self, match):
        w = _dq_parts(match.node("dqw"))[0]
        return 1 if w.shape is not None and len(w.shape) == 2 else None

    def rewrite(self, op, match):
        q = match.node("q")
        return self.finish(op, match, op.QLinearMatMul(*self.operands(op, match), q.inputs[1], q.inputs[2]))


class _Gemm(_QdqRule):
    core = "Gemm"

    def weight_axis(self, match):
        return 0 if match.attr("core", "transB", 0) else 1

    def check(self, match):
        if float(match.attr("core", "beta", 1.0)) != 1.0:
            return MatchResult.fail("Gemm beta is not 1")
        return super().check(match)

    def rewrite(self, op, match):
        q = match.node("q")
        core = match.node("core")
        attrs = {k: v for k, v in core.attributes.items() if k in ("alpha", "transA", "transB")}
        c = _dq_parts(match.node("dqb"))[0] if self.bias else None
        y = op.QGemm(*self.operands(op, match), c, q.inputs[1], q.inputs[2], _domain=MS, **attrs)
        return self.finish(op, match, y)


def _variants():
    rules = []
    for base in (_Conv, _MatMul, _Gemm):
        for domain in ("", MS):
            for act in ("Relu", "Clip", ""):
                for bias in ((True, False) if base is not _MatMul else (False,)):
                    name = f"{base.core}{'Bias' if bias else ''}{act}{'MS' if domain else ''}"
                    rules.append(type(f"Qdq{name}", (base,), {"domain": domain, "act": act, "bias": bias,
                                                               "name": f"qdq-{name}"}))
    return tuple(rules)


@register_pass
class FuseQdq(RewriteRulePass):
    """Fuse DQ -> Conv/MatMul/Gemm [-> Relu / Clip] -> Q into QLinearConv / QLinearMatMul / QGemm (integer execution)."""

    name = "fuse-qdq"
    rules = _variants()
